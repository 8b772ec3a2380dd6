"""The lost-changes file of `revert --accept-loss`: the rows it is about to drop, saved first.

Its own module because it is the one place replay's keyed lookups write a new file rather than a
target: created with the source's file mode before SQLite opens it, as it holds row data verbatim.
"""

from __future__ import annotations

import json
from pathlib import Path

from bluegreen.engine import capture
from bluegreen.engine.db import open_db, quote_ident, readonly_uri, user_tables
from bluegreen.engine.keys import keys_from, load_keys
from bluegreen.files.layout import create_file, file_mode


def export_changes(source: Path, target: Path, tables: list[str], after_seq: int, upto_seq: int) -> None:
    """Save the source's current rows for the changed keys of `tables`, and the change list
    itself, to a new SQLite file: what `revert --accept-loss` keeps before it drops them. The file
    is created with the source's mode before SQLite opens it: it holds row data verbatim."""
    create_file(target, file_mode(source))
    conn = open_db(target, create=True)
    try:
        conn.execute("ATTACH ? AS source", (readonly_uri(source),))
        conn.execute("BEGIN")
        conn.execute(
            "CREATE TABLE bluegreen_lost_changes AS SELECT seq, tbl AS table_name, key AS row_key, op "
            f"FROM source.{capture.CAPTURE_TABLE} WHERE seq > ? AND seq <= ? AND tbl IN (SELECT value FROM json_each(?))",
            (after_seq, upto_seq, json.dumps(tables)),
        )
        conn.execute("CREATE INDEX main.bluegreen_lost_key ON bluegreen_lost_changes(table_name, row_key)")
        for table in user_tables(conn, "source"):
            if table.name not in tables:
                continue
            name = quote_ident(table.name)
            if table.without_rowid:
                load_keys(
                    conn,
                    table,
                    [
                        k
                        for (k,) in conn.execute(
                            "SELECT DISTINCT CAST(row_key AS BLOB) FROM bluegreen_lost_changes WHERE table_name = ?",
                            (table.name,),
                        )
                    ],
                )
                conn.execute(f"CREATE TABLE main.{name} AS SELECT s.* FROM {keys_from(table, 'source')}", (table.name,))
                continue
            conn.execute(
                f"CREATE TABLE main.{name} AS SELECT * FROM source.{name} WHERE {table.rowid_alias} IN "
                "(SELECT row_key FROM bluegreen_lost_changes WHERE table_name = ?)",
                (table.name,),
            )
        conn.execute("COMMIT")
    finally:
        conn.close()
