"""The pending migrations and their companions run on a schema-only copy of the active file.

The copy is made in memory from blue's `sqlite_schema` (tables, then indexes, views, triggers; no
rows; bluegreen's triggers and indexes left out, as green drops them before migrating) and thrown away:
nothing is written anywhere. The migrations run through `migrations.apply`, with the authorizer
prepare uses, so what each writes, reads and reshapes is what the builder will record on green
(SQLite authorizes every table a statement touches when it compiles it, rows or not). Then each
companion runs where it will run, in a savepoint rolled back: `_sync.sql` on the migrated copy
with the unmigrated one attached as `source`, `_rollback.sql` the other way round, with
`temp.bluegreen_changes` as replay fills it; `_validate.sql`, `_benchmark.sql` and `_check.sql`
are compiled on the migrated copy (the benchmark's `-- on blue:` form on the unmigrated one).

What an empty copy cannot show: an error that depends on rows (a UNIQUE index over duplicates,
a CHECK a row breaks) still surfaces when prepare runs the migration on green.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import apsw
import apsw.ext

from bluegreen.engine import meta, migrations, namedsql, rowids, statements
from bluegreen.engine.db import INTERNAL_PREFIX, open_db, run_script
from bluegreen.engine.replay import CHANGES_DDL
from bluegreen.engine.shapes import ReshapeReport, companion_tables, index_changes, reshapes
from bluegreen.errors import BluegreenError, MigrationFailed, MigrationInvalid

# bluegreen's own tables stay (green keeps `_bluegreen_meta`, and a reach through a view must meet
# the authorizer's refusal, not "no such table"); its triggers and indexes go, as green drops them.
_SCHEMA = (
    "SELECT name, sql FROM sqlite_schema WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
    "AND (type = 'table' OR (substr(name, 1, ?1) <> ?2 AND substr(tbl_name, 1, ?1) <> ?2)) "
    "ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 WHEN 'view' THEN 2 ELSE 3 END, rowid"
)


@dataclass(frozen=True)
class Outcome:
    """One pending migration in the dry run."""

    file: str
    read: frozenset[str] = frozenset()
    written: frozenset[str] = frozenset()
    error: str = ""  # why it failed, or "after X" when an earlier one failed


@dataclass(frozen=True)
class DryRun:
    outcomes: tuple[Outcome, ...]
    effects: dict[str, dict[str, list[str]]]  # as the builder records them on green
    problems: tuple[BluegreenError, ...]  # typed, naming the file and line
    reshape: ReshapeReport | None  # None unless every migration ran
    uncopied: dict[str, str] = field(default_factory=dict)  # blue's objects the copy could not take
    # The schema-only images, before and after the migrations (serialized), for what is derived
    # from the two (engine/drafts.py); empty unless every migration ran.
    before: bytes = b""
    after: bytes = b""
    indexes: dict[str, list[str]] = field(default_factory=dict)  # table -> its index changes (plan)


def run(blue: Path, pending: list[migrations.Migration]) -> DryRun:
    conn = open_db(blue, query_only=True)
    try:
        return on(conn, pending, Path(blue).name)
    finally:
        conn.close()


def on(blue: apsw.Connection, pending: list[migrations.Migration], label: str, *, full: bool = True) -> DryRun:
    """The dry run of `pending` on a schema-only copy of the database `blue` is connected to;
    full: the reshape report and the companions too (the estimate needs only the migrations)."""
    image, uncopied = schema_image(blue)
    green = _open(image)
    try:
        meta.ensure_meta(green)  # green has it when its migrations run: a reach meets the authorizer
        outcomes, effects, failure = _migrate(green, pending, migrations.current_version(blue), label)
        if failure is not None or not full:
            return DryRun(outcomes, effects, (failure,) if failure else (), None, uncopied)
        migrated = green.serialize("main") or b""
        _attach(green, "source", image)
        companions = {m.file for m in pending if m.sync}  # a companion overrides derivation
        report = reshapes(green, effects, overridden=companion_tables(effects, companions))
        indexes = index_changes(green)
        green.config(apsw.SQLITE_DBCONFIG_ENABLE_TRIGGER, 0)  # replay runs companions with triggers off
        run_script(green, CHANGES_DDL)
        old = _open(image, triggers=False)
        try:
            _attach(old, "source", migrated)
            run_script(old, CHANGES_DDL)
            problems = tuple(_companion_problems(green, old, pending))
        finally:
            old.close()
        return DryRun(outcomes, effects, problems, report, uncopied, image, migrated, indexes)
    finally:
        green.close()


def schema_image(blue: apsw.Connection) -> tuple[bytes, dict[str, str]]:
    """blue's schema without its rows, as a serialized database, and the objects that could not
    be made without the application (a collation or function only it registers)."""
    memory = _memory()
    uncopied: dict[str, str] = {}
    try:
        for name, sql in blue.execute(_SCHEMA, (len(INTERNAL_PREFIX), INTERNAL_PREFIX)).fetchall():
            try:
                memory.execute(sql)
            except apsw.Error as exc:
                # A virtual table makes its shadow tables itself: those are there already.
                if not memory.execute("SELECT 1 FROM sqlite_schema WHERE name = ?", (name,)).fetchall():
                    uncopied[name] = str(exc)
        memory.execute(f"PRAGMA user_version = {int(blue.execute('PRAGMA user_version').get)}")
        return memory.serialize("main") or b"", uncopied
    finally:
        memory.close()


def _memory() -> apsw.Connection:
    # URI and no CREATE, like every connection bluegreen opens (hazards 11, 12); it is no file at all
    return apsw.Connection(":memory:", flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_URI)


def _open(image: bytes, triggers: bool = True) -> apsw.Connection:
    conn = _memory()
    if image:
        conn.deserialize("main", image)
    if not triggers:
        conn.config(apsw.SQLITE_DBCONFIG_ENABLE_TRIGGER, 0)
    return conn


def _attach(conn: apsw.Connection, name: str, image: bytes) -> None:
    conn.execute(f"ATTACH ':memory:' AS {name}")
    if image:
        conn.deserialize(name, image)


def _migrate(green: apsw.Connection, pending: list, depends_on: str, label: str):
    outcomes, effects, failure, failed_file = [], {}, None, ""
    saved = rowids.save(green, pending)  # as the builder does: a rebuild by key keeps its rowids
    for migration in pending:
        if failure is not None:
            outcomes.append(Outcome(migration.file, error=f"after {failed_file}"))
            continue
        try:
            result = migrations.apply(green, migration, depends_on)
        except BluegreenError as exc:
            failure, failed_file = _as_input_error(exc, migration, label), migration.file
            outcomes.append(Outcome(migration.file, error=failure.message))
            continue
        outcomes.append(Outcome(migration.file, result.tables_read, result.tables_written))
        effects[migration.file] = result.effects()
        depends_on = migration.version
    if failure is None:
        rowids.restore(green, saved, effects)
    return tuple(outcomes), effects, failure


def _as_input_error(exc: BluegreenError, migration: migrations.Migration, label: str) -> BluegreenError:
    """SQL that fails on the empty copy is the file's fault, not the operation's: an input error
    (exit 2) that says where, before anything is built."""
    if not isinstance(exc, MigrationFailed):
        return exc
    details = exc.details if isinstance(exc.details, dict) else {}
    line = details.get("line")
    return MigrationInvalid(
        f"{migration.path}:{line}: migration failed in a dry run on {label}'s schema (nothing was changed): "
        f"{details.get('sqlite', exc.message)}; fix the migration",
        details={"file": migration.file, "line": line},
    )


def _companion_problems(green: apsw.Connection, old: apsw.Connection, pending: list):
    for m in pending:
        if m.sync:
            yield from _script(green, m.sync, "sync companion", "the migrated schema")
        if m.rollback:
            yield from _script(old, m.rollback, "rollback companion", "the schema before the migrations")
        if m.validate:
            yield from _validate(green, m.validate)
        if m.benchmark:
            yield from _queries(green, old, m.benchmark, "benchmark")
        if m.check:
            yield from _queries(green, None, m.check, "check")


def _script(conn: apsw.Connection, path: Path, role: str, where: str):
    """Run the script in a savepoint, rolled back, as replay would after a batch: `source` is
    read-only there, and a companion runs inside replay's transaction."""
    denied: list[str] = []
    conn.execute("SAVEPOINT bluegreen_dry_run")
    conn.authorizer = lambda action, arg1, arg2, dbname, trigger: _companion_action(denied, action, arg1, dbname)
    try:
        statements.run(conn, path.read_text(encoding="utf-8"))
    except statements.StatementFailed as failed:
        if denied and denied[0] == "transaction":
            yield MigrationInvalid(
                f"{path}:{failed.line}: {role} contains {failed.statement.keyword} (transaction control); remove "
                "it: bluegreen runs each companion inside its own transaction",
                details={"file": path.name, "line": failed.line},
            )
        elif denied:
            yield MigrationInvalid(
                f"{path}:{failed.line}: {role} writes to {denied[0]}, which is attached read-only when it runs; "
                "write to main (the file it runs on) instead",
                details={"file": path.name, "line": failed.line},
            )
        else:
            yield _failed(path, failed.line, role, where, failed.error)
    finally:
        conn.authorizer = None
        if not conn.get_autocommit():
            conn.execute("ROLLBACK TO bluegreen_dry_run")
            conn.execute("RELEASE bluegreen_dry_run")


