"""The meta table (`_bluegreen_meta`): the small key-value store bluegreen keeps in each file it
works on — the generation stamp, capture's epoch, replay positions, the time a lock was taken,
the migrations' effects, the schema at cutover. Its own module because capture, the fence, the
barrier, replay and revert all write it, and it must go once empty (no trace on a finished file).
"""

from __future__ import annotations

import apsw

from bluegreen.engine.db import quote_ident
from bluegreen.files.contract import META_TABLE


def ensure_meta(conn: apsw.Connection) -> None:
    conn.execute(f"CREATE TABLE IF NOT EXISTS {META_TABLE}(key TEXT PRIMARY KEY, value) WITHOUT ROWID")


def set_meta(conn: apsw.Connection, **values: object) -> None:
    ensure_meta(conn)
    for key, value in values.items():
        conn.execute(f"INSERT OR REPLACE INTO {META_TABLE}(key, value) VALUES (?, ?)", (key, value))


def clear_meta(conn: apsw.Connection, *keys: str) -> None:
    """Delete keys; drop the table once empty, so a file bluegreen is done with has no trace."""
    if not conn.execute("SELECT 1 FROM main.sqlite_schema WHERE name = ?", (META_TABLE,)).fetchall():
        return
    for key in keys:
        conn.execute(f"DELETE FROM main.{META_TABLE} WHERE key = ?", (key,))
    if not conn.execute(f"SELECT 1 FROM main.{META_TABLE} LIMIT 1").fetchall():
        conn.execute(f"DROP TABLE main.{META_TABLE}")


def get_meta(conn: apsw.Connection, key: str, schema: str = "main"):
    exists = conn.execute(f"SELECT 1 FROM {quote_ident(schema)}.sqlite_schema WHERE name = ?", (META_TABLE,)).fetchall()
    if not exists:
        return None
    row = conn.execute(f"SELECT value FROM {quote_ident(schema)}.{META_TABLE} WHERE key = ?", (key,)).fetchall()
    return row[0][0] if row else None
