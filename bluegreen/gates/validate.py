"""The validation gate: nothing becomes active that fails a check.

Gates: `PRAGMA integrity_check`, `PRAGMA foreign_key_check` (green against blue at the same
capture position, see ForeignKeys), and every `_validate.sql` companion
of the migrations this deploy applied (rows `check_name, expected, actual, status`; anything but
PASS refuses cutover).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import apsw

from bluegreen.engine.db import quote_ident
from bluegreen.engine.migrations import Migration


@dataclass(frozen=True)
class Check:
    source: str  # "integrity_check", "foreign_key_check" or the validate file's name
    name: str
    expected: str
    actual: str
    status: str  # PASS or FAIL

    @property
    def passed(self) -> bool:
        return self.status == "PASS"


@dataclass(frozen=True)
class Report:
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def as_dicts(self) -> list[dict]:
        return [asdict(c) for c in self.checks]

    def summary(self) -> str:
        if self.passed:
            return f"{len(self.checks)} checks passed"
        return "; ".join(f"{c.source}: {c.name} expected {c.expected}, got {c.actual}" for c in self.failed)


def foreign_key_violations(conn: apsw.Connection, schema: str = "main") -> frozenset[tuple]:
    """(table, rowid, parent) of every row of `schema` violating a foreign key. A declaration
    SQLite cannot check (its parent key is not unique: "foreign key mismatch") fails the whole
    PRAGMA; then the file is checked table by table and each such table is one entry (table,
    None, message): one blue already had is compared like any violation, one a migration adds
    is named, and neither is a raw SQLite error."""
    pragma = f"PRAGMA {quote_ident(schema)}.foreign_key_check"
    try:
        return frozenset((t, r, p) for t, r, p, _ in conn.execute(pragma))
    except apsw.SQLError:
        pass
    found: set[tuple] = set()
    tables = conn.execute(f"SELECT name FROM {quote_ident(schema)}.sqlite_schema WHERE type = 'table'").fetchall()
    for (table,) in tables:
        try:
            found.update((t, r, p) for t, r, p, _ in conn.execute(f"{pragma}({quote_ident(table)})"))
        except apsw.SQLError as exc:
            found.add((table, None, str(exc).removeprefix("SQLError: ")))
    return frozenset(found)


@dataclass(frozen=True)
class ForeignKeys:
    """foreign_key_check of green and of blue taken at one capture position (hazard 17): with
    foreign keys off (SQLite's default) the application may break references on blue while green
    is built, and green, which mirrors blue, then has the same violations. Only those green has
    and blue has not at that position are the migration's doing."""

    green: frozenset[tuple]
    blue: frozenset[tuple]
    as_of: int | None = None  # the capture position both were taken at (None: blue was locked)

    @property
    def new(self) -> list[tuple]:
        return sorted(self.green - self.blue, key=repr)


def steps(migrations: list[Migration]) -> int:
    """How many steps run() reports progress in: integrity, foreign keys, one per validate script."""
    return 2 + sum(m.validate is not None for m in migrations)


def run(
    conn: apsw.Connection,
    migrations: list[Migration],
    fk: ForeignKeys,
    progress: Callable[[int, int], None] | None = None,
) -> Report:
    """fk: green's and blue's violations at one position; blue's are reported, only new ones refuse.
    progress(done, total) is told before the first step and after each (total: steps())."""
    total = steps(migrations)
    tell = progress or (lambda done, total: None)
    tell(0, total)
    checks = [_integrity(conn)]
    tell(1, total)
    checks.append(_foreign_keys(fk))
    done = 2
    tell(done, total)
    for migration in migrations:
        if migration.validate is not None:
            checks.extend(_script(conn, migration))
            done += 1
            tell(done, total)
    return Report(tuple(checks))


def _integrity(conn: apsw.Connection) -> Check:
    problems = [row[0] for row in conn.execute("PRAGMA main.integrity_check")]
    ok = problems == ["ok"]
    return Check("integrity_check", "database structure", "ok", "ok" if ok else "; ".join(problems[:5]), _status(ok))


def _foreign_keys(fk: ForeignKeys) -> Check:
    new = fk.new
    actual = str(len(new))
    if new:
        actual += " (" + "; ".join(_violation(t, r, p) for t, r, p in new[:5]) + ")"
    shared = fk.green & fk.blue
    if shared:
        where = f" at capture position {fk.as_of}" if fk.as_of is not None else ""
        actual += f"; {len(shared)} already in blue{where}, not counted"
    return Check("foreign_key_check", "rows newly violating foreign keys", "0", actual, _status(not new))


def is_unchecked(violation: tuple) -> bool:
    """An entry foreign_key_violations made for a declaration SQLite could not check at all."""
    table, rowid, parent = violation
    return rowid is None and parent.startswith("foreign key mismatch")


def _violation(table: str, rowid, parent: str) -> str:
    if is_unchecked((table, rowid, parent)):
        return f"{table}: {parent} (the parent key is not PRIMARY KEY or UNIQUE)"
    return f"{table} rowid {rowid} -> {parent}"


def describe_violation(violation: tuple) -> str:
    return _violation(*violation)


def _script(conn: apsw.Connection, migration: Migration) -> list[Check]:
    source = migration.validate.name
    try:
        cursor = conn.execute(migration.validate.read_text(encoding="utf-8"))
        rows = cursor.fetchall()
    except apsw.Error as exc:
        return [Check(source, "validate script runs", "no error", str(exc), "FAIL")]
    if not rows:
        return [Check(source, "validate script returns checks", "at least one row", "no rows", "FAIL")]
    checks = []
    for row in rows:
        if len(row) != 4:
            return [Check(source, "validate script shape", "4 columns", f"{len(row)} columns", "FAIL")]
        name, expected, actual, status = row
        checks.append(Check(source, str(name), str(expected), str(actual), "PASS" if status == "PASS" else str(status)))
    return checks


def _status(ok: bool) -> str:
    return "PASS" if ok else "FAIL"
