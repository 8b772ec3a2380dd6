"""The data folder beside the pointer: generation file names, controller state, lock, event log.

Everything the controller persists about itself lives in `<pointer folder>/.bluegreen/`:
`lock` (an flock'd file that is never replaced, so one controller runs at a time),
`state.json` (the journal: which phase, which operation, which step; written atomically) and
`events.jsonl` (an append-only log of every phase change with its duration).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import stat
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

from bluegreen.errors import Busy, InputError
from bluegreen.pointer import atomic_write, now_iso

STATE_DIR = ".bluegreen"
SIDE_FILES = ("-wal", "-shm", "-journal")


@dataclass
class State:
    """The controller's journal: what is in flight, and facts recovery needs."""

    base_name: str  # the adopted file's name; generations are named after it
    last_generation: int = 1  # never reused, even when a generation is abandoned
    phase: str = "idle"  # idle | preparing | prepared | cutting_over | cut_over | reverting
    operation: str = ""  # the command that owns the phase
    step: str = ""  # the last journaled step inside the operation
    blue: str = ""  # the file being moved away from (active until the swap)
    blue_generation: int = 0
    green: str = ""  # the in-flight generation's file name
    green_generation: int = 0
    target_version: str = ""  # schema version green will have
    started_at: str = ""
    fences: dict[str, int] = field(default_factory=dict)  # fenced file -> schema_version at fence
    reverted: list[str] = field(default_factory=list)  # generations that may never be active again
    conflict: dict = field(default_factory=dict)  # the last replay conflict (a row green's schema rejects), for status


class Store:
    def __init__(self, pointer_path: Path):
        self.pointer_path = Path(pointer_path).resolve()
        self.folder = self.pointer_path.parent
        self.state_dir = self.folder / STATE_DIR
        self.state_path = self.state_dir / "state.json"
        self.events_path = self.state_dir / "events.jsonl"
        self.lock_path = self.state_dir / "lock"

    # -- lock ---------------------------------------------------------------------------------
    @contextmanager
    def locked(self) -> Iterator[None]:
        """One controller at a time: an flock on a dedicated file (never a database, hazard 8)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 200).decode("utf-8", "replace").strip()
                raise Busy(
                    f"{self.lock_path}: another bluegreen controller is running ({holder or 'pid unknown'}); "
                    "wait for it to finish"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} since {now_iso()}".encode(), 0)
            yield
        finally:
            os.close(fd)

    # -- state --------------------------------------------------------------------------------
    def initialized(self) -> bool:
        return self.state_path.exists()

    def load(self) -> State:
        try:
            raw = json.loads(self.state_path.read_text(encoding="utf-8"))
            return State(**raw)
        except FileNotFoundError:
            raise InputError(
                f"{self.state_path}: no bluegreen state here; run `bluegreen init` first"
            ) from None
        except (ValueError, TypeError) as exc:
            raise InputError(f"{self.state_path}: controller state is damaged ({exc})") from None

    def save(self, state: State) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.state_path, json.dumps(asdict(state), indent=2).encode("utf-8"))

    # -- generations --------------------------------------------------------------------------
    def generation_name(self, base_name: str, generation: int) -> str:
        stem, dot, suffix = base_name.rpartition(".")
        if not dot:
            stem, suffix = base_name, ""
        return f"{stem}.gen{generation}{'.' + suffix if suffix else ''}"

    def generations_on_disk(self, base_name: str) -> dict[int, Path]:
        stem, dot, suffix = base_name.rpartition(".")
        if not dot:
            stem, suffix = base_name, ""
        pattern = re.compile(re.escape(stem) + r"\.gen(\d+)" + (re.escape("." + suffix) if suffix else "") + "$")
        found = {1: self.folder / base_name} if (self.folder / base_name).exists() else {}
        for entry in self.folder.iterdir():
            match = pattern.match(entry.name)
            if match:
                found[int(match.group(1))] = entry
        return dict(sorted(found.items()))

    def allocate_generation(self, state: State) -> tuple[int, Path]:
        """Next never-used number; refuses if its file or a stray -wal/-shm already exists (hazard 2)."""
        on_disk = self.generations_on_disk(state.base_name)
        number = max([state.last_generation, *on_disk]) + 1
        path = self.folder / self.generation_name(state.base_name, number)
        for candidate in [path] + [Path(f"{path}{side}") for side in SIDE_FILES]:
            if os.path.lexists(candidate):
                raise InputError(
                    f"{candidate}: already exists; a new generation is never built over an old file. "
                    "Move it away if it is not needed"
                )
        return number, path

    # -- event log ----------------------------------------------------------------------------
    def log(self, event: str, **fields: object) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        record = {"at": now_iso(), "event": event, **fields}
        with open(self.events_path, "a", encoding="utf-8") as out:
            out.write(json.dumps(record, default=str) + "\n")

    def events(self) -> list[dict]:
        try:
            lines = self.events_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]


def remove_database_files(path: Path) -> None:
    """Delete a database and its side files. Call only after every connection to it is closed."""
    for candidate in [Path(path)] + [Path(f"{path}{side}") for side in SIDE_FILES]:
        try:
            os.unlink(candidate)
        except FileNotFoundError:
            pass


def file_mode(path: Path) -> int:
    """Permission bits; green and the pointer get blue's, so a 0600 database stays 0600."""
    return stat.S_IMODE(os.stat(path).st_mode)


class Timer:
    """Measures one phase for the event log and the report."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 1)
