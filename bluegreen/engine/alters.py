"""The statements migrations ran, read back as far as derivation needs (engine/derive.py): each
`ALTER TABLE`, a backfill (`UPDATE t SET c = <expr over the row>`), a rebuild's copy (`INSERT INTO
new_t (...) SELECT ... FROM t`), and which table each statement's chain leaves a table as. Text is
read with SQLite's tokens (engine/sqltext.py), so a name inside a string is no name."""

from __future__ import annotations

from bluegreen.engine import sqltext


def alter_statements(effects: dict) -> list[str]:
    """The ALTER TABLE statements the migrations ran, in the order they ran."""
    return [sql for effect in effects.values() for sql in effect.get("alters", [])]


_NOT_IN_A_BACKFILL = {"SELECT", "FROM", "RETURNING", "ORDER", "LIMIT", "OVER"}


def parse_update(sql: str) -> tuple[str, str, str] | None:
    """(table, SET part, WHERE part or '') of `UPDATE [main.]t SET ... [WHERE ...]` that reads no
    other row (no subquery, no FROM, no RETURNING/ORDER/LIMIT); None for anything else."""
    tokens = sqltext.spans(sql.rstrip().rstrip(";"))
    words = [t.group().upper() if t.lastgroup == "word" else "" for t in tokens]
    if words[:1] != ["UPDATE"] or len(tokens) < 4 or words[1] == "OR" or _NOT_IN_A_BACKFILL & set(words[1:]):
        return None
    i = 1
    if tokens[i + 1].group() == ".":
        if name_of(tokens[i]).lower() != "main":
            return None
        i += 2
    if words[i + 1] != "SET":
        return None
    where = next((t for t, w in zip(tokens, words) if w == "WHERE"), None)
    text = sql.rstrip().rstrip(";")
    set_part = text[tokens[i + 1].end() : where.start() if where else len(text)].strip()
    return name_of(tokens[i]), set_part, text[where.end() :].strip() if where else ""


def parse(sql: str):
    """An ALTER (parse_alter), a backfill: (table, 'backfill', (SET part, WHERE part)), or a
    rebuild's copy: (from table, 'copy', (into table, ((into column, from column or literal), ...)))."""
    keyword = sql.split(None, 1)[0].upper()
    if keyword == "UPDATE":
        found = parse_update(sql)
        return (found[0], "backfill", found[1:]) if found else None
    if keyword == "INSERT":
        return parse_copy(sql)
    return parse_alter(sql)


NAME_TOKENS = ("word", "double", "bracket", "backtick")


def parse_copy(sql: str):
    """`INSERT INTO x (c, ...) SELECT e, ... FROM y`, each e a column name or a literal: the copy
    step of the 12-step table rebuild; None for anything else."""
    tokens = sqltext.spans(sql.rstrip().rstrip(";"))
    text = [t.group() for t in tokens]
    upper = [t.upper() for t in text]
    if upper[:2] != ["INSERT", "INTO"] or "(" not in text:
        return None
    into, rest = qualified(tokens, 2)
    if into is None or rest >= len(tokens) or text[rest] != "(":
        return None
    close = text.index(")", rest)
    columns = [name_of(t) for t in tokens[rest + 1 : close : 2]]
    if any(t != "," for t in text[rest + 2 : close : 2]) or upper[close + 1 : close + 2] != ["SELECT"]:
        return None
    if "FROM" not in upper[close:]:
        return None
    at = close + 2 + upper[close + 2 :].index("FROM")
    source, end = qualified(tokens, at + 1)
    if source is None or end != len(tokens):
        return None  # a WHERE, a join, an ORDER: not a copy of every row
    # Items may name their table (`t.a`, as Alembic's batch mode writes them): the one copied from.
    picks, i = tokens[close + 2 : at], 0
    items = []
    while i < len(picks):
        if i + 2 < len(picks) and picks[i + 1].group() == "." and picks[i].lastgroup in NAME_TOKENS:
            if name_of(picks[i]).lower() != source.lower():
                return None
            i += 2
        items.append(picks[i])
        if i + 1 < len(picks) and picks[i + 1].group() != ",":
            return None
        i += 2
    if len(items) != len(columns):
        return None
    picked = []
    for column, item in zip(columns, items):
        if item.lastgroup in NAME_TOKENS and item.group().upper() != "NULL":
            picked.append((column, ("column", name_of(item))))
        elif item.lastgroup in ("number", "literal") or item.group().upper() == "NULL":
            picked.append((column, ("literal", item.group())))
        else:
            return None
    return source, "copy", (into, tuple(picked))


