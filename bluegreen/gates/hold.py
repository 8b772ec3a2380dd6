"""Postponing a cutover: while a flag file exists, cutover is on hold.

A release script and a person agree on the moment with a file: the person creates
`[cutover] wait_flag` to say "not yet", the script runs `bluegreen deploy --wait` (or `cutover
--wait`), which prepares green and keeps it caught up with blue while the flag exists, then cuts
over as soon as the file is gone. Without `--wait` a present flag refuses, with nothing changed.
Waiting only replays blue's captured changes into green, in short transactions, and never holds
blue's write lock: the application writes on as usual.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from bluegreen.errors import Held

POLL_S = 0.5  # how often the flag is looked at (and green caught up) while waiting
NOTE_EVERY_S = 10.0  # how often a waiting line goes to the event log

KeepUp = Callable[[], int]  # catches green up; returns the capture position green now holds
Note = Callable[[str, dict], None]  # (one-line message, fields) for the terminal and the event log


def refusal(flag: Path, command: str, prepared: str) -> Held:
    """The flag is present and the command was not told to wait. prepared: what stays as it is."""
    return Held.with_hint(
        f"{flag}: cutover is on hold while this file exists; {prepared}, nothing was changed",
        f"remove the file and run `bluegreen {command}` again, or run `bluegreen {command} --wait` to cut over "
        "once it is removed",
        sep=": ",
        details={"wait_flag": str(flag)},
    )


def wait_while_held(
    flag: Path, timeout_s: int, keep_up: KeepUp | None, note: Note, command: str, prepared: str, poll_s: float = POLL_S
) -> float:
    """Wait until `flag` is gone, keeping green caught up; returns the seconds waited. Raises
    Held after timeout_s (0: no limit). Ctrl-C ends the wait with green as it is."""
    started = time.monotonic()
    last_note = float("-inf")
    position = keep_up() if keep_up else 0
    while flag.exists():
        waited = time.monotonic() - started
        if timeout_s and waited >= timeout_s:
            raise Held.with_hint(
                f"{flag}: still present after {timeout_s} s ([cutover] wait_timeout_s); {prepared}, "
                "nothing else was changed",
                f"remove the file and run `bluegreen {command}`, or wait again with `bluegreen {command} --wait`",
                sep=": ",
                details={"wait_flag": str(flag), "waited_s": round(waited, 1), "caught_up_to_seq": position},
            )
        if waited - last_note >= NOTE_EVERY_S:
            last_note = waited
            note(
                f"waiting for {flag} to be removed ({waited:.0f} s; green caught up to change {position})",
                {"wait_flag": str(flag), "waited_s": round(waited, 1), "caught_up_to_seq": position},
            )
        time.sleep(poll_s)
        position = keep_up() if keep_up else 0
    waited = round(time.monotonic() - started, 1)
    note(
        f"{flag} is gone after {waited:.0f} s: cutting over",
        {"wait_flag": str(flag), "waited_s": waited, "caught_up_to_seq": position},
    )
    return waited
