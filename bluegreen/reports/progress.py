"""Progress of long phases (snapshot, migrate, catch-up, validate): a line with an ETA on a terminal,
JSON lines on stderr under --json, silence otherwise (a cron job's log stays clean). On a terminal
the line is rewritten in place; `end()` clears a line left open (a phase that stopped short of
100%), so what the command prints next starts at the beginning of a line."""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO

THROTTLE_S = 0.2


class ProgressReporter:
    def __init__(self, mode: str, stream: TextIO | None = None):
        """mode: "tty" (overwritten line), "json" (one object per line) or "quiet". stream:
        default is whatever sys.stderr is when a line is written (so redirection works)."""
        self.mode = mode
        self._stream = stream
        self.phase = ""
        self.started = 0.0
        self.last = 0.0
        self.first_left = 0  # work left at the phase's first report: the ETA follows how fast it shrinks
        self.done = 0
        self.open = False  # a terminal line is written and not yet ended
        self.shown_finished = False  # this phase's 100% line is on the screen already

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stderr

    @classmethod
    def for_cli(cls, as_json: bool) -> ProgressReporter:
        if as_json:
            return cls("json")
        return cls("tty" if sys.stderr.isatty() else "quiet")

    def __call__(self, phase: str, done: int, total: int) -> None:
        if self.mode == "quiet" or total <= 0:
            return
        now = time.monotonic()
        if phase != self.phase or done < self.done:  # a new phase, or the same phase run again
            self.phase, self.started, self.last, self.first_left = phase, now, 0.0, total - done
            self.shown_finished = False
        self.done = done
        finished = done >= total
        if finished and self.shown_finished:  # told twice that it is done: once on the screen is enough
            return
        self.shown_finished = finished
        if not finished and now - self.last < THROTTLE_S:
            return
        self.last = now
        eta = _eta(now - self.started, self.first_left, total - done)
        if self.mode == "json":
            record = {
                "event": "progress",
                "phase": phase,
                "done": done,
                "total": total,
                "percent": round(100 * done / total, 1),
                "eta_s": eta,
            }
            self.stream.write(json.dumps(record) + "\n")
        else:
            left = "done" if finished else _eta_text(eta, self.first_left, total - done, now - self.started)
            self.stream.write(f"\r{phase:<9} {100 * done // total:3d}%  {done:,}/{total:,}  {left}\033[K")
            self.open = not finished
            if finished:
                self.stream.write("\n")
        self.stream.flush()

    def end(self) -> None:
        """Before the command's own last words: clear a terminal line a phase left unfinished, so
        the final message (stdout or stderr, both on the terminal) starts at a line's start."""
        if self.mode == "tty" and self.open:
            self.stream.write("\r\033[K")
            self.stream.flush()
        self.open = False

    def note(self, message: str, fields: dict) -> None:
        """A status line that is not a fraction (waiting on a hold flag): its own line on a
        terminal, {"event": "note", ...} under --json, silence otherwise. fields may name another
        event ({"event": "throttle", ...}: the build paused or went on, lifecycle/throttle.py)."""
        if self.mode == "json":
            self.stream.write(json.dumps({"event": "note", "message": message, **fields}) + "\n")
        elif self.mode == "tty":
            self.stream.write(f"\r{message}\033[K\n")
            self.open = False
        else:
            return
        self.stream.flush()


def _eta(elapsed: float, first_left: int, left: int) -> float | None:
    """Seconds to go at the rate the work left has been shrinking since the phase began; None
    while it has not shrunk (a total that grows as fast as the work is done never gets an ETA:
    extrapolating from work done alone said "eta 0.2 s" for ever, hazard 19)."""
    shrunk = first_left - left
    if shrunk <= 0 or elapsed <= 0:
        return None
    return round(elapsed / shrunk * left, 1)


def _eta_text(eta: float | None, first_left: int, left: int, elapsed: float) -> str:
    if eta is not None:
        return f"ETA {eta:.0f} s"
    if left > first_left and elapsed > 0:
        return "falling behind: work arrives faster than it is done"
    return ""
