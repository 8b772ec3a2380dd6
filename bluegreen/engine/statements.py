"""An SQL script as its statements, each with the line it starts on, run one by one so that an
error names the line of the file it came from.

Statements end where SQLite's own `sqlite3_complete` says they do (the rule the sqlite3 shell
uses), tested at each `;` token of the project's tokenizer (sqltext.py): a `;` in a literal, a
comment or a quoted name ends nothing, and a trigger's body runs to its END. Lines count
`\\n`, `\\r\\n` and a lone `\\r` alike, so a CRLF checkout names the same line.
"""

from __future__ import annotations

from dataclasses import dataclass

import apsw

from bluegreen.engine.db import run_script
from bluegreen.engine.sqltext import spans


@dataclass(frozen=True)
class Statement:
    sql: str  # from its first token to its `;` (or the end of the text), comments inside kept
    offset: int  # where it starts in the text
    line: int  # the 1-based line it starts on

    @property
    def keyword(self) -> str:
        """The first word, upper-cased (BEGIN, VACUUM, CREATE, ...)."""
        return self.sql.split(None, 1)[0].rstrip(";").upper() if self.sql.strip() else ""


class StatementFailed(Exception):
    """One statement of a script failed: the SQLite error and the line of the text it is on.
    Not a BluegreenError: the caller says which file it was and types the cause."""

    def __init__(self, statement: Statement, line: int, error: apsw.Error):
        super().__init__(f"line {line}: {error}")
        self.statement = statement
        self.line = line
        self.error = error


def line_at(text: str, offset: int) -> int:
    before = text[:offset]
    return 1 + before.count("\n") + before.count("\r") - before.count("\r\n")


def split(text: str) -> list[Statement]:
    """The statements of text in order; blank ones (a lone `;`) left out."""
    found: list[Statement] = []
    start = None
    for token in spans(text):
        if start is None:
            start = token.start()
        if token.group() == ";" and apsw.complete(text[start : token.end()]):
            _add(found, text, start, token.end())
            start = None
    if start is not None:
        _add(found, text, start, len(text))
    return found


def _add(found: list[Statement], text: str, start: int, end: int) -> None:
    sql = text[start:end].rstrip()
    if sql != ";":
        found.append(Statement(sql, start, line_at(text, start)))


def run(conn: apsw.Connection, text: str) -> None:
    """Run every statement of text in order on conn (inside the caller's transaction, if any);
    the first failure raises StatementFailed with the line of the offending token when SQLite
    says where in the statement it is (its error offset), else the statement's first line."""
    for statement in split(text):
        try:
            run_script(conn, statement.sql)
        except apsw.Error as exc:
            raise StatementFailed(statement, error_line(text, statement, exc), exc) from None


def error_line(text: str, statement: Statement, error: apsw.Error) -> int:
    offset = getattr(error, "error_offset", -1)
    if offset is None or offset < 0:
        return statement.line
    # SQLite counts bytes of UTF-8; Python indexes characters.
    chars = len(statement.sql.encode("utf-8")[:offset].decode("utf-8", errors="ignore"))
    return line_at(text, statement.offset + chars)
