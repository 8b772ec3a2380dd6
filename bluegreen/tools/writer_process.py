"""The parent's side of a writer process: start it, wait until it has written, stop it, and read
the record of what it was told is committed.

The demo, the rehearsal, the tests and the benchmarks all drive the writer program
(bluegreen.tools.writer) through WriterProcess; a test can hand it another program too (the
README's own example application), as long as that one logs the same JSON lines.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import IO


class WriterError(Exception):
    """A writer process did not get as far as it was asked to."""


class WriterExited(WriterError):
    """The process ended first."""

    def __init__(self, returncode: int):
        super().__init__(f"the writer process exited (code {returncode})")
        self.returncode = returncode


class WriterStalled(WriterError):
    """Not enough writes before the timeout."""


class WriterGaveUp(WriterError):
    """It logged the event the caller named as its giving up (e.g. `no_target`)."""


def read_log(log_path: Path) -> list[dict]:
    """A writer's log, one event a line; nothing yet if it has not made the file."""
    try:
        lines = Path(log_path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.strip()]


def writer_command(mode: str, target: Path, log: Path | None = None, **options: object) -> list[str]:
    """The command line of the writer program; options are its flags (seed=3 -> --seed 3)."""
    command = [sys.executable, "-m", "bluegreen.tools.writer", mode, str(target)]
    if log is not None:
        command.append(str(log))
    for name, value in options.items():
        if value is not None:
            command += [f"--{name}", str(value)]
    return command


class WriterProcess:
    """One writer process and its log. `stop` is the file that tells it to end (default LOG.stop)."""

    def __init__(
        self,
        command: list[str],
        log: Path | None,
        stop: Path | None = None,
        *,
        stdout: int | IO | None = None,
        stderr: int | IO | None = None,
    ):
        self.log = log
        self.stop_file = stop if stop is not None else (Path(f"{log}.stop") if log is not None else None)
        self.process = subprocess.Popen(command, stdout=stdout, stderr=stderr)

    @classmethod
    def start(
        cls,
        mode: str,
        target: Path,
        log: Path | None = None,
        *,
        stdout: int | IO | None = None,
        stderr: int | IO | None = None,
        **options: object,
    ) -> WriterProcess:
        """The writer program in `mode` (see bluegreen.tools.writer)."""
        stop = options.get("stop")
        return cls(
            writer_command(mode, target, log, **options),
            log,
            Path(stop) if stop else None,
            stdout=stdout,
            stderr=stderr,
        )

    # -- what it wrote --------------------------------------------------------------------------
    def records(self) -> list[dict]:
        return read_log(self.log) if self.log is not None else []

    def count(self, event: str | None = "committed", on: str | None = None) -> int:
        """How many `event` records (None: records of any event) it has logged; on: only those on
        the file of that name."""
        return sum(
            1
            for e in self.records()
            if (event is None or e.get("event") == event) and (on is None or e.get("file") == on)
        )

    def wait_for(
        self,
        count: int,
        *,
        event: str | None = "committed",
        on: str | None = None,
        timeout: float = 30.0,
        poll: float = 0.01,
        gives_up: str | None = None,
    ) -> None:
        """Until it has logged `count` records of `event` in all; raises WriterExited, WriterStalled
        or (when it logs a `gives_up` event) WriterGaveUp."""
        deadline = time.monotonic() + timeout
        while self.count(event, on) < count:
            if gives_up is not None and self.count(gives_up):
                raise WriterGaveUp(f"the writer process logged {gives_up}")
            if self.process.poll() is not None:
                raise WriterExited(self.process.returncode)
            if time.monotonic() > deadline:
                raise WriterStalled(f"fewer than {count} {event} records in {timeout} s")
            time.sleep(poll)

    # -- its end --------------------------------------------------------------------------------
    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def poll(self) -> int | None:
        return self.process.poll()

    def running(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self, timeout: float = 60.0) -> int:
        """Ask it to end (the stop file) and wait; its exit code."""
        if self.stop_file is not None:
            self.stop_file.write_text("stop")
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
