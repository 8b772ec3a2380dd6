"""docs/design.md hazards 1, 2, 8, 11 and 12: each failure reproduced on plain SQLite first (so the test
proves the hazard is real on this platform), then shown closed through bluegreen."""

from __future__ import annotations

import builtins
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import apsw
import pytest
from conftest import disk_state, rows
from helpers import error_line, files_of, pointer_of, remove_database, state_of

from bluegreen.engine import db as bgdb

SQLITE3_CLI = shutil.which("sqlite3") or "/usr/bin/sqlite3"


def plain_wal_db(path: Path, rows_: int = 3) -> apsw.Connection:
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA journal_mode=WAL").get
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    conn.executemany("INSERT INTO t(v) VALUES (?)", [(f"row {i}",) for i in range(rows_)])
    return conn


# ==================================================================================================
# Hazard 1: row-by-row fences leak; fence with a call to a function that is never registered
# ==================================================================================================
def test_hazard1_raise_abort_fence_lets_zero_row_writes_succeed(tmp_path):
    """Reproduce: a RAISE(ABORT) BEFORE trigger never fires for a write that matches no row, so a
    'logout' on the retired file silently succeeds instead of failing."""
    conn = plain_wal_db(tmp_path / "plain.db")
    for verb in ("INSERT", "UPDATE", "DELETE"):
        conn.execute(f"CREATE TRIGGER fence_{verb} BEFORE {verb} ON t BEGIN SELECT RAISE(ABORT, 'fenced'); END")

    conn.execute("UPDATE t SET v = 'logged out' WHERE id = 999")  # no error...
    assert conn.changes() == 0
    conn.execute("DELETE FROM t WHERE id = 999")  # ...none here either
    assert conn.changes() == 0
    with pytest.raises(apsw.ConstraintError, match="fenced"):  # only a matching row trips it
        conn.execute("UPDATE t SET v = 'x' WHERE id = 1")
    conn.close()


WRITES = {
    "zero-row UPDATE": "UPDATE items SET name = 'logged out' WHERE id = -1",
    "zero-row DELETE": "DELETE FROM items WHERE id = -1",
    "INSERT": "INSERT INTO items(name) VALUES ('late write')",
    "UPDATE": "UPDATE items SET name = 'late update' WHERE id = 1",
    "DELETE": "DELETE FROM items WHERE id = 2",
    "INSERT OR REPLACE": "INSERT OR REPLACE INTO items(id, name) VALUES (3, 'replaced')",
    "UPSERT": "INSERT INTO items(id, name) VALUES (4, 'x') ON CONFLICT(id) DO UPDATE SET name = 'upserted'",
}


def test_hazard1_fenced_blue_refuses_every_write_and_keeps_reads(toy_ready):
    project = toy_ready
    original = rows(project.blue, "SELECT * FROM items ORDER BY id")
    early = project.connect()  # an application connection opened before the deploy...
    for sql in WRITES.values():  # ...with every write statement already prepared (statement cache)
        early.execute("SAVEPOINT warm")
        early.execute(sql)
        early.execute("ROLLBACK TO warm")
        early.execute("RELEASE warm")

    deployed = project.cli("deploy")
    assert deployed.code == 0, deployed.err
    assert pointer_of(project)["active"] == "app.gen2.db"
    late = project.connect()  # and one opened after

    for conn in (early, late):
        for what, sql in WRITES.items():
            with pytest.raises(apsw.Error) as refused:
                conn.execute(sql)
            assert "bluegreen" in str(refused.value), (what, str(refused.value))
            assert conn.get_autocommit(), what  # no transaction left open
        # reads go on
        assert conn.execute("SELECT count(*) FROM items").get == 50
        assert conn.execute("SELECT name FROM items WHERE id = 1").get == "item 0"
    early.close()
    late.close()

    # the same through other SQLite builds: Python's sqlite3 module and the sqlite3 shell
    other = sqlite3.connect(project.blue)
    with pytest.raises(sqlite3.OperationalError, match="bluegreen"):
        other.execute(WRITES["zero-row DELETE"])
    assert other.execute("SELECT count(*) FROM items").fetchone() == (50,)
    other.close()
    shell = subprocess.run([SQLITE3_CLI, str(project.blue), WRITES["zero-row UPDATE"]], capture_output=True, text=True)
    assert shell.returncode != 0 and "bluegreen" in shell.stderr, shell

    assert rows(project.blue, "SELECT * FROM items ORDER BY id") == original


