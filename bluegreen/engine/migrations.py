"""Versioned migration files: discover, check, plan, apply, and the history table.

Files are `{seq}_{version}_{description}.sql` with companions sharing the stem:
`_sync.sql`, `_validate.sql`, `_rollback.sql` (see docs/design.md, Migrations), and the read-only
query files `_benchmark.sql` (performance gate) and `_check.sql` (`bluegreen check`). Only the
migration itself is checksummed: adding or editing a companion never makes an applied file "changed".
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

import apsw

from bluegreen.engine import migration_formats, namedsql, statements
from bluegreen.engine.db import INTERNAL_PREFIX, run_script
from bluegreen.errors import ConfigInvalid, LockTimeout, MigrationFailed, MigrationInvalid, SchemaUnsupported
from bluegreen.files.pointer import now_iso

HISTORY_TABLE = "schema_migrations"
HISTORY_DDL = f"""
CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} (
    id INTEGER PRIMARY KEY,
    version TEXT NOT NULL,
    description TEXT NOT NULL,
    file TEXT NOT NULL UNIQUE,
    checksum TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    execution_time_ms REAL NOT NULL,
    success INTEGER NOT NULL,
    error_message TEXT,
    depends_on TEXT,
    can_rollback INTEGER NOT NULL,
    approved_by TEXT,
    approved_at TEXT,
    migration_file TEXT,
    rollback_file TEXT,
    executed_at TEXT,
    rollback_notes TEXT
)"""
# The governance columns of the SDM migration plan, filled next to bluegreen's own: the file, its
# _rollback.sql companion, when it ran, and what a revert does with it. A history table an older
# bluegreen made keeps its columns (never altered: blue and green would differ) and gets these
# only where they exist.
PLAN_COLUMNS = ("migration_file", "rollback_file", "executed_at", "rollback_notes")

_NAME = re.compile(r"^(\d+)_v?(\d+(?:\.\d+)*(?:[-+][0-9A-Za-z.]+)?)_([A-Za-z0-9][A-Za-z0-9_]*)\.sql$")
COMPANIONS = ("sync", "validate", "rollback", "benchmark", "check")
NAME_HELP = (
    "expected {seq}_{version}_{description}.sql, e.g. 003_v2.0.0_migrate_content.sql, or a goose, dbmate or "
    "Flyway name (20240101120000_add_x.sql, 00001_add_x.sql, V2__add_x.sql)"
)


@dataclass(frozen=True)
class Migration:
    seq: int
    version: str
    description: str
    path: Path
    checksum: str
    sync: Path | None = None
    validate: Path | None = None
    rollback: Path | None = None
    benchmark: Path | None = None  # named queries timed on blue and green (perfgate)
    check: Path | None = None  # named data-integrity queries for `bluegreen check` (monitor)

    @property
    def file(self) -> str:
        return self.path.name

    @property
    def sql(self) -> str:
        return migration_formats.read(self.path, self.path.read_text(encoding="utf-8")).sql  # goose/dbmate: Up


@dataclass(frozen=True)
class Applied:
    """One row of the history table."""

    version: str
    file: str
    checksum: str
    applied_at: str
    execution_time_ms: float
    success: bool


@dataclass(frozen=True)
class ApplyResult:
    migration: Migration
    execution_time_ms: float
    tables_written: frozenset[str]  # tables the migration inserted into, updated or deleted from
    tables_read: frozenset[str]  # tables it read: rows derived from them go stale under replay
    history_tables: frozenset[str] = frozenset()  # another tool's history table, written by history statements
    tables_altered: frozenset[str] = frozenset()  # tables whose definition, indexes or triggers it changed
    alters: tuple[str, ...] = ()  # its ALTER TABLE and single-table UPDATE statements, in order (derive.py)
    written_otherwise: frozenset[str] = frozenset()  # tables written by any other statement
    copied_into: frozenset[str] = frozenset()  # tables written by an INSERT ... SELECT from one other table

    def effects(self) -> dict[str, list[str]]:
        """What replay's reshape rule reads of this migration (shapes.reshapes, shapes.missing_sync):
        the same for the builder on green and for the preflight's dry run."""
        return {
            "written": sorted(self.tables_written),
            "read": sorted(self.tables_read),
            "history": sorted(self.history_tables),
            "altered": sorted(self.tables_altered),
            "alters": list(self.alters),
            "written_otherwise": sorted(self.written_otherwise),
            "copied_into": sorted(self.copied_into),
        }


