"""Drafts of a migration's `_sync.sql` and `_rollback.sql`, written from what bluegreen can derive
(`bluegreen new --for MIGRATION --with sync,rollback`, issue 13).

A companion overrides derivation for every table its migration altered or wrote (shapes.
companion_tables), so a draft covers each of those tables, in the order the migration runs:

- a table whose rows keep their identity (engine/derive.py: ADD/DROP/RENAME COLUMN, RENAME TO,
  backfills): the SQL of what derived catch-up and carry-back do, key by key;
- a table the migration filled with `INSERT INTO t [(...)] SELECT ... FROM s [WHERE ...]` from one
  table blue keeps writing (a split): catch-up deletes and re-runs that INSERT for the rows of s
  blue changed, found through the column that holds s's key; carry-back writes t's plain columns
  back into s, declares t carried, and lists t's rows that s has no row for as uncarried;
- anything else: a TODO line saying what bluegreen could not derive.

The text is SQL a person checks before using it: `tools/drafting.py` writes it commented out.
"""

from __future__ import annotations

from dataclasses import dataclass

import apsw

from bluegreen.engine import alters, derive, dryrun, sqltext, statements
from bluegreen.engine.db import Table, quote_ident, quote_literal, user_tables


@dataclass(frozen=True)
class Fill:
    """`INSERT INTO target (columns) SELECT items FROM source [alias] [WHERE condition]`."""

    target: str
    columns: tuple[str, ...]  # () when the INSERT names none: the target's columns, in order
    items: tuple[str, ...]  # the SELECT list, as written
    source: str
    alias: str
    condition: str
    line: int


@dataclass(frozen=True)
class Draft:
    sync: str
    rollback: str
    tables: dict[str, str]  # table -> what the drafts do with it, for the command's output


def draft(blue_conn: apsw.Connection, pending: list, target) -> Draft:
    """The drafts for `target` (one of `pending`, the migrations blue still lacks)."""
    found = dryrun.on(blue_conn, pending, target.file)
    if found.reshape is None:  # a migration does not run (its companions' problems are what is redrafted)
        raise found.problems[0]
    effect = found.effects.get(target.file, {})
    ran = alters.alter_statements(found.effects)
    fills = [f for s in statements.split(target.sql) if (f := parse_fill(s.sql, s.line))]
    touched = list(dict.fromkeys(effect.get("altered", []) + effect.get("written", [])))
    forward, back = _connect(found.after, found.before), _connect(found.before, found.after)
    try:
        old = {t.name: t for t in user_tables(back)}
        new = {t.name: t for t in user_tables(forward)}
        restored = derive.restored_rowids(found.effects)
        ahead = derive.mappings(forward, [t for t in touched if t in old], ran, forward=True, restored=restored)
        renamed = {m.target: name for name, m in ahead.items()}
        behind = derive.mappings(back, list(renamed), ran, forward=False, restored=restored)
        sync, rollback, tables = [], [], {}
        filled = {f.target for f in fills}
        for name in touched:
            if name in ahead:
                sync += _mapped(forward, ahead[name], "catch-up")
                rollback += (
                    _mapped(back, behind[ahead[name].target], "carry-back") if ahead[name].target in behind else []
                )
                tables[name] = f"derived ({ahead[name].how or 'indexes only'}): written out in both drafts"
            elif name not in filled:
                why = "its rows do not keep their identity, or a statement wrote it that bluegreen cannot re-apply"
                sync.append(f"-- TODO {name}: {why}; keep its rows exact for the keys in temp.bluegreen_changes")
                rollback.append(f"-- TODO {name}: carry green's changed rows of it back into blue's shape")
                tables[name] = f"not derived ({why}): a TODO in both drafts"
        for fill in fills:
            if fill.target not in new or fill.source not in old:
                continue
            sync += _fill_sync(forward, fill, old[fill.source], new[fill.target], target.file)
            rollback += _fill_back(back, forward, fill, old[fill.source], new[fill.target])
            tables[fill.target] = f"filled from {fill.source} (line {fill.line}): re-run for the changed rows"
        return Draft("\n".join(sync), "\n".join(rollback), tables)
    finally:
        forward.close()
        back.close()