def test_hazard1_the_controllers_triggers_off_connection_is_not_fenced(toy_ready):
    project = toy_ready
    assert project.cli("deploy").code == 0
    conn = bgdb.open_db(project.blue, triggers=False)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE items SET name = 'carried back' WHERE id = 1")  # how revert carries writes back
        assert conn.changes() == 1
        conn.execute("ROLLBACK")
    finally:
        conn.close()
    assert rows(project.blue, "SELECT name FROM items WHERE id = 1") == [("item 0",)]


def test_hazard1_blob_io_on_fenced_blue_is_refused(toy_ready):
    project = toy_ready
    assert project.cli("deploy").code == 0
    app = project.connect()
    try:
        with pytest.raises(apsw.Error):
            blob = app.blob_open("main", "items", "name", 1, True)
            blob.write(b"X")
            blob.close()
    finally:
        app.close()
    assert rows(project.blue, "SELECT name FROM items WHERE id = 1") == [("item 0",)]


def _fence_trigger(project) -> str:
    return rows(
        project.blue,
        "SELECT name FROM sqlite_schema WHERE type = 'trigger' "
        "AND name LIKE '_bluegreen_fence_%' ORDER BY name LIMIT 1",
    )[0][0]


DDL = {
    "CREATE TABLE via sqlite3 shell": ("shell", "CREATE TABLE sneaky(x)"),
    "ALTER TABLE via sqlite3 shell": ("shell", "ALTER TABLE items ADD COLUMN extra TEXT"),
    "DROP the fence via triggers-off connection": ("apsw", "DROP TRIGGER {fence}"),
    "CREATE INDEX via triggers-off connection": ("apsw", "CREATE INDEX sneaky_idx ON items(name)"),
}


