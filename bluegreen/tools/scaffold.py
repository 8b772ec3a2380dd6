"""The on-ramp for a database of your own: `bluegreen init --database PATH` where no config is yet
(a commented config.toml, a migrations/ folder, then the usual adoption) and `bluegreen new`
(the next migration file, with companion skeletons that teach their contract).

Every refusal comes before anything is written; what `init` wrote is taken back if the adoption
after it fails, so a refused or failed command leaves the folder as it found it.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w

from bluegreen import config
from bluegreen.engine import migrations
from bluegreen.engine.db import check_database, open_db
from bluegreen.errors import ArgumentInvalid, DatabaseInvalid, FileInTheWay, MigrationInvalid
from bluegreen.files.layout import STATE_DIR, file_mode, folder_mode, make_dirs
from bluegreen.lifecycle.controller import Controller
from bluegreen.results import Result
from bluegreen.tools import skeletons

POINTER_NAME = "current.toml"
MIGRATIONS_DIR = "migrations"
FIRST_VERSION = "1.0.0"
DESCRIPTION_MAX = 100
_DESCRIPTION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")
_VERSION = re.compile(r"^v?(\d+(?:\.\d+)*)([-+][0-9A-Za-z.]+)?$")

INIT_EXAMPLES = """\
examples:
  bluegreen init --database app.db
      in a folder without config.toml: writes config.toml (commented: every setting, what it does),
      makes migrations/, puts the pointer current.toml beside app.db and adopts app.db as generation 1
  bluegreen init --database data/app.db --config ./config.toml
      the same for a database in a subfolder (it must be inside the config's folder)
  bluegreen init
      with a config.toml: adopts its database.initial (as does --database naming that same file)
then: bluegreen new add_status; write the SQL into the file it prints; bluegreen plan; bluegreen deploy

refused (exit 2, nothing written): a database that is missing, not SQLite, or not in WAL mode (the
message says how to switch); a database outside the config's folder or a symlink; a config.toml
that names another database; a current.toml or .bluegreen/ already beside the database"""

NEW_EXAMPLES = """\
examples:
  bluegreen new add_status            (the last migration being 001_v1.0.0_create_orders.sql)
      -> migrations/002_v1.0.1_add_status.sql (the next number; the last migration's version with
         its last number raised by one: 1.0.0 -> 1.0.1, 2.1 -> 2.2; 1.0.0 for the first migration)
  bluegreen new split_names --version 2.0.0 --with sync,rollback,validate
      -> the migration and three commented companions that explain their contract
         (sync: keeps green exact while blue is written; rollback: carries green's writes back on
         revert; validate: checks green before cutover; also benchmark, check)
  path="$(bluegreen new add_status | tail -n 1)"
      the file's path is the last line of stdout (with --json: "path")
  bluegreen new --for 002_v1.1.0_split_names.sql            (once its SQL is written)
      -> its _sync.sql and _rollback.sql with what bluegreen derives from that SQL drafted in,
         commented out: per table the catch-up and carry-back statements, TODO lines where it
         cannot derive them (`bluegreen plan` says which tables need them)

DESCRIPTION is letters, digits and _ (add_status, not "add status"), at most 100 characters, not
ending like a companion (_sync, _rollback, _validate, _benchmark, _check). --version may not go
below the last migration's. An existing file is never overwritten."""


@dataclass
class Scaffold:
    """What `init --database` wrote, in order, so a failed adoption can take it back."""

    config_path: Path
    database: Path
    made: list[Path] = field(default_factory=list)

    def adopt(self, controller: Controller) -> Result:
        try:
            adopted = controller.init()
        except BaseException:
            self.undo()
            raise
        folder = self.config_path.parent
        lines = [
            f"wrote {self.config_path} (commented: every section you may need, what it does)",
            f"made {folder / MIGRATIONS_DIR}/ for your migrations"
            if folder / MIGRATIONS_DIR in self.made
            else f"kept {folder / MIGRATIONS_DIR}/ as it was",
            adopted.message,
            f"pointer {controller.config.database.pointer} names it: open the database through it "
            "(`bluegreen path`, or bluegreen.client)",
            "next: bluegreen new DESCRIPTION (e.g. bluegreen new add_status), write the SQL, bluegreen plan, "
            "bluegreen deploy",
        ]
        data = dict(adopted.data, config=str(self.config_path), migrations=str(folder / MIGRATIONS_DIR))
        return Result("init", "\n".join(lines), adopted.timings, data)

    def undo(self) -> None:
        """Remove what init wrote: the pointer and the state folder (neither was there before:
        ensure_config checked), the config, the migrations folder while still empty."""
        pointer_path, state = self.database.parent / POINTER_NAME, self.database.parent / STATE_DIR
        if pointer_path.is_file():
            pointer_path.unlink()
        shutil.rmtree(state, ignore_errors=True)
        for path in reversed(self.made):
            try:
                path.rmdir() if path.is_dir() else path.unlink()
            except OSError:
                pass


def ensure_config(config_path: Path, database: str) -> Scaffold | None:
    """`init --database PATH`: None when the config is there and names that database (init goes on
    as always); otherwise check everything, then write the config and make the migrations folder."""
    if not database.strip() or any(ord(c) < 32 for c in database):
        raise ArgumentInvalid(f"--database {database!r}: give the path of your SQLite file, e.g. --database app.db")
    given = Path(database)
    if config_path.exists():
        existing = config.load(config_path)
        if existing.database.initial != given.resolve():
            raise ArgumentInvalid.with_hint(
                f"{existing.path}: already names {existing.database.initial} as database.initial, not "
                f"{given.resolve()}; nothing was changed",
                "run `bluegreen init` without --database to adopt that one, or pass --config NEW/config.toml "
                "to start a project for this database in another folder",
            )
        return None
    project = config_path.absolute().parent
    if not project.is_dir():
        raise ArgumentInvalid(
            f"{config_path}: its folder {project} does not exist; create it (and put the database in it) first"
        )
    if given.is_symlink():
        raise ArgumentInvalid.with_hint(
            f"--database {database}: is a symlink (to {os.path.realpath(given)})",
            "name the database file itself: generations are made beside it",
        )
    db = given.absolute()
    if not db.exists():
        raise DatabaseInvalid.with_hint(
            f"{db}: database file not found; bluegreen adopts an existing SQLite file",
            "create it (your application does, or sqlite3 app.db 'PRAGMA journal_mode=WAL'), then run init again",
        )
    try:
        relative = db.resolve().relative_to(project.resolve())
    except ValueError:
        raise ArgumentInvalid.with_hint(
            f"--database {database}: {db.resolve()} is outside {project.resolve()}, the folder config.toml "
            "goes in; nothing was written",
            "run init in the database's folder (or a folder above it), or pass --config FOLDER/config.toml",
        ) from None
    check_database(db, "database")  # missing, not SQLite, not WAL: the same refusals as init's
    _check_history_table(db)
    for taken, what in ((db.parent / POINTER_NAME, "a pointer file"), (db.parent / STATE_DIR, "a state folder")):
        if taken.exists() or taken.is_symlink():
            raise FileInTheWay.with_hint(
                f"{taken}: already there ({what} of an earlier bluegreen project?); nothing was written",
                "restore that project's config.toml and run `bluegreen init`, or move the file away",
            )
    migrations_dir = project / MIGRATIONS_DIR
    if migrations_dir.exists() and not migrations_dir.is_dir():
        raise FileInTheWay(f"{migrations_dir}: a file stands where the migrations folder goes; move it away")
    text = skeletons.CONFIG.format(
        database=relative.as_posix(),
        initial=_toml(relative.as_posix()),
        pointer=_toml((relative.parent / POINTER_NAME).as_posix()),
        migrations=_toml(MIGRATIONS_DIR),
    )
    made = Scaffold(config_path.absolute(), db.resolve())
    mode = file_mode(db) & 0o666 | 0o400
    try:
        with open(os.open(made.config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "w", encoding="utf-8") as f:
            made.made.append(made.config_path)
            f.write(text)
        if not migrations_dir.is_dir():
            make_dirs(migrations_dir, folder_mode(mode))
            made.made.append(migrations_dir)
        config.load(made.config_path)  # what was written must load: else take it back
    except BaseException:
        made.undo()
        raise
    return made


def _check_history_table(db: Path) -> None:
    """bluegreen keeps its history in schema_migrations; another tool's table of that name is
    refused before anything is written (migrations.history refuses it by name)."""
    conn = open_db(db, query_only=True)
    try:
        migrations.history(conn)
    finally:
        conn.close()


def _toml(value: str) -> str:
    """A TOML string literal for value, quoted and escaped as TOML wants."""
    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()


def new_migration(cfg: config.Config, description: str, version: str | None, companions: list[str]) -> Result:
    """`bluegreen new`: the next migration file (and companions), never over an existing file."""
    _check_description(description)
    folder = cfg.migrations.dir
    if not folder.is_dir():
        raise ArgumentInvalid.with_hint(
            f"{folder}: migrations folder not found ([migrations] dir in {cfg.path})",
            f"create it (mkdir {folder}) or fix the config",
        )
    existing = migrations.discover(folder)
    last = existing[-1] if existing else None
    seq = last.seq + 1 if last else 1
    chosen = _version(version, last)
    width = max(3, len(_digits_prefix(last.path.name))) if last else 3
    stem = f"{seq:0{width}d}_v{chosen}_{description}"
    main = folder / f"{stem}.sql"
    context = dict(stem=stem, migration=main.name, description=description, version=chosen, seq=seq)
    planned = [(main, skeletons.MIGRATION)] + [
        (folder / f"{stem}_{kind}.sql", skeletons.COMPANIONS[kind]) for kind in dict.fromkeys(companions)
    ]
    for path, _ in planned:
        if path.exists() or path.is_symlink():
            raise FileInTheWay(f"{path}: already exists; bluegreen never overwrites a migration file")
    written: list[Path] = []
    try:
        for path, template in planned:
            with open(path, "x", encoding="utf-8") as handle:
                written.append(path)
                handle.write(template.format(file=path.name, **context))
    except FileExistsError:  # made by someone else between the check and here: theirs, kept
        _remove(written)
        raise FileInTheWay(f"{path}: appeared while writing; bluegreen never overwrites a migration file") from None
    except BaseException:
        _remove(written)
        raise
    lines = [f"new migration {seq} (version {chosen}) in {folder}:"]
    lines += [f"  {p.name}" for p in written[1:]]
    if written[1:]:
        lines.append("  (companions: commented skeletons; each says what it gets and what it must do)")
    lines.append("write its SQL, then: bluegreen plan; bluegreen deploy")
    lines.append(str(main))
    data = dict(path=str(main), seq=seq, version=chosen, companions=[str(p) for p in written[1:]])
    return Result("new", "\n".join(lines), [], data)


def _check_description(description: str) -> None:
    suggestion = re.sub(r"[^A-Za-z0-9]+", "_", description).strip("_").lower()[:DESCRIPTION_MAX] or "add_status"
    if not _DESCRIPTION.match(description) or len(description) > DESCRIPTION_MAX:
        raise ArgumentInvalid.with_hint(
            f"description {description!r}: use letters, digits and _ only, starting with a letter or digit, at "
            f"most {DESCRIPTION_MAX} characters (it becomes part of the file name)",
            f"e.g. bluegreen new {suggestion}",
        )
    for kind in migrations.COMPANIONS:
        if description.lower().endswith("_" + kind):
            raise ArgumentInvalid.with_hint(
                f"description {description!r}: ends like a _{kind}.sql companion, so its file would read as one",
                f"e.g. bluegreen new {description[: -len(kind) - 1]}_{kind}s",
            )


def _version(given: str | None, last: migrations.Migration | None) -> str:
    """--version as given (without a leading v), or the last migration's with its last number
    raised by one (1.0.0 -> 1.0.1; a -suffix is dropped); 1.0.0 for the first migration."""
    if given is None:
        if last is None:
            return FIRST_VERSION
        match = _VERSION.match(last.version)
        if not match:
            raise MigrationInvalid.with_hint(
                f"{last.path}: its version {last.version!r} has no number to raise", "pass --version V"
            )
        numbers = match.group(1).split(".")
        return ".".join([*numbers[:-1], str(int(numbers[-1]) + 1)])
    match = _VERSION.match(given)
    if not match:
        raise ArgumentInvalid(
            f"--version {given!r}: expected numbers separated by dots, e.g. 1.2.0 or v2.0.0 (a -rc1 suffix may follow)"
        )
    chosen = given.removeprefix("v")
    if last is not None and _key(chosen) < _key(last.version):
        raise ArgumentInvalid.with_hint(
            f"--version {chosen}: below {last.version}, the version of the last migration ({last.file})",
            f"give {last.version} or higher: versions only go forward",
        )
    return chosen


def _key(version: str) -> tuple:
    match = _VERSION.match(version)
    if not match:
        return ()
    numbers = tuple(int(n) for n in match.group(1).split("."))
    # a pre-release (-rc1) sorts below its release; a +build suffix does not change the order
    return numbers, 0 if (match.group(2) or "").startswith("-") else 1


def _digits_prefix(name: str) -> str:
    match = re.match(r"^(\d+)_", name)
    return match.group(1) if match else ""


def _remove(paths: list[Path]) -> None:
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
