"""The pointer, replicated: `.bluegreen/replication/pointer.db`, a small SQLite database Litestream
ships beside the generations. It holds what a restore needs to rebuild a working project on
another host: the pointer's text, the journal (state.json: which generation is the revert
target), the config and the migrations, with their places relative to the config's folder.

`bluegreen replicate` rewrites it (one transaction) whenever one of them changes, so a restore
reads one consistent set: the pointer and the journal as they were at one moment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import apsw

from bluegreen.config.sections import Config
from bluegreen.engine.db import open_db
from bluegreen.files.pointer import now_iso

SCHEMA = """
CREATE TABLE IF NOT EXISTS project (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, content BLOB NOT NULL);
"""


@dataclass(frozen=True)
class Snapshot:
    """What pointer.db holds, read back (by a restore) or gathered (by the replicator)."""

    values: dict[str, str]  # pointer, state, config, pointer_path, migrations_dir
    files: dict[str, bytes]  # migration files, by their path relative to the config's folder

    @property
    def pointer_path(self) -> str:
        return self.values["pointer_path"]


def _relative(base: Path, path: Path) -> str | None:
    try:
        return Path(path).resolve().relative_to(base).as_posix()
    except ValueError:
        return None


def gather(config: Config) -> Snapshot:
    """The project as it stands: pointer, journal, config and migrations."""
    base = config.path.parent
    pointer = config.database.pointer
    state = pointer.parent / ".bluegreen" / "state.json"
    values = {
        "pointer": pointer.read_text(encoding="utf-8"),
        "state": state.read_text(encoding="utf-8") if state.is_file() else "",
        "config": config.path.read_text(encoding="utf-8"),
        # Where the pointer sits under the restored folder: its place under the config's folder,
        # or data/<name> when the config named it elsewhere (an absolute path on this host).
        "pointer_path": _relative(base, pointer) or f"data/{pointer.name}",
        "migrations_dir": _relative(base, config.migrations.dir) or "migrations",
    }
    files = {}
    folder = config.migrations.dir
    if folder.is_dir():
        for item in sorted(folder.rglob("*")):
            if item.is_file() and not item.name.startswith("."):
                files[f"{values['migrations_dir']}/{item.relative_to(folder).as_posix()}"] = item.read_bytes()
    return Snapshot(values, files)


def write(path: Path, snapshot: Snapshot) -> None:
    """Replace pointer.db's contents in one transaction (WAL mode: Litestream's requirement)."""
    conn = open_db(path, create=True)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(SCHEMA)
        with conn:
            conn.execute("DELETE FROM project")
            conn.execute("DELETE FROM files")
            for key, value in [*snapshot.values.items(), ("written_at", now_iso())]:
                conn.execute("INSERT INTO project VALUES (?, ?)", (key, value))
            for name, content in snapshot.files.items():
                conn.execute("INSERT INTO files VALUES (?, ?)", (name, content))
    finally:
        conn.close()


def read(path: Path) -> Snapshot | None:
    """pointer.db as restored; None when it is not one bluegreen wrote."""
    try:
        conn = open_db(path, readonly=True)
        try:
            values = {k: str(v) for k, v in conn.execute("SELECT key, value FROM project")}
            files = {k: bytes(v) for k, v in conn.execute("SELECT path, content FROM files")}
        finally:
            conn.close()
    except apsw.Error:
        return None
    if not {"pointer", "config", "pointer_path", "state"} <= values.keys():
        return None
    return Snapshot(values, files)
