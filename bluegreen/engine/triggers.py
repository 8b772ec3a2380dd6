"""The SQL of capture's triggers on one table, exactly as CREATE TRIGGER stores it.

AFTER INSERT/UPDATE/DELETE triggers record each changed key; BEFORE INSERT/UPDATE triggers record
the rows a REPLACE is about to delete without firing a delete trigger (hazards 5 and 13), one
branch per uniqueness index (uniqueness.py). Its own module because capture.py installs these
rows in one schema edit and compares them with plain CREATE TRIGGER (`capture.capture_sql`).
"""

from __future__ import annotations

import apsw

from bluegreen.engine.db import Table, quote_ident, quote_literal
from bluegreen.engine.keys import key_expression
from bluegreen.engine.names import CAPTURE_PREFIX, CAPTURE_TABLE, table_tag
from bluegreen.engine.uniqueness import UniqueKey, uniqueness_keys


def capture_trigger_sql(conn: apsw.Connection, table: Table) -> list[tuple[str, str]]:
    name = quote_ident(table.name)
    lit = quote_literal(table.name)
    tag = table_tag(table.name)
    new, old = key_expression(table, "NEW"), key_expression(table, "OLD")
    triggers = [
        (
            f"{CAPTURE_PREFIX}i_{tag}",
            f"AFTER INSERT ON {name} BEGIN INSERT INTO {CAPTURE_TABLE}(tbl, key, op) VALUES ({lit}, {new}, 'I'); END",
        ),
        (
            f"{CAPTURE_PREFIX}u_{tag}",
            f"AFTER UPDATE ON {name} BEGIN "
            f"INSERT INTO {CAPTURE_TABLE}(tbl, key, op) SELECT {lit}, {old}, 'U' "
            f"UNION ALL SELECT {lit}, {new}, 'U' WHERE ({new}) IS NOT ({old}); END",
        ),
        (
            f"{CAPTURE_PREFIX}d_{tag}",
            f"AFTER DELETE ON {name} BEGIN INSERT INTO {CAPTURE_TABLE}(tbl, key, op) VALUES ({lit}, {old}, 'D'); END",
        ),
        *_capture_replace_deletes(conn, table),
    ]
    return [(trigger, f"CREATE TRIGGER {trigger} {body}") for trigger, body in triggers]


def _capture_replace_deletes(conn: apsw.Connection, table: Table) -> list[tuple[str, str]]:
    """A REPLACE conflict deletes the conflicting row without firing any delete trigger (hazards
    5 and 13): INSERT/UPDATE OR REPLACE, REPLACE INTO, `ON CONFLICT REPLACE` columns, on the
    primary key of rowid tables (any type, DESC, composite), on UNIQUE constraints and indexes,
    each compared in the index's own collation and on its own expression. BEFORE triggers run
    before conflict resolution, so one trigger per table and event records, for every uniqueness
    index, the rows whose index key equals NEW's. Over-recording is harmless (replay is
    last-state); missing one never is, so partial indexes are matched on their WHERE for the old
    row only, and UPSERTs are covered by the same triggers (their DO UPDATE is an UPDATE).
    Returns (name, body after the name) of those triggers."""
    keys = uniqueness_keys(conn, table)
    if not keys:
        return []
    name, tag = quote_ident(table.name), table_tag(table.name)
    values, generated = _new_values(conn, table)
    insert = _conflicts_sql(table, keys, values, exclude=None if not table.without_rowid else "NEW")
    update = _conflicts_sql(table, keys, values, exclude="OLD")
    columns = _columns_read(keys, generated)
    of = f" OF {', '.join(quote_ident(c) for c in sorted(columns))}" if columns else ""
    return [
        (
            f"{CAPTURE_PREFIX}ri_{tag}",
            f"BEFORE INSERT ON {name} BEGIN INSERT INTO {CAPTURE_TABLE}(tbl, key, op) {insert}; END",
        ),
        (
            f"{CAPTURE_PREFIX}ru_{tag}",
            f"BEFORE UPDATE{of} ON {name} BEGIN INSERT INTO {CAPTURE_TABLE}(tbl, key, op) {update}; END",
        ),
    ]


def _new_values(conn: apsw.Connection, table: Table) -> tuple[dict[str, str], set[str]]:
    """Per column, SQL for the value the row will be stored with: NEW's, except that a REPLACE
    stores a NOT NULL column's default where NEW holds NULL (BEFORE triggers still see NULL).
    Also the generated columns (BEFORE triggers see their computed values)."""
    values, generated = {}, set()
    for _, name, _, notnull, default, _, hidden in conn.execute(
        "SELECT * FROM pragma_table_xinfo(?)", (table.name,)
    ).fetchall():
        if hidden == 1:
            continue
        value = f"NEW.{quote_ident(name)}"
        if notnull and default is not None:
            value = f"coalesce({value}, ({default}))"
        values[name] = value
        if hidden in (2, 3):
            generated.add(name)
    return values, generated


def _conflicts_sql(table: Table, keys: list[UniqueKey], values: dict[str, str], exclude: str | None) -> str:
    """SELECT of the (table, key, 'D') rows that conflict with NEW on any of `keys`, one branch
    per index, UNION ALL: each branch is one probe of its index. `exclude`: the row whose key is
    not deleted by the conflict (OLD, the row being updated; NEW, a WITHOUT ROWID same-key row)."""
    name, lit = quote_ident(table.name), quote_literal(table.name)
    key_row = key_expression(table, name)
    new_row = "SELECT " + ", ".join(f"{v} AS {quote_ident(c)}" for c, v in values.items())
    branches = []
    for key in keys:
        match = []
        for term in key.terms:
            if term.column is not None:
                left, right = f"{name}.{quote_ident(term.column)}", values[term.column]
            else:  # evaluate the expression on NEW: the inner alias makes its names mean NEW's values
                left, right = f"({term.expression})", f"(SELECT {term.expression} FROM ({new_row}) AS {name})"
            match.append(f"{left} = {right} COLLATE {quote_ident(term.collation)}")
        if key.where:
            match.append(f"({key.where})")
        if exclude is not None:
            match.append(f"({key_row}) IS NOT ({key_expression(table, exclude)})")
        branches.append(f"SELECT {lit}, {key_row}, 'D' FROM {name} WHERE {' AND '.join(match)}")
    return " UNION ALL ".join(branches)


def _columns_read(keys: list[UniqueKey], generated: set[str]) -> set[str] | None:
    """The columns an UPDATE must set for some index key to change (UPDATE OF), or None (fire on
    every UPDATE) when an expression, a partial index or a generated column is involved."""
    columns: set[str] = set()
    for key in keys:
        if key.where or any(t.column is None or t.column in generated for t in key.terms):
            return None
        columns.update(t.column for t in key.terms)
    return columns
