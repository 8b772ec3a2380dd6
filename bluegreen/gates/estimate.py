"""Estimates before anything runs: what each pending migration touches, how big green gets, and
whether the data folder has room for it.

Which tables a migration reads and writes is learnt by applying the pending migrations to an
in-memory copy of blue's *schema* (no rows) with the same authorizer prepare uses: SQLite
authorizes every table a statement touches when it compiles it, so an empty copy tells the same
tables in milliseconds. Row counts and sizes of those tables are then read from blue (`count(*)`
and the `dbstat` table, restricted to those tables).

Size of green: the backup copies blue page for page (`page_count x page_size`, free pages
included), then each migration that writes rows derived from blue's tables writes about as much
as it reads: green ~ blue + the size of the blue tables those migrations read (with their
indexes). The migration's transaction goes through green's WAL before a checkpoint folds it in,
so the disk must hold about that much again while it runs. A rough estimate, not a promise:
`[disk] min_free_mb` is the margin on top.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import apsw

from bluegreen.config import Config
from bluegreen.engine import dryrun, migrations
from bluegreen.engine.db import open_db, quote_ident, user_tables
from bluegreen.errors import NoSpace

MB = 1024 * 1024
CAPTURE_ROW_OVERHEAD = 24  # seq, key, op and the b-tree cell around them, per captured change


@dataclass(frozen=True)
class Touched:
    table: str
    rows: int | None  # rows in blue; None when blue has no such table (the migration creates it)
    bytes: int | None  # blue's pages for the table and its indexes


@dataclass(frozen=True)
class MigrationEstimate:
    file: str
    reads: tuple[Touched, ...]  # blue's tables it derives rows from (tables and views it creates left out)
    writes: tuple[Touched, ...]
    error: str = ""  # the schema-only dry run failed: tables unknown from here on


@dataclass(frozen=True)
class Estimate:
    migrations: tuple[MigrationEstimate, ...]
    blue_bytes: int  # what the backup copies
    copied_bytes: int  # blue tables the migrations read to write rows
    green_bytes: int  # expected size of green after migrating
    wal_bytes: int  # green's WAL at its largest, during the migration
    capture_bytes_per_change: int  # blue's capture table grows by about this per changed row
    margin_bytes: int  # [disk] min_free_mb
    free_bytes: int  # free space in the data folder now
    max_write_pause_ms: int
    lock_timeout_ms: int

    @property
    def needed_bytes(self) -> int:
        return self.green_bytes + self.wal_bytes + self.margin_bytes

    @property
    def fits(self) -> bool:
        return self.free_bytes >= self.needed_bytes

    def as_dict(self) -> dict:
        return {**asdict(self), "needed_bytes": self.needed_bytes, "fits": self.fits}


def estimate(config: Config, blue: Path, pending: list[migrations.Migration]) -> Estimate:
    conn = open_db(blue, query_only=True)
    try:
        effects = _dry_run(conn, pending)
        counted: dict[str, Touched] = {}

        def touched(name: str) -> Touched:
            if name not in counted:
                counted[name] = _measure(conn, name)
            return counted[name]

        per_migration = tuple(
            MigrationEstimate(
                file,
                tuple(t for t in map(touched, sorted(reads)) if t.rows is not None),
                tuple(touched(t) for t in sorted(writes)),
                error,
            )
            for file, reads, writes, error in effects
        )
        copied = {t.table: t.bytes or 0 for m in per_migration if m.writes for t in m.reads}
        blue_bytes = conn.execute("PRAGMA page_count").get * conn.execute("PRAGMA page_size").get
        longest_name = max((len(t.name) for t in user_tables(conn)), default=0)
    finally:
        conn.close()
    copied_bytes = sum(copied.values())
    return Estimate(
        migrations=per_migration,
        blue_bytes=blue_bytes,
        copied_bytes=copied_bytes,
        green_bytes=blue_bytes + copied_bytes,
        wal_bytes=copied_bytes,
        capture_bytes_per_change=CAPTURE_ROW_OVERHEAD + longest_name,
        margin_bytes=config.disk.min_free_mb * MB,
        free_bytes=shutil.disk_usage(config.data_dir).free,
        max_write_pause_ms=config.cutover.max_write_pause_ms,
        lock_timeout_ms=config.cutover.lock_timeout_ms,
    )


def require_free_space(config: Config, blue: Path, pending: list[migrations.Migration]) -> Estimate:
    """Refuse, before anything is written, a build the data folder has no room for. Exit 1, not
    2: nothing the user gave is wrong; the disk is full, and the same command works once it is not."""
    found = estimate(config, blue, pending)
    if not found.fits:
        raise NoSpace.with_hint(
            f"{config.data_dir}: not enough free disk space for the next generation: it needs about "
            f"{_mb(found.needed_bytes)} (green {_mb(found.green_bytes)} + its WAL {_mb(found.wal_bytes)} + "
            f"[disk] min_free_mb {_mb(found.margin_bytes)}) and {_mb(found.free_bytes)} is free. Nothing was "
            "changed",
            "free some space (or lower [disk] min_free_mb), then run the command again",
            sep=": ",
            details={"estimate": found.as_dict()},
        )
    return found


def describe(found: Estimate) -> list[str]:
    """The plan's text lines for an estimate."""
    lines = []
    for m in found.migrations:
        lines.append(f"  {m.file}")
        if m.error:
            lines.append(f"      could not be dry-run on blue's schema: {m.error}")
            continue
        lines.append("      reads   " + (", ".join(_touched(t) for t in m.reads) or "no table of blue"))
        lines.append("      writes  " + (", ".join(_touched(t) for t in m.writes) or "no table"))
    lines += [
        f"green       about {_mb(found.green_bytes)} (blue {_mb(found.blue_bytes)} copied + {_mb(found.copied_bytes)} "
        "the migrations derive from blue's tables)",
        f"disk        needs about {_mb(found.needed_bytes)} (green + its WAL {_mb(found.wal_bytes)} + margin "
        f"{_mb(found.margin_bytes)}); {_mb(found.free_bytes)} free: "
        + ("enough" if found.fits else "NOT ENOUGH, prepare and deploy would refuse"),
        f"capture     about {found.capture_bytes_per_change} bytes on blue per row written while green is built",
        f"pause       writers wait at most {found.max_write_pause_ms} ms at cutover ([cutover] max_write_pause_ms); "
        f"locks are awaited up to {found.lock_timeout_ms} ms",
    ]
    return lines


