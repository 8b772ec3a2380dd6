"""Which tables replay copies as they are, and which a migration reshaped (hazard 3).

Generic replay is exact only for a table whose definition, UNIQUE indexes and application
triggers are the same in source and target and that no migration wrote to; everything else is
left to a sync script. A module of its own because the decision reads only the two schemas and
the migrations' effects, once per Replayer, while the rest of replay moves rows batch by batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import apsw

from bluegreen.engine import capture, derive
from bluegreen.engine.alters import alter_statements
from bluegreen.engine.db import INTERNAL_PREFIX, Table, quote_ident
from bluegreen.errors import CompanionMissing


@dataclass(frozen=True)
class TableCopy:
    """How to copy one same-shape table's rows: its key and its writable columns."""

    name: str
    key_sql: str  # the rowid alias, or the quote()-encoded primary key, as the capture stores it
    without_rowid: bool
    columns: tuple[str, ...]


def same_shape_tables(conn: apsw.Connection) -> dict[str, TableCopy]:
    """Tables replay copies as they are: the same definition in source and target."""
    found = {}
    for table in capture.capturable(conn):
        if not same_definition(conn, table.name):
            continue
        columns = tuple(
            name
            for name, hidden in conn.execute("SELECT name, hidden FROM pragma_table_xinfo(?, 'main')", (table.name,))
            if hidden == 0
        )
        found[table.name] = TableCopy(table.name, key_sql(table), table.without_rowid, columns)
    return found


def key_sql(table: Table) -> str:
    """The key as capture stores it: the rowid, or the quote()-encoded primary key values."""
    if table.without_rowid:
        return " || ',' || ".join(f"quote({quote_ident(c)})" for c in table.primary_key)
    return table.rowid_alias


def same_definition(conn: apsw.Connection, name: str) -> bool:
    """Same CREATE TABLE, UNIQUE indexes and application triggers in main and the attached source."""
    table = "SELECT sql FROM {}.sqlite_schema WHERE type = 'table' AND name = ?"
    triggers = (
        "SELECT sql FROM {}.sqlite_schema WHERE type = 'trigger' AND tbl_name = ? "
        f"AND substr(name, 1, {len(INTERNAL_PREFIX)}) <> '{INTERNAL_PREFIX}' ORDER BY name"
    )
    unique = (
        "SELECT group_concat(ii.name, ',') FROM {0}.pragma_index_list(?) AS il "
        "JOIN {0}.pragma_index_info(il.name) AS ii WHERE il.\"unique\" AND il.origin <> 'pk' "
        "GROUP BY il.name ORDER BY 1"
    )
    mine = conn.execute(table.format("main"), (name,)).fetchall()
    theirs = conn.execute(table.format("source"), (name,)).fetchall()
    if not (mine and theirs and mine == theirs):
        return False
    # A UNIQUE index the migration added makes a row blue keeps writing conflict in green.
    if (
        conn.execute(unique.format("main"), (name,)).fetchall()
        != conn.execute(unique.format("source"), (name,)).fetchall()
    ):
        return False
    return (
        conn.execute(triggers.format("main"), (name,)).fetchall()
        == conn.execute(triggers.format("source"), (name,)).fetchall()
    )


@dataclass(frozen=True)
class ReshapeReport:
    """What generic replay cannot keep exact, and why: each needs a sync script (hazard 3)."""

    reshaped: dict[str, str]  # source table -> reason
    derived_by: list[str]  # migrations that read source tables and wrote rows from them
    # A tool's history table (alembic_version, django_migrations) that migrations wrote only through
    # their own history statements (migrations._Observer): table -> the migrations. It needs no sync
    # script and is left out of generic replay: green's rows describe green's schema.
    history: dict[str, list[str]] = field(default_factory=dict)
    # Tables whose rows keep their identity across the change (engine/derive.py): replay maps
    # them itself, so they need no companion. Not in `reshaped`.
    derived: dict[str, derive.Mapping] = field(default_factory=dict)
    tables: tuple[str, ...] = ()  # every source table it judged, for `plan`'s per-table lines


