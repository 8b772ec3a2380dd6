"""Retention: every file a deploy left in the data folder, with its size and age, and which of
them `bluegreen prune` may remove.

A generation's age counts from when it was *retired* — when a swap moved the pointer away from
it (a cutover retires blue, a revert retires green) — not from when it was built: a file that was
active for a year and retired yesterday is one day old. That moment is read from the `swap`
events in the event log; for a file the log does not cover (retired before the log recorded
`previous`, or the log was removed) the file's own modification time stands in, which is never
earlier than its retirement, so the fallback can only keep a file longer, never prune it early.

Only fenced generations are ever removed: never the active file, never the revert target while a
revert window is open, never a generation in flight, never a file bluegreen did not fence itself,
and never a `*.lost-*.db` export (it may hold the only copy of rows a revert could not carry).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from bluegreen.errors import ArgumentInvalid, WrongPhase
from bluegreen.files.journal import State, Store
from bluegreen.files.layout import SIDE_FILES, remove_database_files
from bluegreen.reports import holders
from bluegreen.results import Result

DAY_S = 86_400.0
PRUNABLE = ("retired", "reverted")
ROLE_TEXT = {
    "active": "the active generation",
    "revert_target": "the revert target (the revert window is open)",
    "in_flight": "the generation an operation in progress is building or moving",
    "retired": "retired by a cutover, fenced",
    "reverted": "retired by a revert, fenced",
    "unfenced": "not fenced by bluegreen (left by something else); never pruned",
    "export": "rows a revert could not carry back; never pruned",
}
SAFE_PHASES = ("idle", "cut_over")  # nothing half-done: every file's role is settled


@dataclass(frozen=True)
class KeptFile:
    """One file in the data folder that a deploy or a revert left there."""

    name: str
    generation: int | None  # None for an export
    role: str  # a key of ROLE_TEXT
    size_bytes: int  # the database and its -wal/-shm
    retired_at: str  # ISO 8601, UTC; "" if it is not retired
    age_from: str  # "swap event", "file time", or "" if it is not retired
    age_days: float | None  # days since retirement; None if it is not retired
    due: bool  # retired longer ago than keep_days: the next `bluegreen prune` removes it

    @property
    def prunable(self) -> bool:
        return self.role in PRUNABLE

    def as_dict(self) -> dict:
        return dict(asdict(self), prunable=self.prunable)

    def describe(self) -> str:
        age = f", retired {self.age_days:.1f} day(s) ago" if self.age_days is not None else ""
        due = ", due for prune" if self.due else ""
        return f"{self.name} ({ROLE_TEXT[self.role]}; {human_size(self.size_bytes)}{age}{due})"


def inventory(store: Store, state: State, active: str, keep_days: int, now: float | None = None) -> list[KeptFile]:
    """Every generation file and export in the data folder, oldest generation first."""
    now = time.time() if now is None else now
    retired = retired_times(store)
    files = [(n, p) for n, p in store.generations_on_disk(state.base_name).items()]
    files += [(None, p) for p in sorted(store.folder.glob(_export_glob(state.base_name)))]
    kept = []
    for generation, path in files:
        role = _role(path.name, generation, state, active)
        retired_at, age_from, age_days = "", "", None
        if role in PRUNABLE:
            retired_at, age_from = retired.get(path.name, ""), "swap event"
            if not retired_at:
                retired_at, age_from = _iso(_newest_mtime(path)), "file time"
            age_days = max(0.0, (now - datetime.fromisoformat(retired_at).timestamp()) / DAY_S)
        due = role in PRUNABLE and age_days is not None and age_days >= keep_days
        kept.append(KeptFile(path.name, generation, role, _size(path), retired_at, age_from, age_days, due))
    return kept


def retired_times(store: Store) -> dict[str, str]:
    """File name → when a swap moved the pointer away from it (the last time, if more than once).
    Walks `init` and `swap` events; a swap event names `previous`, older ones are followed by
    tracking the active file from event to event."""
    retired: dict[str, str] = {}
    active = ""
    for event in store.events():
        if event.get("event") == "init":
            active = event.get("active", "")
        elif event.get("event") == "swap":
            previous = event.get("previous") or active
            if previous and previous != event.get("active"):
                retired[previous] = event["at"]
            retired.pop(event.get("active", ""), None)
            active = event.get("active", "")
    return retired


def check_phase(state: State) -> None:
    """Refuse while an operation is half-done: its journal, not the files, says which file is
    which until resume or abort settles it."""
    if state.phase not in SAFE_PHASES:
        raise WrongPhase.with_hint(
            f"an operation is in progress or was interrupted (phase {state.phase}, {state.operation}: {state.step}); "
            "prune refused, nothing was changed",
            "run `bluegreen resume` or `bluegreen abort` first",
            sep=": ",
        )


def choose(kept: list[KeptFile], names: list[str], keep_days: int, folder: Path) -> list[KeptFile]:
    """What a prune removes: the named files (any age, each must be a fenced generation), or, with
    no names, every fenced generation retired at least keep_days ago."""
    if not names:
        return [k for k in kept if k.due]
    by_name = {k.name: k for k in kept}
    chosen = []
    for given in names:
        name = Path(given).name
        if os.sep in given and Path(given).resolve().parent != folder:
            raise ArgumentInvalid(
                f"{given}: not in the data folder {folder}; name a generation file there. Nothing was changed"
            )
        item = by_name.get(name)
        if item is None:
            raise ArgumentInvalid(
                f"{folder / name}: not a generation in the data folder; `bluegreen generations` lists them. "
                "Nothing was changed"
            )
        if not item.prunable:
            raise ArgumentInvalid(
                f"{folder / name}: {ROLE_TEXT[item.role]}; prune refused, nothing was changed" + _what_to_do(item.role),
                hint=_what_to_do(item.role).removeprefix("; ") or None,
            )
        if item not in chosen:
            chosen.append(item)
    return chosen


def check_unused(pointer_path: Path, database: Path, force: bool = False) -> holders.Users:
    """A process that still has the file open keeps it (its reads would go on, on a file that no
    longer exists): a bluegreen client (the registry) or any other process (the kernel, on Linux).
    With `force`, the file goes anyway; returns who was still on it."""
    users = holders.users_of(pointer_path, database)
    if not force:
        holders.refuse_if_used(
            users,
            database,
            "prune refused",
            "run prune again once they have closed it (`bluegreen status` lists them), or `bluegreen prune --force`",
        )
    return users


def remove(store: Store, state: State, item: KeptFile) -> None:
    """Delete the file and its side files, then forget its fence. In that order: a crash in
    between leaves a fence record for a missing file (harmless), never an unfenced file that
    prune would no longer recognise as retired."""
    remove_database_files(store.folder / item.name)
    state.fences.pop(item.name, None)
    store.save(state)
    store.log("pruned", file=item.name, size_bytes=item.size_bytes, retired_at=item.retired_at, role=item.role)


def human_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError


def _role(name: str, generation: int | None, state: State, active: str) -> str:
    if generation is None:
        return "export"
    if name == active:
        return "active"
    if name == state.blue and state.phase in ("cut_over", "reverting"):
        return "revert_target"
    if name == state.green and state.phase in ("preparing", "prepared", "cutting_over", "reverting"):
        return "in_flight"
    if name in state.fences:
        return "reverted" if name in state.reverted else "retired"
    return "unfenced"


def _what_to_do(role: str) -> str:
    return {
        "revert_target": "; run `bluegreen finalize` to close the revert window first, then prune it",
        "active": "; only retired generations can be pruned",
        "in_flight": "; finish the operation (`bluegreen status` says how) first",
        "unfenced": "; inspect it and remove it yourself if it is not needed",
        "export": "; remove it yourself once you have recovered the rows it holds",
    }.get(role, "")


def _export_glob(base_name: str) -> str:
    stem = base_name.rpartition(".")[0] or base_name
    return f"{glob_escape(stem)}.*lost-*.db"


def glob_escape(text: str) -> str:
    return re.sub(r"([\[\]*?])", r"[\1]", text)


def _size(path: Path) -> int:
    total = 0
    for candidate in [path] + [Path(f"{path}{side}") for side in SIDE_FILES]:
        try:
            total += os.stat(candidate).st_size
        except FileNotFoundError:
            pass
    return total


def _newest_mtime(path: Path) -> float:
    times = []
    for candidate in [path] + [Path(f"{path}{side}") for side in SIDE_FILES if side != "-shm"]:
        try:
            times.append(os.stat(candidate).st_mtime)
        except FileNotFoundError:
            pass
    return max(times)


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def prune_result(chosen: list, kept: list, keep_days: int, dry_run: bool) -> Result:
    """What prune removed (or, with --dry-run, would remove) and what it keeps."""
    freed = sum(k.size_bytes for k in chosen)
    names = ", ".join(k.name for k in chosen)
    if not chosen:
        message = (
            f"nothing to prune: no fenced generation was retired {keep_days} or more day(s) ago ([retention] keep_days)"
        )
    elif dry_run:
        message = f"dry run, nothing was changed: prune would remove {names} ({human_size(freed)})"
    else:
        message = f"pruned {names}: {human_size(freed)} freed"
    left = [k for k in kept if k not in chosen]
    return Result(
        "prune",
        message,
        data={
            "dry_run": dry_run,
            "keep_days": keep_days,
            "freed_bytes": freed,
            "pruned": [k.as_dict() for k in chosen],  # with dry_run: what would be removed
            "kept": [k.as_dict() for k in left],
        },
    )
