"""The open transaction's statements, kept so it can move to the file the pointer names.

A fence refuses a write at prepare time, so the statement it refused changed nothing. Inside a
transaction the statements before it did change nothing either: any write takes the file's write
lock until commit, and cutover (or revert) can only fence a file while it holds that lock. So a
transaction that meets a fence has only read, and reads are what must be checked: the log keeps
every statement since the transaction began (BEGIN and SAVEPOINT included) with the rows the
application fetched so far, and `replay` runs them again on the new file in a new transaction.
If every statement returns what it returned before (same columns, same rows in the same order,
the end of a result where the application saw its end, the same error where one failed), the
transaction goes on there: what it read holds on the file it will commit to, so it is as if it
had started there. Anything else, or a log that could not be kept whole, is a conflict: the
caller rolls back and raises, nothing having been committed anywhere.

Green holds everything blue committed before its fence (the fence is only set once green has
caught up under blue's write lock), so a transaction that started on blue just before the swap
usually reads the same on green; it differs only if another writer changed those rows since.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

MAX_ROWS = 10_000  # rows the log keeps per transaction; past it the transaction cannot move


@dataclass(eq=False)  # an entry is itself, whatever it holds
class Entry:
    sql: str
    params: Any
    many: bool
    cursor: Any  # the application's cursor that ran it (its result moves with the replay)
    columns: tuple | None = None
    rows: list = field(default_factory=list)
    exhausted: bool = False
    error: tuple[str, str] | None = None  # (class name, message) of a statement that failed
    changed: bool = False  # it changed rows (a TEMP table, say): not something replay may repeat


def columns_of(raw_cursor: sqlite3.Cursor) -> tuple | None:
    described = raw_cursor.description
    return None if described is None else tuple(column[0] for column in described)


def error_of(exc: BaseException) -> tuple[str, str]:
    return type(exc).__name__, str(exc)


class Log:
    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.kept = 0
        self.whole = True  # False once rows were fetched past MAX_ROWS

    def clear(self) -> None:
        self.entries = []
        self.kept = 0
        self.whole = True

    def add(self, entry: Entry) -> Entry:
        self.entries.append(entry)
        return entry

    def saw(self, entry: Entry, rows: list, exhausted: bool) -> None:
        """The application fetched `rows` from entry's result (and, if exhausted, its end)."""
        if entry not in self.entries:
            return  # a result from before this transaction
        if rows and self.whole:
            self.kept += len(rows)
            if self.kept > MAX_ROWS:
                self.whole = False
                entry.rows = []
            else:
                entry.rows.extend(rows)
        entry.exhausted = entry.exhausted or exhausted

    def why_not(self) -> str | None:
        """Why this log cannot be replayed at all, or None."""
        if not self.whole:
            return f"it had fetched more than {MAX_ROWS} rows, too many to compare"
        if any(e.changed for e in self.entries):
            return "it had written rows bluegreen does not follow (a TEMP table), which are not repeated"
        return None


def replay(log: Log, raw: sqlite3.Connection, run, first: str | None = None) -> str | None:
    """Run the log again on raw (run(raw, sql, params, many) -> sqlite3.Cursor), its opening
    statement replaced by `first` if given. None when every statement gave what it gave before
    (the application's cursors now read on raw), else what differed; the caller rolls back then."""
    for n, entry in enumerate(log.entries, 1):
        where = f"statement {n} of the transaction ({entry.sql.strip()[:60]!r})"
        sql = first if n == 1 and first else entry.sql
        try:
            cursor = run(raw, sql, entry.params, entry.many)
        except sqlite3.Error as exc:
            if entry.error == error_of(exc):
                continue
            return f"{where} now fails ({exc})"
        if entry.error is not None:
            return f"{where} failed before ({entry.error[1]}) and now does not"
        if columns_of(cursor) != entry.columns:
            return f"{where} returns other columns ({columns_of(cursor)} instead of {entry.columns})"
        if entry.rows and cursor.fetchmany(len(entry.rows)) != entry.rows:
            return f"{where} returns other rows"
        if entry.exhausted and entry.columns is not None and cursor.fetchone() is not None:
            return f"{where} returns more rows"
        if getattr(entry.cursor, "_entry", None) is entry:
            entry.cursor._raw = cursor  # its remaining rows come from the new file
    return None