def _companion_action(denied: list[str], action: int, table: str | None, dbname: str | None) -> int:
    if action == apsw.SQLITE_TRANSACTION:
        denied.append("transaction")
        return apsw.SQLITE_DENY
    if action in (apsw.SQLITE_INSERT, apsw.SQLITE_UPDATE, apsw.SQLITE_DELETE) and dbname == "source":
        denied.append(f"source.{table}")
        return apsw.SQLITE_DENY
    return apsw.SQLITE_OK


def _validate(conn: apsw.Connection, path: Path):
    text = path.read_text(encoding="utf-8")
    problems = list(_script(conn, path, "validate companion", "the migrated schema"))
    if problems:
        yield from problems
        return
    for statement in statements.split(text):
        try:
            columns = apsw.ext.query_info(conn, statement.sql).description or ()
        except apsw.Error:  # it needs what an earlier statement made, rolled back since: it ran
            continue
        if columns and len(columns) != 4:
            yield MigrationInvalid(
                f"{path}:{statement.line}: returns {len(columns)} column(s); a validate companion returns rows "
                "(check_name, expected, actual, status)",
                details={"file": path.name, "line": statement.line},
            )


def _queries(green: apsw.Connection, old: apsw.Connection | None, path: Path, marker: str):
    try:
        queries = namedsql.parse(path, marker)
    except MigrationInvalid as exc:
        yield exc
        return
    text = path.read_text(encoding="utf-8")
    for query in queries:
        line = _header_line(text, marker, query.name)
        problem = namedsql.statement_problem(green, query.sql)
        if problem:
            yield _failed(path, line, f"{marker} {query.name!r}", "the migrated schema", problem, "cannot run")
        if old is not None and query.blue_sql:
            problem = namedsql.statement_problem(old, query.blue_sql)
            if problem:
                yield _failed(
                    path, line, f"the `-- on blue:` form of {query.name!r}", "blue's schema", problem, "cannot run"
                )


def _header_line(text: str, marker: str, name: str) -> int | None:
    header = re.compile(rf"^\s*--\s*{marker}\s*:\s*{re.escape(name)}\s*$", re.IGNORECASE)
    return next((n for n, line in enumerate(text.splitlines(), 1) if header.match(line)), None)


def _failed(
    path: Path, line: int | None, role: str, where: str, error: object, verb: str = "fails"
) -> MigrationInvalid:
    place = f"{path}:{line}" if line else str(path)
    return MigrationInvalid(
        f"{place}: {role} {verb} on {where} (a dry run; nothing was changed): {error}; fix it",
        details={"file": path.name, "line": line},
    )
