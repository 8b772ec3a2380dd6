"""Opening SQLite files the one safe way, and reading what the controller needs to know of them.

All connections are opened with URI support (hazard 12: without it, ATTACH 'file:x?mode=ro'
creates a file with that literal name) and, unless asked, without CREATE, so a missing file is
an error and never a new empty database.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote as url_quote

import apsw

from bluegreen.errors import DatabaseInvalid

INTERNAL_PREFIX = "_bluegreen_"
# Litestream's own tables (_litestream_seq, _litestream_lock), which it writes in every database it
# replicates, a fenced one too: not the application's, so neither captured, replayed nor fenced.
REPLICATOR_PREFIX = "_litestream_"


def open_db(
    path: Path | str,
    *,
    readonly: bool = False,
    query_only: bool = False,
    create: bool = False,
    triggers: bool = True,
    busy_timeout_ms: int = 5000,
) -> apsw.Connection:
    flags = apsw.SQLITE_OPEN_URI
    flags |= apsw.SQLITE_OPEN_READONLY if readonly else apsw.SQLITE_OPEN_READWRITE
    if create:
        flags |= apsw.SQLITE_OPEN_CREATE
    conn = apsw.Connection(str(path), flags=flags)
    conn.set_busy_timeout(busy_timeout_ms)
    if query_only:
        # For reads: unlike a read-only open, it leaves no -wal/-shm behind (the last
        # connection to close cleans them up), yet refuses every write.
        conn.execute("PRAGMA query_only = 1")
    if not triggers:
        # The controller replays and fences with triggers off: it must never fire the
        # application's triggers a second time, and a fence must not stop the controller.
        conn.config(apsw.SQLITE_DBCONFIG_ENABLE_TRIGGER, 0)
    return conn


def readonly_uri(path: Path | str) -> str:
    return "file:" + url_quote(str(Path(path).resolve())) + "?mode=ro"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def check_database(path: Path, role: str = "database") -> None:
    """Refuse, with the fix, a file that is missing, not SQLite, or not in WAL mode."""
    if not Path(path).is_file():
        raise DatabaseInvalid(f"{path}: {role} file not found")
    try:
        conn = open_db(path, query_only=True)
    except apsw.Error as exc:
        raise DatabaseInvalid(f"{path}: cannot open {role} ({exc})") from None
    try:
        conn.execute("SELECT count(*) FROM sqlite_schema").get
        mode = conn.execute("PRAGMA journal_mode").get
    except apsw.NotADBError:
        raise DatabaseInvalid(f"{path}: not a SQLite database (file is encrypted or is not a database)") from None
    except apsw.Error as exc:
        raise DatabaseInvalid(f"{path}: cannot read {role} ({exc}{_space_hint(path)})") from None
    finally:
        conn.close()
    if str(mode).lower() != "wal":
        raise DatabaseInvalid(
            f"{path}: {role} is in '{mode}' journal mode; bluegreen needs WAL so the application "
            f"can keep writing during the copy. Switch once with: sqlite3 {path} 'PRAGMA journal_mode=WAL'"
        )


def _space_hint(path: Path) -> str:
    from bluegreen.files.layout import space_hint  # store imports nothing of db: no cycle, but keep it lazy

    return space_hint(Path(path).resolve().parent)


def schema_version(conn: apsw.Connection) -> int:
    return conn.execute("PRAGMA schema_version").get


@dataclass(frozen=True)
class Table:
    name: str
    without_rowid: bool
    rowid_alias: str | None  # a name for the rowid that no column shadows; None for WITHOUT ROWID
    primary_key: tuple[str, ...]
    virtual: bool


def user_tables(conn: apsw.Connection, schema: str = "main") -> list[Table]:
    """Application tables: everything but SQLite's own and bluegreen's internal tables."""
    rows = conn.execute(
        f"SELECT name, sql FROM {quote_ident(schema)}.sqlite_schema WHERE type = 'table' "
        "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
    ).fetchall()
    tables = []
    for name, sql in rows:
        if name.startswith((INTERNAL_PREFIX, REPLICATOR_PREFIX)):
            continue
        virtual = (sql or "").lstrip().upper().startswith("CREATE VIRTUAL")
        info = conn.execute("SELECT * FROM pragma_table_list WHERE schema = ? AND name = ?", (schema, name)).fetchall()
        without_rowid = bool(info and info[0][4])
        columns = conn.execute("SELECT name, pk FROM pragma_table_info(?, ?) ORDER BY pk", (name, schema)).fetchall()
        names = {c[0].lower() for c in columns}
        alias = None
        if not without_rowid and not virtual:
            alias = next((a for a in ("rowid", "oid", "_rowid_") if a not in names), None)
        primary_key = tuple(c[0] for c in columns if c[1])
        tables.append(Table(name, without_rowid, alias, primary_key, virtual))
    return tables


def run_script(conn: apsw.Connection, sql: str, bindings=None) -> None:
    """Run every statement of a script: apsw stops at each statement that returns rows until
    its cursor is read, so a script is only fully run once its cursor is exhausted."""
    for _ in conn.execute(sql, bindings):
        pass