def reshapes(
    conn: apsw.Connection,
    effects: dict[str, dict[str, list[str]]],
    *,
    alters: list[str] | None = None,
    forward: bool = True,
    overridden: frozenset[str] = frozenset(),
    restored: frozenset[str] | None = None,
) -> ReshapeReport:
    """Compare the migrated target (main) with the source (attached) and the migrations' effects.
    A table whose schema rows (its CREATE, every index on it, its application triggers) are the
    same text on both sides has the same definition; only the others are compared exactly
    (same_definition), so a schema of a thousand tables is judged in one read of each side.
    A table whose definition changed only in ways that keep each row's identity, and that no
    migration wrote, is derived (engine/derive.py) instead, unless a migration that altered it
    has a companion (`overridden`: those tables, see `companion_tables`): a companion overrides
    derivation.
    alters: the migrations' ALTER statements (default: from effects); forward=False when main
    is the old schema (revert's carry-back); restored: the rebuilt tables whose rowids were kept
    (default: from effects)."""
    main, source = _schema_rows(conn, "main"), _schema_rows(conn, "source")
    signed = (_signatures(main), _signatures(source))
    source_tables = [
        name
        for (kind, name), (_, sql) in source.items()
        if kind == "table"
        and not name.lower().startswith("sqlite_")
        and not name.startswith(INTERNAL_PREFIX)
        and not (sql or "").lstrip().upper().startswith("CREATE VIRTUAL")
    ]
    reshaped: dict[str, str] = {}
    for name in sorted(source_tables):
        writers = [f for f, e in effects.items() if name in e.get("written", [])]
        if ("table", name) not in main:
            reshaped[name] = "not in the target"
        elif signed[0][name] != signed[1][name] and not same_definition(conn, name):
            reshaped[name] = "definition or triggers changed"
        elif writers:
            reshaped[name] = f"written by {', '.join(writers)}"
    candidates = [
        name
        for name, reason in reshaped.items()
        # "not in the target": renamed? "written by": by backfills (single-table UPDATEs) only?
        if (reason in ("definition or triggers changed", "not in the target") or reason.startswith("written by"))
        and not any(
            name in e.get("written_otherwise", e.get("written", [])) or name in e.get("copied_into", [])
            for e in effects.values()
        )
        and name not in overridden
    ]
    alters = alter_statements(effects) if alters is None else alters
    restored = derive.restored_rowids(effects) if restored is None else restored
    mapped = derive.mappings(conn, candidates, alters, forward=forward, restored=restored) if candidates else {}
    for name in mapped:
        reshaped.pop(name)
    derived = [
        f
        for f, e in effects.items()
        if e.get("written")
        and set(e.get("read", [])) & set(source_tables)
        and not _only_backfills(e, mapped)  # its writes are re-applied per changed row (derive.py)
    ]
    history: dict[str, list[str]] = {}
    for file, effect in effects.items():
        for name in effect.get("history", []):
            if name not in reshaped:
                history.setdefault(name, []).append(file)
    return ReshapeReport(reshaped, derived, history, mapped, tuple(sorted(source_tables)))


def index_changes(conn: apsw.Connection) -> dict[str, list[str]]:
    """Per table (its name in the source), the indexes the migrations added, dropped or changed
    between the source (attached) and main, for `plan`: replay carries such a table as it is, and
    a blue row that breaks a new UNIQUE index is named at cutover."""
    query = (
        "SELECT name, tbl_name, sql FROM {}.sqlite_schema WHERE type = 'index' AND sql IS NOT NULL "
        f"AND substr(name, 1, {len(INTERNAL_PREFIX)}) <> '{INTERNAL_PREFIX}'"
    )
    old = {n: (t, sql) for n, t, sql in conn.execute(query.format("source"))}
    new = {n: (t, sql) for n, t, sql in conn.execute(query.format("main"))}
    found: dict[str, list[str]] = {}
    for name in sorted(old.keys() | new.keys()):
        table, sql = new.get(name) or old[name]
        unique = (
            ", UNIQUE: a blue row that breaks it is named at cutover" if sql.upper().startswith("CREATE UNIQUE") else ""
        )
        if name not in old:
            found.setdefault(table, []).append(f"index {name} added{unique}")
        elif name not in new:
            found.setdefault(old[name][0], []).append(f"index {name} dropped")
        elif old[name][1] != sql:
            found.setdefault(old[name][0], []).append(f"index {name} changed{unique}")
    return found


