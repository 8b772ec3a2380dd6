"""The BLOB guard: an empty expression index per rowid table, so SQLite refuses incremental BLOB
writes (hazard 1), which fire no trigger — capture would miss them and a fence of triggers would
not stop them. Its own module because capture installs it and the fence relies on it.
"""

from __future__ import annotations

import apsw

from bluegreen.engine.db import Table, quote_ident, schema_version
from bluegreen.engine.names import GUARD_PREFIX, find_objects, table_tag

# Kept in the index's SQL, so a tool that stops at this index (sqlite-utils transform quotes it in
# its error) tells its user what to do instead of "drop this index" (issue 14, item 4).
GUARD_NOTE = (
    "/* bluegreen: this table is captured for a deploy or a revert; do not drop this index or "
    "rebuild the table while it is here. Finish first: bluegreen finalize closes a revert window, "
    "bluegreen status says what is in progress. Or make the change a bluegreen migration */"
)

SEED_TABLE = "_bluegreen_guard_seed"  # lives only inside install_blob_guard's transaction


def install_blob_guard(conn: apsw.Connection, tables: list[Table]) -> None:
    """Refuse incremental BLOB writes, which fire no trigger: capture would miss them, and a fence
    made of triggers would not stop them. SQLite refuses BLOB writes on any table that has an
    expression index; this one holds no entries (WHERE 0). `[capture] guard_blob_writes = false`
    skips it.

    Without reading the table (issue 17: a CREATE INDEX on the table itself scans every row under
    blue's write lock, 339 ms at 1 GB): each index is created on an empty seed table (one empty
    b-tree page, nothing to scan), then moved onto its table by an edit of its sqlite_schema row
    (tbl_name and sql byte-identical to what CREATE INDEX on the table stores), schema_version
    moved once, and the seed dropped. An empty index is exact for any table, since WHERE 0 holds
    for no row: integrity_check agrees. Cost: O(schema), never O(rows); all in the caller's
    transaction, so a crash leaves all of it or none."""
    todo = [t for t in tables if not (t.virtual or t.without_rowid)]  # BLOB I/O needs a rowid table
    if not todo:
        return
    conn.execute(f"CREATE TABLE main.{SEED_TABLE}(x)")
    for table in todo:
        conn.execute(f"CREATE INDEX IF NOT EXISTS main.{guard_name(table)} ON {SEED_TABLE}((0)) WHERE 0")
    conn.config(apsw.SQLITE_DBCONFIG_DEFENSIVE, 0)  # defensive mode forbids writable_schema
    version = schema_version(conn)
    conn.execute("PRAGMA writable_schema = ON")
    try:
        conn.executemany(
            "UPDATE main.sqlite_schema SET tbl_name = ?, sql = ? WHERE type = 'index' AND name = ? AND tbl_name = ?",
            [(t.name, guard_sql(t), guard_name(t), SEED_TABLE) for t in todo],
        )
        conn.execute(f"PRAGMA main.schema_version = {version + 1}")
    finally:
        conn.execute("PRAGMA writable_schema = OFF")
    conn.execute(f"DROP TABLE main.{SEED_TABLE}")  # reloads the schema first: the guards are on their tables now


def guard_sql(table: Table) -> str:
    """What `CREATE INDEX guard ON table((0) /* note */) WHERE 0` stores in sqlite_schema."""
    return f"CREATE INDEX {guard_name(table)} ON {quote_ident(table.name)}((0) {GUARD_NOTE}) WHERE 0"


def guard_name(table: Table) -> str:
    return f"{GUARD_PREFIX}{table_tag(table.name)}"


def remove_blob_guard(conn: apsw.Connection) -> None:
    for (name,) in find_objects(conn, "index", GUARD_PREFIX):
        conn.execute(f"DROP INDEX IF EXISTS main.{quote_ident(name)}")
