"""Captured keys, both ways: how capture's triggers encode a row's key (the rowid, or the quote()d
primary key values, hazard 9), and how replay decodes that text back into typed values for its
keyed lookups of WITHOUT ROWID tables, a PRIMARY KEY search and never a scan (hazard 19).

One module because the decoder's grammar must accept exactly what the encoder writes, and it is
the one place that decides what captured text may reach SQL: text that is not a `quote()`
literal list is refused as tampering. Three callers join on the decoded keys (a replay batch,
`present`, the export of lost changes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache

import apsw

from bluegreen.engine.db import Table, quote_ident
from bluegreen.errors import CaptureLost


def key_expression(table: Table, row: str) -> str:
    """SQL for the captured key of NEW/OLD row: the rowid, or the quoted primary key values.

    quote() keeps every type exact (hazard 9: JSON cannot hold a BLOB key), and the encoded text
    is itself SQL: `SELECT <key>` gives the key values back.
    """
    if table.without_rowid:
        return " || ',' || ".join(_quoted_key_value(f"{row}.{quote_ident(c)}") for c in table.primary_key)
    return f"{row}.{table.rowid_alias}"


def _quoted_key_value(value: str) -> str:
    """quote(value), except text holding a NUL byte: quote() stops at the NUL ('a' for 'a<NUL>b', so
    the key would find no row, and two keys could share one encoding), so that text is spelled
    CAST(X'<its bytes>' AS TEXT), which replay's key grammar decodes. Every other value keeps
    quote()'s spelling byte for byte (sync scripts read row_key); the extra cost per write is a
    typeof() and, for text, an instr()."""
    return (
        f"CASE WHEN typeof({value}) = 'text' AND instr({value}, char(0)) "
        f"THEN 'CAST(X''' || hex({value}) || ''' AS TEXT)' ELSE quote({value}) END"
    )


# Capture names a WITHOUT ROWID row by the quote() text of its key values. Matching that text
# against an expression over the table scans it; instead each batch decodes the text back into
# typed values (quote() output is SQL literals) in temp.bluegreen_keys_N, and every lookup joins
# on the primary-key columns, a PRIMARY KEY search. The search compares with the columns' own
# collation and affinity, as the table's uniqueness does: deleting in the target, that is what
# clears the way for the source's row. Reading the source, comparing the quote() text of the row
# found with the captured text then keeps exactly the row the capture named (NOCASE 'ABC' is not
# 'abc', 1 is not 1.0), so no row is copied twice and `present` is exact.
# The exact comparison uses key_expression itself, so it follows any change there; a
# key_expression that spells text quote() cannot keep (an embedded NUL: quote() stops there) as
# CAST(X'..' AS TEXT) is decoded too.
_LITERAL = (
    r"NULL|-?[0-9]+(?:\.[0-9]+)?(?:e[+-][0-9]+)?|'(?:[^']|'')*'|X'(?:[0-9A-F][0-9A-F])*'"
    r"|CAST\(X'(?:[0-9A-F][0-9A-F])*' AS TEXT\)"
)
_KEYS_PER_STATEMENT = 500


_TEXT_TOKEN = re.compile(rb"(X'[0-9A-F]*')|'((?:[^']|'')*)'")


@cache
def key_pattern(arity: int) -> re.Pattern:
    """What quote() writes for `arity` values joined by ',' (as bytes) — nothing else reaches SQL."""
    return re.compile(",".join([f"(?:{_LITERAL})"] * arity).encode(), re.DOTALL)


def _key_row(table_name: str, key: bytes) -> tuple[str, list]:
    """One VALUES row (table_name, row_key, c1..cN) for a captured key, and its bindings. Text
    that is not UTF-8 (SQLite stores what it is given) cannot travel as a Python str: such a key
    goes as CAST(X'..' AS TEXT) literals, byte for byte."""
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        values = _TEXT_TOKEN.sub(
            lambda m: m.group(1) or b"CAST(X'" + m.group(2).replace(b"''", b"'").hex().encode() + b"' AS TEXT)", key
        )
        return f"(?, CAST(X'{key.hex()}' AS TEXT), {values.decode('ascii')})", [table_name]
    return f"(?, ?, {text})", [table_name, text]


def keys_table(conn: apsw.Connection, arity: int) -> str:
    """temp.bluegreen_keys_N(table_name, row_key, c1..cN), made once per connection and key width.
    Columns c1..cN have no type, so each value keeps the type it was captured with."""
    name = f"bluegreen_keys_{arity}"
    columns = ", ".join(f"c{i}" for i in range(1, arity + 1))
    conn.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {name}(table_name TEXT, row_key, {columns});"
        f"CREATE INDEX IF NOT EXISTS temp.{name}_table ON {name}(table_name)"
    )
    return f"temp.{name}"


def clear_keys(conn: apsw.Connection) -> None:
    """Empty every temp.bluegreen_keys_N before a new batch's keys are loaded."""
    for (name,) in conn.execute(
        "SELECT name FROM temp.sqlite_schema WHERE type = 'table' AND name GLOB 'bluegreen_keys_[0-9]*'"
    ).fetchall():
        conn.execute(f"DELETE FROM temp.{quote_ident(name)}")


