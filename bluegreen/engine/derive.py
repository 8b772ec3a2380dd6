"""How a reshaped table's rows map between the two schemas, when its rows keep their identity
(issue 13): derived catch-up (blue -> green) and carry-back (green -> blue) with no companion.

A table is derivable when the migrations changed it only by `ALTER TABLE t ADD|DROP|RENAME
[COLUMN]`, `ALTER TABLE t RENAME TO u` (none renumbers rowids nor touches primary keys), index
changes, and backfills (`UPDATE t SET c = <expression over the row> [WHERE ...]`, reading no
other table nor row, and no column the migration added): its old CREATE TABLE, with those
statements replayed on it in a scratch in-memory database, must give exactly the new CREATE TABLE
text SQLite stores, and its application triggers must be the same on both sides. Anything else (a
rebuild, a split, an INSERT by a migration) is not derived: the companion rules apply as before,
and a companion of a migration that altered or wrote the table always overrides this.

The mapping: the key (the rowid, or the same PRIMARY KEY columns after renames), columns paired
by name after renames, and the target's columns with no source (`unmapped`): an existing row
keeps their value, a new row gets their DEFAULT; then the backfills, on the changed rows only.
Replay applies it (replay.Replayer); the statements come from what each migration ran
(migrations._Observer, effects "alters").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import apsw

from bluegreen.engine import alters
from bluegreen.engine.db import INTERNAL_PREFIX, Table, quote_ident, quote_literal, user_tables


@dataclass(frozen=True)
class Mapping:
    """How one table's rows are written from the source's into the target's schema."""

    target: str
    source: str
    without_rowid: bool
    target_key: tuple[str, ...]  # the rowid alias, or the PRIMARY KEY columns (in key order)
    source_key: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]  # (target column, source column)
    unmapped: tuple[str, ...]  # target columns no source column fills
    how: str  # what the migrations did, for `plan`
    backfills: tuple[tuple[str, str], ...] = ()  # (SET part, WHERE part or '') re-applied to changed rows
    via: str = ""  # a rebuild's intermediate table (written by the migration's copy, then renamed)
    # Carry-back only: the source's (green's) columns the target (blue) has no place for, each with
    # the condition (SQL over the source row `s`) under which its value is what a deploy gives the
    # row anyway: its DEFAULT, or what a backfill of that column computes from the row's own
    # columns. A changed row holding anything else there would lose that value: it is listed as
    # uncarried (exit 5, --accept-loss).
    lost: tuple[tuple[str, str], ...] = ()
    # Catch-up only: unmapped target columns a new row gets a constant in, not the DEFAULT: a
    # rebuild's copy filled them so (Django's rebuild adding a NOT NULL field). (column, SQL literal)
    constants: tuple[tuple[str, str], ...] = ()


def restored_rowids(effects: dict) -> frozenset[str]:
    """Tables a rebuild wrote whose rows got their old rowids back (engine/rowids.py), lower-cased."""
    return frozenset(t.lower() for effect in effects.values() for t in effect.get("rowids_restored", []))


def mappings(
    conn: apsw.Connection,
    candidates: list[str],
    ran: list[str],
    *,
    forward: bool = True,
    restored: frozenset[str] = frozenset(),
) -> dict[str, Mapping]:
    """For each candidate table (its name in the source), its Mapping when derivable. forward:
    the source (attached) is the old schema and main the migrated one (catch-up); otherwise
    main is the old schema and the source the migrated one (carry-back)."""
    old_schema, new_schema = ("source", "main") if forward else ("main", "source")
    parsed = [(sql, alters.parse(sql)) for sql in ran if sql.strip()]
    tables = {s: {t.name.lower(): t for t in user_tables(conn, s)} for s in ("main", "source")}
    chains = {}  # old name -> (its name after the migrations, the ALTERs on it), when readable
    for old in tables[old_schema].values():
        chain = alters.follow(old.name, parsed)
        if chain is not None:
            chains[old.name.lower()] = chain
    found = {}
    for name in candidates:
        if forward:
            old_name = name.lower() if name.lower() in chains else None
        else:  # the candidate is a migrated name: which old table became it
            old_name = next((o for o, (final, _) in chains.items() if final.lower() == name.lower()), None)
        if old_name is None:
            continue
        new_name, steps = chains[old_name]
        if forward and new_name.lower() != old_name and new_name.lower() in tables[old_schema]:
            continue  # renamed onto a name the old schema also has: not one table's identity
        old, new = tables[old_schema].get(old_name), tables[new_schema].get(new_name.lower())
        derived = _derive(conn, old, new, steps, old_schema, new_schema, restored) if old and new else None
        if derived is not None:
            found[name] = derived
    return found


