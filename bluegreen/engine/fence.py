"""The write fence: BEFORE triggers whose body calls a function that is never registered.

SQLite resolves the function when it prepares any write statement on the table, so every write
fails — zero-row UPDATE/DELETE included (a RAISE(ABORT) trigger would never fire for those,
hazard 1) — with an error naming the generation to use, while reads go on and the controller's
triggers-off connection is free. Put up and lifted in one schema edit (hazard 18). Callers reach
it as capture.install_fence and friends; this module holds it.
"""

from __future__ import annotations

import apsw

from bluegreen.engine.blob_guard import install_blob_guard, remove_blob_guard
from bluegreen.engine.db import INTERNAL_PREFIX, REPLICATOR_PREFIX, quote_ident, user_tables
from bluegreen.engine.meta import clear_meta
from bluegreen.engine.names import CAPTURE_PREFIX, CAPTURE_TABLE, GUARD_PREFIX, find_triggers, table_tag
from bluegreen.engine.schema_edit import edit_triggers
from bluegreen.files.contract import FENCE_FUNCTION, FENCE_PREFIX


def install_fence(conn: apsw.Connection, active_generation: int, guard: bool = True) -> int:
    """Fence every table; returns the file's `PRAGMA schema_version` after it, which the caller
    records: DDL on the fenced file moves it (hazard 1). Run inside the barrier transaction, on a
    triggers-off connection, as its LAST statement before COMMIT (see `edit_triggers`)."""
    return fence_replacing_capture(conn, active_generation, guard, drop_capture=False)


def fence_replacing_capture(
    conn: apsw.Connection, active_generation: int, guard: bool = True, drop_capture: bool = True
) -> int:
    """Fence every table and (drop_capture) remove change capture, in one schema edit; returns the
    new `PRAGMA schema_version`. This is what runs while writers wait, so it costs O(schema):
    one read of sqlite_schema, one edit of it, no per-trigger statement (hazard 18). The fence
    triggers are byte for byte what CREATE TRIGGER would store (rootpage 0, nothing to allocate);
    every other connection re-reads the schema at its next statement because schema_version moves,
    and then fails to prepare any write (hazard 1). The capture table and epoch stay: without
    their triggers nothing can add to them, and dropping the table would free its pages while
    writers wait; `empty_capture` clears them later without touching the schema."""
    schema = _schema_entries(conn)
    tables = {name: table_tag(name) for kind, name, head in schema if kind == "table" and _fenceable(name, head)}
    if guard:  # normally already there from capture; only an offline deploy builds it here
        indexes = {name for kind, name, _ in schema if kind == "index"}
        missing = {
            t for t, tag in tables.items() if not t.startswith(INTERNAL_PREFIX) and GUARD_PREFIX + tag not in indexes
        }
        if missing:
            install_blob_guard(conn, [t for t in user_tables(conn) if t.name in missing])
    function = FENCE_FUNCTION.format(generation=active_generation)
    fence = [
        (f"{FENCE_PREFIX}{op}_{tag}", table, _fence_sql(op, table, function, tag))
        for table, tag in tables.items()
        for op in "iud"
    ]
    drop = (FENCE_PREFIX, CAPTURE_PREFIX) if drop_capture else (FENCE_PREFIX,)
    return edit_triggers(conn, drop_prefixes=drop, add=fence)


def fence_sql(conn: apsw.Connection, active_generation: int) -> list[str]:
    """The fence as plain CREATE TRIGGER statements (the reference the schema edit must equal)."""
    function = FENCE_FUNCTION.format(generation=active_generation)
    return [
        _fence_sql(op, name, function, table_tag(name))
        for kind, name, head in _schema_entries(conn)
        if kind == "table" and _fenceable(name, head)
        for op in "iud"
    ]


_FENCE_VERBS = {"i": "INSERT", "u": "UPDATE", "d": "DELETE"}


def _fence_sql(op: str, table: str, function: str, tag: str) -> str:
    return (
        f"CREATE TRIGGER {FENCE_PREFIX}{op}_{tag} BEFORE {_FENCE_VERBS[op]} ON {quote_ident(table)} "
        f"BEGIN SELECT {function}(); END"
    )


def _schema_entries(conn: apsw.Connection) -> list[tuple[str, str, str]]:
    """(type, name, first words of sql) of every table and BLOB-guard index: one read."""
    return conn.execute(
        "SELECT type, name, upper(substr(ltrim(coalesce(sql, '')), 1, 14)) FROM main.sqlite_schema "
        "WHERE type = 'table' OR (type = 'index' AND substr(name, 1, ?) = ?)",
        (len(GUARD_PREFIX), GUARD_PREFIX),
    ).fetchall()


def _fenceable(name: str, head: str) -> bool:
    """Every table a write could reach: the application's and bluegreen's own, not SQLite's
    internal ones, not Litestream's (it must go on replicating a fenced file) and not virtual tables
    (a trigger cannot be put on those)."""
    return not name.startswith(("sqlite_", REPLICATOR_PREFIX)) and not head.startswith("CREATE VIRTUAL")


def remove_fence(conn: apsw.Connection, keep_guard: bool = False) -> None:
    """Lift the fence in one schema edit, and drop capture's inert table the fence left behind. The
    BLOB guard's indexes own pages, so each needs its own
    DROP INDEX (O(tables x schema)): keep_guard leaves them for a later transaction
    (`remove_blob_guard`) when this runs while writers wait. Last statement before COMMIT, as
    `edit_triggers` says."""
    if not keep_guard:
        remove_blob_guard(conn)
    if not find_triggers(conn, CAPTURE_PREFIX):  # capture's inert table, left by the fence (empty_capture)
        conn.execute(f"DROP TABLE IF EXISTS main.{CAPTURE_TABLE}")
        clear_meta(conn, "capture_epoch")
    edit_triggers(conn, drop_prefixes=(FENCE_PREFIX,))