def _connect(main: bytes, source: bytes) -> apsw.Connection:
    conn = apsw.Connection(":memory:", flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_URI)
    conn.deserialize("main", main)
    conn.execute("ATTACH ':memory:' AS source")
    conn.deserialize("source", source)
    return conn


# ------------------------------------------------------------------------------------------------
# a table derivation maps
# ------------------------------------------------------------------------------------------------
def _changed(table: Table, key: tuple[str, ...], name: str, present: int | None, prefix: str = "") -> str:
    """`key IN (the changed keys of `name` in this batch)`, in temp.bluegreen_changes' encoding."""
    only = "" if present is None else f" AND present = {present}"
    if table.without_rowid:
        left = " || ',' || ".join(f"quote({prefix}{quote_ident(c)})" for c in key)
        return f"{left} IN (SELECT row_key FROM temp.bluegreen_changes WHERE table_name = {quote_literal(name)}{only})"
    return (
        f"{prefix}{quote_ident(key[0])} IN (SELECT CAST(row_key AS INTEGER) FROM temp.bluegreen_changes "
        f"WHERE table_name = {quote_literal(name)}{only})"
    )


def _key(conn: apsw.Connection, table: Table, schema: str) -> tuple[str, ...]:
    if table.without_rowid:
        return table.primary_key
    return (derive.integer_key(conn, schema, table.name) or table.rowid_alias,)


def _mapped(conn: apsw.Connection, mapping: derive.Mapping, direction: str) -> list[str]:
    """What derived replay does for one table, as statements on main (the target) from source."""
    tables = {t.name: t for t in user_tables(conn)} | {f"source.{t.name}": t for t in user_tables(conn, "source")}
    target, source = tables[mapping.target], tables[f"source.{mapping.source}"]
    tkey, skey = _key(conn, target, "main"), _key(conn, source, "source")
    t, s = quote_ident(mapping.target), quote_ident(mapping.source)
    lines = [f"-- {mapping.target}: {direction} bluegreen would derive ({mapping.how or 'indexes only'})"]
    if direction == "carry-back":  # a companion that carries a table says so, or revert refuses its rows
        lines.append(f"-- bluegreen: carries {mapping.source}")
    if direction == "carry-back" and mapping.lost:
        differs = " OR ".join(f"NOT ({safe})" for _, safe in mapping.lost)
        row_key = (
            f"s.{quote_ident(skey[0])}"
            if not source.without_rowid
            else " || ',' || ".join(f"quote(s.{c})" for c in skey)
        )
        lines += [
            f"-- a value in {', '.join(c for c, _ in mapping.lost)} (not in blue's shape) other than what a deploy "
            "gives the row (its DEFAULT or backfill) would be lost: listed, so revert refuses it",
            f"INSERT INTO temp.bluegreen_uncarried (table_name, row_key) SELECT {quote_literal(mapping.source)}, "
            f"{row_key} FROM source.{s} AS s WHERE {_changed(source, skey, mapping.source, 1, 's.')} AND ({differs});",
        ]
    names = [quote_ident(c) for c, _ in mapping.columns]
    picks = [f"s.{quote_ident(c)}" for _, c in mapping.columns]
    keyed = [k for k in tkey if quote_ident(k) not in names]
    match = " AND ".join(f"s.{quote_ident(b)} = main.{t}.{quote_ident(a)}" for a, b in zip(tkey, skey))
    if not mapping.unmapped:
        lines += [
            f"DELETE FROM main.{t} WHERE {_changed(target, tkey, mapping.source, None)};",
            f"INSERT INTO main.{t} ({', '.join(keyed + names)})",
            f"SELECT {', '.join([f's.{k}' for k in skey[: len(keyed)]] + picks)} FROM source.{s} AS s",
            f"WHERE {_changed(source, skey, mapping.source, 1, 's.')};",
        ]
    else:
        kept = ", ".join(mapping.unmapped)
        lines += [
            f"-- {kept}: an existing row keeps its value here, a new row gets the DEFAULT",
            f"DELETE FROM main.{t} WHERE {_changed(target, tkey, mapping.source, 0)};",
            f"UPDATE main.{t} SET ({', '.join(names)}) =",
            f"  (SELECT {', '.join(picks)} FROM source.{s} AS s WHERE {match})",
            f"WHERE {_changed(target, tkey, mapping.source, 1)};",
            f"INSERT INTO main.{t} ({', '.join(keyed + names + [quote_ident(c) for c, _ in mapping.constants])})",
            f"SELECT {', '.join([f's.{k}' for k in skey[: len(keyed)]] + picks + [v for _, v in mapping.constants])}"
            f" FROM source.{s} AS s",
            f"WHERE {_changed(source, skey, mapping.source, 1, 's.')}",
            f"  AND NOT EXISTS (SELECT 1 FROM main.{t} WHERE {match});",
        ]
    for set_part, condition in mapping.backfills:
        only = f"({condition}) AND " if condition else ""
        lines.append(f"UPDATE main.{t} SET {set_part} WHERE {only}{_changed(target, tkey, mapping.source, 1)};")
    return lines + [""]


