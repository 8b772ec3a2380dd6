"""Triggers bluegreen puts on a database file: change capture and the write fence.

Capture: AFTER INSERT/UPDATE/DELETE triggers on every application table append (table, key, op)
to `_bluegreen_capture`, so the controller knows exactly which rows changed since a position.
Fence: BEFORE triggers whose body calls a function that is never registered. SQLite resolves the
function when it prepares any write statement on the table, so every write fails — zero-row
UPDATE/DELETE included (a RAISE(ABORT) trigger would never fire for those, hazard 1) — with an
error naming bluegreen, while reads go on and the controller's triggers-off connection is free.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

import apsw

from bluegreen.engine.db import INTERNAL_PREFIX, Table, quote_ident, quote_literal, schema_version, user_tables
from bluegreen.engine import sqltext
from bluegreen.errors import InputError
from bluegreen.files.contract import FENCE_FUNCTION, FENCE_PREFIX, META_TABLE

CAPTURE_TABLE = "_bluegreen_capture"
CAPTURE_PREFIX = "_bluegreen_cap_"
GUARD_PREFIX = "_bluegreen_guard_"


def _tag(table: str) -> str:
    return hashlib.sha1(table.encode("utf-8")).hexdigest()[:12]


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
    return (f"CASE WHEN typeof({value}) = 'text' AND instr({value}, char(0)) "
            f"THEN 'CAST(X''' || hex({value}) || ''' AS TEXT)' ELSE quote({value}) END")


def capturable(conn: apsw.Connection) -> list[Table]:
    """The tables capture and fence must cover; refuses tables they cannot."""
    tables = user_tables(conn)
    for table in tables:
        if table.virtual:
            raise InputError(
                f"table {table.name!r} is a virtual table: bluegreen cannot capture or fence its writes; "
                "move it to a separate file or drop it before deploying"
            )
        if not table.without_rowid and table.rowid_alias is None:
            raise InputError(
                f"table {table.name!r} has columns named rowid, oid and _rowid_: its rows cannot be "
                "keyed; rename one of those columns"
            )
        if not table.virtual:
            _check_replace_capture(conn, table)
    return tables


def _check_replace_capture(conn: apsw.Connection, table: Table) -> None:
    """Refuse, before anything changes, a uniqueness index whose REPLACE deletes capture could
    not evaluate: an expression or condition naming a function only the application registers."""
    name = quote_ident(table.name)
    for key in uniqueness_keys(conn, table):
        parts = [t.expression for t in key.terms if t.expression] + ([key.where] if key.where else [])
        for part in parts:
            try:
                conn.execute(f"SELECT ({part}) FROM {name} LIMIT 0").fetchall()
            except apsw.SQLError as exc:
                raise InputError(
                    f"table {table.name!r}: index {key.index!r} computes {part!r}, which bluegreen cannot "
                    f"evaluate ({exc}): a REPLACE on it could delete a row unseen, and replay could not write "
                    "the table. Drop or rewrite that index with built-in functions before deploying"
                ) from None


# -- meta (stamp, positions) ----------------------------------------------------------------------
def ensure_meta(conn: apsw.Connection) -> None:
    conn.execute(f"CREATE TABLE IF NOT EXISTS {META_TABLE}(key TEXT PRIMARY KEY, value) WITHOUT ROWID")


def set_meta(conn: apsw.Connection, **values: object) -> None:
    ensure_meta(conn)
    for key, value in values.items():
        conn.execute(f"INSERT OR REPLACE INTO {META_TABLE}(key, value) VALUES (?, ?)", (key, value))


def clear_meta(conn: apsw.Connection, *keys: str) -> None:
    """Delete keys; drop the table once empty, so a file bluegreen is done with has no trace."""
    if not conn.execute("SELECT 1 FROM main.sqlite_schema WHERE name = ?", (META_TABLE,)).fetchall():
        return
    for key in keys:
        conn.execute(f"DELETE FROM main.{META_TABLE} WHERE key = ?", (key,))
    if not conn.execute(f"SELECT 1 FROM main.{META_TABLE} LIMIT 1").fetchall():
        conn.execute(f"DROP TABLE main.{META_TABLE}")


def get_meta(conn: apsw.Connection, key: str, schema: str = "main"):
    exists = conn.execute(
        f"SELECT 1 FROM {quote_ident(schema)}.sqlite_schema WHERE name = ?", (META_TABLE,)
    ).fetchall()
    if not exists:
        return None
    row = conn.execute(f"SELECT value FROM {quote_ident(schema)}.{META_TABLE} WHERE key = ?", (key,)).fetchall()
    return row[0][0] if row else None


# -- capture --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Position:
    epoch: str
    seq: int


@dataclass(frozen=True)
class CapturePlan:
    """Capture's trigger rows, worked out before the lock (reading every table's indexes and
    columns takes most of a second with 1,000 tables), valid while schema_version stays put."""

    schema_version: int
    tables: list
    triggers: list  # (name, table, sql) rows for _edit_triggers


def plan_capture(conn: apsw.Connection) -> CapturePlan:
    """Read-only: the capture install_capture would make now (refusing what it cannot take)."""
    version = schema_version(conn)
    tables = capturable(conn)
    return CapturePlan(version, tables, [row for table in tables for row in capture_triggers(conn, table)])


def install_capture(conn: apsw.Connection, guard: bool = True, plan: CapturePlan | None = None) -> Position:
    """Create the capture table and triggers (idempotent); returns the current position.

    Run inside the caller's transaction, with `plan` (plan_capture) made before it if it can be:
    then what runs under the lock is a few statements and one schema edit. A fresh install draws
    a new random epoch, so a position from an earlier capture can never be mistaken for one of
    this capture (hazard 7). `seq` is a plain rowid, not AUTOINCREMENT: the table is only ever
    dropped whole (with its epoch), so seq never goes back within an epoch, and blue is not left
    with a sqlite_sequence table after abort.
    """
    if plan is None or plan.schema_version != schema_version(conn):  # none, or the schema moved since
        plan = plan_capture(conn)
    tables = plan.tables
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {CAPTURE_TABLE}("
        "seq INTEGER PRIMARY KEY, tbl TEXT NOT NULL, key NOT NULL, op TEXT NOT NULL)"
    )
    if get_meta(conn, "capture_epoch") is None:
        set_meta(conn, capture_epoch=secrets.token_hex(8))
    if guard:  # before the triggers' edit, which must be the last statement (see _edit_triggers)
        guarded = {name for (name,) in _objects(conn, "index", GUARD_PREFIX)}
        install_blob_guard(conn, [t for t in tables if guard_name(t) not in guarded])
    present = {name for (name,) in _triggers(conn, CAPTURE_PREFIX)}
    add = [row for row in plan.triggers if row[0] not in present]
    _edit_triggers(conn, add=add)
    _check_schema(conn)
    return capture_position(conn)


def capture_triggers(conn: apsw.Connection, table: Table) -> list[tuple[str, str, str]]:
    """(name, table, sql) of the table's capture triggers, the sql exactly as CREATE TRIGGER
    stores it (`capture_sql` is that reference): installed as one sqlite_schema edit, because
    one CREATE TRIGGER each rescans the schema, O(tables²) under blue's write lock (hazard 18)."""
    return [(name, table.name, sql) for name, sql in _capture_sql(conn, table)]


