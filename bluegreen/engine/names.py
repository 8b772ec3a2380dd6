"""The names of bluegreen's own objects inside a database file, and finding them.

Capture's table, its triggers' and the BLOB guard's name prefixes and the per-table tag live here,
below capture, fence and guard alike, so each can find the others' objects without importing
them. (The names the application's client also reads, the meta table and the fence's, are in
files/contract.py.)
"""

from __future__ import annotations

import hashlib

import apsw

CAPTURE_TABLE = "_bluegreen_capture"
CAPTURE_PREFIX = "_bluegreen_cap_"
GUARD_PREFIX = "_bluegreen_guard_"


def table_tag(table: str) -> str:
    return hashlib.sha1(table.encode("utf-8")).hexdigest()[:12]


def find_triggers(conn: apsw.Connection, prefix: str) -> list[tuple[str]]:
    return find_objects(conn, "trigger", prefix)


def find_objects(conn: apsw.Connection, kind: str, prefix: str) -> list[tuple[str]]:
    return conn.execute(
        "SELECT name FROM sqlite_schema WHERE type = ? AND substr(name, 1, ?) = ?",
        (kind, len(prefix), prefix),
    ).fetchall()
