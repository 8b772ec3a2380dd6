"""The checks plan, prepare and deploy run before anything is built.

Every pending migration and its companions run on a schema-only copy of the active file
(engine/dryrun.py): nothing is written anywhere. What they find, each typed by cause and naming
the file and the line:

- a migration that fails (a syntax error, no such table, ...), that holds BEGIN/COMMIT/ROLLBACK,
  VACUUM or ATTACH, or a companion that fails where it will run: `MigrationInvalid` (exit 2);
- a migration that will need a companion it lacks (a `_sync.sql` for what replay cannot keep
  exact, by the builder's own rule, shapes.missing_sync): `CompanionMissing` (exit 3), naming
  the file to create. Not asked of `deploy --offline`, which needs no sync script;
- a migration whose `-- bluegreen: not-before` date has not come (gates/notbefore.py):
  `NotYetDue` (exit 3), online and offline.

`plan` and `status` report them and exit with their code; `prepare` and `deploy` refuse with the
first (all of them in its details) before the free-space estimate, the hooks, the backup and
the generation number, so an up-front refusal spends no number (invariant 5).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import apsw

from bluegreen.engine import dryrun, migrations, shapes
from bluegreen.errors import EXIT_OK, BluegreenError
from bluegreen.gates import notbefore

_WHERE = re.compile(r"^(?P<file>[^\n]+?\.sql)(?::(?P<line>\d+))?: ")


@dataclass(frozen=True)
class Preflight:
    findings: tuple[BluegreenError, ...]
    note: str = ""  # why the dry run could not run ('' when it did, or had nothing to do)
    tables: tuple[tuple[str, str], ...] = ()  # online: (table, what replay does with it)

    @property
    def exit_code(self) -> int:
        """2 when any input is wrong (fix that first), 3 when only a refusal is ahead, else 0."""
        return min((f.exit_code for f in self.findings), default=EXIT_OK)

    @property
    def first(self) -> BluegreenError | None:
        return next((f for f in self.findings if f.exit_code == self.exit_code), None)

    def as_dicts(self) -> list[dict]:
        return [_as_dict(f) for f in self.findings]

    def table_lines(self, most: int = 20) -> list[str]:
        """Per table, what an online deploy's catch-up and revert's carry-back do with it."""
        if not self.tables:
            return []
        changed = [(t, what) for t, what in self.tables if what != REPLAYED]
        shown = self.tables if len(self.tables) <= most else changed
        lines = ["tables      what catch-up (blue -> green) and carry-back (green -> blue) do with each table:"]
        lines += [f"  {t}: {what}" for t, what in shown]
        if len(shown) < len(self.tables):
            lines.append(f"  {len(self.tables) - len(shown)} other table(s): {REPLAYED}")
        return lines

    def lines(self) -> list[str]:
        """The plan's and status's text lines."""
        if self.note:
            return [f"checks      not dry-run: {self.note}"]
        shown = self.table_lines()
        if not self.findings:
            return ["checks      every pending migration and companion ran on a schema-only copy: no problem", *shown]
        return (
            shown
            + [f"checks      {len(self.findings)} problem(s); prepare and deploy would refuse (exit {self.exit_code}):"]
            + [f"  {type(f).__name__}: {f.message}" for f in self.findings]
        )


def check(blue: Path, pending: list[migrations.Migration], *, online: bool = True) -> Preflight:
    """The findings for `pending` on blue's schema; online: the deploy keeps blue writable, so
    what replay cannot keep exact needs a sync companion."""
    if not pending:
        return Preflight(())
    try:
        due = tuple(notbefore.refusals(Path(blue), pending))
        found = dryrun.run(blue, pending)
    except apsw.Error as exc:  # e.g. a full disk: prepare itself meets it and says so
        return Preflight((), f"cannot read the schema of {Path(blue).name} ({exc})")
    if found.uncopied:
        name, why = next(iter(found.uncopied.items()))
        return Preflight(
            due, f"{name} of {Path(blue).name} cannot be made without the application ({why}); prepare checks instead"
        )
    findings = [*due, *found.problems]
    tables: tuple[tuple[str, str], ...] = ()
    if online and found.reshape is not None:
        refused = shapes.missing_sync(found.reshape, pending, found.effects)
        if refused is not None:
            findings.append(refused)
        tables = _per_table(found.reshape, refused, found.indexes)
    return Preflight(tuple(findings), tables=tables)


REPLAYED = "replayed as it is"


def _per_table(report: shapes.ReshapeReport, refused, indexes: dict) -> tuple[tuple[str, str], ...]:
    """replayed / derived (how) / carried by a companion / needs a companion (why); with the
    indexes the migrations changed on it."""
    named = set((refused.details or {}).get("tables", [])) if refused is not None else set()
    found = []
    for table in report.tables:
        changed = "; ".join(indexes.get(table, []))
        if table in report.derived:
            how = "; ".join(x for x in (report.derived[table].how, changed) if x) or "indexes only"
            found.append((table, f"derived, no companion needed ({how})"))
        elif table not in report.reshaped and table not in report.history and changed:
            found.append((table, f"{REPLAYED}, no companion needed ({changed})"))
        elif table in report.reshaped:
            why = report.reshaped[table]
            needs = "needs a _sync.sql companion" if table in named else "carried by the sync companion"
            found.append((table, f"{needs} ({why}); a revert needs a _rollback.sql for it"))
        elif table in report.history:
            found.append((table, "a migration tool's history table: green's rows are kept"))
        else:
            found.append((table, REPLAYED))
    return tuple(found)


def require(blue: Path, pending: list[migrations.Migration], *, online: bool = True) -> None:
    """Refuse with the first finding (exit 2 before 3), every finding in its details."""
    found = check(blue, pending, online=online)
    error = found.first
    if error is not None:
        error.details = {**(error.details if isinstance(error.details, dict) else {}), "findings": found.as_dicts()}
        raise error


def _as_dict(error: BluegreenError) -> dict:
    details = error.details if isinstance(error.details, dict) else {}
    where = _WHERE.match(error.message)
    line = details.get("line") or (int(where["line"]) if where and where["line"] else None)
    return {
        "cause": type(error).__name__,
        "exit_code": error.exit_code,
        "file": details.get("file") or (Path(where["file"]).name if where else None),
        "line": line,
        "message": error.message,
        **({"create": details["create"]} if "create" in details else {}),
    }