def capture_sql(conn: apsw.Connection) -> list[str]:
    """Capture as plain CREATE TRIGGER statements (the reference the schema edit must equal)."""
    return [sql for table in capturable(conn) for _, sql in _capture_sql(conn, table)]


def _capture_sql(conn: apsw.Connection, table: Table) -> list[tuple[str, str]]:
    name = quote_ident(table.name)
    lit = quote_literal(table.name)
    tag = _tag(table.name)
    new, old = key_expression(table, "NEW"), key_expression(table, "OLD")
    triggers = [
        (f"{CAPTURE_PREFIX}i_{tag}", f"AFTER INSERT ON {name} BEGIN "
         f"INSERT INTO {CAPTURE_TABLE}(tbl, key, op) VALUES ({lit}, {new}, 'I'); END"),
        (f"{CAPTURE_PREFIX}u_{tag}", f"AFTER UPDATE ON {name} BEGIN "
         f"INSERT INTO {CAPTURE_TABLE}(tbl, key, op) SELECT {lit}, {old}, 'U' "
         f"UNION ALL SELECT {lit}, {new}, 'U' WHERE ({new}) IS NOT ({old}); END"),
        (f"{CAPTURE_PREFIX}d_{tag}", f"AFTER DELETE ON {name} BEGIN "
         f"INSERT INTO {CAPTURE_TABLE}(tbl, key, op) VALUES ({lit}, {old}, 'D'); END"),
        *_capture_replace_deletes(conn, table),
    ]
    return [(trigger, f"CREATE TRIGGER {trigger} {body}") for trigger, body in triggers]