# ------------------------------------------------------------------------------------------------
# a table the migration filled from another (a split)
# ------------------------------------------------------------------------------------------------
def parse_fill(sql: str, line: int = 0) -> Fill | None:
    """`INSERT INTO [main.]t [(c, ...)] SELECT items FROM [main.]s [[AS] a] [WHERE ...]`, one source
    table and nothing after the WHERE; None for anything else (a join, a compound, VALUES)."""
    text = sql.rstrip().rstrip(";")
    tokens = sqltext.spans(text)
    upper = [t.group().upper() for t in tokens]
    if upper[:2] != ["INSERT", "INTO"]:
        return None
    target, i = alters.qualified(tokens, 2)
    if target is None:
        return None
    columns: list[str] = []
    if i < len(tokens) and upper[i] == "(":
        close = upper.index(")", i)
        columns = [alters.name_of(t) for t in tokens[i + 1 : close : 2]]
        i = close + 1
    if upper[i : i + 1] != ["SELECT"] or "FROM" not in upper[i:]:
        return None
    at, depth = None, 0
    for j in range(i + 1, len(tokens)):
        depth += {"(": 1, ")": -1}.get(upper[j], 0)
        if depth == 0 and upper[j] == "FROM":
            at = j
            break
    if at is None or {"JOIN", "UNION", "EXCEPT", "INTERSECT", "GROUP", "ORDER", "LIMIT", ","} & set(
        _top_level(upper[at:])
    ):
        return None
    source, k = alters.qualified(tokens, at + 1)
    if source is None:
        return None
    alias = ""
    if k < len(tokens) and upper[k] == "AS":
        k += 1
    if k < len(tokens) and upper[k] != "WHERE" and tokens[k].lastgroup in ("word", "double", "bracket", "backtick"):
        alias, k = alters.name_of(tokens[k]), k + 1
    if k < len(tokens) and upper[k] != "WHERE":
        return None
    condition = text[tokens[k].end() :].strip() if k < len(tokens) else ""
    items = alters.split_commas(text[tokens[i].end() : tokens[at].start()])
    if columns and len(columns) != len(items):
        return None
    return Fill(target, tuple(columns), tuple(items), source, alias, condition, line)


def _top_level(upper: list[str]) -> list[str]:
    found, depth = [], 0
    for word in upper:
        depth += {"(": 1, ")": -1}.get(word, 0)
        if depth == 0:
            found.append(word)
    return found


def _plain(item: str, fill: Fill) -> str | None:
    """The source column an item is, when it is just one (`bio`, `u.bio`, `"bio"`); else None."""
    tokens = sqltext.spans(item)
    if len(tokens) == 3 and tokens[1].group() == "." and alters.name_of(tokens[0]) in (fill.alias, fill.source):
        tokens = tokens[2:]
    if len(tokens) == 1 and tokens[0].lastgroup in ("word", "double", "bracket", "backtick"):
        return alters.name_of(tokens[0])
    return None


def _pairs(conn: apsw.Connection, fill: Fill) -> list[tuple[str, str]]:
    """(target column, item) for each SELECT item."""
    columns = fill.columns or tuple(r[0] for r in conn.execute("SELECT name FROM pragma_table_info(?)", (fill.target,)))
    return list(zip(columns, fill.items))