def load_keys(conn: apsw.Connection, table: Table, row_keys: Iterable[bytes]) -> str:
    """Decode the captured keys of one WITHOUT ROWID table (each as bytes: CAST(row_key AS
    BLOB)) into typed columns: each is checked to be quote() output of exactly as many values
    as the key has (anything else is not a key bluegreen's capture wrote, and never reaches
    SQL), then inserted as literals."""
    arity = len(table.primary_key)
    target = keys_table(conn, arity)
    pattern = key_pattern(arity)
    keys = list(row_keys)
    for key in keys:
        if not isinstance(key, bytes) or not pattern.fullmatch(key):
            raise CaptureLost(
                f"{table.name}: captured key {key!r} is not {arity} quote()d value(s) of its primary key; "
                "the capture table was written by something other than bluegreen: run `bluegreen abort`"
            )
    for start in range(0, len(keys), _KEYS_PER_STATEMENT):
        rows = [_key_row(table.name, key) for key in keys[start : start + _KEYS_PER_STATEMENT]]
        conn.execute(
            f"INSERT INTO {target} VALUES " + ", ".join(sql for sql, _ in rows),
            [value for _, bindings in rows for value in bindings],
            can_cache=False,  # never the same text twice: keep it out of apsw's statement cache
        )
    return target


def keys_from(table: Table, schema: str) -> str:
    """FROM clause: each decoded key of `table` (alias k), then the row of schema.table it names
    (alias s), found by a PRIMARY KEY search. One binding: the table name."""
    keys = f"temp.bluegreen_keys_{len(table.primary_key)}"
    search = " AND ".join(f"s.{quote_ident(c)} = k.c{i}" for i, c in enumerate(table.primary_key, 1))
    return (
        f"{keys} AS k CROSS JOIN {quote_ident(schema)}.{quote_ident(table.name)} AS s "
        f"ON {search} AND {key_expression(table, 's')} = k.row_key WHERE k.table_name = ?"
    )


def delete_keyed(table: Table) -> str:
    """DELETE of the target's rows the decoded keys name, by PRIMARY KEY search under the key's
    own collation and affinity: also the row a REPLACE on blue pushed out without a trace, whose
    key is equal but not identical ('abc' replaced by 'ABC' under NOCASE, 1 by 1.0); any other
    row it meets was changed too. One binding: the table name."""
    keys = f"temp.bluegreen_keys_{len(table.primary_key)}"
    columns = ", ".join(quote_ident(c) for c in table.primary_key)
    values = ", ".join(f"c{i}" for i in range(1, len(table.primary_key) + 1))
    return (
        f"DELETE FROM main.{quote_ident(table.name)} WHERE ({columns}) IN "
        f"(SELECT {values} FROM {keys} WHERE table_name = ?)"
    )