def _check_schema(conn: apsw.Connection) -> None:
    """Read the edited schema back in the same transaction: a trigger SQLite cannot parse fails
    here (and the caller's transaction rolls back), never at a writer's next statement."""
    conn.execute("SELECT 1 FROM main.sqlite_schema LIMIT 0").fetchall()


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
    name, tag = quote_ident(table.name), _tag(table.name)
    values, generated = _new_values(conn, table)
    insert = _conflicts_sql(table, keys, values, exclude=None if not table.without_rowid else "NEW")
    update = _conflicts_sql(table, keys, values, exclude="OLD")
    columns = _columns_read(keys, generated)
    of = f" OF {', '.join(quote_ident(c) for c in sorted(columns))}" if columns else ""
    return [
        (f"{CAPTURE_PREFIX}ri_{tag}", f"BEFORE INSERT ON {name} "
         f"BEGIN INSERT INTO {CAPTURE_TABLE}(tbl, key, op) {insert}; END"),
        (f"{CAPTURE_PREFIX}ru_{tag}", f"BEFORE UPDATE{of} ON {name} "
         f"BEGIN INSERT INTO {CAPTURE_TABLE}(tbl, key, op) {update}; END"),
    ]


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
    equal values always encode alike is left out (_exact_key). Raises InputError for an index
    bluegreen could not evaluate (a collation only the application registers)."""
    found = []
    known = {name.upper() for (name,) in conn.execute("SELECT name FROM pragma_collation_list")}
    for _, index, unique, origin, partial in conn.execute(
        "SELECT seq, name, \"unique\", origin, partial FROM pragma_index_list(?)", (table.name,)
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
    types = {name: (kind or "").upper() for _, name, kind, *_ in conn.execute(
        "SELECT * FROM pragma_table_info(?)", (table.name,)).fetchall()}
    for term in terms:
        kind = types.get(term.column, "")
        if term.collation.upper() != "BINARY" or not kind or "BLOB" in kind:
            return False
        if "INT" not in kind and not any(t in kind for t in ("CHAR", "CLOB", "TEXT")) and any(
                t in kind for t in ("REAL", "FLOA", "DOUB")):
            return False
    return True


def _require_collation(known: set[str], table: str, index: str, collation: str | None) -> None:
    if collation and collation.upper() not in known:
        raise InputError(
            f"table {table!r}: index {index!r} uses collation {collation!r}, which only the application "
            "registers: bluegreen cannot match or replay its rows (a REPLACE on it could delete a row unseen). "
            "Use a built-in collation (BINARY, NOCASE, RTRIM) for that index, or deploy with the application "
            "stopped after dropping it"
        )


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
    rest = tokens[end + 1:] if end is not None else []
    where = sql[rest[1].start():rest[-1].end()] if len(rest) > 1 and rest[0].group().upper() == "WHERE" else None
    if end is None or len(terms) != count or not all(terms) or (rest and where is None):
        raise InputError(
            f"table {table!r}: cannot read the definition of index {index!r} ({sql!r}), so a REPLACE on it "
            "could not be captured; report this to bluegreen, or drop the index while deploying"
        )
    expressions = []
    for term in terms:
        term = _strip_order(term)
        expressions.append(sql[term[0].start():term[-1].end()])
    return expressions, where


def _strip_order(term: list[re.Match]) -> list[re.Match]:
    term = list(term)
    if len(term) > 1 and term[-1].group().upper() in ("ASC", "DESC"):
        term.pop()
    if len(term) >= 3 and term[-2].group().upper() == "COLLATE":
        term = term[:-2]
    return term


def install_blob_guard(conn: apsw.Connection, tables: list[Table]) -> None:
    """Refuse incremental BLOB writes, which fire no trigger: capture would miss them, and a fence
    made of triggers would not stop them. SQLite refuses BLOB writes on any table that has an
    expression index; this one holds no entries (WHERE 0), but creating it reads the table once
    under the write lock, so it is made with capture (before the snapshot), never inside the
    cutover's write pause. `[capture] guard_blob_writes = false` skips it."""
    for table in tables:
        if table.virtual or table.without_rowid:  # BLOB I/O needs a rowid table
            continue
        conn.execute(f"CREATE INDEX IF NOT EXISTS {guard_name(table)} ON {quote_ident(table.name)}((0)) WHERE 0")


def guard_name(table: Table) -> str:
    return f"{GUARD_PREFIX}{_tag(table.name)}"


