"""The BLOB guard: an empty expression index per rowid table, so SQLite refuses incremental BLOB
writes (hazard 1), which fire no trigger — capture would miss them and a fence of triggers would
not stop them. Its own module because capture installs it and the fence relies on it.
"""

from __future__ import annotations

import apsw

from bluegreen.engine.db import Table, quote_ident
from bluegreen.engine.names import GUARD_PREFIX, find_objects, table_tag

# Kept in the index's SQL, so a tool that stops at this index (sqlite-utils transform quotes it in
# its error) tells its user what to do instead of "drop this index" (issue 14, item 4).
GUARD_NOTE = (
    "/* bluegreen: this table is captured for a deploy or a revert; do not drop this index or "
    "rebuild the table while it is here. Finish first: bluegreen finalize closes a revert window, "
    "bluegreen status says what is in progress. Or make the change a bluegreen migration */"
)


def install_blob_guard(conn: apsw.Connection, tables: list[Table]) -> None:
    """Refuse incremental BLOB writes, which fire no trigger: capture would miss them, and a fence
    made of triggers would not stop them. SQLite refuses BLOB writes on any table that has an
    expression index; this one holds no entries (WHERE 0), but creating it reads the table once
    under the write lock, so it is made with capture (before the snapshot), never inside the
    cutover's write pause. `[capture] guard_blob_writes = false` skips it."""
    for table in tables:
        if table.virtual or table.without_rowid:  # BLOB I/O needs a rowid table
            continue
        conn.execute(
            f"CREATE INDEX IF NOT EXISTS {guard_name(table)} ON {quote_ident(table.name)}((0) {GUARD_NOTE}) WHERE 0"
        )


def guard_name(table: Table) -> str:
    return f"{GUARD_PREFIX}{table_tag(table.name)}"


def remove_blob_guard(conn: apsw.Connection) -> None:
    for (name,) in find_objects(conn, "index", GUARD_PREFIX):
        conn.execute(f"DROP INDEX IF EXISTS main.{quote_ident(name)}")