def _ddl_on_retired_blue(project, case: str) -> None:
    how, sql = DDL[case]
    sql = sql.format(fence=_fence_trigger(project))
    if how == "shell":
        done = subprocess.run([SQLITE3_CLI, str(project.blue), sql], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr  # DDL is not a row write: the fence does not stop it
    else:
        conn = project.connect()
        conn.config(apsw.SQLITE_DBCONFIG_ENABLE_TRIGGER, 0)
        conn.execute(sql)
        conn.close()


@pytest.mark.parametrize("case", list(DDL))
def test_hazard1_revert_refused_after_ddl_on_fenced_blue(toy_ready, case):
    project = toy_ready
    assert project.cli("deploy").code == 0
    _ddl_on_retired_blue(project, case)
    before = disk_state(project.data)
    pointer_bytes = project.pointer.read_bytes()

    result = project.cli("revert", "--json")

    assert result.code == 1, (result.out, result.err)
    line = error_line(result)
    assert str(project.blue) in line and "schema changed after it was fenced" in line and "revert refused" in line
    assert json.loads(result.out)["exit_code"] == 1
    assert disk_state(project.data) == before
    assert project.pointer.read_bytes() == pointer_bytes
    assert state_of(project)["phase"] == "cut_over"


def test_hazard1_finalize_refused_after_ddl_on_fenced_blue(toy_ready):
    project = toy_ready
    assert project.cli("deploy").code == 0
    _ddl_on_retired_blue(project, "CREATE TABLE via sqlite3 shell")
    before = disk_state(project.data)
    result = project.cli("finalize")
    assert result.code != 0
    assert "schema changed after it was fenced" in error_line(result)
    assert disk_state(project.data) == before


# ==================================================================================================
# Hazard 2: never rename a WAL database, never reuse a name, refuse stray -wal/-shm
# ==================================================================================================
WRITE_AND_HANG = r"""
import apsw, sys, time
conn = apsw.Connection(sys.argv[1])
conn.execute("PRAGMA journal_mode=WAL").get
conn.execute("PRAGMA wal_autocheckpoint=0")
conn.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)")
conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").get
conn.execute("INSERT INTO t(v) VALUES (?)", (sys.argv[2],))
print("committed", flush=True)
time.sleep(60)
"""


def _commit_then_die(path: Path, value: str) -> None:
    """A real process commits `value` into path's -wal, then dies by SIGKILL (no checkpoint)."""
    proc = subprocess.Popen([sys.executable, "-c", WRITE_AND_HANG, str(path), value], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "committed"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()


def test_hazard2_renaming_a_wal_database_loses_commits(tmp_path):
    """Reproduce: build under a temporary name, crash with commits in its -wal, rename: they are gone."""
    temp, final = tmp_path / "green.tmp", tmp_path / "green.db"
    _commit_then_die(temp, "committed before the rename")
    assert Path(f"{temp}-wal").stat().st_size > 0
    os.rename(temp, final)
    assert rows(final, "SELECT count(*) FROM t") == [(0,)]  # the commit stayed in green.tmp-wal
    assert Path(f"{temp}-wal").exists()


def test_hazard2_an_old_wal_attaches_to_a_new_file_of_the_same_name(tmp_path):
    """Reproduce: a -wal left by an earlier file of the same name is replayed onto a new file."""
    path = tmp_path / "app.gen2.db"
    _commit_then_die(path, "old generation")
    saved = Path(f"{path}-wal").read_bytes()
    for p in [path, Path(f"{path}-wal"), Path(f"{path}-shm")]:
        p.unlink()
    fresh = plain_wal_db(path, rows_=0)
    fresh.execute("INSERT INTO t(v) VALUES ('new generation')")
    fresh.close()
    assert not Path(f"{path}-wal").exists()
    Path(f"{path}-wal").write_bytes(saved)  # the stray, as a crash or a careless copy leaves it
    assert rows(path, "SELECT v FROM t") == [("old generation",)]  # the new file's commit is hidden


@pytest.mark.parametrize("command", ["prepare", "deploy"])
@pytest.mark.parametrize("suffix", ["-wal", "-shm", "-journal"])
def test_hazard2_stray_side_file_of_the_next_generation_is_refused(toy_ready, command, suffix):
    project = toy_ready
    stray = Path(f"{project.gen(2)}{suffix}")
    stray.write_bytes(b"left over from an earlier app.gen2.db\n" * 10)
    stray_bytes = stray.read_bytes()
    before = disk_state(project.data)

    result = project.cli(command)

    assert result.code == 2, (result.out, result.err)
    line = error_line(result)
    assert f"{stray}: already exists" in line and "never built over an old file" in line
    assert disk_state(project.data) == before
    assert stray.read_bytes() == stray_bytes
    assert not project.gen(2).exists()
    assert pointer_of(project)["active"] == "app.db"


def test_hazard2_stray_generation_file_is_never_built_over(toy_ready):
    """A stray app.gen2.db is left alone: its number is skipped (never reused), not refused."""
    project = toy_ready
    stray = plain_wal_db(project.gen(2))
    stray.close()
    stray_content = disk_state(project.data)["app.gen2.db"]

    result = project.cli("deploy", "--json")

    assert result.code == 0, result.err
    assert result.json["generation"] == 3
    assert pointer_of(project)["active"] == "app.gen3.db"
    assert disk_state(project.data)["app.gen2.db"] == stray_content


def test_hazard2_generation_numbers_are_never_reused_after_abort(toy_ready):
    project = toy_ready
    seen = []
    for _ in range(2):
        prepared = project.cli("prepare", "--json")
        assert prepared.code == 0, prepared.err
        seen.append(prepared.json["generation"])
        assert project.cli("abort").code == 0
        assert files_of(project.gen(seen[-1])) == []  # deleted with its side files
    deployed = project.cli("deploy", "--json")
    assert deployed.code == 0, deployed.err
    seen.append(deployed.json["generation"])
    assert seen == [2, 3, 4]
    assert pointer_of(project)["active"] == "app.gen4.db"
    assert state_of(project)["last_generation"] == 4


# ==================================================================================================
# Hazard 8: POSIX locks are per process
# ==================================================================================================
TRY_WRITE = r"""
import apsw, sys
conn = apsw.Connection(sys.argv[1], flags=apsw.SQLITE_OPEN_READWRITE)
conn.set_busy_timeout(0)
try:
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO t(v) VALUES ('other process')")
    conn.execute("COMMIT")
    print("committed")
except apsw.BusyError:
    print("busy")
"""


def _other_process_writes(path: Path) -> str:
    done = subprocess.run([sys.executable, "-c", TRY_WRITE, str(path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize(
    "journal,opened,other,mine,kept",
    [
        # WAL (what bluegreen requires): the write lock lives in the -shm; open/close of the main
        # file keeps it, open/close of the -shm drops it: the other process commits "through" our
        # barrier, our commit then succeeds too and silently overwrites the other's committed row.
        ("wal", "", "busy", "ok", ["mine"]),
        ("wal", "-shm", "committed", "ok", ["mine"]),
        # rollback journal: open/close of the main file drops the RESERVED lock
        ("delete", "", "committed", "error", None),
    ],
)
def test_hazard8_plain_open_close_drops_sqlites_lock(tmp_path, journal, opened, other, mine, kept):
    path = tmp_path / "locked.db"
    conn = apsw.Connection(str(path))
    conn.execute(f"PRAGMA journal_mode={journal}").get
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    conn.execute("BEGIN IMMEDIATE")  # the barrier
    conn.execute("INSERT INTO t(v) VALUES ('mine')")
    assert _other_process_writes(path) == "busy"  # the barrier holds...

    open(f"{path}{opened}", "rb").close()  # ...until this process opens and closes a file of the database

    assert _other_process_writes(path) == other
    try:
        conn.execute("COMMIT")
        outcome = "ok"
    except apsw.Error:
        outcome = "error"
        if not conn.get_autocommit():
            conn.execute("ROLLBACK")
    conn.close()
    assert outcome == mine
    if kept is not None:
        assert [v for (v,) in rows(path, "SELECT v FROM t ORDER BY id")] == kept
        if other == "committed":  # told committed, then lost
            assert "other process" not in [v for (v,) in rows(path, "SELECT v FROM t")]


def _is_database_path(target) -> bool:
    if isinstance(target, int):
        return False
    name = os.fsdecode(os.fspath(target))
    return name.endswith((".db", ".db-wal", ".db-shm", ".db-journal"))


def test_hazard8_deploy_touches_database_files_only_through_sqlite(toy_ready, monkeypatch):
    project = toy_ready
    touched: list[str] = []
    real_open, real_os_open = builtins.open, os.open

    def guarded_open(file, *args, **kwargs):
        if _is_database_path(file):
            touched.append(str(file))
            raise PermissionError(f"test: plain open() of database file {file}")
        return real_open(file, *args, **kwargs)

    def guarded_os_open(path, *args, **kwargs):
        if _is_database_path(path):
            touched.append(str(path))
            raise PermissionError(f"test: os.open() of database file {path}")
        return real_os_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(io, "open", guarded_open)  # pathlib's Path.open goes through io.open
    monkeypatch.setattr(os, "open", guarded_os_open)
    with pytest.raises(PermissionError):
        project.blue.read_bytes()  # the guard is live

    touched.clear()
    for command in ("deploy", "status", "revert", "deploy", "finalize"):
        result = project.cli(command)
        assert result.code == 0, (command, result.err)
    monkeypatch.undo()
    assert touched == []
    assert pointer_of(project)["active"] == "app.gen3.db"


WRITER = r"""
import apsw, json, sys, time
conn = apsw.Connection(sys.argv[1], flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_URI)
conn.set_busy_timeout(60_000)  # at least the pause budget, as the design asks of applications
deadline = time.monotonic() + 60
i = 0
while time.monotonic() < deadline:
    i += 1
    name = "writer %d" % i
    started = time.monotonic()
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO items(name) VALUES (?)", (name,))
        conn.execute("COMMIT")
    except apsw.Error as exc:
        if not conn.get_autocommit():
            conn.execute("ROLLBACK")
        print(json.dumps({"refused": str(exc), "waited_ms": 1000 * (time.monotonic() - started)}), flush=True)
        break
    print(json.dumps({"committed": name, "waited_ms": 1000 * (time.monotonic() - started)}), flush=True)
    time.sleep(0.005)
"""


def _large_blue(path: Path, count: int) -> None:
    remove_database(path)
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA journal_mode=WAL").get
    with conn:
        conn.execute("CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO items(name) VALUES (?)", ((f"item {i}",) for i in range(count)))
    conn.close()


def test_hazard8_offline_deploy_holds_a_writer_process_until_the_fence(toy):
    """A real writer process commits to blue while a real `bluegreen deploy` runs: it cannot commit
    between the snapshot and the fence (the barrier holds), is then refused by the fence, and every
    write it was told committed is in green."""
    project = toy
    _large_blue(project.blue, 200_000)
    assert project.cli("init").code == 0

    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(project.blue)], stdout=subprocess.PIPE, text=True)
    events: list[dict] = []
    reader = threading.Thread(target=lambda: events.extend(json.loads(line) for line in writer.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while sum("committed" in e for e in list(events)) < 20:
            assert writer.poll() is None and time.monotonic() < deadline, events[-3:]
            time.sleep(0.01)
        deploy = project.cli_process("deploy", "--offline", "--json")
        writer.wait(timeout=60)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    reader.join(timeout=10)

    assert deploy.code == 0, deploy.err
    report = json.loads(deploy.out)
    committed = [e["committed"] for e in events if "committed" in e]
    refused = [e for e in events if "refused" in e]
    assert len(refused) == 1 and "bluegreen" in refused[0]["refused"], events[-3:]
    assert events[-1] is refused[0]

    in_green = {n for (n,) in rows(project.gen(2), "SELECT name FROM items WHERE name LIKE 'writer %'")}
    in_blue = {n for (n,) in rows(project.blue, "SELECT name FROM items WHERE name LIKE 'writer %'")}
    assert set(committed) <= in_green  # every write it was told committed
    assert in_blue == in_green == set(committed)  # and nothing landed on blue that green lacks
    assert rows(project.gen(2), "SELECT count(*) FROM names") == [(200_000 + len(committed),)]
    # the refused attempt is the one that waited out the barrier: from before the copy to the fence
    assert report["write_pause_ms"] > 50
    # (measured ~130 ms waited for a ~115 ms pause; a quarter leaves room for a loaded machine)
    assert refused[0]["waited_ms"] >= 0.25 * report["write_pause_ms"], (refused[0], report["write_pause_ms"])


# ==================================================================================================
# Hazard 11: bluegreen opens files without CREATE; a missing generation is an error
# ==================================================================================================
@pytest.mark.parametrize(
    "command",
    [
        "status",
        "plan",
        "history",
        "deploy",
        "prepare",
        "path",
    ],
)
def test_hazard11_missing_generation_is_an_error_not_a_new_file(toy_ready, command):
    project = toy_ready
    text = project.pointer.read_text()
    project.pointer.write_text(text.replace('active = "app.db"', 'active = "app.gen5.db"'))
    assert pointer_of(project)["active"] == "app.gen5.db"
    before = disk_state(project.data)

    result = project.cli_process(command)

    assert files_of(project.gen(5)) == []  # never a new empty database
    assert disk_state(project.data) == before
    assert result.code != 0, result.out


def test_hazard11_open_db_never_creates(tmp_path):
    missing = tmp_path / "missing.db"
    for kwargs in ({}, {"query_only": True}, {"readonly": True}, {"triggers": False}):
        with pytest.raises(apsw.CantOpenError):
            bgdb.open_db(missing, **kwargs)
        assert list(tmp_path.iterdir()) == []


def test_hazard11_12_every_connection_of_a_deploy_uses_uri_and_only_green_is_created(toy_ready, monkeypatch):
    project = toy_ready
    opened: list[tuple[str, int]] = []
    real = apsw.Connection

    def recording(filename, *args, **kwargs):
        flags = kwargs.get("flags", args[0] if args else apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE)
        opened.append((os.path.basename(str(filename)), flags))
        return real(filename, *args, **kwargs)

    monkeypatch.setattr(apsw, "Connection", recording)
    result = project.cli("deploy")
    monkeypatch.undo()
    assert result.code == 0, result.err
    # plan's estimate (run by deploy for its disk check) dry-runs migrations on an in-memory schema copy
    assert {name for name, _ in opened} == {"app.db", "app.gen2.db", ":memory:"}
    assert all(flags & apsw.SQLITE_OPEN_URI for _, flags in opened), opened
    created = [(name, flags) for name, flags in opened if flags & apsw.SQLITE_OPEN_CREATE]
    # at most one: green, once (the snapshot's file copy creates it without SQLite; the backup API with it)
    assert [name for name, _ in created] in ([], ["app.gen2.db"])


# ==================================================================================================
# Hazard 12: ATTACH 'file:...?mode=ro' without SQLITE_OPEN_URI creates a file with that name
# ==================================================================================================
def _source(path: Path) -> bytes:
    conn = apsw.Connection(str(path))  # rollback-journal mode: no side files to muddle the listing
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t(v) VALUES ('source row');")
    conn.close()
    return path.read_bytes()


def test_hazard12_attach_uri_without_open_uri_creates_a_stray_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _source(tmp_path / "x.db")
    conn = apsw.Connection(str(tmp_path / "main.db"))  # apsw's default flags: no SQLITE_OPEN_URI
    conn.execute("ATTACH 'file:x.db?mode=ro' AS s")
    stray = tmp_path / "file:x.db?mode=ro"
    assert stray.exists()  # a new database with that literal name...
    with pytest.raises(apsw.SQLError, match="no such table"):
        conn.execute("SELECT * FROM s.t")  # ...not x.db...
    conn.execute("CREATE TABLE s.oops(x)")  # ...and not read-only either
    conn.close()


def test_hazard12_open_db_and_readonly_uri_attach_read_only_without_stray_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "a dir #1" / "x y?#%.db"  # characters a URI must escape
    source.parent.mkdir()
    source_bytes = _source(source)
    main = tmp_path / "main.db"
    conn = bgdb.open_db(main, create=True)
    listing = sorted(p.name for p in tmp_path.rglob("*"))

    conn.execute("ATTACH ? AS s", (bgdb.readonly_uri(source),))

    assert conn.execute("SELECT v FROM s.t").fetchall() == [("source row",)]
    with pytest.raises(apsw.ReadOnlyError):
        conn.execute("INSERT INTO s.t(v) VALUES ('write through the attachment')")
    with pytest.raises(apsw.ReadOnlyError):
        conn.execute("CREATE TABLE s.oops(x)")
    conn.execute("DETACH s")
    conn.close()
    assert sorted(p.name for p in tmp_path.rglob("*")) == listing  # no stray file anywhere
    assert source.read_bytes() == source_bytes
    # a relative path is resolved, not taken relative to wherever SQLite's cwd is
    assert bgdb.readonly_uri(Path("a dir #1") / "x y?#%.db").startswith("file:/")
