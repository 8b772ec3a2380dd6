"""The controller's journal beside the pointer: its state, its lock, its event log, generation names.

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
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from bluegreen.errors import Busy, FileInTheWay, JournalInvalid, PointerInvalid
from bluegreen.files.layout import SIDE_FILES, STATE_DIR, file_mode, folder_mode, make_dirs, open_file, write_file
from bluegreen.files.pointer import MAX_GENERATION, Pointer, now_iso


@dataclass
class State:
    """The controller's journal: what is in flight, and facts recovery needs."""

    base_name: str  # the adopted file's name; generations are named after it
    last_generation: int = 1  # never reused, even when a generation is abandoned
    phase: str = "idle"  # a Phase (below): idle | preparing | prepared | cutting_over | cut_over | reverting
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


class Phase(StrEnum):
    """The journal's lifecycle state (state.json's `phase`); a str, so the file reads as before."""

    IDLE = "idle"
    PREPARING = "preparing"
    PREPARED = "prepared"
    CUTTING_OVER = "cutting_over"
    CUT_OVER = "cut_over"
    REVERTING = "reverting"


class Step(StrEnum):
    """The journal's step names inside an operation (state.json's `step`); each journaled step is
    also a crash point, `BLUEGREEN_CRASH_AT=operation:step`."""

    NONE = ""
    CAPTURE = "capture"  # prepare: capture installed on blue
    BARRIER = "barrier"  # deploy --offline: blue's write lock taken
    SNAPSHOT = "snapshot"
    MIGRATE = "migrate"
    CATCH_UP = "catch_up"
    VALIDATE = "validate"
    VALIDATED = "validated"  # prepared: green built, caught up, validated
    FENCED = "fenced"  # the retiring file's fence committed
    SWAPPED = "swapped"  # the pointer moved
    CARRY_BACK = "carry_back"  # revert: green's changes carried into blue under green's barrier
    UNFENCED = "unfenced"  # revert: blue takes writes again (the pointer still names green)
    CLOSING = "closing"  # finalize: green's capture being removed


PHASES = tuple(Phase)
_NAME_FIELDS = ("base_name", "blue", "green")  # file names in the pointer's folder
_NUMBER_FIELDS = ("last_generation", "blue_generation", "green_generation")


