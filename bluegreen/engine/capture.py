"""Triggers bluegreen puts on a database file: change capture and the write fence.

Capture: AFTER INSERT/UPDATE/DELETE triggers on every application table append (table, key, op)
to `_bluegreen_capture`, so the controller knows exactly which rows changed since a position.
Fence: BEFORE triggers whose body calls a function that is never registered. SQLite resolves the
function when it prepares any write statement on the table, so every write fails — zero-row
UPDATE/DELETE included (a RAISE(ABORT) trigger would never fire for those, hazard 1) — with an
error naming bluegreen, while reads go on and the controller's triggers-off connection is free.

This module is the face callers use (capture.install_capture, capture.install_fence, ...): it
installs, reads and removes capture itself and re-exports the rest from the modules that hold
it — names.py (object names), meta.py (the meta table), keys.py (the captured key),
uniqueness.py and triggers.py (the trigger SQL, REPLACE-exact), schema_edit.py (the one
sqlite_schema edit), blob_guard.py and fence.py.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import apsw

from bluegreen.engine.blob_guard import guard_name, install_blob_guard, remove_blob_guard
from bluegreen.engine.db import Table, quote_ident, schema_version, user_tables

# The rest of capture's API, held by the modules named above; other wings reach it as capture.<name>.
from bluegreen.engine.fence import fence_replacing_capture, fence_sql, install_fence, remove_fence  # noqa: F401
from bluegreen.engine.keys import key_expression  # noqa: F401
from bluegreen.engine.meta import (
    clear_meta,
    ensure_meta,  # noqa: F401
    get_meta,
    set_meta,
)
from bluegreen.engine.names import CAPTURE_PREFIX, CAPTURE_TABLE, GUARD_PREFIX, find_objects, find_triggers
from bluegreen.engine.schema_edit import check_schema, edit_triggers
from bluegreen.engine.triggers import capture_trigger_sql
from bluegreen.engine.uniqueness import check_replace_capture
from bluegreen.errors import SchemaUnsupported
from bluegreen.files.contract import META_TABLE


def capturable(conn: apsw.Connection) -> list[Table]:
    """The tables capture and fence must cover; refuses tables they cannot."""
    tables = user_tables(conn)
    for table in tables:
        if table.virtual:
            raise SchemaUnsupported(
                f"table {table.name!r} is a virtual table: bluegreen cannot capture or fence its writes; "
                "move it to a separate file or drop it before deploying"
            )
        if not table.without_rowid and table.rowid_alias is None:
            raise SchemaUnsupported(
                f"table {table.name!r} has columns named rowid, oid and _rowid_: its rows cannot be "
                "keyed; rename one of those columns"
            )
        if not table.virtual:
            check_replace_capture(conn, table)
    return tables


# -- capture --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Position:
    epoch: str
    seq: int


@dataclass(frozen=True)
class CapturePlan:
    """Capture's trigger rows, worked out before the lock (reading every table's indexes and
    columns takes most of a second with 1,000 tables), valid while schema_version stays put."""

    schema_version: int
    tables: list
    triggers: list  # (name, table, sql) rows for edit_triggers


def plan_capture(conn: apsw.Connection) -> CapturePlan:
    """Read-only: the capture install_capture would make now (refusing what it cannot take)."""
    version = schema_version(conn)
    tables = capturable(conn)
    return CapturePlan(version, tables, [row for table in tables for row in capture_triggers(conn, table)])


def install_capture(conn: apsw.Connection, guard: bool = True, plan: CapturePlan | None = None) -> Position:
    """Create the capture table and triggers (idempotent); returns the current position.

    Run inside the caller's transaction, with `plan` (plan_capture) made before it if it can be:
    then what runs under the lock is a few statements and one schema edit. A fresh install draws
    a new random epoch, so a position from an earlier capture can never be mistaken for one of
    this capture (hazard 7). `seq` is a plain rowid, not AUTOINCREMENT: the table is only ever
    dropped whole (with its epoch), so seq never goes back within an epoch, and blue is not left
    with a sqlite_sequence table after abort.
    """
    if plan is None or plan.schema_version != schema_version(conn):  # none, or the schema moved since
        plan = plan_capture(conn)
    tables = plan.tables
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {CAPTURE_TABLE}("
        "seq INTEGER PRIMARY KEY, tbl TEXT NOT NULL, key NOT NULL, op TEXT NOT NULL)"
    )
    if get_meta(conn, "capture_epoch") is None:
        set_meta(conn, capture_epoch=secrets.token_hex(8))
    if guard:  # before the triggers' edit, which must be the last statement (see edit_triggers)
        guarded = {name for (name,) in find_objects(conn, "index", GUARD_PREFIX)}
        install_blob_guard(conn, [t for t in tables if guard_name(t) not in guarded])
    present = {name for (name,) in find_triggers(conn, CAPTURE_PREFIX)}
    add = [row for row in plan.triggers if row[0] not in present]
    edit_triggers(conn, add=add)
    check_schema(conn)
    return capture_position(conn)


def capture_triggers(conn: apsw.Connection, table: Table) -> list[tuple[str, str, str]]:
    """(name, table, sql) of the table's capture triggers, the sql exactly as CREATE TRIGGER
    stores it (`capture_sql` is that reference): installed as one sqlite_schema edit, because
    one CREATE TRIGGER each rescans the schema, O(tables²) under blue's write lock (hazard 18)."""
    return [(name, table.name, sql) for name, sql in capture_trigger_sql(conn, table)]


