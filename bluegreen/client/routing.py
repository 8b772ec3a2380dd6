"""Gradual read cutover: which file a read-only connection reads while a green is prepared.

Between `prepare` and `cutover`, the controller journal (`.bluegreen/state.json`) says phase
"prepared" and names green. A read-only connection may then read green instead of the active
file: a share of them (`read_percentage_new`), chosen by a stable hash of a routing key so the
same key (a user id, a session) always lands on the same file, in every process, or forced with
`force_new` / `force_old`. Writes always go to the active file: they never reach this module.

Green is only as fresh as its last catch-up: prepare catches up once, cutover catches up again
just before the swap. In between, writes to blue do not reach green, so reads routed to green
can be stale — by minutes if the operator waits between prepare and cutover. That is why it is
opt-in, for a share, and meant to try the new schema's read paths on real traffic before the
swap, not to serve reads that must see the latest write.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

from bluegreen.errors import BluegreenError
from bluegreen.files.journal import Store


@dataclass(frozen=True)
class ReadRouting:
    """What the application asked for; see the module docstring."""

    read_percentage_new: float = 0.0  # 0..100
    key: object = None  # same key, same file; None: each connection draws at random
    force_new: bool = False
    force_old: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.read_percentage_new <= 100:
            raise ValueError(f"read_percentage_new must be between 0 and 100, got {self.read_percentage_new!r}")
        if self.force_new and self.force_old:
            raise ValueError("force_new and force_old cannot both be set")

    @property
    def wanted(self) -> bool:
        return self.force_new or self.read_percentage_new > 0


@dataclass(frozen=True)
class Green:
    file: str
    generation: int
    schema_version: str


def bucket(key: object) -> float:
    """A stable number in [0, 100) for a key: the same in every process and every run (unlike
    hash(), which Python salts per process)."""
    if isinstance(key, bytes):
        data = key
    else:  # 42 and "42" route alike
        data = (key if isinstance(key, str) else repr(key)).encode("utf-8")
    digest = hashlib.sha256(data).digest()
    return int.from_bytes(digest[:8], "big") % 10_000 / 100


def wants_green(routing: ReadRouting) -> bool:
    """Should this connection read green, if a prepared green exists?"""
    if routing.force_old:
        return False
    if routing.force_new:
        return True
    if routing.read_percentage_new <= 0:
        return False
    point = bucket(routing.key) if routing.key is not None else random.uniform(0, 100)
    return point < routing.read_percentage_new


def prepared_green(pointer_path: Path) -> Green | None:
    """The green a read may use: only while the journal says "prepared" (validated, caught up
    at prepare). Any other phase, or no readable journal, means: read the active file."""
    try:
        state = Store(pointer_path).load()
    except BluegreenError:
        return None
    if state.phase != "prepared" or not state.green or state.green_generation < 2:
        return None
    if not (Path(pointer_path).resolve().parent / state.green).is_file():
        return None
    return Green(state.green, state.green_generation, state.target_version)