class Store:
    def __init__(self, pointer_path: Path):
        self.pointer_path = Path(pointer_path).resolve()
        self.folder = self.pointer_path.parent
        self.state_dir = self.folder / STATE_DIR
        self.state_path = self.state_dir / "state.json"
        self.events_path = self.state_dir / "events.jsonl"
        self.lock_path = self.state_dir / "lock"
        self._log_warned = False

    # -- lock ---------------------------------------------------------------------------------
    @contextmanager
    def locked(self) -> Iterator[None]:
        """One controller at a time: an flock on a dedicated file (never a database, hazard 8)."""
        self.make_state_dir()
        fd = open_file(self.lock_path, os.O_RDWR | os.O_CREAT, self.file_mode())
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 200).decode("utf-8", "replace").strip()
                raise Busy(
                    f"{self.lock_path}: another bluegreen controller is running ({holder or 'pid unknown'}); "
                    "wait for it to finish"
                ) from None
            try:  # who holds it, for the Busy message of the next one: helpful, not needed
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"pid {os.getpid()} since {now_iso()}".encode(), 0)
            except OSError:
                pass
            yield
        finally:
            os.close(fd)

    # -- modes ------------------------------------------------------------------------------
    def file_mode(self) -> int:
        """The mode of every file bluegreen writes here: the pointer's, which is always blue's
        (pointer.write gives it the active file's mode); 0600 before the pointer exists. Never
        more readable than blue: the journal, log and exports name and hold its data."""
        try:
            return file_mode(self.pointer_path) & 0o666
        except OSError:
            return 0o600

    def make_state_dir(self) -> None:
        """Create .bluegreen, or narrow one an older bluegreen made wider than blue allows (a
        folder's mode guards names, not data: narrowing it is always safe)."""
        wanted = folder_mode(self.file_mode())
        make_dirs(self.state_dir, wanted)
        try:
            mode = file_mode(self.state_dir)
            if mode & ~wanted:
                os.chmod(self.state_dir, mode & wanted)
        except OSError:
            pass

    # -- state --------------------------------------------------------------------------------
    def initialized(self) -> bool:
        return self.state_path.exists()

    def load(self) -> State:
        try:
            text = self.state_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise JournalInvalid.with_hint(
                f"{self.state_path}: no bluegreen state here", "run `bluegreen init` first"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise JournalInvalid.with_hint(
                f"{self.state_path}: cannot read the controller state ({exc})", _RESTORE_STATE
            ) from None
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise JournalInvalid.with_hint(
                f"{self.state_path}: controller state is damaged ({exc})", _RESTORE_STATE
            ) from None
        return check_state(self.state_path, raw)

    def save(self, state: State) -> None:
        self.make_state_dir()
        write_file(
            self.state_path,
            json.dumps(asdict(state), indent=2).encode("utf-8"),
            self.file_mode(),
            "the journal still holds the step before; nothing committed was lost",
        )

    def check_pointer(self, state: State, current: Pointer) -> None:
        """The pointer and the journal must tell one story (a pointer restored from an old copy
        or edited by hand would have deploy fence, or revert overwrite, the wrong file)."""
        expected = generation_file(state.base_name, current.generation)
        allowed = {
            Phase.PREPARING: [state.blue],
            Phase.PREPARED: [state.blue],
            Phase.CUTTING_OVER: [state.blue, state.green],
            Phase.CUT_OVER: [state.green],
            Phase.REVERTING: [state.blue, state.green],
        }.get(state.phase)
        problem = ""
        if current.generation > state.last_generation:
            problem = f"the journal has allocated generations up to {state.last_generation} only"
        elif current.active != expected:
            problem = f"generation {current.generation} is the file {expected!r}"
        elif allowed is not None and current.active not in allowed:
            problem = f"phase {state.phase} has {' or '.join(repr(a) for a in allowed)} active"
        elif allowed is None and current.active in state.reverted:
            problem = "that generation was reverted and may never be active again"
        if problem:
            raise PointerInvalid.with_hint(
                f"{self.pointer_path}: pointer names {current.active!r} as generation {current.generation}, which "
                f"contradicts the journal {self.state_path} ({problem}); nothing was changed",
                f"restore the pointer (the last `swap` line of {self.events_path} says which file is active), then "
                "run the command again",
                sep=": ",
            )

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
                raise FileInTheWay.with_hint(
                    f"{candidate}: already exists; a new generation is never built over an old file",
                    "Move it away if it is not needed",
                    sep=". ",
                )
        return number, path

    # -- event log ----------------------------------------------------------------------------
    def log(self, event: str, **fields: object) -> None:
        """Append one line. Best effort on a full disk: the journal, not the log, is what recovery
        reads, and retention falls back to file times (which only keeps files longer)."""
        record = {"at": now_iso(), "event": event, **fields}
        line = (json.dumps(record, default=str) + "\n").encode("utf-8")
        try:
            self.make_state_dir()
            fd = open_file(self.events_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, self.file_mode())
            try:
                os.write(fd, line)  # one write of one line: O_APPEND keeps lines whole
            finally:
                os.close(fd)
        except OSError as exc:
            if not self._log_warned:
                self._log_warned = True
                print(
                    f"bluegreen: warning: {self.events_path}: event not logged ({exc.strerror}); free space on "
                    f"{self.folder} (the journal is intact)",
                    file=sys.stderr,
                )

    def events(self) -> list[dict]:
        """Every whole line; a torn last line (a full disk, a crash mid-write) is skipped."""
        try:
            lines = self.events_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return []
        found = []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("event"), str) and _is_time(record.get("at")):
                found.append(record)
        return found


