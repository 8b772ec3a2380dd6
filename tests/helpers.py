"""Plain helpers the test files share (conftest.py keeps the fixtures and the project builders).

One copy of each: how a refusal is checked (exit code, one error line, the JSON document), how the
journal, the pointer and the event log are read, how a table is read while writer processes run,
how to wait for something another process does, and Writer: a writer process
(bluegreen.tools.writer through bluegreen.tools.writer_process) as the tests drive it.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import apsw
from conftest import Project, disk_state, write_config

from bluegreen.tools.writer_process import WriterExited, WriterProcess, WriterStalled, read_log, writer_command

SIDE = ("-wal", "-shm", "-journal")
FENCES = "SELECT count(*) FROM sqlite_schema WHERE name LIKE '\\_bluegreen\\_fence\\_%' ESCAPE '\\'"

# A process that holds an flock on argv[1] (a controller's lock file) until it is killed.
HOLD_LOCK = r"""
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)
os.write(fd, b"pid %d (test holder)" % os.getpid())
print("locked", flush=True)
time.sleep(60)
"""


# -- waiting --------------------------------------------------------------------------------------
def until(
    condition: Callable[[], object], what: str = "condition", timeout: float = 10.0, interval: float = 0.005
) -> None:
    """Wait for something another thread or process does; a bound, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)