def _derive(conn, old: Table, new: Table, steps, old_schema, new_schema, restored=frozenset()) -> Mapping | None:
    if old.virtual or new.virtual or old.without_rowid != new.without_rowid:
        return None
    renamed = old.name != new.name
    if renamed and (_triggers(conn, old_schema, old.name) or _triggers(conn, new_schema, new.name)):
        return None  # a renamed table's triggers are rewritten: not compared, not derived
    if not renamed and _triggers(conn, old_schema, old.name) != _triggers(conn, new_schema, new.name):
        return None  # replay runs with triggers off, so a new one would be skipped
    if any(p[1] == "copy" for _, p in steps):
        return _rebuilt(conn, old, new, steps, old_schema, new_schema, restored)
    old_sql = _create_sql(conn, old_schema, old.name)
    new_sql = _create_sql(conn, new_schema, new.name)
    name = old.name
    scratch = apsw.Connection(":memory:")
    try:
        scratch.execute(old_sql)
        origin = {c: c for c in _columns(scratch, "main", name)}  # current name -> old name (None: added)
        how, backfills = [], []
        for sql, (_, action, names) in steps:
            if backfills and action != "backfill":
                return None  # a change after a backfill: the backfill's text is of another shape
            if action == "backfill":
                reads: set[str] = set()

                def observe(code, table, column, schema, trigger, into=reads):
                    if code == apsw.SQLITE_READ and column:
                        into.add(column.lower())
                    return apsw.SQLITE_OK

                scratch.authorizer = observe
                scratch.execute(sql)  # it reads only this table's columns, or it fails here
                scratch.authorizer = None
                if any(origin.get(c) is None for c in origin if c.lower() in reads):
                    return None  # it reads a column the migration added: re-applied, it would compound
                backfills.append((*names, frozenset(reads)))
                how.append(f"backfilled (SET {names[0]}{' WHERE ' + names[1] if names[1] else ''})")
                continue
            if action == "rename_table":
                scratch.execute(sql)
                how.append(f"renamed from {name} to {names[0]}")
                name = names[0]
                continue
            before = set(_columns(scratch, "main", name))
            scratch.execute(sql)
            after = _columns(scratch, "main", name)
            if action == "rename_column":
                old_name = next((c for c in origin if c.lower() == names[0].lower()), None)
                new_name = next((c for c in after if c.lower() == names[1].lower()), None)
                if old_name is None or new_name is None:
                    return None
                origin[new_name] = origin.pop(old_name)
                how.append(f"column {old_name} renamed to {new_name}")
            elif action == "drop":
                gone = [c for c in origin if c not in after]
                for c in gone:
                    origin.pop(c)
                how += [f"column {c} dropped" for c in gone]
            else:
                added = [c for c in after if c not in before]
                origin.update({c: None for c in added})
                how += [f"column {c} added" for c in added]
        done = scratch.execute(
            "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ? COLLATE NOCASE", (name,)
        ).get
    except apsw.Error:
        return None
    finally:
        scratch.close()
    if done != new_sql:
        return None  # changed by more than those ALTERs (a rebuild, another statement)
    return _mapping(conn, old, new, origin, how, backfills, old_schema, new_schema)


