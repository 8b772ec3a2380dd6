"""Rowids kept through a table rebuild that copies rows by PRIMARY KEY (issue 13).

A rowid table keyed by a PRIMARY KEY that is not its rowid (a TEXT PRIMARY KEY, a composite key)
loses its rowids in the 12-step rebuild when the copy does not name the rowid, as Django's does:
`INSERT INTO new_t (...) SELECT ... FROM t` gives the rows new ones. Capture and replay key such a
table by rowid, so green's rows could no longer be matched with blue's. Before the migrations run
on green (or on the dry run's schema-only copy), bluegreen saves each such table's primary key ->
rowid; after them it gives the rebuilt table's rows their old rowids back, by primary key, in two
passes that never collide. The table then keeps each row's rowid as well as its key and is
derived like a rebuild that copies the rowid (engine/derive.py). The migration's effects record
the tables whose rowids were restored (`rowids_restored`): derivation trusts only those.
"""

from __future__ import annotations

from dataclasses import dataclass

import apsw

from bluegreen.engine import alters, derive, statements
from bluegreen.engine.db import INTERNAL_PREFIX, quote_ident, user_tables

_LIMIT = 2**62  # rowids beyond it could overflow the shift of the first pass: not restored


@dataclass(frozen=True)
class Saved:
    file: str  # the migration whose copy rebuilds the table
    table: str  # its name before the migrations
    into: str  # the table the copy writes (renamed to the table's name afterwards)
    key: tuple[str, ...]  # its PRIMARY KEY columns
    helper: str  # bluegreen's table holding (key..., r) until the rowids are restored


def save(conn: apsw.Connection, pending: list) -> list[Saved]:
    """For each table a pending migration rebuilds by a copy that leaves its rowid out, save its
    primary key -> rowid (a copy of the key column(s), on green only)."""
    tables = {t.name.lower(): t for t in user_tables(conn)}
    saved: list[Saved] = []
    for migration in pending:
        for statement in statements.split(migration.sql):
            copy = alters.parse_copy(statement.sql)
            if copy is None or any(column.lower() in alters.ROWID_NAMES for column, _ in copy[2][1]):
                continue
            table = tables.get(copy[0].lower())
            if (
                table is None
                or table.without_rowid
                or not table.primary_key
                or derive.integer_key(conn, "main", table.name)
                or any(s.table == table.name for s in saved)
            ):
                continue
            helper = f"{INTERNAL_PREFIX}rowids_{len(saved) + 1}"
            key = ", ".join(quote_ident(c) for c in table.primary_key)
            conn.execute(
                f'CREATE TABLE main."{helper}" AS SELECT {key}, rowid AS r FROM main.{quote_ident(table.name)}'
            )
            conn.execute(f'CREATE UNIQUE INDEX main."{helper}_key" ON "{helper}"({key})')
            saved.append(Saved(migration.file, table.name, copy[2][0], table.primary_key, helper))
    return saved


def restore(conn: apsw.Connection, saved: list[Saved], effects: dict) -> None:
    """Give each rebuilt table's rows their saved rowids back, by primary key, when the rebuild
    kept exactly those rows and that key; record it in the copying migration's effects. The saved
    keys are dropped either way."""
    try:
        for item in saved:
            final = _rebuilt_as(item, effects)
            if final is not None and _restore_one(conn, item, final):
                effects.setdefault(item.file, {}).setdefault("rowids_restored", []).append(item.into)
    finally:
        for item in saved:
            conn.execute(f'DROP TABLE IF EXISTS main."{item.helper}"')


def _rebuilt_as(item: Saved, effects: dict) -> str | None:
    """The table's name after the migrations when they rebuilt it by copy and rename only."""
    parsed = [(sql, alters.parse(sql)) for sql in alters.alter_statements(effects) if sql.strip()]
    chain = alters.follow(item.table, parsed)
    if chain is None or [p[1] for _, p in chain[1]] != ["copy", "rename_table"]:
        return None
    return chain[0]


def _restore_one(conn: apsw.Connection, item: Saved, final: str) -> bool:
    table = next((t for t in user_tables(conn) if t.name.lower() == final.lower()), None)
    if table is None or table.without_rowid or [c.lower() for c in table.primary_key] != [c.lower() for c in item.key]:
        return False
    t, h = quote_ident(table.name), f'"{item.helper}"'
    match = " AND ".join(f"h.{quote_ident(c)} = {t}.{quote_ident(c)}" for c in item.key)
    count, low, high = conn.execute(f"SELECT count(*), min(r), max(r) FROM main.{h}").fetchall()[0]
    present, top = conn.execute(f"SELECT count(*), max(rowid) FROM main.{t}").fetchall()[0]
    unmatched = conn.execute(
        f"SELECT count(*) FROM main.{t} WHERE NOT EXISTS (SELECT 1 FROM main.{h} AS h WHERE {match})"
    ).get
    if present != count or unmatched or (count and (abs(low) > _LIMIT or abs(high) > _LIMIT or top > _LIMIT)):
        return False  # not the same rows, or rowids this could overflow on: derivation refuses
    if not count:
        return True
    shift = (top or 0) + 1 - (min(low, 1) - 1)  # first pass: every row below every saved rowid
    triggers = conn.config(apsw.SQLITE_DBCONFIG_ENABLE_TRIGGER, -1)
    conn.config(apsw.SQLITE_DBCONFIG_ENABLE_TRIGGER, 0)  # moving a rowid is no application update
    conn.execute("SAVEPOINT bluegreen_rowids")
    try:
        conn.execute(f"UPDATE main.{t} SET rowid = rowid - ?", (shift,))
        conn.execute(f"UPDATE main.{t} SET rowid = (SELECT h.r FROM main.{h} AS h WHERE {match})")
        conn.execute("RELEASE bluegreen_rowids")
    except BaseException:
        conn.execute("ROLLBACK TO bluegreen_rowids")
        conn.execute("RELEASE bluegreen_rowids")
        raise
    finally:
        conn.config(apsw.SQLITE_DBCONFIG_ENABLE_TRIGGER, triggers)
    return True
