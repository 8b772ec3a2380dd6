"""`bluegreen import alembic|django`: another tool's exported SQL turned into bluegreen migrations.

Alembic: `alembic upgrade --sql FROM:TO` (offline mode) prints each revision as a section opened by
`-- Running upgrade FROM -> TO`, each ending with the statement that records it in
`alembic_version` (INSERT for the first revision of a branch, UPDATE after it). One bluegreen
migration per revision, the section as Alembic wrote it, history statement included (checked: a
section without it is refused). A `CREATE TABLE alembic_version` Alembic prints before the first
revision (when FROM is the base) goes into the first file.

Django: `python manage.py sqlmigrate APP NAME` prints one migration's SQL inside `BEGIN;`/`COMMIT;`
with a `--`-framed comment per operation, but not the row Django's `migrate` adds to
`django_migrations`: the importer adds it (and `CREATE TABLE IF NOT EXISTS django_migrations`, in
Django's own definition, for a file Django never migrated).

Both: `BEGIN;`/`COMMIT;` lines are dropped (bluegreen runs each migration in its own
transaction); the file is named `{seq}_{version}_{description}.sql` with seq the next free number,
version `{seq}+{id}` (id: the Alembic revision, or Django's `APP.NNNN`, letters, digits and dots
kept) and description from the revision's message or the migration's name. The history statements
are what keeps `alembic current` / `showmigrations` true on the file bluegreen deploys; on revert
blue, which never ran the migration, still holds the old rows. engine/migrations.py explains why
such a statement needs no _sync.sql. Nothing is written unless every file can be; no file is
overwritten; input that is not the tool's output is refused.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from bluegreen.engine import migrations
from bluegreen.errors import ArgumentInvalid, FileInTheWay, MigrationInvalid, NoSpace
from bluegreen.results import Result

MARKER = "-- bluegreen import:"  # first line of every imported file: which tool and which migration
_TRANSACTION = re.compile(r"^\s*(BEGIN(\s+TRANSACTION)?|COMMIT(\s+TRANSACTION)?|END\s+TRANSACTION)\s*;\s*$", re.I)
_ALEMBIC_SECTION = re.compile(r"^-- Running (upgrade|downgrade) (.*?) -> (\S+)\s*$", re.M)
# Alembic's log lines (stderr, with `2>&1`): stdout is buffered, so one may land inside a line of
# SQL; taken out with its newline, the SQL line is whole again.
_ALEMBIC_LOG = re.compile(r"(?:INFO|WARNI?N?G?|DEBUG|ERROR)\s+\[alembic\.[^\]]*\][^\n]*\n?")
_ALEMBIC_MESSAGE = re.compile(r"INFO\s+\[alembic\.[^\]]*\] Running upgrade [^\n]*? -> (\S+), ([^\n]+)")
_DJANGO_OPERATION = re.compile(r"^--\n-- .+\n--$", re.M)
_DJANGO_APP = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DJANGO_NAME = re.compile(r"^[A-Za-z0-9_]+$")
DJANGO_HISTORY_DDL = (
    'CREATE TABLE IF NOT EXISTS "django_migrations" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, '
    '"app" varchar(255) NOT NULL, "name" varchar(255) NOT NULL, "applied" datetime NOT NULL);'
)
ALEMBIC_HELP = "expected the output of `alembic upgrade --sql FROM:TO` (offline mode)"
DJANGO_HELP = "expected the output of `python manage.py sqlmigrate APP NAME`"


@dataclass(frozen=True)
class Planned:
    """One migration file to write."""

    name: str
    text: str
    marker: str  # the file's first line: MARKER, the tool and its name for the migration

    @property
    def identity(self) -> str:
        return self.marker[len(MARKER) :].strip()


def run(folder: Path, tool: str, source: str, *, app: str = "", name: str = "") -> Result:
    """Import one tool's output (from the file `source`, or stdin for `-`) into the migrations folder."""
    text = read_source(source)
    existing = migrations.discover(folder)  # refuses a missing folder or a misnamed file in it
    seq = max((m.seq for m in existing), default=0) + 1
    planned = alembic(text, seq) if tool == "alembic" else django(text, seq, app, name)
    _refuse_imported_twice(folder, planned)
    paths = write_all(folder, planned)
    lines = "\n".join(str(p) for p in paths)
    return Result(
        f"import {tool}",
        f"imported {len(paths)} migration(s) from {_shown(source)} into {folder}; `bluegreen plan` shows "
        f"what a deploy applies\n{lines}",
        data={"paths": [str(p) for p in paths], "path": str(paths[-1])},
    )