def _rebuilt(conn, old: Table, new: Table, steps, old_schema, new_schema, restored=frozenset()) -> Mapping | None:
    """The 12-step rebuild: the copy `INSERT INTO new_t (...) SELECT ... FROM t` of every row,
    columns by name (a new column filled with its own DEFAULT), then `ALTER TABLE new_t RENAME TO
    t` and nothing else; the key must be copied: an INTEGER PRIMARY KEY or a WITHOUT ROWID
    primary key (a plain rowid is renumbered by the copy)."""
    if [p[1] for _, p in steps] != ["copy", "rename_table"] or steps[0][1][2][0].lower() != steps[1][1][0].lower():
        return None
    new_columns = _columns(conn, new_schema, new.name)
    defaults = {
        n.lower(): d
        for n, d in conn.execute(f"SELECT name, dflt_value FROM pragma_table_info(?, '{new_schema}')", (new.name,))
    }
    lowered = {c.lower(): c for c in new_columns}
    origin: dict[str, str | None] = {c: None for c in new_columns}
    constants, rowid_copied = [], False
    for column, (kind, value) in steps[0][1][2][1]:
        if column.lower() in alters.ROWID_NAMES and column.lower() not in lowered:
            # `INSERT INTO new_t(rowid, ...) SELECT rowid, ...` (sqlite-utils transform): same rowids
            rowid_copied = kind == "column" and value.lower() in alters.ROWID_NAMES and old.rowid_alias == "rowid"
            if not rowid_copied:
                return None
            continue
        if column.lower() not in lowered:
            return None
        if kind == "column":
            origin[lowered[column.lower()]] = next(
                (c for c in _columns(conn, old_schema, old.name) if c.lower() == value.lower()), None
            )
            if origin[lowered[column.lower()]] is None:
                return None
        elif (defaults.get(column.lower()) or "NULL").upper() != value.upper():
            # A constant other than the column's DEFAULT (Django's rebuild fills a new field so):
            # every row the copy carried got it, so a row blue adds gets it too.
            constants.append((lowered[column.lower()], value))
    by = "key"
    if not old.without_rowid and not rowid_copied:
        keys = [integer_key(conn, old_schema, old.name), integer_key(conn, new_schema, new.name)]
        if None in keys or origin.get(keys[1]) != keys[0]:
            # A PRIMARY KEY that is not the rowid, copied by name: bluegreen gave the rows their
            # old rowids back after the migrations (engine/rowids.py), so they still match by rowid.
            new_key = [c for c in new.primary_key]
            if steps[0][1][2][0].lower() not in restored or [origin.get(c) for c in new_key] != list(old.primary_key):
                return None
            by = "primary key (rowids kept)"
    how = [f"rebuilt as {steps[0][1][2][0]}, rows copied by {by}, columns by name"]
    how += [f"column {c} filled with {v}" for c, v in constants]
    found = _mapping(conn, old, new, origin, how, [], old_schema, new_schema, constants)
    return dataclasses.replace(found, via=steps[0][1][2][0]) if found else None


def integer_key(conn, schema: str, name: str) -> str | None:
    """The INTEGER PRIMARY KEY column (the rowid's alias), or None."""
    found = conn.execute(f"SELECT name, type FROM pragma_table_info(?, '{schema}') WHERE pk > 0", (name,)).fetchall()
    return found[0][0] if len(found) == 1 and found[0][1].upper() == "INTEGER" else None