def remove_blob_guard(conn: apsw.Connection) -> None:
    for (name,) in _objects(conn, "index", GUARD_PREFIX):
        conn.execute(f"DROP INDEX IF EXISTS main.{quote_ident(name)}")


def capture_position(conn: apsw.Connection, schema: str = "main") -> Position | None:
    epoch = get_meta(conn, "capture_epoch", schema)
    if epoch is None:
        return None
    seq = conn.execute(f"SELECT coalesce(max(seq), 0) FROM {quote_ident(schema)}.{CAPTURE_TABLE}").get
    return Position(epoch, seq)


def captured_counts(conn: apsw.Connection, after_seq: int = 0) -> dict[str, int]:
    """Changed rows per table since a position (distinct keys), for reports and refusals."""
    if capture_position(conn) is None:
        return {}
    rows = conn.execute(
        f"SELECT tbl, count(DISTINCT key) FROM {CAPTURE_TABLE} WHERE seq > ? GROUP BY tbl ORDER BY tbl",
        (after_seq,),
    ).fetchall()
    return dict(rows)


def remove_capture(conn: apsw.Connection, keep_guard: bool = False) -> None:
    """Drop capture triggers, table and epoch (idempotent), and the BLOB guard unless a fence is
    about to need it. Run inside the caller's transaction. The triggers go in one schema edit
    (hazard 18: one DROP TRIGGER each would rescan sqlite_schema per trigger)."""
    if not keep_guard:
        remove_blob_guard(conn)
    conn.execute(f"DROP TABLE IF EXISTS main.{CAPTURE_TABLE}")
    clear_meta(conn, "capture_epoch")
    _edit_triggers(conn, drop_prefixes=(CAPTURE_PREFIX,))


def empty_capture(conn: apsw.Connection) -> None:
    """Forget blue's captured changes after its fence: the rows and the epoch go, the (inert,
    fenced) table stays, so the schema and the fence's recorded schema_version do not move. A
    later capture on this file draws a new epoch (hazard 7). Run inside the caller's transaction."""
    if conn.execute("SELECT 1 FROM main.sqlite_schema WHERE name = ?", (CAPTURE_TABLE,)).fetchall():
        conn.execute(f"DELETE FROM main.{CAPTURE_TABLE}")
    if conn.execute("SELECT 1 FROM main.sqlite_schema WHERE name = ?", (META_TABLE,)).fetchall():
        conn.execute(f"DELETE FROM main.{META_TABLE} WHERE key = 'capture_epoch'")


# -- fence ----------------------------------------------------------------------------------------
def install_fence(conn: apsw.Connection, active_generation: int, guard: bool = True) -> int:
    """Fence every table; returns the file's `PRAGMA schema_version` after it, which the caller
    records: DDL on the fenced file moves it (hazard 1). Run inside the barrier transaction, on a
    triggers-off connection, as its LAST statement before COMMIT (see `_edit_triggers`)."""
    return fence_replacing_capture(conn, active_generation, guard, drop_capture=False)


def fence_replacing_capture(conn: apsw.Connection, active_generation: int, guard: bool = True,
                            drop_capture: bool = True) -> int:
    """Fence every table and (drop_capture) remove change capture, in one schema edit; returns the
    new `PRAGMA schema_version`. This is what runs while writers wait, so it costs O(schema):
    one read of sqlite_schema, one edit of it, no per-trigger statement (hazard 18). The fence
    triggers are byte for byte what CREATE TRIGGER would store (rootpage 0, nothing to allocate);
    every other connection re-reads the schema at its next statement because schema_version moves,
    and then fails to prepare any write (hazard 1). The capture table and epoch stay: without
    their triggers nothing can add to them, and dropping the table would free its pages while
    writers wait; `empty_capture` clears them later without touching the schema."""
    schema = _schema_entries(conn)
    tables = {name: _tag(name) for kind, name, head in schema if kind == "table" and _fenceable(name, head)}
    if guard:  # normally already there from capture; only an offline deploy builds it here
        indexes = {name for kind, name, _ in schema if kind == "index"}
        missing = {t for t, tag in tables.items() if not t.startswith(INTERNAL_PREFIX) and GUARD_PREFIX + tag not in indexes}
        if missing:
            install_blob_guard(conn, [t for t in user_tables(conn) if t.name in missing])
    function = FENCE_FUNCTION.format(generation=active_generation)
    fence = [(f"{FENCE_PREFIX}{op}_{tag}", table, _fence_sql(op, table, function, tag))
             for table, tag in tables.items() for op in "iud"]
    drop = (FENCE_PREFIX, CAPTURE_PREFIX) if drop_capture else (FENCE_PREFIX,)
    return _edit_triggers(conn, drop_prefixes=drop, add=fence)


