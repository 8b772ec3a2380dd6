"""Which file is the active generation and which migrations it still lacks: what every command
(lifecycle, gates, reports) asks before it does anything else. Read-only; nothing here writes."""

from __future__ import annotations

from pathlib import Path

import apsw

from bluegreen.engine import migrations
from bluegreen.engine.db import open_db, readonly_uri
from bluegreen.errors import DatabaseInvalid
from bluegreen.files import pointer
from bluegreen.files.journal import Store
from bluegreen.files.layout import disk_full


def current(pointer_path: Path, store: Store) -> pointer.Pointer:
    """The pointer, checked on its own (pointer.read) and against the journal, when there is one."""
    found = pointer.read(pointer_path)
    # A missing active file is the more urgent news: the caller reports it first.
    if store.initialized() and found.active_path(pointer_path).exists():
        store.check_pointer(store.load(), found)
    return found


def active_path(pointer_path: Path, store: Store) -> Path:
    """The file the pointer names; a missing one is an error, never a new empty database (hazard 11)."""
    path = current(pointer_path, store).active_path(pointer_path)
    problem = missing_active(pointer_path, path)
    if problem:
        raise DatabaseInvalid(problem)
    return path


def missing_active(pointer_path: Path, path: Path) -> str:
    if path.is_file():
        return ""
    return (
        f"{path}: active generation not found (named by {pointer_path}); restore "
        "the file from a backup (applications cannot open it either), or point `active` at an existing "
        "generation"
    )


def pending(migrations_dir: Path, active: Path) -> list[migrations.Migration]:
    """The migrations in `migrations_dir` that `active` has not had yet, in order."""
    found = migrations.discover(migrations_dir)
    conn = open_db(active, query_only=True)
    try:
        return migrations.pending(found, conn)
    finally:
        conn.close()


def pending_on_any_disk(migrations_dir: Path, active: Path) -> list[migrations.Migration]:
    """pending(), also on a full disk, where SQLite cannot create the -wal/-shm a WAL read
    needs ("disk I/O error"): with neither present no connection has the file open and the
    file alone is the database, so an immutable read-only open, which creates nothing, reads
    it exactly."""
    unopened = not any(Path(f"{active}{side}").exists() for side in ("-wal", "-shm"))
    if not (unopened and disk_full(active.parent)):
        try:
            return pending(migrations_dir, active)
        except apsw.Error:
            if not unopened:
                raise
    found = migrations.discover(migrations_dir)
    conn = open_db(readonly_uri(active) + "&immutable=1", readonly=True)
    try:
        return migrations.pending(found, conn)
    finally:
        conn.close()


def version_of(path: Path) -> str:
    """The schema version a generation's migration history says it has."""
    conn = open_db(path, query_only=True)
    try:
        return migrations.current_version(conn)
    finally:
        conn.close()