def qualified(tokens, i: int) -> tuple[str | None, int]:
    """A [main.]name at tokens[i]: (name, the index after it); (None, i) if it is not one."""
    if i < len(tokens) and tokens[i].lastgroup in NAME_TOKENS:
        if i + 2 < len(tokens) and tokens[i + 1].group() == ".":
            if name_of(tokens[i]).lower() != "main" or tokens[i + 2].lastgroup not in NAME_TOKENS:
                return None, i
            return name_of(tokens[i + 2]), i + 3
        return name_of(tokens[i]), i + 1
    return None, i


def name_of(token) -> str:
    text = token.group()
    if token.lastgroup in ("double", "backtick"):
        return text[1:-1].replace(text[0] * 2, text[0])
    if token.lastgroup == "bracket":
        return text[1:-1]
    return text


def parse_alter(sql: str) -> tuple[str, str, tuple[str, ...]] | None:
    """(table, action, names) of `ALTER TABLE [main.]t ...`: action is add, drop, rename_column
    (names: old, new) or rename_table (names: new); None for anything else."""
    tokens = sqltext.spans(sql)
    words = [t.group().upper() for t in tokens]
    if words[:2] != ["ALTER", "TABLE"] or len(tokens) < 4:
        return None
    i = 2
    if len(tokens) > i + 2 and words[i + 1] == ".":
        if name_of(tokens[i]).lower() != "main":
            return None
        i += 2
    table = name_of(tokens[i])
    rest, names = words[i + 1 :], tokens[i + 1 :]
    if not rest:
        return None
    if rest[0] == "ADD":
        return table, "add", ()
    if rest[0] == "DROP":
        at = 2 if len(rest) > 1 and rest[1] == "COLUMN" else 1
        return (table, "drop", (name_of(names[at]),)) if len(names) > at else None
    if rest[0] == "RENAME":
        if len(rest) > 1 and rest[1] == "TO":
            return (table, "rename_table", (name_of(names[2]),)) if len(names) > 2 else None
        at = 2 if len(rest) > 1 and rest[1] == "COLUMN" else 1
        if len(names) > at + 2 and rest[at + 1] == "TO":
            return table, "rename_column", (name_of(names[at]), name_of(names[at + 2]))
    return None


def follow(name: str, parsed: list) -> tuple[str, list] | None:
    """The table's name after the ALTERs, and the ALTERs on it in order; None when an ALTER of it
    cannot be read here."""
    steps, current = [], name
    for sql, p in parsed:
        if p is None:
            if _names_table(sql, current):
                return None
            continue
        if p[0].lower() == current.lower():
            steps.append((sql, p))
            if p[1] == "rename_table":
                current = p[2][0]
            elif p[1] == "copy":
                current = p[2][0]
    return current, steps


def _names_table(sql: str, name: str) -> bool:
    tokens = sqltext.spans(sql)
    return any(name_of(t).lower() == name.lower() for t in tokens[1:5] if t.lastgroup != "other")


ROWID_NAMES = ("rowid", "oid", "_rowid_")


def split_commas(text: str) -> list[str]:
    """text cut at its top-level commas (none inside parentheses, strings or comments), stripped."""
    pieces, depth, start = [], 0, 0
    for token in sqltext.spans(text):
        if token.lastgroup == "other":
            depth += {"(": 1, ")": -1}.get(token.group(), 0)
            if depth == 0 and token.group() == ",":
                pieces.append(text[start : token.start()].strip())
                start = token.end()
    return pieces + [text[start:].strip()]


def assignments(set_part: str) -> list[tuple[str, str]]:
    """`a = expr, b = expr` as (column, expression) pairs; [] for a form not read here (row values)."""
    found = []
    for piece in split_commas(set_part):
        parts = sqltext.spans(piece)
        if len(parts) < 3 or parts[1].group() != "=" or parts[0].lastgroup not in NAME_TOKENS:
            return []
        found.append((name_of(parts[0]), piece[parts[1].end() :].strip()))
    return found
