"""Schema edits on the live file that writers must not wait long for (hazard 18): capture's
install on blue, and the BLOB guard's indexes made and dropped in short slices (each O(schema):
the guard reads no table, engine/blob_guard.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import apsw

from bluegreen.config import Config
from bluegreen.engine import barrier, capture
from bluegreen.engine.db import open_db, quote_ident
from bluegreen.engine.names import GUARD_PREFIX, find_objects
from bluegreen.errors import OperationFailed
from bluegreen.files.journal import Store
from bluegreen.results import Timer

GUARD_SLICE_MS = 10  # the BLOB guard's indexes are made in transactions of about this long


def install_capture_on_blue(config: Config, store: Store, blue: Path) -> None:
    """Writers wait for each of these transactions (hazard 18). The BLOB guard's indexes own
    pages, so each is a CREATE INDEX that rescans the schema (on an empty seed table, moved onto
    its table: no table is read): made in short transactions (in_slices), all committed before capture starts, so no BLOB write can slip
    past the triggers (a handle opened earlier holds an older snapshot and cannot write after
    them).
    Then the capture triggers, worked out before the lock, as one schema edit; a table created
    meanwhile moves schema_version, so the install works them out again and guards it there."""
    if config.capture.guard_blob_writes:
        _guard_gradually(config, store, blue)
    conn = open_db(blue, query_only=True)
    try:
        plan = capture.plan_capture(conn)  # before the lock; redone under it if the schema moved
    finally:
        conn.close()
    clock = Timer()
    with barrier.holding(blue, config.cutover.lock_timeout_ms) as conn:
        capture.install_capture(conn, guard=config.capture.guard_blob_writes, plan=plan)
    store.log("capture_installed", file=blue.name, lock_ms=round(clock.ms, 2))  # blue's lock, listed in docs/design.md


def _guard_gradually(config: Config, store: Store, blue: Path) -> None:
    """The guard indexes blue lacks, in short slices under its lock (in_slices)."""
    conn = open_db(blue, query_only=True)
    try:
        tables = capture.capturable(conn)  # refuses what capture cannot take before anything is written
        present = {name for (name,) in find_objects(conn, "index", GUARD_PREFIX)}
    finally:
        conn.close()
    todo = [t for t in tables if not t.without_rowid and capture.guard_name(t) not in present]
    in_slices(config, store, blue, todo, lambda held, table: capture.install_blob_guard(held, [table]), "blob_guard")


def drop_guard(config: Config, store: Store, blue: Path) -> None:
    """After a revert's swap, or when a prepare is undone: the BLOB guard's indexes own pages,
    so each needs a DROP INDEX that rescans the schema; in short slices (in_slices), so no
    writer on blue waits for all of them (hazard 18). Nothing captures blue now (capture went
    first), so the guard has nothing left to protect; one left behind (lock busy, crash) only
    refuses incremental BLOB writes, and is logged."""
    conn = open_db(blue, query_only=True)
    try:
        names = [name for (name,) in find_objects(conn, "index", GUARD_PREFIX)]
    finally:
        conn.close()
    try:
        in_slices(
            config,
            store,
            blue,
            names,
            lambda held, name: held.execute(f"DROP INDEX IF EXISTS main.{quote_ident(name)}"),
            "blob_guard_dropped",
        )
    except (OperationFailed, apsw.Error) as exc:
        store.log("guard_left", file=blue.name, reason=str(exc))


def in_slices(
    config: Config,
    store: Store,
    path: Path,
    items: list,
    apply: Callable[[apsw.Connection, object], object],
    event: str,
) -> None:
    """`apply` each item under `path`'s write lock, in transactions of about GUARD_SLICE_MS,
    each followed by as long with the lock free: back-to-back transactions would starve a
    writer whose busy handler sleeps in growing steps and keeps waking to a taken lock."""
    todo = list(reversed(items))
    locks: list[float] = []
    conn = open_db(path, triggers=False, busy_timeout_ms=config.cutover.lock_timeout_ms)
    try:
        while todo:
            barrier.begin(conn, path, config.cutover.lock_timeout_ms)
            clock = Timer()
            try:
                while todo and clock.ms < GUARD_SLICE_MS:
                    apply(conn, todo.pop())
                conn.execute("COMMIT")
            finally:
                barrier.rollback(conn)
            locks.append(clock.ms)
            time.sleep(clock.ms / 1000)
    finally:
        conn.close()
    if locks:
        store.log(event, file=path.name, transactions=len(locks), longest_lock_ms=round(max(locks), 2))