def checksum(text: str) -> str:
    """SHA-256 of the text with line endings normalised: a CRLF checkout is the same file."""
    normalised = text.replace("\r\n", "\n").replace("\r", "\n")
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def discover(folder: Path) -> list[Migration]:
    """All migrations in order; refuses misnamed files, duplicate numbers and stray companions."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigInvalid(f"{folder}: migrations folder not found; set [migrations] dir in the config")
    mains: dict[str, dict] = {}
    companions: dict[str, dict[str, Path]] = {}
    for path in sorted(folder.glob("*.sql")):
        match = _NAME.match(path.name)
        other = None if match else migration_formats.parse_name(path)  # goose, dbmate, Flyway names
        if not match and not other:
            raise MigrationInvalid(f"{path}: migration file name does not fit; {NAME_HELP}")
        stem = path.name[:-4]
        kind = next((k for k in COMPANIONS if stem.endswith("_" + k)), None)
        if kind and (folder / f"{stem[: -len(kind) - 1]}.sql").exists():
            companions.setdefault(stem[: -len(kind) - 1], {})[kind] = path
            continue
        seq, version, description = (int(match.group(1)), match.group(2), match.group(3)) if match else other
        mains[stem] = dict(seq=seq, version=version, description=description, path=path)
    result = []
    for stem in migration_formats.in_order(mains):  # by seq (Flyway: version); refuses a number used twice
        info = mains[stem]
        text = _read(info["path"])
        result.append(Migration(checksum=checksum(text), **info, **companions.get(stem, {})))
    return result


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise MigrationInvalid(f"{path}: not UTF-8 text; save the migration as UTF-8") from None


def _has_history(conn: apsw.Connection) -> bool:
    """Whether the file has bluegreen's history table. A table of that name another tool made
    (Rails, dbmate: a `version` column alone) is refused by name, never read into a raw SQLite error."""
    columns = {row[1] for row in conn.execute(f"PRAGMA main.table_info({HISTORY_TABLE})")}
    if columns and not {"version", "file", "checksum", "success"} <= columns:
        raise SchemaUnsupported.with_hint(
            f"{conn.filename}: has a {HISTORY_TABLE} table of another migration tool (columns "
            f"{', '.join(sorted(columns))}); bluegreen keeps its own history in a table of that name; nothing was written",
            f"rename that table (ALTER TABLE {HISTORY_TABLE} RENAME TO ...) and point its tool at the new "
            "name, then run the command again",
        )
    return bool(columns)


def history(conn: apsw.Connection) -> list[Applied]:
    if not _has_history(conn):
        return []
    rows = conn.execute(
        f"SELECT version, file, checksum, applied_at, execution_time_ms, success FROM {HISTORY_TABLE} ORDER BY id"
    ).fetchall()
    return [Applied(v, f, c, a, t, bool(s)) for v, f, c, a, t, s in rows]


def history_rows(conn: apsw.Connection) -> list[dict]:
    """The whole history table as dicts, for `bluegreen history`."""
    if not _has_history(conn):
        return []
    cursor = conn.execute(f"SELECT * FROM {HISTORY_TABLE} ORDER BY id")
    names = [d[0] for d in cursor.getdescription()]
    return [dict(zip(names, row)) for row in cursor]


def current_version(conn: apsw.Connection) -> str:
    done = [a for a in history(conn) if a.success]
    return done[-1].version if done else "unversioned"


def pending(migrations: list[Migration], conn: apsw.Connection) -> list[Migration]:
    """Migrations not yet applied to this file; refuses an applied file whose text changed."""
    applied = {a.file: a for a in history(conn) if a.success}
    for migration in migrations:
        done = applied.get(migration.file)
        if done and done.checksum != migration.checksum:
            raise MigrationInvalid(
                f"{migration.path}: changed after it was applied (checksum {done.checksum[:12]}… in the "
                f"database, {migration.checksum[:12]}… on disk); restore the file and add a new migration instead"
            )
    known = {m.file for m in migrations}
    for file in applied:
        if file not in known:
            raise MigrationInvalid(
                f"{file}: applied to the database but missing from the migrations folder; restore it"
            )
    waiting = [m for m in migrations if m.file not in applied]
    for migration in waiting:
        migration_formats.check(migration.path, *(getattr(migration, kind) for kind in COMPANIONS))
        check_reach(migration)
    return waiting


def check_reach(migration: Migration) -> None:
    """Refuse (file and line) a migration or companion that names one of bluegreen's own objects,
    before anything runs (hazard 15). Judged where the migrations an operation will run are
    chosen, not in discover(): `status` reports it and keeps working, and a file already applied
    (history, no longer editable) never blocks anything. The benchmark and check companions of
    applied migrations, which still run, are judged when they are read (namedsql.parse)."""
    for path in (migration.path, *(getattr(migration, kind) for kind in COMPANIONS)):
        if path is not None:
            namedsql.refuse_internal(path, _read(path))


# The history tables of the migration tools `bluegreen import` reads (tools/importers.py): Alembic's
# `alembic current` and Django's `showmigrations` read them, so an imported migration writes them.
TOOL_HISTORY_TABLES = ("alembic_version", "django_migrations")


class _Observer:
    """An authorizer that records which tables a migration reads and writes (hazard 3: replay
    must not overwrite what a migration wrote) and whose definition, indexes or triggers it
    changes (so a missing sync companion is asked of the right migration), refuses transaction
    control and ATTACH/DETACH, and denies every action on bluegreen's own objects (hazard 15):
    the text was checked before it ran, this also catches a reach through a view or an
    application trigger.

    It also sorts the accesses by statement (the authorizer runs while a statement is prepared,
    `statement` as the exec tracer right after): a statement whose only table accesses are to one
    of TOOL_HISTORY_TABLES is that tool's history statement (`UPDATE alembic_version SET
    version_num='…' WHERE …`, `INSERT INTO django_migrations(app, name, applied) VALUES (…)`). It
    derives no rows from any table blue keeps writing, so it needs no _sync.sql: what it wrote is
    reported apart (`history`), not as a write. The table is still left out of generic replay
    (shapes.reshapes): green's history rows describe green's schema, and a row blue's copy of the
    table gained meanwhile (someone ran the tool on the live file) must not overwrite them. The same
    table written by any other statement (one that also reads or writes another table) counts as
    an ordinary write, and asks for a sync script as every other does."""

    def __init__(self) -> None:
        self.written: set[str] = set()
        self.read: set[str] = set()
        self.history: set[str] = set()  # TOOL_HISTORY_TABLES written only by history statements
        self.altered: set[str] = set()
        self.steps: list[str] = []  # ALTER TABLE statements and single-table UPDATEs, in order (derive.py)
        self.written_otherwise: set[str] = set()  # tables written by any other statement
        self.copied_into: set[str] = set()  # tables an INSERT ... SELECT from one other table wrote
        self.internal: str = ""  # the first of bluegreen's objects it tried to reach
        self._statement: set[tuple[str, str]] = set()  # (written|read, table) of the statement being prepared

    def statement(self, cursor, sql, bindings) -> bool:
        """Exec tracer: the statement whose accesses were just recorded is about to run."""
        tables = {table for _, table in self._statement}
        if len(tables) == 1 and next(iter(tables)) in TOOL_HISTORY_TABLES and ("written", *tables) in self._statement:
            self.history.update(tables)
        else:
            for kind, table in self._statement:
                (self.written if kind == "written" else self.read).add(table)
            written = {t for kind, t in self._statement if kind == "written"}
            keyword = sql.split(None, 1)[0].upper() if sql and sql.strip() else ""
            if keyword == "ALTER":
                self.steps.append(sql)
            elif keyword == "UPDATE" and len(written) == 1 and tables <= written:
                self.steps.append(sql)  # a backfill, reading only the table it writes
            elif keyword == "INSERT" and len(written) == 1 and len(tables - written) == 1:
                self.steps.append(sql)  # perhaps a rebuild's copy of one table into another (derive.py)
                self.copied_into.update(written)
            elif keyword == "DROP":
                pass  # a dropped table's rows are not written elsewhere; `altered` has it
            else:
                self.written_otherwise.update(written)
        self._statement = set()
        return True

    def __call__(self, action, arg1, arg2, dbname, trigger):
        internal = next((a for a in (arg1, arg2) if _internal(a)), None)
        # Inside one of bluegreen's own triggers the access is bluegreen's: a migration cannot
        # create such a trigger (that is denied here too), so only bluegreen's exist.
        if internal is not None and action != apsw.SQLITE_FUNCTION and not _internal(trigger):
            self.internal = self.internal or internal
            return apsw.SQLITE_DENY
        if dbname == "main" and arg1 and not arg1.startswith("sqlite_"):
            if action in (apsw.SQLITE_INSERT, apsw.SQLITE_UPDATE, apsw.SQLITE_DELETE):
                self._statement.add(("written", arg1))
            elif action == apsw.SQLITE_READ:
                self._statement.add(("read", arg1))
            elif action == apsw.SQLITE_DROP_TABLE:
                self.altered.add(arg1)
            elif action in _DDL_ON_TABLE and arg2:
                self.altered.add(arg2)
        if action == apsw.SQLITE_ALTER_TABLE and arg1 == "main" and arg2:
            self.altered.add(arg2)
        if action in (apsw.SQLITE_TRANSACTION, apsw.SQLITE_ATTACH, apsw.SQLITE_DETACH):
            return apsw.SQLITE_DENY
        return apsw.SQLITE_OK


_DDL_ON_TABLE = (
    apsw.SQLITE_CREATE_INDEX,
    apsw.SQLITE_DROP_INDEX,
    apsw.SQLITE_CREATE_TRIGGER,
    apsw.SQLITE_DROP_TRIGGER,
)


def _internal(name: str | None) -> bool:
    return bool(name) and name[: len(INTERNAL_PREFIX)].lower() == INTERNAL_PREFIX


def apply(conn: apsw.Connection, migration: Migration, depends_on: str | None) -> ApplyResult:
    """Run one migration in its own transaction on green and record it in the history table.
    Statement by statement (engine/statements.py), so an error names the file and the line."""
    text = migration.sql
    parts = statements.split(text)
    for statement in parts:
        if statement.keyword == "VACUUM":
            raise MigrationInvalid(
                f"{migration.path}:{statement.line}: VACUUM is not allowed in a migration (it renumbers rowids)"
            )
    namedsql.refuse_internal(migration.path, text)  # pending() did already; apply() stands on its own
    observer = _Observer()
    started = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    try:
        run_script(conn, HISTORY_DDL)
        conn.authorizer = observer
        conn.exec_trace = observer.statement
        try:
            statements.run(conn, text, parts)
            observer.statement(None, "", None)  # accesses recorded after the last trace (a re-prepare)
        finally:
            conn.authorizer = None
            conn.exec_trace = None
        elapsed = round((time.perf_counter() - started) * 1000, 1)
        applied_at = now_iso()
        present = {row[1] for row in conn.execute(f"PRAGMA main.table_info({HISTORY_TABLE})")}
        plan = {k: v for k, v in _plan_columns(migration, applied_at).items() if k in present}
        conn.execute(
            f"INSERT INTO {HISTORY_TABLE}(version, description, file, checksum, applied_at, execution_time_ms, "
            f"success, error_message, depends_on, can_rollback{''.join(', ' + k for k in plan)}) "
            f"VALUES (?, ?, ?, ?, ?, ?, 1, NULL, ?, ?{', ?' * len(plan)})",
            (
                migration.version,
                migration.description,
                migration.file,
                migration.checksum,
                applied_at,
                elapsed,
                depends_on,
                int(migration.rollback is not None),
                *plan.values(),
            ),
        )
        conn.execute("COMMIT")
    except statements.StatementFailed as failed:
        if not conn.get_autocommit():
            conn.execute("ROLLBACK")
        raise _refusal(migration, failed, observer, conn.filename) from None
    except apsw.BusyError:  # the COMMIT: a reader of green's rollback journal (lifecycle/builder.py)
        if not conn.get_autocommit():
            conn.execute("ROLLBACK")
        raise green_held(conn.filename) from None
    observer.written.discard(HISTORY_TABLE)
    observer.read.discard(HISTORY_TABLE)
    history = observer.history - observer.written  # written by another statement too: an ordinary write
    return ApplyResult(
        migration,
        elapsed,
        frozenset(observer.written),
        frozenset(observer.read),
        history_tables=frozenset(history),
        tables_altered=frozenset(observer.altered),
        alters=tuple(observer.steps),
        written_otherwise=frozenset(observer.written_otherwise - {HISTORY_TABLE}),
        copied_into=frozenset(observer.copied_into),
    )


def green_held(green: str) -> LockTimeout:
    """Another process has the new generation open while its migrations run in a rollback journal
    (lifecycle/builder.py), and its read lock keeps them from writing or committing."""
    return LockTimeout(
        f"{green}: another process has the new generation open while its migrations run (a sqlite3 shell or a "
        "tool reading it?), and its lock kept them from writing; nothing was switched and the new generation "
        "was discarded: close it, then run the command again"
    )


def _refusal(migration: Migration, failed: statements.StatementFailed, observer: _Observer, green: str) -> Exception:
    """What a failed statement means: a reach or a statement a migration may not hold
    (MigrationInvalid), a lock another process holds on green (LockTimeout), or SQL that failed on
    this file (MigrationFailed); file and line."""
    where = f"{migration.path}:{failed.line}"
    if isinstance(failed.error, apsw.BusyError):
        return green_held(green)
    if isinstance(failed.error, apsw.AuthError) and observer.internal:
        return MigrationInvalid(
            f"{where}: reaches {observer.internal}, one of bluegreen's own objects ({INTERNAL_PREFIX}* "
            "tables, triggers and indexes hold change capture, fences and replay positions), directly or through "
            "a view or trigger it uses; a migration must not read or write them: remove that reference"
        )
    if isinstance(failed.error, apsw.AuthError) and failed.statement.keyword in ("ATTACH", "DETACH"):
        return MigrationInvalid(
            f"{where}: {failed.statement.keyword} is not allowed in a migration: it runs on the new generation "
            "alone; remove it"
        )
    if isinstance(failed.error, apsw.AuthError):
        return MigrationInvalid(
            f"{where}: contains BEGIN/COMMIT/ROLLBACK ({failed.statement.keyword}); remove them, bluegreen runs "
            "each migration in its own transaction"
        )
    return MigrationFailed(
        f"{where}: migration failed: {failed.error}",
        details={"file": migration.file, "line": failed.line, "sqlite": str(failed.error)},
    )


def _plan_columns(migration: Migration, applied_at: str) -> dict[str, str | None]:
    if migration.rollback is None:
        notes = None
    else:
        carried = ", ".join(sorted(carried_by([migration.rollback]))) or "no table declared"
        notes = f"revert runs {migration.rollback.name} on blue; it carries {carried}"
    return {
        "migration_file": migration.file,
        "rollback_file": migration.rollback.name if migration.rollback else None,
        "executed_at": applied_at,
        "rollback_notes": notes,
    }


def carried_by(rollbacks: list[Path]) -> set[str]:
    """Tables a rollback script declares it carries back: a line `-- bluegreen: carries a, b`."""
    tables: set[str] = set()
    for path in rollbacks:
        for line in path.read_text(encoding="utf-8").splitlines():
            text = line.strip()
            if text.lower().startswith("-- bluegreen: carries"):
                tables.update(t.strip() for t in text.split("carries", 1)[1].split(",") if t.strip())
    return tables