def read_source(source: str) -> str:
    if source == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            data = Path(source).read_bytes()
        except FileNotFoundError:
            raise ArgumentInvalid(f"{source}: file not found; give the exported SQL's path, or - for stdin") from None
        except IsADirectoryError:
            raise ArgumentInvalid(f"{source}: a folder, not a file; give the exported SQL's path") from None
        except PermissionError:
            raise ArgumentInvalid(f"{source}: not readable (permission denied)") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MigrationInvalid(f"{_shown(source)}: not UTF-8 text; {ALEMBIC_HELP} or {DJANGO_HELP}") from None
    return text.replace("\r\n", "\n")


def alembic(text: str, seq: int) -> list[Planned]:
    """One migration per `-- Running upgrade A -> B` section; each must record B in alembic_version."""
    messages = {rev: message for rev, message in _ALEMBIC_MESSAGE.findall(text)}  # present with 2>&1
    failed = re.search(r"^(?:FAILED: |ERROR\s+\[alembic).*$", text, re.M)
    if failed or re.search(r"^Traceback \(most recent call last\):$", text, re.M):
        said = failed.group().strip() if failed else [line for line in text.splitlines() if line.strip()][-1].strip()
        raise MigrationInvalid(f"Alembic failed ({said}); nothing was imported: {ALEMBIC_HELP}")
    sql = _ALEMBIC_LOG.sub("", text)
    sections = list(_ALEMBIC_SECTION.finditer(sql))
    if not sections:
        hint = " (this looks like Django's sqlmigrate output: use `bluegreen import django`)" if _is_django(sql) else ""
        raise MigrationInvalid(f"no `-- Running upgrade FROM -> TO` line: not Alembic's output; {ALEMBIC_HELP}{hint}")
    if any(s.group(1) == "downgrade" for s in sections):
        raise MigrationInvalid(
            "this is `alembic downgrade --sql` output: bluegreen imports upgrades only (its revert returns to the "
            f"previous generation, with its own history rows); {ALEMBIC_HELP}"
        )
    preamble = _without_transactions(sql[: sections[0].start()])
    if _code(preamble) and not re.search(r"\bCREATE\s+TABLE\s+alembic_version\b", preamble, re.I):
        raise MigrationInvalid(
            f"SQL before the first `-- Running upgrade` line that is not Alembic's version table: {ALEMBIC_HELP}"
        )
    planned = []
    for index, section in enumerate(sections):
        end = sections[index + 1].start() if index + 1 < len(sections) else len(sql)
        before, revision = section.group(2).strip() or "base", section.group(3)
        body = _without_transactions(sql[section.end() : end]).strip()
        quoted = re.escape(f"'{revision}'")
        records = re.compile(
            rf"\bINSERT\s+INTO\s+alembic_version\b[^;]*{quoted}|\bUPDATE\s+alembic_version\s+SET\s+version_num\s*=\s*{quoted}",
            re.I,
        )
        if not records.search(body):
            raise MigrationInvalid(
                f"revision {revision}: its section has no INSERT INTO / UPDATE alembic_version recording it, so "
                "`alembic current` would not follow the deploy (a renamed version_table in env.py is not "
                f"supported); {ALEMBIC_HELP}"
            )
        if index == 0 and _code(preamble):
            body = preamble.strip() + "\n\n" + body
        description = _slug(messages.get(revision, "")) or "alembic_revision"
        version = f"{seq + index}+{_id(revision)}"
        head = (
            f"{MARKER} alembic {revision}\n-- Alembic revision {revision} (upgrade from {before}), from "
            "`alembic upgrade --sql`;\n-- its alembic_version statement keeps `alembic current` true on this file.\n\n"
        )
        planned.append(Planned(_file_name(seq + index, version, description), head + body + "\n", head.split("\n")[0]))
    return planned


