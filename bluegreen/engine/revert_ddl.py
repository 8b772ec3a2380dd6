"""DDL the application runs on the active file during the revert window (hazard 14).

At cutover green's schema is recorded (`schema_at_cutover` in green's `_bluegreen_meta`); a revert
compares green's schema under green's barrier with that record. A table created since, whose name
blue does not use, is carried back whole (it has no capture triggers: capture was installed
before it existed) with its indexes and triggers. Anything else that moved — a table altered or
dropped, an index, trigger or view created, changed or dropped — has no safe place in blue's
schema: the revert refuses it by name, or with `--accept-loss` saves it to the lost-changes file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import apsw

from bluegreen.engine import meta
from bluegreen.engine.db import INTERNAL_PREFIX, REPLICATOR_PREFIX, quote_ident
from bluegreen.engine.names import CAPTURE_PREFIX
from bluegreen.errors import SchemaDrift

SCHEMA_KEY = "schema_at_cutover"
LOST_SCHEMA_TABLE = "bluegreen_lost_schema"
_OBJECTS = (
    "SELECT type, name, tbl_name, sql FROM {}.sqlite_schema WHERE substr(name, 1, 7) <> 'sqlite_' "
    f"AND substr(name, 1, {len(INTERNAL_PREFIX)}) <> '{INTERNAL_PREFIX}' "
    f"AND substr(tbl_name, 1, {len(REPLICATOR_PREFIX)}) <> '{REPLICATOR_PREFIX}' ORDER BY type, name"
)
_CREATE_ORDER = {"table": 0, "index": 1, "trigger": 2, "view": 3}


@dataclass(frozen=True)
class SchemaObject:
    type: str
    name: str
    tbl_name: str
    sql: str | None


@dataclass
class Drift:
    """What changed in green's schema since cutover."""

    new_tables: list[SchemaObject] = field(default_factory=list)  # carried back whole
    companions: list[SchemaObject] = field(default_factory=list)  # indexes/triggers on new tables
    refused: dict[str, str] = field(default_factory=dict)  # "type name" -> why it cannot be carried
    refused_tables: list[str] = field(default_factory=list)  # green tables among them (rows exported whole)
    dropped_tables: list[str] = field(default_factory=list)  # tables green no longer has

    @property
    def uncarriable_tables(self) -> list[str]:
        """Tables generic replay must leave alone: their changed rows go to the refusal or export."""
        return self.refused_tables + self.dropped_tables


def objects(conn: apsw.Connection, schema: str = "main") -> dict[tuple[str, str], SchemaObject]:
    """The application's schema objects, keyed by (type, name); bluegreen's and SQLite's left out,
    and a virtual table's shadow tables (they belong to it)."""
    rows = conn.execute(_OBJECTS.format(quote_ident(schema))).fetchall()
    shadows = {
        n
        for (n,) in conn.execute(
            "SELECT name FROM pragma_table_list WHERE schema = ? AND type = 'shadow'", (schema,)
        ).fetchall()
    }
    return {(t, n): SchemaObject(t, n, tbl, sql) for t, n, tbl, sql in rows if n not in shadows}


def record(conn: apsw.Connection) -> None:
    """Store green's schema as it is at cutover. Run inside a write transaction on green, before
    blue is fenced: nothing but bluegreen writes green yet. Always overwritten: a generation built
    from this one inherits the row in its snapshot."""
    listed = [[o.type, o.name, o.tbl_name, o.sql] for o in objects(conn).values()]
    meta.set_meta(conn, **{SCHEMA_KEY: json.dumps(listed)})


def recorded(conn: apsw.Connection, schema: str = "main") -> dict[tuple[str, str], SchemaObject] | None:
    """The schema recorded at cutover, or None (cut over by a version that did not record it)."""
    text = meta.get_meta(conn, SCHEMA_KEY, schema)
    if text is None:
        return None
    return {(t, n): SchemaObject(t, n, tbl, sql) for t, n, tbl, sql in json.loads(text)}


def drift(green: apsw.Connection, blue: apsw.Connection) -> Drift | None:
    """Compare green's schema now (read through green's barrier) with the record; None if there is
    no record. `blue` is blue's connection: a new table whose name blue uses cannot be carried."""
    before = recorded(green)
    if before is None:
        return None
    now = objects(green)
    found = Drift()
    blue_names = {n for (n,) in blue.execute("SELECT name FROM main.sqlite_schema").fetchall()}
    captured = _captured_tables(green)
    for key, obj in now.items():
        if key in before:
            if (before[key].sql, before[key].tbl_name) != (obj.sql, obj.tbl_name):
                _refuse(
                    found, obj, f"{obj.type} {obj.name} was changed on green after cutover (ALTER or DROP and CREATE)"
                )
            elif obj.type == "table" and captured and obj.name not in captured and not _virtual(obj):
                _refuse(found, obj, f"table {obj.name} was rebuilt on green after cutover ({REBUILT})")
        elif obj.type == "table" and _virtual(obj):
            _refuse(
                found,
                obj,
                f"virtual table {obj.name} was created on green after cutover: bluegreen cannot "
                "fence or carry a virtual table",
            )
        elif obj.type == "table" and obj.name not in blue_names:
            found.new_tables.append(obj)
        elif obj.type == "table":
            _refuse(
                found,
                obj,
                f"table {obj.name} was created on green after cutover, but {obj.name!r} is "
                "already a name in blue's schema",
            )
    carried = {t.name for t in found.new_tables}
    for key, obj in now.items():
        if key in before or obj.type == "table":
            continue
        if obj.type in ("index", "trigger") and obj.tbl_name in carried and obj.name not in blue_names:
            found.companions.append(obj)
        else:
            _refuse(
                found,
                obj,
                f"{obj.type} {obj.name} was created on green after cutover on an object the old "
                "schema has (it may not fit the old schema)",
            )
    for key, obj in before.items():
        if key not in now:
            found.refused[f"{obj.type} {obj.name}"] = f"{obj.type} {obj.name} was dropped on green after cutover"
            if obj.type == "table":
                found.dropped_tables.append(obj.name)
    return found


