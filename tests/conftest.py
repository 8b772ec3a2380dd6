"""Shared fixtures: real projects in tmp_path (config, schemas, a WAL database), the CLI run
in-process or as a real process, and a fingerprint of everything on disk."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import apsw
import pytest

from bluegreen.cli import main

REPO = Path(__file__).resolve().parent.parent
SHIPPED_SCHEMAS = REPO / "schemas"

TOY_SCHEMAS = {
    "001_v1.0.0_items.sql": "CREATE TABLE IF NOT EXISTS items(id INTEGER PRIMARY KEY, name TEXT);\n",
    "002_v2.0.0_split_names.sql": textwrap.dedent(
        """\
        CREATE TABLE names(id INTEGER PRIMARY KEY REFERENCES items(id), upper_name TEXT NOT NULL);
        INSERT INTO names SELECT id, upper(coalesce(name, '')) FROM items;
        """
    ),
    "002_v2.0.0_split_names_sync.sql": textwrap.dedent(
        """\
        -- main.items already holds the current rows (replayed); re-derive names for the changed ids.
        DELETE FROM names WHERE id IN (SELECT row_key FROM temp.bluegreen_changes WHERE table_name = 'items');
        INSERT INTO names SELECT id, upper(coalesce(name, '')) FROM items
        WHERE id IN (SELECT row_key FROM temp.bluegreen_changes WHERE table_name = 'items' AND present = 1);
        """
    ),
    "002_v2.0.0_split_names_validate.sql": textwrap.dedent(
        """\
        SELECT 'every item has a name row', (SELECT count(*) FROM items), (SELECT count(*) FROM names),
               CASE WHEN (SELECT count(*) FROM items) = (SELECT count(*) FROM names) THEN 'PASS' ELSE 'FAIL' END;
        """
    ),
}


@dataclass
class Project:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def blue(self) -> Path:
        return self.data / "app.db"

    @property
    def pointer(self) -> Path:
        return self.data / "current.toml"

    @property
    def schemas(self) -> Path:
        return self.root / "schemas"

    def gen(self, n: int) -> Path:
        return self.data / f"app.gen{n}.db"

    def cli(self, *args: str) -> CliResult:
        return run_cli("--config", str(self.config), *args)

    def cli_process(self, *args: str, timeout: float = 120) -> CliResult:
        return run_cli_process("--config", str(self.config), *args, timeout=timeout)

    def connect(self, path: Path | None = None) -> apsw.Connection:
        conn = apsw.Connection(str(path or self.blue), flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_URI)
        conn.set_busy_timeout(10_000)
        return conn


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def json(self) -> dict:
        return json.loads(self.out)


def run_cli(*args: str) -> CliResult:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse usage errors
            code = exc.code if isinstance(exc.code, int) else 2
    return CliResult(code, out.getvalue(), err.getvalue())


def run_cli_process(*args: str, timeout: float = 120) -> CliResult:
    done = subprocess.run([sys.executable, "-m", "bluegreen", *args], capture_output=True, text=True, timeout=timeout)
    return CliResult(done.returncode, done.stdout, done.stderr)


BASE_CONFIG = """\
[database]
pointer = "data/current.toml"
initial = "data/app.db"
[migrations]
dir = "schemas"
[cutover]
lock_timeout_ms = 3000
"""


def write_config(root: Path, extra: str = "") -> None:
    (root / "config.toml").write_text(BASE_CONFIG + extra)


def make_toy_database(path: Path, rows: int = 50, wal: bool = True) -> None:
    conn = apsw.Connection(str(path))
    if wal:
        conn.execute("PRAGMA journal_mode=WAL").get
    with conn:
        conn.execute("CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO items(name) VALUES (?)", [(f"item {i}",) for i in range(rows)])
    conn.close()


def make_toy_project(root: Path, extra_config: str = "") -> Project:
    """A project on the toy schemas with 50 rows in `root`; not yet initialized."""
    project = Project(root)
    write_config(root, extra_config)
    project.schemas.mkdir()
    for name, text in TOY_SCHEMAS.items():
        (project.schemas / name).write_text(text)
    project.data.mkdir()
    make_toy_database(project.blue)
    return project


@pytest.fixture
def toy(tmp_path: Path) -> Project:
    """A project on the toy schemas with 50 rows; not yet initialized."""
    return make_toy_project(tmp_path)


@pytest.fixture
def toy_ready(toy: Project) -> Project:
    assert toy.cli("init").code == 0
    return toy


@pytest.fixture
def at_v2(toy_ready: Project) -> Project:
    """The toy deployed to v2 (gen 2 active, revert window closed): migration 003 is the next one."""
    for command in ("deploy", "finalize"):
        done = toy_ready.cli(command)
        assert done.code == 0, done.err
    return toy_ready


@pytest.fixture
def shipped(tmp_path: Path) -> Project:
    """A project on the shipped v1.2.1 → v2.0 schemas with a generated v1.2.1 database, initialized."""
    from bluegreen.tools import demo_data

    project = Project(tmp_path)
    write_config(tmp_path)
    shutil.copytree(SHIPPED_SCHEMAS, project.schemas)
    project.data.mkdir()
    demo_data.create_v1_database(str(project.blue), rows=2000)
    assert project.cli("init").code == 0
    return project


# -- what is on disk ------------------------------------------------------------------------------
_VOLATILE = {".bluegreen/lock", ".bluegreen/events.jsonl"}


def disk_state(folder: Path) -> dict[str, object]:
    """Every file under folder: databases by content (schema and rows, not bytes: a checkpoint
    moves pages between -wal and the main file without changing anything), others by bytes and
    mode. Side files are listed by name so a leftover -wal/-shm counts."""
    found: dict[str, object] = {}
    for path in sorted(Path(folder).rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(folder).as_posix()
        if rel in _VOLATILE or rel.startswith(".bluegreen/samples/"):  # clients' sample logs grow by the second
            continue
        mode = oct(os.stat(path).st_mode & 0o777)
        if rel.endswith(("-wal", "-shm")):
            found[rel] = "side file"
        elif _is_sqlite(path):
            found[rel] = (mode, database_content(path))
        elif rel == ".bluegreen/state.json":
            state = json.loads(path.read_text())
            state.pop("last_generation", None)  # numbers are never reused, even by a failed prepare
            found[rel] = state
        else:
            found[rel] = (mode, hashlib.sha256(path.read_bytes()).hexdigest())
    return found


@pytest.fixture(autouse=True)
def _no_writer_outlives_its_test():
    """Every writer process a test started (helpers.Writer) is killed when the test ends."""
    yield
    from helpers import STARTED  # helpers imports this module: not at its top

    while STARTED:
        STARTED.pop().kill()


@pytest.fixture
def spawn(tmp_path: Path):
    """Start writer processes in pointer mode: spawn(project, seed) -> helpers.Writer."""
    from helpers import Writer

    return lambda project, seed: Writer(project, tmp_path, seed)


def _is_sqlite(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(16) == b"SQLite format 3\x00"


def database_content(path: Path) -> tuple:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_URI)
    conn.execute("PRAGMA query_only = 1")
    try:
        schema = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name").fetchall()
        tables = [n for t, n, _, _ in schema if t == "table" and not n.startswith("sqlite_")]
        digest = hashlib.sha256()
        for name in tables:
            quoted = '"' + name.replace('"', '""') + '"'
            for row in conn.execute(f"SELECT * FROM {quoted} ORDER BY 1"):
                digest.update(repr(row).encode())
        return tuple(schema), digest.hexdigest()
    finally:
        conn.close()


def rows(path: Path, sql: str, bindings=()) -> list[tuple]:
    """Read through a read-write, query-only connection: a read-only one would leave -wal/-shm."""
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_URI)
    conn.execute("PRAGMA query_only = 1")
    try:
        return conn.execute(sql, bindings).fetchall()
    finally:
        conn.close()
