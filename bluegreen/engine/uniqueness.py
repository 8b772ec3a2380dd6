"""The uniqueness indexes a REPLACE can delete rows through, read from the schema (hazard 13).

Each UNIQUE index (the primary key's too) with every term's collation, expression and a partial
index's WHERE, as SQLite's own lexer splits the CREATE INDEX text. An index bluegreen cannot
evaluate (a collation or function only the application registers) is refused here, at prepare,
before anything changes. Its own module because reading index definitions is the delicate half
of REPLACE capture; triggers.py writes the SQL from what this returns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import apsw

from bluegreen.engine import sqltext
from bluegreen.engine.db import INTERNAL_PREFIX, Table, quote_ident
from bluegreen.errors import SchemaUnsupported


def check_replace_capture(conn: apsw.Connection, table: Table) -> None:
    """Refuse, before anything changes, a uniqueness index whose REPLACE deletes capture could
    not evaluate: an expression or condition naming a function only the application registers."""
    name = quote_ident(table.name)
    for key in uniqueness_keys(conn, table):
        parts = [t.expression for t in key.terms if t.expression] + ([key.where] if key.where else [])
        for part in parts:
            try:
                conn.execute(f"SELECT ({part}) FROM {name} LIMIT 0").fetchall()
            except apsw.SQLError as exc:
                raise SchemaUnsupported(
                    f"table {table.name!r}: index {key.index!r} computes {part!r}, which bluegreen cannot "
                    f"evaluate ({exc}): a REPLACE on it could delete a row unseen, and replay could not write "
                    "the table. Drop or rewrite that index with built-in functions before deploying"
                ) from None


@dataclass(frozen=True)
class IndexTerm:
    """One key term of a uniqueness index: a column, or an expression over the row's columns."""

    column: str | None
    expression: str | None
    collation: str


@dataclass(frozen=True)
class UniqueKey:
    """A uniqueness index a REPLACE can delete rows through (the PK autoindex included)."""

    index: str
    terms: tuple[IndexTerm, ...]
    where: str | None  # a partial index's condition, over the row's columns
    primary_key: bool


def uniqueness_keys(conn: apsw.Connection, table: Table) -> list[UniqueKey]:
    """Every UNIQUE index of the table, its primary-key autoindex included, with each term's
    collation (pragma_index_xinfo) and, for expression and partial indexes, their SQL text.

    A conflict on a WITHOUT ROWID primary key replaces the row under the same captured key, unless
    two spellings of a key compare equal (a collation such as NOCASE; 1 and 1.0 in an untyped
    column): such a key is kept (the trigger skips the row whose encoded key is NEW's), one whose
    equal values always encode alike is left out (_exact_key). Raises SchemaUnsupported for an index
    bluegreen could not evaluate (a collation only the application registers)."""
    found = []
    known = {name.upper() for (name,) in conn.execute("SELECT name FROM pragma_collation_list")}
    for _, index, unique, origin, partial in conn.execute(
        'SELECT seq, name, "unique", origin, partial FROM pragma_index_list(?)', (table.name,)
    ).fetchall():
        if not unique or index.startswith(INTERNAL_PREFIX):
            continue
        rows = conn.execute(
            "SELECT cid, name, coll FROM pragma_index_xinfo(?) WHERE key ORDER BY seqno", (index,)
        ).fetchall()
        sql = conn.execute("SELECT sql FROM sqlite_schema WHERE type = 'index' AND name = ?", (index,)).fetchall()
        text = sql[0][0] if sql and sql[0][0] else None
        expressions, where = _index_parts(table.name, index, text, len(rows)) if text else ([None] * len(rows), None)
        terms = []
        for (cid, column, coll), expression in zip(rows, expressions):
            _require_collation(known, table.name, index, coll)
            if cid == -2:
                terms.append(IndexTerm(None, expression, coll or "BINARY"))
            elif cid == -1:  # the rowid itself: a conflict on it keeps the key
                terms = []
                break
            else:
                terms.append(IndexTerm(column, None, coll or "BINARY"))
        if terms and not (origin == "pk" and table.without_rowid and _exact_key(conn, table, terms)):
            found.append(UniqueKey(index, tuple(terms), where if partial else None, origin == "pk"))
    return found


def _exact_key(conn: apsw.Connection, table: Table, terms: list[IndexTerm]) -> bool:
    """Do equal keys always encode alike? Then a conflict on this WITHOUT ROWID primary key keeps
    its captured key and needs no trigger: BINARY collation, and INTEGER, TEXT or NUMERIC affinity
    (REAL keeps 0.0 and -0.0 apart in quote(), an untyped column 1 and 1.0)."""
    types = {
        name: (kind or "").upper()
        for _, name, kind, *_ in conn.execute("SELECT * FROM pragma_table_info(?)", (table.name,)).fetchall()
    }
    for term in terms:
        kind = types.get(term.column, "")
        if term.collation.upper() != "BINARY" or not kind or "BLOB" in kind:
            return False
        if (
            "INT" not in kind
            and not any(t in kind for t in ("CHAR", "CLOB", "TEXT"))
            and any(t in kind for t in ("REAL", "FLOA", "DOUB"))
        ):
            return False
    return True


def _require_collation(known: set[str], table: str, index: str, collation: str | None) -> None:
    if collation and collation.upper() not in known:
        raise SchemaUnsupported(
            f"table {table!r}: index {index!r} uses collation {collation!r}, which only the application "
            "registers: bluegreen cannot match or replay its rows (a REPLACE on it could delete a row unseen). "
            "Use a built-in collation (BINARY, NOCASE, RTRIM) for that index, or deploy with the application "
            "stopped after dropping it"
        )


def _index_parts(table: str, index: str, sql: str, count: int) -> tuple[list[str], str | None]:
    """The key terms (without ASC/DESC and COLLATE, which pragma_index_xinfo gives) and the WHERE
    of a CREATE INDEX statement, as written, split with SQLite's own quoting rules."""
    tokens = sqltext.spans(sql)
    terms: list[list[re.Match]] = []
    current: list[re.Match] = []
    depth, end = 0, None
    opening = next((i for i, t in enumerate(tokens) if t.group() == "("), None)
    for i in range(opening if opening is not None else len(tokens), len(tokens)):
        token = tokens[i].group()
        if token == "(":
            depth += 1
            if depth == 1:
                continue
        elif token == ")":
            depth -= 1
            if depth == 0:
                terms.append(current)
                end = i
                break
        elif token == "," and depth == 1:
            terms.append(current)
            current = []
            continue
        current.append(tokens[i])
    rest = tokens[end + 1 :] if end is not None else []
    where = sql[rest[1].start() : rest[-1].end()] if len(rest) > 1 and rest[0].group().upper() == "WHERE" else None
    if end is None or len(terms) != count or not all(terms) or (rest and where is None):
        raise SchemaUnsupported(
            f"table {table!r}: cannot read the definition of index {index!r} ({sql!r}), so a REPLACE on it "
            "could not be captured; report this to bluegreen, or drop the index while deploying"
        )
    expressions = []
    for term in terms:
        term = _strip_order(term)
        expressions.append(sql[term[0].start() : term[-1].end()])
    return expressions, where


def _strip_order(term: list[re.Match]) -> list[re.Match]:
    term = list(term)
    if len(term) > 1 and term[-1].group().upper() in ("ASC", "DESC"):
        term.pop()
    if len(term) >= 3 and term[-2].group().upper() == "COLLATE":
        term = term[:-2]
    return term