def _dry_run(blue: apsw.Connection, pending: list[migrations.Migration]) -> list[tuple[str, set, set, str]]:
    """What each pending migration touched on an empty copy of blue's schema (engine/dryrun.py,
    the preflight's own dry run)."""
    found = dryrun.on(blue, pending, "blue", full=False)
    return [(o.file, set(o.read), set(o.written), o.error) for o in found.outcomes]


def _measure(blue: apsw.Connection, table: str) -> Touched:
    if not blue.execute("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?", (table,)).fetchall():
        return Touched(table, None, None)
    rows = blue.execute(f"SELECT count(*) FROM {quote_ident(table)}").get
    names = [
        n
        for (n,) in blue.execute(
            "SELECT name FROM sqlite_schema WHERE tbl_name = ? AND type IN ('table', 'index')", (table,)
        )
    ]
    # name = ?: dbstat then walks only that b-tree, not the whole file
    size = sum(
        blue.execute("SELECT coalesce(sum(pgsize), 0) FROM dbstat('main', 1) WHERE name = ?", (n,)).get for n in names
    )
    return Touched(table, rows, size)


def _touched(t: Touched) -> str:
    return f"{t.table} (new)" if t.rows is None else f"{t.table} ({t.rows:,} rows, {_mb(t.bytes or 0)})"


def _mb(size: int) -> str:
    return f"{size / MB:,.1f} MB"
