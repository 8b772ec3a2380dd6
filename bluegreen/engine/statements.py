"""An SQL script as its statements, each with the line it starts on, run one by one so that an
error names the line of the file it came from.

Statements end where SQLite's own `sqlite3_complete` says they do (the rule the sqlite3 shell
uses), tested at each `;` outside comments, literals and quoted names (read as the project's
tokenizer, sqltext.py, reads them): a `;` there ends nothing, and a trigger's body runs to its
END. Lines count `\\n`, `\\r\\n` and a lone `\\r` alike, so a CRLF checkout names the same line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import apsw

from bluegreen.engine.db import run_script

# What can hide a `;` from the statement's end, as sqltext.TOKEN reads them (comments, string
# and blob literals, "double", [bracket] and `backtick` names), and the `;` itself.
_SEMICOLON = re.compile(
    r"""--[^\n]*|/\*.*?(?:\*/|\Z)|'(?:[^']|'')*(?:'|\Z)|"(?:[^"]|"")*(?:"|\Z)|\[[^\]]*(?:\]|\Z)|`(?:[^`]|``)*(?:`|\Z)|;""",
    re.DOTALL,
)
_GAP = re.compile(r"(?:\s+|--[^\n]*|/\*.*?(?:\*/|\Z))*", re.DOTALL)  # between statements


@dataclass(frozen=True)
class Statement:
    sql: str  # from its first token to its `;` (or the end of the text), comments inside kept
    offset: int  # where it starts in the text
    line: int  # the 1-based line it starts on

    @property
    def keyword(self) -> str:
        """The first word, upper-cased (BEGIN, VACUUM, CREATE, ...)."""
        words = self.sql.lstrip("\ufeff").split(None, 1)  # a byte-order mark is no part of the word
        return words[0].rstrip(";").upper() if words else ""


class StatementFailed(Exception):
    """One statement of a script failed: the SQLite error and the line of the text it is on.
    Not a BluegreenError: the caller says which file it was and types the cause."""

    def __init__(self, statement: Statement, line: int, error: apsw.Error):
        super().__init__(f"line {line}: {error}")
        self.statement = statement
        self.line = line
        self.error = error


def line_at(text: str, offset: int, start: int = 0, line: int = 1) -> int:
    """The line of text[offset], counting on from `line` at `start` (a place known earlier)."""
    between = text[start:offset]
    return line + between.count("\n") + between.count("\r") - between.count("\r\n")


def split(text: str) -> list[Statement]:
    """The statements of text in order; blank ones (a lone `;`) left out. Linear in the text
    (8 MB of INSERTs in a fifth of a second): only comments, literals, quoted names and `;` are
    matched, and lines are counted on from the last statement."""
    found: list[Statement] = []
    seen = (0, 1)  # an offset whose line is known
    start = _GAP.match(text).end()
    for match in _SEMICOLON.finditer(text):
        if match.group() != ";" or match.start() < start:
            continue
        if apsw.complete(text[start : match.end()]):
            seen = _add(found, text, start, match.end(), seen)
            start = _GAP.match(text, match.end()).end()
    if text[start:].strip():
        _add(found, text, start, len(text), seen)
    return found


def _add(found: list[Statement], text: str, start: int, end: int, seen: tuple[int, int]) -> tuple[int, int]:
    line = line_at(text, start, *seen)
    sql = text[start:end].rstrip()
    if sql != ";":
        found.append(Statement(sql, start, line))
    return start, line


def run(conn: apsw.Connection, text: str, parts: list[Statement] | None = None) -> None:
    """Run every statement of text (parts: split(text), when the caller has it) in order on conn,
    inside the caller's transaction if any; the first failure raises StatementFailed with the
    line of the offending token when SQLite says where in the statement it is (its error
    offset), else the statement's first line."""
    for statement in split(text) if parts is None else parts:
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
    return line_at(text, statement.offset + chars, statement.offset, statement.line)