def _fill_sync(conn: apsw.Connection, fill: Fill, source: Table, target: Table, file: str) -> list[str]:
    pairs = _pairs(conn, fill)
    skey = _key(conn, source, "main")
    tkey = [c for c, item in pairs if len(skey) == 1 and (_plain(item, fill) or "").lower() == skey[0].lower()]
    t, s = quote_ident(fill.target), quote_ident(fill.source)
    lines = [
        f"-- {fill.target}: filled from {fill.source} by {file} (line {fill.line}); re-run for the rows blue changed"
    ]
    if source.without_rowid and len(skey) > 1 or not tkey:
        lines.append(
            f"-- TODO: no column of {fill.target} holds {fill.source}'s key, so its rows of a changed "
            f"{fill.source} row cannot be found here: delete them yourself before the INSERT below"
        )
    else:
        lines.append(f"DELETE FROM main.{t} WHERE {_changed(source, (tkey[0],), fill.source, None)};")
    named = f"source.{s}" + (f" AS {quote_ident(fill.alias)}" if fill.alias else "")
    prefix = f"{quote_ident(fill.alias or fill.source)}."
    where = _changed(source, skey, fill.source, 1, prefix)
    lines += [
        f"INSERT INTO main.{t} ({', '.join(quote_ident(c) for c, _ in pairs)})",
        f"SELECT {', '.join(item for _, item in pairs)} FROM {named}",
        f"WHERE {f'({fill.condition}) AND ' if fill.condition else ''}{where};",
        "",
    ]
    return lines


def _fill_back(back: apsw.Connection, forward: apsw.Connection, fill: Fill, source: Table, target: Table) -> list[str]:
    """Carry-back of a filled table: blue (main) gets the filled table's plain columns back into
    the table they came from; the filled table is declared carried."""
    pairs = _pairs(forward, fill)
    skey = _key(back, source, "main")
    plain = [(c, _plain(item, fill)) for c, item in pairs]
    keyed = [c for c, p in plain if len(skey) == 1 and (p or "").lower() == skey[0].lower()]
    t, s = quote_ident(fill.target), quote_ident(fill.source)
    lines = [f"-- bluegreen: carries {fill.target}"]
    if target.without_rowid or not keyed or len(skey) != 1:
        return lines + [
            f"-- TODO: carry {fill.target}'s changed rows back into {fill.source} (no key to match them by)"
        ]
    values = [(c, p) for c, p in plain if p and c not in keyed]
    others = [c for c, p in plain if not p]
    k, sk = quote_ident(keyed[0]), quote_ident(skey[0])
    changed = f"p.rowid IN (SELECT CAST(row_key AS INTEGER) FROM temp.bluegreen_changes WHERE table_name = {quote_literal(fill.target)} AND present = 1)"
    lines.append(f"-- {fill.target}'s columns back into {fill.source}, for its rows green changed")
    if values:
        lines += [
            f"UPDATE main.{s} SET ({', '.join(quote_ident(p) for _, p in values)}) =",
            f"  (SELECT {', '.join(f'p.{quote_ident(c)}' for c, _ in values)} FROM source.{t} AS p WHERE p.{k} = main.{s}.{sk})",
            f"WHERE {sk} IN (SELECT p.{k} FROM source.{t} AS p WHERE {changed});",
        ]
    if others:
        lines.append(
            f"-- TODO: {', '.join(others)} were computed from {fill.source}: carry them back by hand if blue keeps them"
        )
    lines += [
        f"-- a row of {fill.target} whose {fill.source} row blue does not have: no place for it (revert refuses it)",
        f"INSERT INTO temp.bluegreen_uncarried (table_name, row_key) SELECT {quote_literal(fill.target)}, p.rowid",
        f"FROM source.{t} AS p WHERE {changed} AND p.{k} NOT IN (SELECT {sk} FROM main.{s});",
        f"-- TODO: a row of {fill.target} green deleted (present = 0): decide what {fill.source}'s columns become",
        "",
    ]
    return lines
