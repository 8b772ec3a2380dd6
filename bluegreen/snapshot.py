"""Copy blue into green with SQLite's online backup API, as one consistent snapshot.

A plain multi-step backup restarts whenever another connection writes the source, and under
steady writes never finishes. Holding a read transaction on the source connection while stepping
pins one WAL snapshot: the copy makes progress, never restarts, and writers go on (WAL mode only).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import apsw

from bluegreen.db import open_db

Progress = Callable[[int, int], None]  # (pages copied, pages total)


@dataclass(frozen=True)
class SnapshotResult:
    pages: int
    page_size: int
    seconds: float
    source_schema_version: int  # blue's schema_version in the copied snapshot

    @property
    def bytes(self) -> int:
        return self.pages * self.page_size


def copy(
    source: apsw.Connection,
    target_path: Path,
    *,
    mode: int,
    pages_per_step: int = 4096,
    progress: Progress | None = None,
    pinned: Callable[[apsw.Connection], None] | None = None,
) -> SnapshotResult:
    """Copy `source` (main) into a new file at target_path, created with `mode`.

    `source` must not hold a write transaction (the backup would return LOCKED forever); the
    caller's barrier, if any, lives on another connection. The target is left in WAL mode.
    `pinned(source)` runs inside the read transaction the copy is made from: what it reads is
    exactly what the copy holds (a backup checks its row counts against it).
    """
    started = time.perf_counter()
    target = open_db(target_path, create=True)
    try:
        # Set the mode before any page lands; SQLite gives -wal/-shm the main file's mode.
        os.chmod(target_path, mode)
        source.execute("BEGIN")
        try:
            source.execute("SELECT count(*) FROM sqlite_schema").get  # pins the read snapshot
            schema_version = source.execute("PRAGMA schema_version").get
            if pinned:
                pinned(source)
            with target.backup("main", source, "main") as backup:
                while not backup.done:
                    try:
                        backup.step(pages_per_step)
                    except apsw.BusyError:
                        time.sleep(0.005)  # the target is ours; a busy source clears quickly
                        continue
                    if progress:
                        progress(backup.page_count - backup.remaining, backup.page_count)
                pages = backup.page_count
        finally:
            source.execute("COMMIT")
        page_size = target.execute("PRAGMA page_size").get
        mode_now = target.execute("PRAGMA journal_mode=WAL").get
        if mode_now != "wal":
            raise apsw.Error(f"could not put {target_path} in WAL mode (got {mode_now})")
    finally:
        target.close()
    return SnapshotResult(pages, page_size, time.perf_counter() - started, schema_version)
