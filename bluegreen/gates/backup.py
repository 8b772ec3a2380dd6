"""A verified backup of blue, taken before prepare touches it.

The copy is made with the backup API inside one read transaction on blue (snapshot.copy), and
blue's schema and row counts are read inside that same transaction: they describe exactly the
state the copy holds, while the application keeps writing. Verification opens the copy and
checks integrity_check, the same schema and the same row counts. A backup that fails either way
is deleted: a file named backup that cannot restore is worse than none.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import apsw

from bluegreen.engine import snapshot
from bluegreen.engine.db import open_db, quote_ident
from bluegreen.errors import BackupFailed
from bluegreen.files.layout import SIDE_FILES, file_mode, folder_mode, make_dirs, remove_database_files
from bluegreen.files.pointer import now_iso


@dataclass(frozen=True)
class Fingerprint:
    """What a faithful copy must show: its schema and every table's row count."""

    schema: tuple[tuple, ...]
    counts: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class BackupResult:
    path: Path
    tables: int
    rows: int
    bytes: int
    seconds: float


def fingerprint(conn: apsw.Connection) -> Fingerprint:
    schema = tuple(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name").fetchall())
    tables = [
        name
        for kind, name, _, sql in schema
        if kind == "table" and not name.startswith("sqlite_") and not (sql or "").upper().startswith("CREATE VIRTUAL")
    ]
    counts = tuple((t, conn.execute(f"SELECT count(*) FROM {quote_ident(t)}").get) for t in tables)
    return Fingerprint(schema, counts)


def take(blue: Path, folder: Path, pages_per_step: int = 4096) -> BackupResult:
    """Copy blue into `folder` and verify the copy; raises BackupFailed (with nothing left
    behind) if either fails."""
    started = time.perf_counter()
    target = folder / f"{blue.stem}.backup-{now_iso().replace(':', '').replace('-', '')}{blue.suffix}"
    made_folder = not folder.exists()
    try:
        make_dirs(folder, folder_mode(file_mode(blue)))  # no more readable than blue: it holds the same rows
    except OSError as exc:
        raise BackupFailed.with_hint(
            f"{folder}: cannot create the backup folder ({exc.strerror}); prepare refused and nothing was changed",
            "fix backup_dir in the environment's config",
            sep=": ",
        ) from None
    for candidate in [target] + [Path(f"{target}{side}") for side in SIDE_FILES]:
        if candidate.exists():
            raise BackupFailed.with_hint(
                f"{candidate}: already exists; a backup never overwrites a file. Nothing was changed",
                "run the command again in a moment",
                sep=": ",
            )
    seen: list[Fingerprint] = []
    source = open_db(blue, query_only=True)
    try:
        copied = snapshot.copy(
            source,
            target,
            mode=file_mode(blue),
            pages_per_step=pages_per_step,
            pinned=lambda conn: seen.append(fingerprint(conn)),
        )
    except (apsw.Error, OSError) as exc:
        _discard(target, made_folder)
        raise BackupFailed.with_hint(
            f"{target}: backup of {blue.name} failed ({exc}); prepare refused and nothing was changed",
            "free space or fix backup_dir, then run the command again",
            sep=": ",
        ) from None
    finally:
        source.close()
    problem = verify(target, seen[0])
    if problem:
        _discard(target, made_folder)
        raise BackupFailed.with_hint(
            f"{target}: backup could not be verified: {problem}; prepare refused and "
            "nothing was changed (the copy was removed)",
            f"check {blue.name} with `PRAGMA integrity_check`",
            sep=": ",
        )
    rows = sum(n for _, n in seen[0].counts)
    return BackupResult(target, len(seen[0].counts), rows, copied.bytes, time.perf_counter() - started)


def _discard(target: Path, made_folder: bool) -> None:
    """No unverified backup left behind, nor the folder made for it."""
    remove_database_files(target)
    if made_folder:
        try:
            target.parent.rmdir()
        except OSError:
            pass


def verify(copy: Path, expected: Fingerprint) -> str:
    """integrity_check, same schema, same row counts as blue at the copy's read position; returns
    what is wrong, or "" for a faithful copy."""
    conn = open_db(copy, query_only=True)
    try:
        problems = [r[0] for r in conn.execute("PRAGMA integrity_check(5)")]
        if problems != ["ok"]:
            return f"integrity_check says: {'; '.join(problems)}"
        actual = fingerprint(conn)
    except apsw.Error as exc:
        return f"cannot read it ({exc})"
    finally:
        conn.close()
    if actual.schema != expected.schema:
        names = {r[1] for r in actual.schema} ^ {r[1] for r in expected.schema}
        return "its schema differs from blue's" + (f" ({', '.join(sorted(names))})" if names else "")
    if actual.counts != expected.counts:
        blue = dict(expected.counts)
        wrong = [f"{t}: {n} rows, blue had {blue.get(t)}" for t, n in actual.counts if blue.get(t) != n]
        return "row counts differ from blue's (" + ("; ".join(wrong) or "tables differ") + ")"
    return ""
