"""Copy blue into green as one consistent snapshot, while writers go on.

Two ways, both pinned by a read transaction held on blue for the whole copy:

files (the default)  The kernel copies blue's database file, then the snapshot's WAL frames are laid
    over it. Exact because of how SQLite's WAL works: a reader sees the database file plus WAL
    frames 1..mxFrame of the WAL-index header it started with. While it reads, a checkpoint only
    copies frames <= its mxFrame into the file (so any page the copy may catch half-written is one
    the frames overwrite afterwards), the WAL cannot restart (a reader on a WAL frame blocks it), and
    a reader that reads the file alone (read mark 0) blocks every checkpoint. The mxFrame is known
    exactly: the WAL-index header read just before and just after the read transaction starts is
    byte-identical (its change counter only ever grows), so nothing committed in between. A child
    process does the file reads: opening blue's files here would drop our POSIX locks (hazard 8).
backup  SQLite's backup API, page by page. A plain multi-step backup restarts whenever another
    connection writes blue; stepping inside the held read transaction copies one snapshot. The
    fallback when blue has no -shm file or the header cannot be pinned (a write every instant).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import apsw

from bluegreen.engine import filecopy
from bluegreen.engine.db import open_db
from bluegreen.engine.filecopy import WalIndexHeader

Progress = Callable[[int, int], None]  # (pages copied, pages total)
Pinned = Callable[[apsw.Connection], None]  # runs inside the copy's read transaction
PIN_ATTEMPTS = 200  # each is two header reads around BEGIN: a miss means a commit landed in between


@dataclass(frozen=True)
class SnapshotResult:
    pages: int
    page_size: int
    seconds: float
    source_schema_version: int  # blue's schema_version in the copied snapshot
    method: str = "backup"  # "files" or "backup"
    wal_frames: int = 0  # files: WAL frames laid over the copied file
    file_only: bool = False  # files: the snapshot was the database file alone (read mark 0)

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
    pinned: Pinned | None = None,
    method: str = "files",
    flush_bytes: int = 0,
) -> SnapshotResult:
    """Copy `source` (main) into a new file at target_path, created with `mode`.

    `source` must not hold a write transaction (the backup would return LOCKED forever); the
    caller's barrier, if any, lives on another connection. The target is left in WAL mode.
    `pinned(source)` runs inside the read transaction the copy is made from: what it reads is
    exactly what the copy holds (a backup checks its row counts against it). flush_bytes: the
    file copy fdatasyncs green every that many bytes (0: once, at the end).
    """
    started = time.perf_counter()
    copied = None
    if method == "files":
        copied = _copy_files(source, Path(target_path), mode, pages_per_step, progress, pinned, flush_bytes)
    if copied is None:
        copied = _copy_backup(source, Path(target_path), mode, pages_per_step, progress, pinned)
    pages, schema_version, used, frames, file_only = copied
    target = open_db(target_path)
    try:
        page_size = target.execute("PRAGMA page_size").get
        mode_now = target.execute("PRAGMA journal_mode=WAL").get
        if mode_now != "wal":
            raise apsw.Error(f"could not put {target_path} in WAL mode (got {mode_now})")
    finally:
        target.close()
    return SnapshotResult(pages, page_size, time.perf_counter() - started, schema_version, used, frames, file_only)


def _copy_backup(
    source: apsw.Connection,
    target_path: Path,
    mode: int,
    pages_per_step: int,
    progress: Progress | None,
    pinned: Pinned | None,
) -> tuple[int, int, str, int, bool]:
    target = open_db(target_path, create=True)
    try:
        target.execute("PRAGMA synchronous = OFF")  # the builder makes green durable (engine/flush.py)
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
    finally:
        target.close()
    return pages, schema_version, "backup", 0, False


def _copy_files(
    source: apsw.Connection,
    target_path: Path,
    mode: int,
    pages_per_step: int,
    progress: Progress | None,
    pinned: Pinned | None,
    flush_bytes: int = 0,
) -> tuple[int, int, str, int, bool] | None:
    """The file copy inside a pinned read transaction; None when it cannot pin one (use backup)."""
    blue = source.db_filename("main")
    if str(source.execute("PRAGMA journal_mode").get).lower() != "wal":
        return None
    child = _FileReader(blue, target_path, mode)
    try:
        header = _pin(source, child)
        if header is None:
            return None
        try:
            schema_version = source.execute("PRAGMA schema_version").get
            if pinned:
                pinned(source)
            pages, frames, file_only = child.copy(header, pages_per_step, progress, flush_bytes)
        finally:
            source.execute("COMMIT")
    finally:
        child.close()
    return pages, schema_version, "files", frames, file_only


def _pin(source: apsw.Connection, child: _FileReader) -> WalIndexHeader | None:
    """Start a read transaction on source and return the WAL-index header it reads at, or None."""
    for _ in range(PIN_ATTEMPTS):
        before = child.header()
        if before is None:
            return None
        source.execute("BEGIN")
        source.execute("SELECT count(*) FROM sqlite_schema").get
        after = child.header()
        if before.valid() and after is not None and after.raw == before.raw:
            return before
        source.execute("COMMIT")
    return None


class _FileReader:
    """The child process (bluegreen.engine.filecopy) that reads blue's files for us."""

    def __init__(self, blue: str, target: Path, mode: int):
        self.target = target
        # -S -I by path: the child needs only the standard library, and starts in ~10 ms instead of ~35
        self.proc = subprocess.Popen(
            [sys.executable, "-S", "-I", filecopy.__file__, blue, str(target), oct(mode)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def _ask(self, line: str) -> str:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        if not answer:
            raise apsw.IOError(f"{self.target}: the snapshot's file reader exited (code {self.proc.wait()})")
        return answer

    def header(self) -> WalIndexHeader | None:
        answer = self._ask("header")
        return None if answer == "none" else WalIndexHeader(bytes.fromhex(answer))

    def copy(
        self, header: WalIndexHeader, pages_per_step: int, progress: Progress | None, flush_bytes: int = 0
    ) -> tuple[int, int, bool]:
        """(pages, WAL frames applied, database file alone)"""
        answer = self._ask(f"copy {header.raw.hex()} {max(1, pages_per_step)} {max(0, flush_bytes)}")
        while answer.startswith("progress "):
            done, total = (int(n) for n in answer.split()[1:3])
            if progress:
                progress(done, total)
            answer = self._ask("go")
        kind, *rest = answer.split(" ", 2)
        if kind != "done":
            errno, message = int(rest[0]), rest[1] if len(rest) > 1 else ""
            error = apsw.FullError if errno in (28, 27) else apsw.IOError  # ENOSPC, EFBIG
            raise error(f"{self.target}: {message}")
        pages, _, frames, file_only = (int(n) for n in " ".join(rest).split())
        return pages, frames, bool(file_only)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait()
        self.proc.stdout.close()