def capture_sql(conn: apsw.Connection) -> list[str]:
    """Capture as plain CREATE TRIGGER statements (the reference the schema edit must equal)."""
    return [sql for table in capturable(conn) for _, sql in capture_trigger_sql(conn, table)]


def capture_position(conn: apsw.Connection, schema: str = "main") -> Position | None:
    epoch = get_meta(conn, "capture_epoch", schema)
    if epoch is None:
        return None
    seq = conn.execute(f"SELECT coalesce(max(seq), 0) FROM {quote_ident(schema)}.{CAPTURE_TABLE}").get
    return Position(epoch, seq)


def captured_counts(conn: apsw.Connection, after_seq: int = 0) -> dict[str, int]:
    """Changed rows per table since a position (distinct keys), for reports and refusals."""
    if capture_position(conn) is None:
        return {}
    rows = conn.execute(
        f"SELECT tbl, count(DISTINCT key) FROM {CAPTURE_TABLE} WHERE seq > ? GROUP BY tbl ORDER BY tbl",
        (after_seq,),
    ).fetchall()
    return dict(rows)


def remove_capture(conn: apsw.Connection, keep_guard: bool = False) -> None:
    """Drop capture triggers, table and epoch (idempotent), and the BLOB guard unless a fence is
    about to need it. Run inside the caller's transaction. The triggers go in one schema edit
    (hazard 18: one DROP TRIGGER each would rescan sqlite_schema per trigger)."""
    if not keep_guard:
        remove_blob_guard(conn)
    conn.execute(f"DROP TABLE IF EXISTS main.{CAPTURE_TABLE}")
    clear_meta(conn, "capture_epoch")
    edit_triggers(conn, drop_prefixes=(CAPTURE_PREFIX,))


def empty_capture(conn: apsw.Connection) -> None:
    """Forget blue's captured changes after its fence: the rows and the epoch go, the (inert,
    fenced) table stays, so the schema and the fence's recorded schema_version do not move. A
    later capture on this file draws a new epoch (hazard 7). Run inside the caller's transaction."""
    if conn.execute("SELECT 1 FROM main.sqlite_schema WHERE name = ?", (CAPTURE_TABLE,)).fetchall():
        conn.execute(f"DELETE FROM main.{CAPTURE_TABLE}")
    if conn.execute("SELECT 1 FROM main.sqlite_schema WHERE name = ?", (META_TABLE,)).fetchall():
        conn.execute(f"DELETE FROM main.{META_TABLE} WHERE key = 'capture_epoch'")
