"""`bluegreen check`: an integrity monitor for the active file, read-only.

Runs `PRAGMA integrity_check`, `PRAGMA foreign_key_check`, then named data-integrity queries:
`[check.queries]` in the config and the `_check.sql` companion of every migration the active file
has applied (so the checks always match the schema the file is in). Each query returns the
offending rows; any row is a finding. Nothing is written: the file is opened query-only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import apsw

from bluegreen.config import Config
from bluegreen.engine import migrations, namedsql
from bluegreen.engine.db import open_db
from bluegreen.engine.namedsql import NamedQuery
from bluegreen.errors import EXIT_GATE, EXIT_OK
from bluegreen.gates import validate
from bluegreen.results import Result


@dataclass(frozen=True)
class Finding:
    source: str  # "integrity_check", "foreign_key_check", a companion's name or the config section
    name: str
    found: int  # offending rows (0: clean)
    columns: tuple[str, ...]
    sample: tuple[tuple, ...]  # the first few offending rows
    error: str = ""  # the query could not run: that is not clean either

    @property
    def clean(self) -> bool:
        return self.found == 0 and not self.error


def run(config: Config, active: Path) -> Result:
    conn = open_db(active, query_only=True)
    try:
        limit = config.check.sample_rows
        findings = [_integrity(conn, limit), _foreign_keys(conn, limit)]
        findings += [_query(conn, q, limit) for q in _queries(config, conn)]
    finally:
        conn.close()
    dirty = [f for f in findings if not f.clean]
    data = {"active": str(active), "clean": not dirty, "checks": [asdict(f) for f in findings]}
    lines = [f"{active.name}: {len(findings)} check(s), " + (f"{len(dirty)} found problems" if dirty else "all clean")]
    for finding in findings:
        status = "ERROR " + finding.error if finding.error else ("ok" if finding.clean else f"{finding.found} row(s)")
        lines.append(f"  {finding.name:<32} {status}  [{finding.source}]")
        if finding.sample:
            lines.append(f"      {', '.join(finding.columns)}")
            lines.extend(f"      {row!r}" for row in finding.sample)
    if not dirty:
        return Result("check", "\n".join(lines), data=data, exit_code=EXIT_OK)
    summary = "; ".join(
        f"{f.name}: " + (f"could not run ({f.error})" if f.error else f"{f.found} row(s)") for f in dirty
    )
    return Result(
        "check",
        "\n".join(lines),
        data=data,
        exit_code=EXIT_GATE,
        error=f"{active}: check found problems ({summary}); the report lists sample rows: fix them "
        "with SQL on the active file, then run `bluegreen check` again",
    )


def _queries(config: Config, conn: apsw.Connection) -> list[NamedQuery]:
    """Config queries, then the check companions of the migrations this file has applied."""
    found = namedsql.from_config("check", config.check.queries)
    applied = {a.file for a in migrations.history(conn) if a.success}
    for migration in migrations.discover(config.migrations.dir):
        if migration.check is not None and migration.file in applied:
            found.extend(namedsql.parse(migration.check, "check"))
    return found


def _integrity(conn: apsw.Connection, limit: int) -> Finding:
    problems = [row for row in conn.execute("PRAGMA main.integrity_check") if row != ("ok",)]
    return Finding("integrity_check", "integrity_check", len(problems), ("problem",), tuple(problems[:limit]))


def _foreign_keys(conn: apsw.Connection, limit: int) -> Finding:
    """validate's check: a declaration SQLite cannot check (its parent key is not unique, "foreign
    key mismatch") is one finding naming its table, not a raw SQLite error for the whole file."""
    found = sorted(validate.foreign_key_violations(conn), key=repr)
    violations = [v for v in found if not validate.is_unchecked(v)]
    unchecked = "; ".join(validate.describe_violation(v) for v in found if validate.is_unchecked(v))
    if unchecked:
        unchecked += ": make the parent columns its PRIMARY KEY or give them a UNIQUE index"
    return Finding(
        "foreign_key_check",
        "foreign_key_check",
        len(violations),
        ("table", "rowid", "parent"),
        tuple(violations[:limit]),
        error=unchecked,
    )


def _query(conn: apsw.Connection, query: NamedQuery, limit: int) -> Finding:
    problem = namedsql.statement_problem(conn, query.sql)
    if problem:
        return Finding(query.source, query.name, 0, (), (), error=problem)
    try:
        cursor = conn.execute(query.sql)
        sample, count, columns = [], 0, ()
        for row in cursor:
            if not columns:
                columns = tuple(d[0] for d in cursor.getdescription())
            count += 1
            if len(sample) < limit:
                sample.append(row)
    except apsw.Error as exc:
        return Finding(query.source, query.name, 0, (), (), error=f"{type(exc).__name__}: {exc}")
    return Finding(query.source, query.name, count, columns, tuple(sample))
