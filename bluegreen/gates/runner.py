"""The gates and side effects run around each lifecycle command: the environment's rule (window,
approvals), the verified backup, approvals, hooks and the cutover hold flag.

The controller calls each of these at one clear point of its story and never while it holds a
database lock, so none of them can make writers wait. Each refusal here happens before anything
on disk changes.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

from bluegreen.config import Config
from bluegreen.engine import generations
from bluegreen.engine.replay import Replayer
from bluegreen.errors import EXIT_FAILED, EXIT_GATE, EXIT_REVERT_REFUSED, ArgumentInvalid, BluegreenError, ConfigInvalid
from bluegreen.files import pointer
from bluegreen.files.journal import State, Store
from bluegreen.gates import approvals, backup, environments, hold
from bluegreen.gates.hooks import HookContext, HookRun, Hooks
from bluegreen.results import Result, Timed


class CommandRun(Protocol):
    """What the gates need of the running command (lifecycle/run.py's Run): a timed step, and a
    place for hook runs (reported among the timed steps and in the result)."""

    hook_runs: list[HookRun]

    def timed(self, name: str) -> AbstractContextManager: ...

    def hook_ran(self, run: HookRun) -> None: ...


class GateRunner:
    def __init__(self, config: Config, store: Store, environment: str | None, progress: object):
        self.config = config
        self.store = store
        self.environment = environment  # the chosen environment's name (--env or $BLUEGREEN_ENV), if any
        self.approvals = approvals.Approvals(store.state_dir, store.file_mode())
        self.hooks = Hooks(config, store)
        self._progress = progress

    # ------------------------------------------------------------------------------------------
    # the environment's rule, the verified backup, approvals
    # ------------------------------------------------------------------------------------------
    def check_environment(self, command: str, pending: list, force: bool, reason: str, log: bool = True) -> None:
        """The environment's cutover rule (approvals, window), before anything is touched; a window
        closed but overridden with --force is logged with its reason, who and when."""
        env = environments.select(self.config, self.environment)
        if env is None or not pending:
            return
        version = pending[-1].version
        check = environments.check_cutover(env, version, [a.by for a in self.approvals.of(version, env.name)])
        check.enforce(command, force)
        if force and check.window_closed and log:
            self.store.log(
                "window_forced",
                command=command,
                environment=env.name,
                version=version,
                window=check.window.text,
                now=check.window.now,
                reason=reason,
                by=_who(),
            )

    def backup_blue(self, run: CommandRun, blue: Path) -> dict:
        """A verified backup of blue before prepare touches it, if the environment asks for one."""
        env = environments.select(self.config, self.environment)
        if env is None or not env.backup:
            return {}
        with run.timed(Timed.BACKUP):
            made = backup.take(blue, env.backup_dir, self.config.snapshot.pages_per_step)
        self.store.log(
            "backup", file=str(made.path), source=blue.name, tables=made.tables, rows=made.rows, bytes=made.bytes
        )
        return {"backup": str(made.path)}

    def stamp_approvals(self, green: Path, pending: list) -> None:
        """Who approved the target version goes into green's history rows before the swap."""
        if not pending:
            return
        env = environments.select(self.config, self.environment)
        version = pending[-1].version
        approvals.stamp(
            green,
            [m.file for m in pending],
            self.approvals.of(version, env.name if env else ""),
            self.config.cutover.lock_timeout_ms,
        )

    def approve(self, version: str, by: str, note: str = "") -> Result:
        env = environments.select(self.config, self.environment)
        active = generations.active_path(self.config.database.pointer, self.store)
        versions = list(dict.fromkeys(m.version for m in generations.pending(self.config.migrations.dir, active)))
        wanted = approvals.normalize_version(version)
        if wanted not in versions:
            raise ArgumentInvalid(
                f"{version}: not a pending version of {active.name} (pending: "
                f"{', '.join(versions) or 'none'}); approve one of those"
            )
        where = env.name if env else ""
        approval, new = self.approvals.record(wanted, by, where, note)
        if new:
            self.store.log("approval", version=wanted, by=approval.by, environment=where, note=note)
        have = [a.by for a in self.approvals.of(wanted, where)]
        required = env.approvals if env else 0
        scope = f" for {where}" if where else ""
        text = (
            f"{approval.by} approved v{wanted}{scope}"
            if new
            else f"{approval.by} had already approved v{wanted}{scope} (at {approval.at}), counted once"
        )
        text += (
            f": {len(have)} of {required} distinct approval(s) ({', '.join(have)})"
            if env
            else f"; approved so far by {', '.join(have)} (no environments configured: none required)"
        )
        if wanted != versions[-1]:
            text += f"; note: cutover counts approvals of the target version v{versions[-1]}"
        return Result(
            "approve",
            text,
            data={
                "version": wanted,
                "environment": where,
                "approved_by": have,
                "required": required,
                "new": new,
                "target_version": versions[-1],
            },
        )

    # ------------------------------------------------------------------------------------------
    # hooks and the hold flag
    # ------------------------------------------------------------------------------------------
    def pre_hook(
        self, run: CommandRun, event: str, command: str, state: State, versions: tuple[str, str], outcome: str
    ) -> None:
        """A pre-* hook is a gate: if it fails, refuse with `outcome` (what stays as it is)."""
        run = self._run_hook(run, self._hook_context(event, command, state, versions))
        if run and not run.ok:
            raise self.hooks.refusal(run, outcome)

    def post_hook(
        self,
        command_run: CommandRun,
        event: str,
        command: str,
        state: State,
        versions: tuple[str, str],
        result: Result,
        verdict: str = "",
    ) -> Result:
        """A post-* hook reports: the operation stands whatever it says; its failure is the error.
        post-watch also hears the watch's verdict and the exit code the command returns."""
        context = self._hook_context(event, command, state, versions, "", result.exit_code, verdict)
        run = self._run_hook(command_run, context)
        if command_run.hook_runs:
            result.data["hooks"] = [r.as_dict() for r in command_run.hook_runs]
        if run and not run.ok:
            raise self.hooks.after_failure(run, result)
        return result

    def _run_hook(self, command_run: CommandRun, context: HookContext) -> HookRun | None:
        run = self.hooks.run(context)
        if run:
            command_run.hook_ran(run)
        return run

    def _hook_context(
        self,
        event: str,
        command: str,
        state: State,
        versions: tuple[str, str],
        error: str = "",
        exit_code: int = 0,
        verdict: str = "",
    ) -> HookContext:
        pointer_path = self.config.database.pointer
        current = pointer.read(pointer_path)
        return HookContext(
            event,
            command,
            self.store.load().phase,
            current.active_path(pointer_path),
            current.generation,
            self.store.folder / state.blue if state.blue else current.active_path(pointer_path),
            self.store.folder / state.green if state.green else None,
            state.green_generation,
            versions[0],
            versions[1],
            error,
            exit_code,
            verdict,
        )

    @contextmanager
    def on_failure(self, run: CommandRun, command: str) -> Iterator[None]:
        """Run the on-failure hook when the operation fails (exit 1, 3 or 5), then let the
        original error through: the hook's own failure is added to it, never replaces it."""
        try:
            yield
        except Exception as exc:
            code = exc.exit_code if isinstance(exc, BluegreenError) else EXIT_FAILED
            if code in (EXIT_FAILED, EXIT_GATE, EXIT_REVERT_REFUSED) and self.hooks.command_for("on-failure"):
                self._run_on_failure(run, command, exc, code)
            raise

    def _run_on_failure(self, command_run: CommandRun, command: str, exc: Exception, code: int) -> None:
        message = exc.message if isinstance(exc, BluegreenError) else f"SQLite error: {exc}"
        try:
            state = self.store.load()
            versions = (pointer.read(self.config.database.pointer).schema_version, state.target_version)
            run = self._run_hook(command_run, self._hook_context("on-failure", command, state, versions, message, code))
        except Exception as hook_exc:  # the hook machinery itself failed: the original error still wins
            self.store.log("hook_error", hook="on-failure", error=str(hook_exc))
            return
        if run and not run.ok and isinstance(exc, BluegreenError):
            exc.message += f" (the on-failure hook also failed: {run.summary(self.config.hooks.timeout_s)})"
            exc.details = {**(exc.details if isinstance(exc.details, dict) else {}), "on_failure_hook": run.as_dict()}

    def check_wait_option(self, wait: bool) -> None:
        if wait and self.config.cutover.wait_flag is None:
            raise ConfigInvalid(
                f'{self.config.path}: --wait needs a hold flag: set [cutover] wait_flag = "data/hold-cutover" '
                "(a file whose presence holds the cutover), or run without --wait"
            )

    def hold_before_deploy(self, run: CommandRun, offline: bool, wait: bool) -> None:
        """Up front, before anything is built: a held deploy without --wait refuses with nothing
        changed; --offline --wait waits here (there is no green to keep caught up yet)."""
        flag = self.config.cutover.wait_flag
        if flag is None or not flag.exists():
            return
        if not wait:
            raise hold.refusal(flag, "deploy", "blue stays active")
        if offline:
            with run.timed(Timed.HOLD):
                hold.wait_while_held(
                    flag, self.config.cutover.wait_timeout_s, None, self._note, "deploy --offline", "blue stays active"
                )

    def hold_prepared(self, run: CommandRun, state: State, wait: bool, open_replayer: Callable[[], Replayer]) -> None:
        """Before a fresh cutover: refuse while the flag exists, or (--wait) keep green caught up
        until it is gone. Green stays prepared either way; only catch-up batches touch it."""
        flag = self.config.cutover.wait_flag
        if flag is None or not flag.exists():
            return
        prepared = f"generation {state.green_generation} stays prepared and blue active"
        if not wait:
            raise hold.refusal(flag, "cutover", prepared)
        replayer = open_replayer()
        try:

            def keep_up() -> int:
                replayer.catch_up()
                return replayer.position().seq

            with run.timed(Timed.HOLD):
                hold.wait_while_held(
                    flag, self.config.cutover.wait_timeout_s, keep_up, self._note, "cutover", prepared + ", caught up"
                )
        finally:
            replayer.close()

    def _note(self, message: str, fields: dict) -> None:
        self.store.log("hold", message=message, **fields)
        note = getattr(self._progress, "note", None)
        if note:
            note(message, fields)


def _who() -> str:
    """The operator's login name for the event log (the uid where no name resolves)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"
