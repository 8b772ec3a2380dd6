"""Hooks: shell commands configured per lifecycle event ([hooks] in config.toml).

A release script, a load balancer or a person's pager can take part in a deploy without wrapping
bluegreen: `pre-*` hooks are gates (their failure refuses the operation before it touches
anything), `post-*` hooks report what happened, `on-failure` hears about errors. Each hook runs
through `/bin/sh -c` in the config's folder, with the operation described in `BLUEGREEN_*`
variables, its output captured (the tail goes to the result and the event log), and a time limit
after which its whole process group is killed. The controller calls hooks only while it holds no
database lock, so a slow hook never makes the application's writers wait.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bluegreen.config import Config
from bluegreen.errors import AfterHookFailed, BluegreenError, HookRefused
from bluegreen.files.journal import Store
from bluegreen.results import Result

EVENTS = ("pre-prepare", "post-prepare", "pre-cutover", "post-cutover", "post-revert", "post-watch", "on-failure")
TAIL_CHARS = 4000  # output kept per hook run: enough for a stack trace's end, small in a log line
KILL_GRACE_S = 2.0  # after SIGTERM at the time limit, before SIGKILL


@dataclass(frozen=True)
class HookContext:
    """What the operation is doing when the hook runs; becomes the hook's BLUEGREEN_* variables."""

    event: str
    command: str  # the bluegreen command: prepare, cutover, deploy, revert, resume
    phase: str  # the journal's phase when the hook runs
    active: Path | None  # the file the pointer names when the hook runs
    generation: int  # ... and its generation
    blue: Path | None  # the file moved away from (cutover) or back to (revert)
    green: Path | None  # the new generation's file (None before prepare spends a number)
    green_generation: int
    from_version: str  # schema version the operation moves away from
    to_version: str  # ... and the one it moves to
    error: str = ""  # on-failure: the error message
    exit_code: int = 0  # on-failure: the exit code bluegreen will return
    verdict: str = ""  # post-watch: what the watch after the swap found (lifecycle/watch.py)

    def environment(self, config: Config) -> dict[str, str]:
        values = {
            "EVENT": self.event,
            "COMMAND": self.command,
            "PHASE": self.phase,
            "CONFIG": str(config.path),
            "POINTER": str(config.database.pointer),
            "ACTIVE": str(self.active or ""),
            "GENERATION": str(self.generation or ""),
            "BLUE": str(self.blue or ""),
            "GREEN": str(self.green or ""),
            "GREEN_GENERATION": str(self.green_generation or ""),
            "FROM_VERSION": self.from_version,
            "TO_VERSION": self.to_version,
        }
        if self.event == "on-failure":
            values.update(ERROR=self.error, EXIT_CODE=str(self.exit_code))
        if self.event == "post-watch":
            values.update(WATCH=self.verdict, EXIT_CODE=str(self.exit_code))
        return {f"BLUEGREEN_{key}": value for key, value in values.items()}


@dataclass(frozen=True)
class HookRun:
    """One hook's outcome, as the result, the error details and the event log show it."""

    event: str
    shell: str  # the configured command line
    exit_code: int | None  # None when it was killed at the time limit
    timed_out: bool
    duration_ms: float
    output: str  # the tail of stdout and stderr, interleaved

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def summary(self, timeout_s: int) -> str:
        """One line: how it ended and its last line of output."""
        how = f"timed out after {timeout_s} s ([hooks] timeout_s)" if self.timed_out else f"exit {self.exit_code}"
        last = next((line.strip() for line in reversed(self.output.splitlines()) if line.strip()), "")
        return f"{how}: {last[:200]}" if last else f"{how}, no output"

    def as_dict(self) -> dict:
        return asdict(self)


class Hooks:
    def __init__(self, config: Config, store: Store):
        self.config = config
        self.store = store

    def command_for(self, event: str) -> str:
        return getattr(self.config.hooks, event.replace("-", "_"))

    def run(self, context: HookContext) -> HookRun | None:
        """Run the event's hook if one is configured; None if not. Never raises for the hook's
        own failure: the caller decides what a failure means for its event."""
        shell = self.command_for(context.event)
        if not shell:
            return None
        timeout_s = self.config.hooks.timeout_s
        started = time.perf_counter()
        with tempfile.TemporaryFile() as output:
            # A file, not a pipe: a hook that leaves a background process holding its stdout must
            # not keep us waiting. Its own session, so the time limit can kill everything it started.
            proc = subprocess.Popen(
                ["/bin/sh", "-c", shell],
                cwd=self.config.path.parent,
                env={**os.environ, **context.environment(self.config)},
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            timed_out = False
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc)
            except BaseException:  # Ctrl-C while a hook runs: it must not outlive us
                _kill_group(proc, grace_s=0)
                raise
            output.seek(max(0, os.fstat(output.fileno()).st_size - TAIL_CHARS))
            tail = output.read().decode("utf-8", "replace")
        run = HookRun(
            context.event,
            shell,
            None if timed_out else proc.returncode,
            timed_out,
            round((time.perf_counter() - started) * 1000, 1),
            tail,
        )
        self.store.log(
            "hook",
            hook=run.event,
            command=context.command,
            ok=run.ok,
            shell=shell,
            exit_code=run.exit_code,
            timed_out=timed_out,
            duration_ms=run.duration_ms,
            output=tail,
        )
        return run

    # -- what a failure means, per kind of event ----------------------------------------------
    def refusal(self, run: HookRun, outcome: str) -> HookRefused:
        """A pre-* hook is a gate: its failure refuses the operation. outcome: what stays as it
        is and what to run next."""
        return HookRefused(
            f"the {run.event} hook ([hooks] {run.event} in {self.config.path}) refused "
            f"({run.summary(self.config.hooks.timeout_s)}); {outcome}",
            details={"hook": run.as_dict()},
        )

    def after_failure(self, run: HookRun, result: Result) -> BluegreenError:
        """A post-* hook failed after the operation was done. Exit 6 says the operation stands,
        so a release script does not run it again, and hands over the result it would have
        printed. In deploy, post-prepare is the last word before the cutover: its
        failure stops there, as a gate (exit 3), with green prepared and blue still active."""
        summary = run.summary(self.config.hooks.timeout_s)
        details = {"hook": run.as_dict(), "command": result.command, **result.data}
        if run.event == "post-prepare" and result.command == "deploy":
            return HookRefused.with_hint(
                f"generation {result.data.get('generation')} is prepared, but the post-prepare hook failed "
                f"({summary}): {result.command} stopped before the cutover and blue is still active",
                "run `bluegreen cutover` once it is fixed, or `bluegreen abort`",
                details=details,
            )
        return AfterHookFailed(
            f"{result.message.splitlines()[0]} — but the {run.event} hook failed ({summary}): {STANDS[run.event]}",
            details=details,
        )


# What a post-* hook's failure leaves behind, and what to do about it.
STANDS = {
    "post-prepare": "the generation stays prepared; do the hook's job by hand, then `bluegreen cutover` (or abort)",
    "post-cutover": "the cutover stands (do not deploy again); do the hook's job by hand, or `bluegreen revert`",
    "post-revert": "the revert stands (do not revert again); do the hook's job by hand",
    "post-watch": "the watch's outcome stands (do not deploy again); do the hook's job by hand",
}


def _kill_group(proc: subprocess.Popen, grace_s: float = KILL_GRACE_S) -> None:
    """SIGTERM the hook's whole process group, then SIGKILL whatever is left after a grace
    (sh's children included: the group outlives its leader)."""
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(proc, signal.SIGKILL)
    proc.wait()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:  # the whole group is gone already
        pass
