"""What a command did, as data: the CLI renders it as text or as one JSON object."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum


class Timed(StrEnum):
    """Names of timed steps (the report's "phases", the event log's `phase` events) that are not
    journal steps; the journal's own (files/journal.py: Step) are timed under their names too."""

    BACKUP = "backup"
    HOLD = "hold"
    FLUSH = "flush"
    MEASURE_PAUSE = "measure_pause"
    FINAL_REPLAY = "final_replay"
    FENCE = "fence"
    SWAP = "swap"
    PRE_CARRY = "pre_carry"
    UNFENCE = "unfence"


@dataclass
class Timing:
    """One timed step of a command (or a hook run), as the report lists it (JSON: "phases")."""

    name: str
    duration_ms: float


@dataclass
class Result:
    command: str
    message: str
    timings: list[Timing] = field(default_factory=list)
    data: dict = field(default_factory=dict)
    # Non-zero when the command ran but reports a finding (e.g. `check`): the CLI still renders
    # the report, prints `error` as its one stderr line, and exits with this code.
    exit_code: int = 0
    error: str = ""


class Timer:
    """Measures one timed step for the event log and the report."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 1)