_RESTORE_STATE = (
    "restore it from a backup of the data folder (events.jsonl records each step); "
    "bluegreen changes nothing until it reads"
)


def check_state(path: Path, raw: object) -> State:
    """The journal, field by field: a hand-edited or torn state.json is refused, never half-read."""
    known = {f.name for f in fields(State)}
    if not isinstance(raw, dict) or "base_name" not in raw or set(raw) - known:
        extra = sorted(set(raw) - known) if isinstance(raw, dict) else []
        raise JournalInvalid.with_hint(
            f"{path}: controller state is damaged ("
            + (f"unknown keys {extra}" if extra else "not a journal object with base_name")
            + ")",
            _RESTORE_STATE,
        )

    def bad(key: str, why: str) -> JournalInvalid:
        return JournalInvalid.with_hint(f"{path}: journal key {key!r} {why}, got {raw[key]!r}", _RESTORE_STATE)

    for spec in fields(State):
        if spec.name not in raw:
            continue
        value = raw[spec.name]
        if spec.name in _NUMBER_FIELDS:
            low = 1 if spec.name == "last_generation" else 0
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_GENERATION:
                raise bad(spec.name, f"must be a whole number from {low} to {MAX_GENERATION}")
        elif spec.name == "fences":
            if not isinstance(value, dict) or not all(
                _plain_name(k) and isinstance(v, int) and not isinstance(v, bool) for k, v in value.items()
            ):
                raise bad(spec.name, "must map file names to schema versions (integers)")
        elif spec.name == "conflict":
            if not isinstance(value, dict):
                raise bad(spec.name, "must be an object (the last replay conflict) or {}")
        elif spec.name == "reverted":
            if not isinstance(value, list) or not all(_plain_name(v) for v in value):
                raise bad(spec.name, "must list file names")
        elif not isinstance(value, str) or "\x00" in value:
            raise bad(spec.name, "must be a string without NUL bytes")
        elif spec.name in _NAME_FIELDS and value and not _plain_name(value):
            raise bad(spec.name, "must be a plain file name in the pointer's folder")
    state = State(**raw)
    if not state.base_name:
        raise bad("base_name", "must name the adopted file")
    if state.phase not in PHASES:
        raise bad("phase", f"must be one of {', '.join(PHASES)}")
    if state.phase != Phase.IDLE and not state.blue:
        raise bad("blue", f"must name the active file while phase is {state.phase}")
    for key in ("blue_generation", "green_generation"):
        if getattr(state, key) > state.last_generation:
            raise bad(key, f"is past last_generation ({state.last_generation})")
    for key in ("blue", "green"):  # a file and its number must agree, or revert fences the wrong file
        number = getattr(state, f"{key}_generation")
        if getattr(state, key) and getattr(state, key) != generation_file(state.base_name, number):
            raise bad(key, f"must be generation {number}'s file {generation_file(state.base_name, number)!r}")
    return state


def generation_file(base_name: str, generation: int) -> str:
    """Generation 1 is the adopted file itself; later ones are named after it (app.gen2.db)."""
    if generation == 1:
        return base_name
    stem, dot, suffix = base_name.rpartition(".")
    if not dot:
        stem, suffix = base_name, ""
    return f"{stem}.gen{generation}{'.' + suffix if suffix else ''}"


def _is_time(text: object) -> bool:
    """An event's `at` must be a time: retention computes ages from it (a tampered one is skipped:
    the file's own time is the fallback, which only keeps a file longer)."""
    try:
        return isinstance(text, str) and datetime.fromisoformat(text).tzinfo is not None
    except ValueError:
        return False


def _plain_name(name: object) -> bool:
    return (
        isinstance(name, str)
        and bool(name)
        and "\x00" not in name
        and name == os.path.basename(name)
        and name not in (".", "..", STATE_DIR)
    )
