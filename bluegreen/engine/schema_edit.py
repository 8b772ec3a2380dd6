"""Adding and dropping bluegreen's triggers in one edit of sqlite_schema (hazard 18).

One CREATE or DROP TRIGGER each rescans the schema, O(tables²) under blue's write lock; capture's
install, its removal and the fence all go through this one writer instead, so the rule for it
(rows byte-identical to CREATE TRIGGER's, schema_version moved once, last statement before
COMMIT) is kept in one place.
"""

from __future__ import annotations

import apsw

from bluegreen.engine.db import schema_version


def edit_triggers(conn: apsw.Connection, drop_prefixes: tuple[str, ...] = (), add: list = ()) -> int:
    """Delete the triggers named with these prefixes and insert `add` (name, table, sql) rows,
    straight into sqlite_schema (PRAGMA writable_schema), then move schema_version by one so every
    connection, this one included, reloads the schema at its next statement. Triggers own no
    pages, so the file stays consistent (integrity_check). Returns the new schema_version.

    Call it last before COMMIT: any later statement on this connection reloads the whole schema
    first (a few ms per thousand tables), which would fall inside the caller's write lock."""
    conn.config(apsw.SQLITE_DBCONFIG_DEFENSIVE, 0)  # defensive mode forbids writable_schema
    version = schema_version(conn)
    conn.execute("PRAGMA writable_schema = ON")
    try:
        changed = 0
        for prefix in drop_prefixes:
            conn.execute(
                "DELETE FROM main.sqlite_schema WHERE type = 'trigger' AND substr(name, 1, ?) = ?",
                (len(prefix), prefix),
            )
            changed += conn.changes()
        if add:
            conn.executemany(
                "INSERT INTO main.sqlite_schema(type, name, tbl_name, rootpage, sql) VALUES ('trigger', ?, ?, 0, ?)",
                list(add),
            )
            changed += len(add)
        if changed:
            version += 1
            conn.execute(f"PRAGMA main.schema_version = {version}")
    finally:
        conn.execute("PRAGMA writable_schema = OFF")
    return version


def check_schema(conn: apsw.Connection) -> None:
    """Read the edited schema back in the same transaction: a trigger SQLite cannot parse fails
    here (and the caller's transaction rolls back), never at a writer's next statement."""
    conn.execute("SELECT 1 FROM main.sqlite_schema LIMIT 0").fetchall()