def _mapping(
    conn, old: Table, new: Table, origin, how, backfills, old_schema, new_schema, constants=()
) -> Mapping | None:
    new_columns = _columns(conn, new_schema, new.name)
    old_columns = _columns(conn, old_schema, old.name)
    if set(new_columns) != set(origin) or not set(v for v in origin.values() if v) <= set(old_columns):
        return None  # a generated column, or a name the scratch copy did not see the same way
    pairs = [(n, o) for n, o in origin.items() if o is not None]
    if old_schema == "source":  # catch-up: target = new
        columns, unmapped = tuple(pairs), tuple(c for c in new_columns if origin[c] is None)
        target, source = new, old
    else:  # carry-back: target = old; old columns the new schema dropped keep their value
        columns = tuple((o, n) for n, o in pairs)
        unmapped = tuple(c for c in old_columns if c not in {o for _, o in pairs})
        target, source = old, new
    defaults = dict(
        conn.execute(f"SELECT name, dflt_value FROM pragma_table_info(?, {quote_literal(new_schema)})", (new.name,))
    )
    filled = [(f"{quote_ident(c)} = {v}", "", frozenset()) for c, v in constants]
    lost = (
        tuple(
            (c, _as_deployed(c, defaults.get(c) or "NULL", backfills + filled, new_columns))
            for c in new_columns
            if origin[c] is None
        )
        if old_schema != "source"
        else ()
    )
    rename = dict((s, t) for t, s in columns)
    if target.without_rowid:
        if tuple(rename.get(c) for c in source.primary_key) != target.primary_key:
            return None
        keys = (target.primary_key, source.primary_key)
    else:
        keys = ((target.rowid_alias,), (source.rowid_alias,))
    return Mapping(
        target.name,
        source.name,
        target.without_rowid,
        *keys,
        columns,
        unmapped,
        "; ".join(how),
        tuple(b[:2] for b in backfills) if old_schema == "source" else (),  # carried back as green wrote them
        lost=lost,
        constants=tuple(constants) if old_schema == "source" else (),
    )


def _as_deployed(column: str, default: str, backfills: list, columns: list[str]) -> str:
    """SQL over the source row `s`: its value in `column` is what a deploy gives the row without
    the application's help: the DEFAULT, or the one backfill that sets it, computed from columns
    the row still has under the same names (rows its WHERE leaves out keep the DEFAULT)."""
    mine = f"s.{quote_ident(column)}"
    safe = f"{mine} IS ({default})"
    setting = [(a, b) for b in backfills for a in alters.assignments(b[0]) if a[0].lower() == column.lower()]
    if len(setting) != 1 or not setting[0][1][2] <= {c.lower() for c in columns}:
        return safe
    (_, expression), (_, condition, _) = setting[0]
    if condition:
        return (
            f"({safe} AND NOT coalesce(({condition}), 0)) OR ({mine} IS ({expression}) AND coalesce(({condition}), 0))"
        )
    return f"{mine} IS ({expression})"


def _create_sql(conn: apsw.Connection, schema: str, name: str) -> str | None:
    return conn.execute(
        f"SELECT sql FROM {quote_ident(schema)}.sqlite_schema WHERE type = 'table' AND name = ?", (name,)
    ).get


def _columns(conn: apsw.Connection, schema: str, name: str) -> list[str]:
    """Writable columns (generated and hidden ones left out)."""
    return [
        n
        for n, hidden in conn.execute(f"SELECT name, hidden FROM pragma_table_xinfo(?, '{schema}')", (name,))
        if not hidden
    ]


def _triggers(conn: apsw.Connection, schema: str, name: str) -> list:
    """The table's application triggers (name, sql)."""
    sql = (
        f"SELECT name, sql FROM {quote_ident(schema)}.sqlite_schema WHERE type = 'trigger' AND tbl_name = ? "
        f"AND substr(name, 1, {len(INTERNAL_PREFIX)}) <> '{INTERNAL_PREFIX}' ORDER BY name"
    )
    return conn.execute(sql, (name,)).fetchall()


def _changed_in_target(mapping: Mapping) -> str:
    """WHERE for the target's rows of the batch's changed keys (one binding: the source's name)."""
    if mapping.without_rowid:
        arity = len(mapping.target_key)
        tkey = ", ".join(quote_ident(c) for c in mapping.target_key)
        values = ", ".join(f"c{i}" for i in range(1, arity + 1))
        return f"({tkey}) IN (SELECT {values} FROM temp.bluegreen_keys_{arity} WHERE table_name = ?)"
    return f"{mapping.target_key[0]} IN (SELECT row_key FROM temp.bluegreen_changes WHERE table_name = ?)"


def delete_changed(conn: apsw.Connection, mapping: Mapping) -> None:
    """Delete the target's rows of the batch's changed keys (a conflict diagnosis starts so)."""
    conn.execute(
        f"DELETE FROM main.{quote_ident(mapping.target)} WHERE {_changed_in_target(mapping)}", (mapping.source,)
    )


