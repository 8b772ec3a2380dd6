"""The date gate: a migration that may only run from a given day on.

A migration declares it with one comment line, anywhere in the file:

    -- bluegreen: not-before SELECT setting_value FROM application_settings WHERE setting_key = 'x'

The text after `not-before` is one read-only SQL query, run on the active file (the file the
migration would be applied to a copy of), whose first column of its first row is a date or
datetime SQLite's date functions read ('2027-01-31', '2027-01-31 12:00:00'). While today (UTC,
`julianday('now')`) is before it, or the query gives no date, the migration is refused (exit 3,
`NotYetDue`): `plan` reports it with the other preflight findings, `prepare` and `deploy` refuse
before anything is built. A query that does not run is a broken migration (`MigrationInvalid`,
exit 2, naming the file and line). The date lives in the data, not in the file, so an earlier
release can compute it when it runs (`date('now', '+30 days')`) and a later one waits for it.
"""

from __future__ import annotations

import re
from pathlib import Path

import apsw

from bluegreen.engine import migrations
from bluegreen.engine.db import open_db
from bluegreen.errors import BluegreenError, MigrationInvalid, NotYetDue

_DECLARATION = re.compile(r"^\s*--\s*bluegreen:\s*not-before\b(?P<query>.*)$", re.IGNORECASE)


def declared(path: Path) -> tuple[int, str] | None:
    """(line number, query) of a migration's not-before line, or None."""
    found = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = _DECLARATION.match(line)
        if match is None:
            continue
        if found is not None:
            raise MigrationInvalid(f"{path}:{number}: a second `-- bluegreen: not-before` line; keep one")
        query = match["query"].strip().rstrip(";").strip()
        if not query:
            raise MigrationInvalid(
                f"{path}:{number}: `-- bluegreen: not-before` needs a query after it, e.g. "
                "-- bluegreen: not-before SELECT setting_value FROM settings WHERE key = 'cleanup_date'"
            )
        found = (number, query)
    return found


def refusals(active: Path, pending: list[migrations.Migration]) -> list[BluegreenError]:
    """A finding per pending migration whose date has not come (or whose query is broken)."""
    gated = [(m, d) for m in pending if (d := _declared_or_error(m)) is not None]
    if not gated:
        return []
    found: list[BluegreenError] = []
    conn = open_db(active, query_only=True)
    try:
        for migration, declaration in gated:
            if isinstance(declaration, BluegreenError):
                found.append(declaration)
                continue
            line, query = declaration
            where = f"{migration.path}:{line}"
            try:
                rows = conn.execute(query).fetchall()
                value = rows[0][0] if rows and rows[0] else None
                ((due, today),) = conn.execute(
                    "SELECT julianday('now') >= julianday(?), date('now')", (value,)
                ).fetchall()
            except apsw.Error as exc:
                found.append(
                    MigrationInvalid(
                        f"{where}: the not-before query does not run on {active.name}: {type(exc).__name__}: {exc}",
                        details={"file": migration.file, "line": line},
                    )
                )
                continue
            if due:
                continue
            details = {"file": migration.file, "line": line, "not_before": value, "today": today}
            if value is None or due is None:
                why = f"its not-before query gives no date on {active.name} (got {value!r})"
                fix = "deploy the release that sets that date first, then wait for the day"
            else:
                why = f"not before {value}; today (UTC) is {today}"
                fix = f"deploy it on or after {value}"
            found.append(NotYetDue.with_hint(f"{where}: {migration.file} may not run yet: {why}", fix, details=details))
    finally:
        conn.close()
    return found


def _declared_or_error(migration: migrations.Migration):
    try:
        return declared(migration.path)
    except MigrationInvalid as exc:
        return exc
