"""The driver's cursor: a DB-API cursor whose result can move with its connection.

Each fetch tells the connection's transaction log what the application saw (`replay` compares
it on the new file); a replay hands the cursor the new file's result, positioned where the
application was; and when the connection moves outside a transaction, a result not read to its
end is read into memory first (`_Read`), since the old file's connection closes.
"""

from __future__ import annotations

import sqlite3
from sqlite3 import ProgrammingError
from typing import Any

from bluegreen.sqlalchemy.replay import Entry


class Cursor:
    """A DB-API cursor whose result can move with its connection."""

    def __init__(self, conn: Any):  # a bluegreen.sqlalchemy.dbapi.Connection
        self.connection = conn
        self.arraysize = 1
        self._raw = None
        self._entry: Entry | None = None

    def execute(self, sql: str, parameters=()) -> Cursor:
        self.connection._statement(self, sql, parameters, False)
        return self

    def executemany(self, sql: str, seq_of_parameters) -> Cursor:
        self.connection._statement(self, sql, list(seq_of_parameters), True)  # a retry needs them again
        return self

    def _bind(self, raw, entry: Entry | None) -> None:
        self._raw, self._entry = raw, entry

    def _keep_rows(self) -> None:
        if isinstance(self._raw, sqlite3.Cursor):
            self._raw = _Read(self._raw)

    def _result(self):
        if self._raw is None:
            raise ProgrammingError("no statement has been executed on this cursor")
        return self._raw

    def _saw(self, rows: list, end: bool) -> None:
        if self._entry is not None:
            self.connection._log.saw(self._entry, rows, end)

    @property
    def description(self):
        return None if self._raw is None else self._raw.description

    @property
    def rowcount(self) -> int:
        return -1 if self._raw is None else self._raw.rowcount

    @property
    def lastrowid(self):
        return None if self._raw is None else self._raw.lastrowid

    def fetchone(self):
        row = self._result().fetchone()
        self._saw([] if row is None else [row], row is None)
        return row

    def fetchmany(self, size: int | None = None) -> list:
        size = self.arraysize if size is None else size
        rows = self._result().fetchmany(size)
        self._saw(rows, len(rows) < size)
        return rows

    def fetchall(self) -> list:
        rows = self._result().fetchall()
        self._saw(rows, True)
        return rows

    def __iter__(self):
        while (row := self.fetchone()) is not None:
            yield row

    def close(self) -> None:
        if self._raw is not None:
            self._raw.close()
        self.connection._cursors.discard(self)

    def setinputsizes(self, sizes) -> None:
        pass

    def setoutputsize(self, size, column=None) -> None:
        pass


class _Read:
    """The rest of a result, read from a connection that is about to close."""

    def __init__(self, raw: sqlite3.Cursor):
        self.description, self.rowcount, self.lastrowid = raw.description, raw.rowcount, raw.lastrowid
        try:
            self._rows = raw.fetchall() if raw.description is not None else []
        except sqlite3.Error:
            self._rows = []
        self._rows.reverse()

    def fetchone(self):
        return self._rows.pop() if self._rows else None

    def fetchmany(self, size: int) -> list:
        return [self._rows.pop() for _ in range(min(size, len(self._rows)))]

    def fetchall(self) -> list:
        rows, self._rows = self._rows[::-1], []
        return rows

    def close(self) -> None:
        self._rows = []
