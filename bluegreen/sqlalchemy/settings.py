"""Per-connection settings, recorded so they follow the connection to every file it opens.

SQLAlchemy sets a connection up once, when the pool creates it: the dialect's functions
(`regexp`, `floor`), the application's "connect" listeners (`PRAGMA foreign_keys = ON`, its own
functions and collations), the isolation level. A bluegreen connection changes the sqlite3
connection underneath when the pointer moves, so it records each of those calls and makes them
again on the new one, before any statement runs there. What is recorded: the sqlite3.Connection
methods below, the attributes below, and `PRAGMA name = value` statements run outside a
transaction (the last value of each pragma; not those of the file, such as user_version or
journal_mode). Temporary tables, ATTACHed databases and other
state a statement builds are not carried: they belong in `on_connect`.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from typing import Any

METHODS = (
    "create_function",
    "create_aggregate",
    "create_collation",
    "create_window_function",
    "set_authorizer",
    "set_progress_handler",
    "set_trace_callback",
    "enable_load_extension",
    "load_extension",
)
ATTRIBUTES = ("isolation_level", "row_factory", "text_factory")
_PRAGMA_SET = re.compile(r"^\s*PRAGMA\s+(?:main\s*\.\s*)?(\w+)\s*=", re.IGNORECASE)
# Pragmas that set something of the file (or do something once), not of the connection: never
# made again on another file (journal_mode = DELETE there would even stop bluegreen's capture).
OF_THE_FILE = {
    "application_id",
    "auto_vacuum",
    "defer_foreign_keys",
    "incremental_vacuum",
    "journal_mode",
    "optimize",
    "page_size",
    "schema_version",
    "shrink_memory",
    "user_version",
    "wal_checkpoint",
    "writable_schema",
}


class Settings:
    """What was done to the connection that must be done again on each file it moves to."""

    def __init__(self, then: Callable[[Any], None] | None = None):
        self._calls: list[tuple[str, str, tuple, dict]] = []  # (kind, name, args, kwargs)
        self._then = then  # the application's own on_connect, run first

    def method(self, name: str, args: tuple, kwargs: dict) -> None:
        self._calls.append(("method", name, args, kwargs))

    def attribute(self, name: str, value: Any) -> None:
        self._calls = [c for c in self._calls if (c[0], c[1]) != ("attribute", name)]
        self._calls.append(("attribute", name, (value,), {}))

    def statement(self, sql: str) -> None:
        """Remember `PRAGMA x = v` (run outside a transaction); anything else is not a setting."""
        match = _PRAGMA_SET.match(sql)
        if match is None:
            return
        name = match.group(1).lower()
        if name in OF_THE_FILE:
            return
        self._calls = [c for c in self._calls if (c[0], c[1]) != ("pragma", name)]
        self._calls.append(("pragma", name, (sql,), {}))

    def apply(self, raw: sqlite3.Connection) -> None:
        """on_connect for the client: the application's hook, then everything recorded, in order."""
        if self._then is not None:
            self._then(raw)
        for kind, name, args, kwargs in self._calls:
            if kind == "method":
                getattr(raw, name)(*args, **kwargs)
            elif kind == "attribute":
                setattr(raw, name, args[0])
            else:
                raw.execute(args[0]).fetchall()