# -- commands -------------------------------------------------------------------------------------
def bluegreen(project, *args: str, crash_at: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """`bluegreen --config ... ARGS` as a real process; crash_at: SIGKILL itself at that point
    (BLUEGREEN_CRASH_AT), else never (an outer setting is dropped)."""
    env = {k: v for k, v in os.environ.items() if k != "BLUEGREEN_CRASH_AT"}
    if crash_at:
        env["BLUEGREEN_CRASH_AT"] = crash_at
    return subprocess.run(
        [sys.executable, "-m", "bluegreen", "--config", str(project.config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


# -- command results ------------------------------------------------------------------------------
def ok(result) -> dict:
    assert result.code == 0, (result.out, result.err)
    return result.json


def error_line(result) -> str:
    """The one stderr line starting with `bluegreen: error:` (and no traceback)."""
    assert "Traceback" not in result.err, result.err
    lines = [line for line in result.err.splitlines() if line.startswith("bluegreen: error:")]
    assert len(lines) == 1, f"expected one error line, got stderr:\n{result.err}"
    return lines[0]


def assert_refused(result, code: int, *words: str) -> str:
    """Exit code, and the error line holds every key word."""
    assert result.code == code, f"exit {result.code}, expected {code}\nstdout: {result.out}\nstderr: {result.err}"
    line = error_line(result)
    for word in words:
        assert word in line, f"{word!r} not in {line!r}"
    return line


def json_error(result, code: int) -> dict:
    """--json on an error: exactly one JSON object on stdout, ok=false, the exit code, the message."""
    assert result.out.strip().count("\n") == 0, result.out
    document = json.loads(result.out)
    assert document["ok"] is False
    assert document["exit_code"] == code == result.code
    assert error_line(result) == f"bluegreen: error: {document['error']}"
    return document


def refused(project: Project, *args: str, code: int) -> str:
    """Run a command that must refuse: its exit code, one error line (returned), the JSON error
    document, and not one change on disk."""
    before = disk_state(project.data)
    result = project.cli(*args, "--json")
    assert result.code == code, (result.code, result.out, result.err)
    line = error_line(result)
    document = result.json
    assert document["ok"] is False and document["exit_code"] == code
    assert line == f"bluegreen: error: {document['error']}"
    assert disk_state(project.data) == before
    return line


# -- the project's files --------------------------------------------------------------------------
def state_of(project) -> dict:
    return json.loads((project.data / ".bluegreen" / "state.json").read_text())


def pointer_of(project) -> dict:
    return tomllib.loads(project.pointer.read_text())


def pointer_active(project) -> str:
    return pointer_of(project)["active"]


def phase_of(project) -> str:
    return project.cli("status", "--json").json["phase"]


def events(project, name: str) -> list[dict]:
    """The controller's event log entries called `name`."""
    log = project.data / ".bluegreen" / "events.jsonl"
    return [e for e in map(json.loads, log.read_text().splitlines()) if e.get("event") == name]


def files_of(path: Path) -> list[str]:
    """A database file and whichever of its side files exist."""
    return [p.name for p in [path, *(Path(f"{path}{s}") for s in SIDE)] if os.path.lexists(p)]


def generation_files(project, n: int) -> list[str]:
    """The generation's file and any side file of it that exists."""
    return files_of(project.gen(n))


def everything(project) -> tuple:
    """disk_state of the data folder, plus every other file of the project by name and bytes."""
    others = {
        p.relative_to(project.root).as_posix(): p.read_bytes()
        for p in sorted(project.root.rglob("*"))
        if p.is_file() and project.data not in p.parents
    }
    return disk_state(project.data), others


def remove_database(path: Path) -> None:
    """A database file and its side files, gone."""
    for suffix in ("", *SIDE):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def replace_blue(project, maker) -> None:
    """Swap the file at app.db for another one (and drop the old one's side files)."""
    remove_database(project.blue)
    maker(project.blue)


def too_open(folder: Path, file_limit: int, dir_limit: int) -> list[str]:
    """Files and folders under `folder` whose mode grants more than the limit."""
    found = []
    for path in folder.rglob("*"):  # the folder itself is the test's, not bluegreen's
        mode = stat.S_IMODE(path.lstat().st_mode)
        limit = dir_limit if path.is_dir() else file_limit
        if mode & ~limit:
            found.append(f"{path.relative_to(folder.parent)} {oct(mode)}")
    return found


# -- databases ------------------------------------------------------------------------------------
def script(conn: apsw.Connection, sql: str, bindings=None) -> None:
    for _ in conn.execute(sql, bindings):
        pass


def set_cutover(project: Project, **values: int) -> None:
    """Rewrite the [cutover] section (conftest.write_config fixes lock_timeout_ms at 3000)."""
    head = project.config.read_text().partition("[cutover]")[0]
    values = {"lock_timeout_ms": 3000, **values}
    project.config.write_text(head + "[cutover]\n" + "".join(f"{k} = {v}\n" for k, v in values.items()))


def make_project(
    root: Path,
    setup: str | Callable[[apsw.Connection], None],
    migrations: dict[str, str],
    init: bool = True,
    config: str = "",
) -> Project:
    """A project whose blue (WAL) is built by `setup` (SQL or a function) and whose schemas folder
    holds `migrations`; initialized unless told otherwise; `config` is added to the config file."""
    project = Project(root)
    write_config(root, config)
    project.schemas.mkdir()
    project.data.mkdir()
    for name, text in migrations.items():
        (project.schemas / name).write_text(textwrap.dedent(text))
    conn = apsw.Connection(str(project.blue))
    conn.execute("PRAGMA journal_mode=WAL").get
    with conn:
        setup(conn) if callable(setup) else script(conn, setup)
    conn.close()
    if init:
        done = project.cli("init")
        assert done.code == 0, done.err
    return project


def app(project: Project, sql: str, path: Path | None = None, bindings=None) -> None:
    """One application write (triggers on, autocommit) on blue or on `path`."""
    conn = project.connect(path)
    try:
        script(conn, sql, bindings)
    finally:
        conn.close()


def read_rows(path: Path, sql: str, bindings=()) -> list[tuple]:
    """conftest.rows with a busy timeout: for reads while writer processes are running."""
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_URI)
    conn.set_busy_timeout(10_000)
    conn.execute("PRAGMA query_only = 1")
    try:
        return conn.execute(sql, bindings).fetchall()
    finally:
        conn.close()


def many_tables(count: int):
    """Blue with `count` tables (a UNIQUE column each: capture puts REPLACE triggers on them too),
    one row in each, plus a few with names that need quoting."""

    def setup(conn: apsw.Connection) -> None:
        for name in [f"t{i}" for i in range(count)] + ODD_TABLES:
            quoted = '"' + name.replace('"', '""') + '"'
            conn.execute(f"CREATE TABLE {quoted}(id INTEGER PRIMARY KEY, a TEXT UNIQUE, b)")
            conn.execute(f"INSERT INTO {quoted}(a, b) VALUES ('row', 1)")

    return setup


ODD_TABLES = ['t "quoted"', "t space", "tëst ünïcode", "t'apostrophe"]
ADD_TABLE = {"001_v1.1.0_add_audit.sql": "CREATE TABLE audit(id INTEGER PRIMARY KEY, what TEXT);\n"}


# -- what a writer process was told is committed --------------------------------------------------
def check_writes(active: Path, writer_seed: int, expected: dict[int, str | None]) -> None:
    """Every write the writer was told committed is in `active`; none of its deletes came back.
    Writers share `items` and a deleted max(id) is reused by SQLite, so a deleted id may hold
    another writer's row, never this writer's."""
    have = dict(read_rows(active, "SELECT id, name FROM items"))
    missing = {i: n for i, n in expected.items() if n is not None and have.get(i) != n}
    mine = f"w{writer_seed}-"
    resurrected = {i: have[i] for i, n in expected.items() if n is None and str(have.get(i) or "").startswith(mine)}
    assert not missing and not resurrected, (writer_seed, missing, resurrected)


def expected_rows(log: Path) -> dict[int, str | None]:
    """id -> last committed name (None: deleted), from a writer's log."""
    state: dict[int, str | None] = {}
    for event in read_log(log):
        if event["event"] == "committed":
            state[event["id"]] = event["name"]
    return state


# -- writer processes -----------------------------------------------------------------------------
STARTED: list[Writer] = []  # conftest kills whichever is still running after each test


class Writer:
    """A writer process as a test drives it (bluegreen.tools.writer in `mode`, or `command`: another
    program that logs the same lines to folder/NAMESEED.log and stops on that path + .stop): wait
    for its writes, stop it, read what it was told is committed. A writer that dies or stalls fails
    the test, with its stderr."""

    def __init__(
        self,
        project: Project | None,
        folder: Path,
        seed: int = 1,
        mode: str = "pointer",
        *,
        target: Path | None = None,
        command: list[str] | None = None,
        name: str = "writer",
        **options: object,
    ):
        self.seed, self.name = seed, f"{name} {seed}"
        log = folder / f"{name}{seed}.log"
        self.err = open(folder / f"{name}{seed}.err", "w")
        target = target if target is not None else project.pointer
        command = command or writer_command(mode, target, log, seed=seed, **options)
        self.process = WriterProcess(command, log, stderr=self.err)
        self.log = log
        STARTED.append(self)

    def records(self) -> list[dict]:
        return self.process.records()

    def committed(self, on: str | None = None) -> int:
        return self.process.count("committed", on)

    def wait_for(self, more: int, on: str | None = None, timeout: float = 30, event: str | None = "committed") -> None:
        """`more` records of `event` (None: of any event) on the file named `on`, from now."""
        target = self.process.count(event, on) + more
        try:
            self.process.wait_for(target, event=event, on=on, timeout=timeout)
        except WriterExited:
            raise AssertionError(f"{self.name} died: {self.stderr()}") from None
        except WriterStalled:
            raise AssertionError(
                f"{self.name} made no progress on {on}: no {more} {event} in {timeout} s; "
                f"last lines: {self.records()[-3:]}"
            ) from None

    def finish(self, timeout: float = 60) -> dict[int, str | None]:
        """Stop it; it must exit cleanly. What it was told is committed, id -> last name."""
        assert self.process.stop(timeout=timeout) == 0, self.stderr()
        return expected_rows(self.log)

    def kill(self) -> None:
        self.process.kill()
        self.err.close()

    def stderr(self) -> str:
        self.err.flush()
        return Path(self.err.name).read_text()[-2000:]


# Every journaled step of each command, as BLUEGREEN_CRASH_AT names it (docs/design.md, the step tables).
DEPLOY_POINTS = [
    "deploy:capture",
    "deploy:snapshot",
    "deploy:migrate",
    "deploy:catch_up",
    "deploy:validate",
    "deploy:validated",
    "deploy:fenced",
    "deploy:swapped",
]
CUTOVER_POINTS = ["cutover:catch_up", "cutover:fenced", "cutover:swapped"]
OFFLINE_POINTS = ["deploy:barrier", "deploy:fenced", "deploy:swapped"]
REVERT_POINTS = ["revert:carry_back", "revert:fenced", "revert:unfenced", "revert:swapped"]