def django(text: str, seq: int, app: str, name: str) -> list[Planned]:
    """sqlmigrate's SQL without BEGIN/COMMIT, with the django_migrations row `migrate` would add."""
    if not _DJANGO_APP.match(app):
        raise ArgumentInvalid(f"{app!r}: not a Django app label (the APP you gave sqlmigrate, e.g. shop)")
    if not _DJANGO_NAME.match(name):
        raise ArgumentInvalid(
            f"{name!r}: not a Django migration name (its full file name without .py, e.g. 0002_add_price)"
        )
    if _ALEMBIC_SECTION.search(text):
        raise MigrationInvalid(f"this is Alembic's output: use `bluegreen import alembic`; {DJANGO_HELP}")
    if not _is_django(text):
        raise MigrationInvalid(f"no `--` / `-- Operation` / `--` comment block: not Django's output; {DJANGO_HELP}")
    if "THIS OPERATION CANNOT BE WRITTEN AS SQL" in text:
        raise MigrationInvalid(
            f"{app} {name} holds an operation sqlmigrate cannot write as SQL (RunPython): importing the rest "
            "would record it as applied without running it; write that step as SQL in a bluegreen migration instead"
        )
    body = _without_transactions(text).strip()
    if not _code(body):
        body += "\n-- (no SQL: the migration changes no table; its history row below is all it does)"
    number = re.match(r"\d+", name)
    version = f"{seq}+{_id(app)}.{number.group() if number else _id(name)}"
    description = _slug(f"{app}_{name[number.end() :] if number else name}")
    head = (
        f"{MARKER} django {app} {name}\n-- Django migration {app}.{name}, from `manage.py sqlmigrate {app} {name}`;\n"
        "-- the django_migrations row at the end keeps `showmigrations` true on this file.\n\n"
    )
    record = (
        'INSERT INTO "django_migrations" ("app", "name", "applied") '
        f"VALUES ('{app}', '{name}', strftime('%Y-%m-%d %H:%M:%f', 'now'));"
    )
    text = f"{head}{DJANGO_HISTORY_DDL}\n\n{body}\n\n{record}\n"
    return [Planned(_file_name(seq, version, description), text, head.split("\n")[0])]


def write_all(folder: Path, planned: list[Planned]) -> list[Path]:
    """Create every file (never over an existing one), or none: a failure removes what was written."""
    paths = [folder / p.name for p in planned]
    for path in paths:
        if path.exists():
            raise FileInTheWay(f"{path}: already exists; bluegreen never writes over a file: move it away first")
    written: list[Path] = []
    try:
        for path, plan in zip(paths, planned):
            with open(path, "x", encoding="utf-8", newline="\n") as out:
                written.append(path)
                out.write(plan.text)
    except BaseException as exc:
        for path in written:
            path.unlink(missing_ok=True)
        if isinstance(exc, FileExistsError):
            raise FileInTheWay(f"{exc.filename}: appeared while importing; nothing was written") from None
        if isinstance(exc, OSError):
            raise NoSpace(f"{folder}: could not write the migrations ({exc.strerror}); nothing was written") from None
        raise
    return paths


def _refuse_imported_twice(folder: Path, planned: list[Planned]) -> None:
    wanted = {p.marker: p for p in planned}
    for path in sorted(folder.glob("*.sql")):
        first = path.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0].strip()
        if first in wanted:
            raise FileInTheWay(
                f"{path}: already holds {wanted[first].identity} (imported before); nothing was written: "
                "import only the revisions after it"
            )


def _without_transactions(sql: str) -> str:
    return "\n".join(line for line in sql.split("\n") if not _TRANSACTION.match(line))


def _is_django(text: str) -> bool:
    return bool(_DJANGO_OPERATION.search(text.replace("\r\n", "\n")))


def _code(sql: str) -> bool:
    return bool(re.sub(r"--[^\n]*|/\*.*?\*/|\s", "", sql, flags=re.S))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()[:60].strip("_")


def _id(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z.]", "", text) or "0"


def _file_name(seq: int, version: str, description: str) -> str:
    """{seq}_{version}_{description}.sql; _id and _slug keep to the characters the name allows."""
    return f"{seq:03d}_{version}_{description}.sql"


def _shown(source: str) -> str:
    return "stdin" if source == "-" else source