def apply(conn: apsw.Connection, mapping: Mapping, source_table: Table, keys_from_source: str) -> None:
    """Write one batch's changed keys of a mapped table: stash the target's unmapped values of
    the changed rows, delete the changed keys, insert the source's present rows through the
    mapping (an existing row gets its stashed values back, a new row the DEFAULTs).
    keys_from_source: for WITHOUT ROWID, replay's keys.keys_from(source_table, 'source')."""
    target = f"main.{quote_ident(mapping.target)}"
    stash = "temp.bluegreen_stash"
    conn.execute(f"DROP TABLE IF EXISTS {stash}")
    where = _changed_in_target(mapping)
    if mapping.without_rowid:
        source_from, key_insert, key_pick = keys_from_source, [], []
    else:
        source_from = (
            f"source.{quote_ident(mapping.source)} AS s WHERE s.{mapping.source_key[0]} IN "
            "(SELECT row_key FROM temp.bluegreen_changes WHERE table_name = ?)"
        )
        key_insert, key_pick = [mapping.target_key[0]], [f"s.{mapping.source_key[0]}"]
    args = (mapping.source,)
    if mapping.lost:  # values green holds that blue has no column for: never dropped silently
        differs = " OR ".join(f"NOT ({safe})" for _, safe in mapping.lost)
        row_key = " || ',' || ".join(f"quote(s.{quote_ident(c)})" for c in mapping.source_key)
        if not mapping.without_rowid:
            row_key = f"s.{mapping.source_key[0]}"
        conn.execute(
            f"INSERT INTO temp.bluegreen_uncarried(table_name, row_key) SELECT ?, {row_key} "
            f"FROM {source_from} AND ({differs})",
            (mapping.source, *args),
        )
    names = [quote_ident(t) for t, _ in mapping.columns]
    picks = [f"s.{quote_ident(s)}" for _, s in mapping.columns]
    if mapping.unmapped:
        match = " AND ".join(
            f"st.k{i} = s.{quote_ident(s) if mapping.without_rowid else s}" for i, s in enumerate(mapping.source_key, 1)
        )
        kcols = ", ".join(
            f"{quote_ident(c) if mapping.without_rowid else c} AS k{i}" for i, c in enumerate(mapping.target_key, 1)
        )
        kept = ", ".join(quote_ident(c) for c in mapping.unmapped)
        conn.execute(f"CREATE TEMP TABLE bluegreen_stash AS SELECT {kcols}, {kept} FROM {target} WHERE {where}", args)
        klist = ", ".join(f"k{i}" for i in range(1, len(mapping.source_key) + 1))
        conn.execute(f"CREATE INDEX temp.bluegreen_stash_key ON bluegreen_stash({klist})")
    conn.execute(f"DELETE FROM {target} WHERE {where}", args)
    if mapping.unmapped:
        restored = [f"(SELECT st.{quote_ident(c)} FROM {stash} AS st WHERE {match})" for c in mapping.unmapped]
        conn.execute(
            f"INSERT INTO {target}({', '.join(key_insert + names + [quote_ident(c) for c in mapping.unmapped])}) "
            f"SELECT {', '.join(key_pick + picks + restored)} FROM {source_from} "
            f"AND EXISTS (SELECT 1 FROM {stash} AS st WHERE {match})",
            args,
        )
        fixed = [quote_ident(c) for c, _ in mapping.constants]
        conn.execute(
            f"INSERT INTO {target}({', '.join(key_insert + names + fixed)}) "
            f"SELECT {', '.join(key_pick + picks + [v for _, v in mapping.constants])} "
            f"FROM {source_from} AND NOT EXISTS (SELECT 1 FROM {stash} AS st WHERE {match})",
            args,
        )
        conn.execute(f"DROP TABLE {stash}")
    else:
        conn.execute(
            f"INSERT INTO {target}({', '.join(key_insert + names)}) SELECT {', '.join(key_pick + picks)} "
            f"FROM {source_from}",
            args,
        )
    for set_part, condition in mapping.backfills:  # re-applied to the changed rows only
        only = f"({condition}) AND {where}" if condition else where
        conn.execute(f"UPDATE {target} SET {set_part} WHERE {only}", args)
