"""`bluegreen new --for MIGRATION --with sync,rollback`: companions for a migration already
written, with what bluegreen derives from it drafted in (engine/drafts.py), commented out, as a
starting point to check and edit. Other kinds (validate, benchmark, check) get their skeletons.

It writes only files that are absent or still the untouched skeleton `bluegreen new --with`
wrote; anything a person edited is refused, never overwritten. A migration that does not run on
the active file's schema is refused before anything is written (its file and line, exit 2).
"""

from __future__ import annotations

from pathlib import Path

from bluegreen import config
from bluegreen.engine import drafts, generations, migrations
from bluegreen.engine.db import open_db
from bluegreen.errors import ArgumentInvalid, FileInTheWay
from bluegreen.files.journal import Phase, Store
from bluegreen.results import Result
from bluegreen.tools import skeletons

MARK_START, MARK_END = "-- >>> draft", "-- <<< draft"


def companions_for(cfg: config.Config, given: str, kinds: list[str]) -> Result:
    kinds = list(dict.fromkeys(kinds or ["sync", "rollback"]))
    folder = cfg.migrations.dir
    found = migrations.discover(folder) if folder.is_dir() else []
    migration = next((m for m in found if m.file == Path(given).name or str(m.seq) == given.lstrip("0")), None)
    if migration is None:
        names = ", ".join(m.file for m in found) or "none"
        raise ArgumentInvalid.with_hint(f"--for {given}: no such migration in {folder}", f"one of: {names}")
    blue = _base(cfg, migration)
    pending = generations.pending(folder, blue)
    stem = migration.file[: -len(".sql")]
    context = dict(stem=stem, migration=migration.file, description=migration.description, version=migration.version)
    planned = [(folder / f"{stem}_{kind}.sql", kind) for kind in kinds]
    for path, kind in planned:
        if path.exists() and path.read_text(encoding="utf-8") != skeletons.COMPANIONS[kind].format(
            file=path.name, seq=migration.seq, **context
        ):
            raise FileInTheWay(f"{path}: already exists and was edited; bluegreen never overwrites it")
    drafted = None
    if {"sync", "rollback"} & set(kinds):
        conn = open_db(blue, query_only=True)
        try:
            drafted = drafts.draft(
                conn, pending[: pending.index(next(m for m in pending if m.file == migration.file)) + 1], migration
            )
        finally:
            conn.close()
    for path, kind in planned:
        text = skeletons.COMPANIONS[kind].format(file=path.name, seq=migration.seq, **context)
        if drafted is not None and kind in ("sync", "rollback"):
            text = _with_draft(text, getattr(drafted, kind), migration.file, kind)
        path.write_text(text, encoding="utf-8")
    lines = [f"companions for {migration.file} in {folder}:"] + [f"  {p.name}" for p, _ in planned]
    if drafted is not None:
        lines.append("drafted from what bluegreen derives (commented out: check it, then uncomment it):")
        lines += [f"  {table}: {what}" for table, what in drafted.tables.items()]
    lines.append("edit them, then: bluegreen plan; bluegreen deploy")
    data = dict(
        migration=migration.file, companions=[str(p) for p, _ in planned], tables=drafted.tables if drafted else {}
    )
    return Result("new", "\n".join(lines), [], data)


def _base(cfg: config.Config, migration: migrations.Migration) -> Path:
    """The file the migration is drafted against: the active one while it lacks the migration,
    else (deployed, the revert window open) the previous generation a revert would go back to."""
    store = Store(cfg.database.pointer)
    if not cfg.database.pointer.exists():
        return cfg.database.initial
    active = generations.active_path(cfg.database.pointer, store)
    candidates = [active]
    state = store.load() if store.initialized() else None
    if state is not None and state.phase == Phase.CUT_OVER and state.blue:
        candidates.append(store.folder / state.blue)
    for path in candidates:
        if path.is_file() and migration.file in [m.file for m in generations.pending(cfg.migrations.dir, path)]:
            return path
    raise ArgumentInvalid(
        f"--for {migration.file}: {active.name} already has it"
        + ("" if len(candidates) > 1 else " and no revert window is open")
        + "; companions are drafted for a migration the active file, or the file a revert goes back to, lacks"
    )


def _with_draft(text: str, sql: str, migration: str, kind: str) -> str:
    """The skeleton with the draft before its tripwire (sync) or at its end (rollback)."""
    block = [
        f"-- Drafted by `bluegreen new --for {migration}` from what bluegreen derives: check every line.",
        f"-- A companion overrides derivation, so this file answers for every table {migration}",
        "-- changed, the ones bluegreen would derive by itself included. To use the draft, remove the",
        '-- "-- " at the start of each line between the two markers'
        + (", then delete the tripwire below." if kind == "sync" else "."),
        MARK_START,
        *[("-- " + line).rstrip() for line in sql.splitlines()],
        MARK_END,
        "",
    ]
    if kind == "sync":
        head, tripwire = text.split("-- Tripwire:", 1)
        return head + "\n".join(block) + "-- Tripwire:" + tripwire
    return text + "\n" + "\n".join(block)
