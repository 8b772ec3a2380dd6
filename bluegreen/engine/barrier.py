"""The write barrier: holding a database's write lock so that no other writer can commit.

Every wait is bounded (invariant 3, hazard 10): a lock we cannot get in time is an error the
caller turns into "try again", never an unbounded stall of the application.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import apsw

from bluegreen.engine import meta
from bluegreen.engine.db import open_db
from bluegreen.errors import LockTimeout
from bluegreen.files import pointer


def take(path: Path, wait_ms: int, must: bool = True) -> apsw.Connection | None:
    """BEGIN IMMEDIATE on a new triggers-off connection. Waits at most wait_ms; then raises
    (must) or returns None (the caller retries later)."""
    conn = open_db(path, triggers=False, busy_timeout_ms=wait_ms)
    try:
        load_schema(conn)
        begin(conn, path, wait_ms)
    except LockTimeout:
        conn.close()
        if must:
            raise
        return None
    return conn


@contextmanager
def holding(path: Path, wait_ms: int) -> Iterator[apsw.Connection]:
    """A short write transaction under the lock: commits if the block ends normally, rolls back
    if it raises; the connection is closed either way."""
    conn = take(path, wait_ms)
    try:
        yield conn
        conn.execute("COMMIT")
    finally:
        rollback(conn)
        conn.close()


def load_schema(conn: apsw.Connection) -> None:
    """Parse the file's schema now, before the lock: a new connection does it at its first
    statement, and with a thousand tables that takes tens of ms writers would wait for (hazard 18)."""
    try:
        conn.execute("SELECT 1 FROM main.sqlite_schema LIMIT 0").fetchall()
    except apsw.BusyError:
        pass  # the first statement under the lock loads it then


def begin(conn: apsw.Connection, path: Path, wait_ms: int) -> None:
    """BEGIN IMMEDIATE on an existing connection. Note: it also starts a read of every attached
    database right now; use lock_main() when an attached file must be read later."""
    conn.set_busy_timeout(wait_ms)
    try:
        conn.execute("BEGIN IMMEDIATE")
    except apsw.BusyError:
        raise _held(path, wait_ms) from None


def lock_main(conn: apsw.Connection, path: Path, wait_ms: int) -> None:
    """Take the write lock of `conn`'s main file only, leaving attached files unread: a deferred
    BEGIN and a small write to main (the time this lock was taken, in the meta table).

    The busy handler cannot be trusted here: set_meta reads the schema before it writes, and a
    transaction that already reads gets SQLITE_BUSY at once, without waiting, when the write lock
    is taken at that instant (found by a writer retrying on a fenced blue). So each attempt starts
    over, until wait_ms has passed."""
    conn.set_busy_timeout(wait_ms)
    deadline = time.monotonic() + wait_ms / 1000
    while True:
        conn.execute("BEGIN")
        try:
            meta.set_meta(conn, locked_at=pointer.now_iso())
            return
        except apsw.BusyError:
            rollback(conn)
            if time.monotonic() >= deadline:
                raise _held(path, wait_ms) from None
            time.sleep(0.001)


def rollback(conn: apsw.Connection) -> None:
    """End an open transaction if there is one (safe to call on a committed connection)."""
    try:
        if not conn.get_autocommit():
            conn.execute("ROLLBACK")
    except apsw.Error:
        pass


def held_error(path: Path, wait_ms: int) -> LockTimeout:
    """The error for a write lock another connection kept past wait_ms."""
    return _held(path, wait_ms)


def _held(path: Path, wait_ms: int) -> LockTimeout:
    return LockTimeout(
        f"{path}: another connection held the write lock for over {wait_ms} ms (an application stuck in a "
        "transaction?); nothing was changed, try again"
    )