def fence_sql(conn: apsw.Connection, active_generation: int) -> list[str]:
    """The fence as plain CREATE TRIGGER statements (the reference the schema edit must equal)."""
    function = FENCE_FUNCTION.format(generation=active_generation)
    return [_fence_sql(op, name, function, _tag(name)) for kind, name, head in _schema_entries(conn)
            if kind == "table" and _fenceable(name, head) for op in "iud"]


_FENCE_VERBS = {"i": "INSERT", "u": "UPDATE", "d": "DELETE"}


def _fence_sql(op: str, table: str, function: str, tag: str) -> str:
    return (f"CREATE TRIGGER {FENCE_PREFIX}{op}_{tag} BEFORE {_FENCE_VERBS[op]} ON {quote_ident(table)} "
            f"BEGIN SELECT {function}(); END")


def _schema_entries(conn: apsw.Connection) -> list[tuple[str, str, str]]:
    """(type, name, first words of sql) of every table and BLOB-guard index: one read."""
    return conn.execute("SELECT type, name, upper(substr(ltrim(coalesce(sql, '')), 1, 14)) FROM main.sqlite_schema "
                        "WHERE type = 'table' OR (type = 'index' AND substr(name, 1, ?) = ?)",
                        (len(GUARD_PREFIX), GUARD_PREFIX)).fetchall()


def _fenceable(name: str, head: str) -> bool:
    """Every table a write could reach: the application's and bluegreen's own, not SQLite's
    internal ones and not virtual tables (a trigger cannot be put on those)."""
    return not name.startswith("sqlite_") and not head.startswith("CREATE VIRTUAL")


def _edit_triggers(conn: apsw.Connection, drop_prefixes: tuple[str, ...] = (), add: list = ()) -> int:
    """Delete the triggers named with these prefixes and insert `add` (name, table, sql) rows,
    straight into sqlite_schema (PRAGMA writable_schema), then move schema_version by one so every
    connection, this one included, reloads the schema at its next statement. Triggers own no
    pages, so the file stays consistent (integrity_check). Returns the new schema_version.

    Call it last before COMMIT: any later statement on this connection reloads the whole schema
    first (a few ms per thousand tables), which would fall inside the caller's write lock."""
    conn.config(apsw.SQLITE_DBCONFIG_DEFENSIVE, 0)  # defensive mode forbids writable_schema
    version = schema_version(conn)
    conn.execute("PRAGMA writable_schema = ON")
    try:
        changed = 0
        for prefix in drop_prefixes:
            conn.execute("DELETE FROM main.sqlite_schema WHERE type = 'trigger' AND substr(name, 1, ?) = ?",
                         (len(prefix), prefix))
            changed += conn.changes()
        if add:
            conn.executemany("INSERT INTO main.sqlite_schema(type, name, tbl_name, rootpage, sql) "
                             "VALUES ('trigger', ?, ?, 0, ?)", list(add))
            changed += len(add)
        if changed:
            version += 1
            conn.execute(f"PRAGMA main.schema_version = {version}")
    finally:
        conn.execute("PRAGMA writable_schema = OFF")
    return version


def remove_fence(conn: apsw.Connection, keep_guard: bool = False) -> None:
    """Lift the fence in one schema edit, and drop capture's inert table the fence left behind. The
    BLOB guard's indexes own pages, so each needs its own
    DROP INDEX (O(tables x schema)): keep_guard leaves them for a later transaction
    (`remove_blob_guard`) when this runs while writers wait. Last statement before COMMIT, as
    `_edit_triggers` says."""
    if not keep_guard:
        remove_blob_guard(conn)
    if not _triggers(conn, CAPTURE_PREFIX):  # capture's inert table, left by the fence (empty_capture)
        conn.execute(f"DROP TABLE IF EXISTS main.{CAPTURE_TABLE}")
        clear_meta(conn, "capture_epoch")
    _edit_triggers(conn, drop_prefixes=(FENCE_PREFIX,))


def _triggers(conn: apsw.Connection, prefix: str) -> list[tuple[str]]:
    return _objects(conn, "trigger", prefix)


def _objects(conn: apsw.Connection, kind: str, prefix: str) -> list[tuple[str]]:
    return conn.execute(
        "SELECT name FROM sqlite_schema WHERE type = ? AND substr(name, 1, ?) = ?",
        (kind, len(prefix), prefix),
    ).fetchall()