def _only_backfills(effect: dict, mapped: dict) -> bool:
    """The migration wrote only tables that derivation re-applies its backfills to."""
    vias = {m.via for m in mapped.values() if m.via}  # a rebuild's copy, into the table it renames
    written = effect.get("written", [])
    return (
        "written_otherwise" in effect
        and not effect["written_otherwise"]
        and set(effect.get("copied_into", [])) <= vias
        and all((t in mapped and (mapped[t].backfills or mapped[t].via)) or t in vias for t in written)
    )


def companion_tables(effects: dict, files_with_companion: set[str]) -> frozenset[str]:
    """Tables a migration with a companion altered or wrote: derivation leaves them to it."""
    return frozenset(
        t for f, e in effects.items() if f in files_with_companion for t in e.get("altered", []) + e.get("written", [])
    )


def _schema_rows(conn: apsw.Connection, schema: str) -> dict[tuple[str, str], tuple[str, str | None]]:
    """(type, name) -> (tbl_name, sql) of every row of the schema's sqlite_schema."""
    rows = conn.execute(f"SELECT type, name, tbl_name, sql FROM {quote_ident(schema)}.sqlite_schema").fetchall()
    return {(kind, name): (table, sql) for kind, name, table, sql in rows}


def _signatures(rows: dict) -> dict[str, tuple]:
    """Each table's CREATE, every index on it (bluegreen's too: same_definition counts a UNIQUE
    one) and its application triggers, as text: equal signatures mean same_definition holds."""
    found: dict[str, tuple[str | None, list, list]] = {}
    for (kind, name), (_, sql) in rows.items():
        if kind == "table":
            found[name] = (sql, [], [])
    for (kind, name), (table, sql) in sorted(rows.items()):
        if table in found and (
            kind == "index" or (kind == "trigger" and name[: len(INTERNAL_PREFIX)] != INTERNAL_PREFIX)
        ):
            found[table][1 if kind == "index" else 2].append((name, sql))
    return {table: (sql, tuple(indexes), tuple(triggers)) for table, (sql, indexes, triggers) in found.items()}


def missing_sync(
    report: ReshapeReport, pending: list, effects: dict[str, dict[str, list[str]]]
) -> CompanionMissing | None:
    """The one rule for sync companions (hazard 3), applied by the preflight on a schema-only copy
    before anything is built and by the builder on green: a migration that derives rows from
    tables blue keeps writing needs its own `_sync.sql`, and so does one that reshaped a table
    (wrote it, or changed its definition, indexes or triggers) unless another migration that
    reshaped it has one: the sync of a migration that never touched the table does not carry
    blue's writes to it (only when no migration is known to have reshaped it does any sync
    count). The error asks it of those migrations and names the files to create."""
    with_sync = {m.file for m in pending if m.sync}
    why: dict[str, list[str]] = {}
    asked: list[str] = []  # the reshaped tables no companion carries
    for file in report.derived_by:
        if file not in with_sync:
            read = ", ".join(effects.get(file, {}).get("read", []))
            why.setdefault(file, []).append(f"it derives rows from tables blue keeps writing ({read})")
    for table, reason in report.reshaped.items():
        by = [
            m.file
            for m in pending
            if table in effects.get(m.file, {}).get("written", []) + effects.get(m.file, {}).get("altered", [])
        ]
        if with_sync and (set(by) & with_sync or not by):
            continue  # the sync companion of a migration that reshaped it carries it (who did unknown: any one)
        asked.append(table)
        for file in by or [m.file for m in pending]:
            why.setdefault(file, []).append(f"{table} ({reason})")
    if not why:
        return None
    paths = {m.file: str(m.path.with_name(m.path.name[: -len(".sql")] + "_sync.sql")) for m in pending}
    needs = [m.file for m in pending if m.file in why]  # in the order they run
    return CompanionMissing(
        " ".join(f"{f}: needs a sync companion, {paths[f]}: {'; '.join(why[f])}." for f in needs)
        + " Without one, writes made on blue during prepare would be missing from green: create "
        + ("it" if len(needs) == 1 else "them")
        + f" (`bluegreen new --for {needs[0]}` drafts "
        + ("it" if len(needs) == 1 else "its")
        + ' from what bluegreen derives; docs/design.md, "Sync and rollback scripts"), or use `bluegreen deploy --offline`',
        details={"files": needs, "create": [paths[f] for f in needs], "reshaped": report.reshaped, "tables": asked},
    )