# A 12-step rebuild (sqlite-utils transform, Alembic batch mode, Django's SQLite schema editor, by
# hand) drops the table and its capture triggers with it; the new table may even have the very
# same CREATE TABLE text. Its later writes were never captured (issue 14, item 4).
REBUILT = (
    "its capture triggers are gone: a table rebuild such as sqlite-utils transform; its writes since were not captured"
)


def _captured_tables(conn: apsw.Connection) -> set[str]:
    """Tables of green that still have their capture triggers."""
    rows = conn.execute(
        "SELECT DISTINCT tbl_name FROM main.sqlite_schema WHERE type = 'trigger' AND substr(name, 1, ?) = ?",
        (len(CAPTURE_PREFIX), CAPTURE_PREFIX),
    ).fetchall()
    return {name for (name,) in rows}


def _virtual(obj: SchemaObject) -> bool:
    return (obj.sql or "").lstrip().upper().startswith("CREATE VIRTUAL")


def _refuse(found: Drift, obj: SchemaObject, why: str) -> None:
    found.refused[f"{obj.type} {obj.name}"] = why
    if obj.type == "table":
        found.refused_tables.append(obj.name)


def carry_new_tables(conn: apsw.Connection, found: Drift) -> dict[str, int]:
    """Create each new table (then its indexes and triggers) in blue (`conn`'s main) and copy every
    row from green (attached as `source`), inside the caller's transaction; rows per table."""
    copied: dict[str, int] = {}
    current = ""
    try:
        for obj in sorted(found.new_tables + found.companions, key=lambda o: _CREATE_ORDER.get(o.type, 9)):
            current = f"{obj.type} {obj.name}"
            if obj.sql:
                conn.execute(obj.sql)
        for table in found.new_tables:
            current = f"the rows of table {table.name}"
            copied[table.name] = _copy_rows(conn, table.name)
    except apsw.Error as exc:
        raise SchemaDrift(
            f"could not carry {current}, created on green after cutover, back into blue ({exc}); nothing was "
            "changed: inspect it on green, and drop or rename it there if it is not needed"
        ) from None
    return copied


def _copy_rows(conn: apsw.Connection, table: str) -> int:
    name = quote_ident(table)
    columns = ", ".join(
        quote_ident(c)
        for c, hidden in conn.execute("SELECT name, hidden FROM pragma_table_xinfo(?, 'source')", (table,)).fetchall()
        if hidden == 0
    )
    without_rowid = conn.execute("SELECT wr FROM pragma_table_list WHERE schema = 'source' AND name = ?", (table,)).get
    rowid = "" if without_rowid else "rowid, "  # keep rowids exact for tables without an alias
    conn.execute(f"INSERT INTO main.{name}({rowid}{columns}) SELECT {rowid}{columns} FROM source.{name}")
    sequence = (
        conn.execute("SELECT seq FROM source.sqlite_sequence WHERE name = ?", (table,)).fetchall()
        if _has_table(conn, "source", "sqlite_sequence")
        else []
    )
    if sequence:
        conn.execute("DELETE FROM main.sqlite_sequence WHERE name = ?", (table,))
        conn.execute("INSERT INTO main.sqlite_sequence(name, seq) VALUES (?, ?)", (table, sequence[0][0]))
    return conn.execute(f"SELECT count(*) FROM main.{name}").get


def export_refused(conn: apsw.Connection, found: Drift) -> None:
    """Into the lost-changes file (`conn`'s main, green attached as `source`): every refused object
    with why, and the whole rows of each refused table green still has (no capture covers a
    table created after capture; an ALTER reshapes every row). Inside the caller's transaction."""
    conn.execute(f"CREATE TABLE IF NOT EXISTS main.{LOST_SCHEMA_TABLE}(object TEXT, reason TEXT, sql TEXT)")
    sql_of = {f"{o.type} {o.name}": o.sql for o in objects(conn, "source").values()}
    for name, why in found.refused.items():
        conn.execute(f"INSERT INTO main.{LOST_SCHEMA_TABLE} VALUES (?, ?, ?)", (name, why, sql_of.get(name)))
    for table in found.refused_tables:
        target = quote_ident(f"{table} (whole table)")
        conn.execute(f"CREATE TABLE main.{target} AS SELECT * FROM source.{quote_ident(table)}")


def _has_table(conn: apsw.Connection, schema: str, name: str) -> bool:
    return bool(
        conn.execute(
            f"SELECT 1 FROM {quote_ident(schema)}.sqlite_schema WHERE type = 'table' AND name = ?", (name,)
        ).fetchall()
    )
