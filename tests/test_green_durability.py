"""Green is built without fsyncs (synchronous=OFF) and flushed in bounded steps (engine/flush.py),
then made durable once, before anything trusts it (issue 17). These tests run the real
controller as a real process: strace shows the order of the syscalls, and `kill -9` (the
BLUEGREEN_CRASH_AT points) shows that a half-durable green is never trusted."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys

import apsw
import pytest
from conftest import make_toy_project, rows
from helpers import bluegreen, events

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="strace and /proc/self/io are Linux's")


def bigger_toy(tmp_path, extra: str = ""):
    """The toy project with ~6 MB of rows, so a 1 MB flush step is taken several times."""
    project = make_toy_project(tmp_path, "[snapshot]\nflush_mb = 1\npages_per_step = 64\n" + extra)
    conn = apsw.Connection(str(project.blue))
    with conn:
        conn.executemany("INSERT INTO items(name) VALUES (?)", [(f"item {i} " + "x" * 200,) for i in range(30_000)])
    conn.close()
    assert project.cli("init").code == 0
    return project


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_green_is_flushed_in_steps_and_durable_before_the_journal_says_validated(tmp_path):
    project = bigger_toy(tmp_path)
    trace = tmp_path / "trace.txt"
    done = subprocess.run(
        [
            "strace",
            "-f",
            "-y",
            "-o",
            str(trace),
            "-e",
            "trace=fsync,fdatasync,sync_file_range,rename,renameat,renameat2",
        ]
        + [sys.executable, "-m", "bluegreen", "--config", str(project.config), "prepare"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    calls = trace.read_text().splitlines()
    green = str(project.gen(2))
    green_syncs = [
        i for i, c in enumerate(calls) if re.search(r"\b(f(data)?sync)\(\d+<" + re.escape(green) + r"(-wal)?>", c)
    ]
    journal = [i for i, c in enumerate(calls) if "rename" in c and "state.json" in c]
    assert len(green_syncs) >= 5, "green was fsync'ed in one go, not in steps"
    # The last state.json rename of the prepare is the step that says `validated` (phase prepared).
    assert json.loads((project.data / ".bluegreen" / "state.json").read_text())["step"] == "validated"
    assert max(green_syncs) < journal[-1], "green's last flush came after the journal trusted it"
    durable = events(project, "green_durable")
    assert durable and durable[-1]["file"] == project.gen(2).name and durable[-1]["flushes"] >= 2


def test_killed_once_validated_green_is_whole_on_disk_and_checkpointed(tmp_path):
    project = bigger_toy(tmp_path)
    crashed = bluegreen(project, "prepare", crash_at="prepare:validated")
    assert crashed.returncode == -signal.SIGKILL
    assert [e["file"] for e in events(project, "green_durable")] == [project.gen(2).name]
    wal = project.gen(2).with_name(project.gen(2).name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # folded into the file by the last checkpoint
    assert rows(project.gen(2), "PRAGMA integrity_check") == [("ok",)]
    assert rows(project.gen(2), "SELECT count(*) FROM names") == rows(project.blue, "SELECT count(*) FROM items")


@pytest.mark.parametrize("point", ["prepare:snapshot", "prepare:migrate", "prepare:catch_up", "prepare:validate"])
def test_killed_mid_build_the_unflushed_green_is_discarded_by_resume(tmp_path, point):
    project = bigger_toy(tmp_path)
    crashed = bluegreen(project, "prepare", crash_at=point)
    assert crashed.returncode == -signal.SIGKILL
    assert not events(project, "green_durable")  # the build never got to its durable flush
    half = project.gen(2)
    resumed = bluegreen(project, "resume")
    assert resumed.returncode == 0, resumed.stderr
    assert not half.exists()  # never trusted: discarded, and a new generation built
    status = project.cli("status", "--json").json
    assert status["phase"] == "prepared"
    green = project.gen(3)
    assert [e["file"] for e in events(project, "green_durable")] == [green.name]
    assert rows(green, "PRAGMA integrity_check") == [("ok",)]
    blue_rows = rows(project.blue, "SELECT id, name FROM items ORDER BY id")
    assert rows(green, "SELECT id, name FROM items ORDER BY id") == blue_rows  # row by row
    assert rows(green, "SELECT id, upper_name FROM names ORDER BY id") == [(i, n.upper()) for i, n in blue_rows]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/PID/fd and sync_file_range are Linux's")
def test_a_flush_writes_out_sqlites_unlinked_sort_files_in_steps(tmp_path):
    """A sort bigger than SQLite's cache spills into an unlinked temp file, which no path names:
    the flusher finds it through the builder's /proc/PID/fd and writes it out range by range
    (the kernel would send it 30 s late, in one burst writers queue behind); green's own file
    and other descriptors (pipes, this test's files) are left to their own flush."""
    import os

    from bluegreen.engine import flush

    conn = apsw.Connection(str(tmp_path / "green.db"))
    conn.execute("PRAGMA cache_size = -1000; CREATE TABLE t(x)")
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) "
        "INSERT INTO t SELECT randomblob(100) FROM n"
    )

    def unlinked_files() -> dict[int, int]:
        found = {}
        for entry in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{entry}").endswith(" (deleted)"):
                    info = os.stat(f"/proc/self/fd/{entry}")
                    found[info.st_ino] = info.st_size
            except OSError:
                continue
        return found

    before = unlinked_files()  # pytest's own capture files, say
    sorting = conn.execute("SELECT x FROM t ORDER BY x")
    next(sorting)  # the sort has spilled; its runs stay open while rows are read
    unlinked = unlinked_files()
    sqlites = {inode: size for inode, size in unlinked.items() if inode not in before}
    assert sum(sqlites.values()) > 4 * 1024 * 1024  # SQLite really spilled

    calls = []

    def ranged(fd, start, length, flags):
        calls.append((os.fstat(fd).st_ino, start, length, flags))
        return 0

    flush._write_out_temp_files(os.getpid(), ranged)
    written = {}
    for inode, start, length, flags in calls:
        assert flags == flush._WAIT_WRITE_WAIT and length == flush.STEP_BYTES
        written.setdefault(inode, []).append(start)
    assert set(sqlites) <= set(written) <= set(unlinked)  # unlinked files only: not green, not pipes
    assert os.stat(tmp_path / "green.db").st_ino not in written
    for inode, size in sqlites.items():
        assert written[inode] == list(range(0, size, flush.STEP_BYTES))  # every range, in order
    sorting.close()
    conn.close()


SLOW_MIGRATION = """\
CREATE TABLE counted AS WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 2000000)
SELECT count(*) AS c FROM n;
"""


def test_a_process_reading_green_while_its_migrations_run_fails_the_prepare_by_name_with_nothing_switched(tmp_path):
    """While migrations run, green has a rollback journal (not WAL): a reader there, a sqlite3
    shell looking at the build say, keeps the migration from committing. The prepare says so
    (LockTimeout, exit 1), discards green and leaves blue as it was."""
    from conftest import disk_state
    from helpers import state_of, until

    project = make_toy_project(tmp_path)
    project.config.write_text(project.config.read_text().replace("lock_timeout_ms = 3000", "lock_timeout_ms = 300"))
    (project.schemas / "003_v3.0.0_counted.sql").write_text(SLOW_MIGRATION)
    assert project.cli("init").code == 0
    blue_before = rows(project.blue, "SELECT id, name FROM items ORDER BY id")
    flag = project.data / ".bluegreen" / "throttle"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bluegreen", "--config", str(project.config), "prepare"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    reader = None
    try:
        until(lambda: state_of(project).get("step") == "migrate", "the migrations to start", timeout=60)
        flag.write_text("hold\n")  # the slow statement pauses inside itself, holding green's write lock
        until(lambda: events(project, "throttle"), "the migration to pause", timeout=60)
        assert events(project, "throttle")[0]["phase"] == "migrate"
        reader = apsw.Connection(str(project.gen(2)))
        assert reader.execute("PRAGMA journal_mode").get != "wal"  # a rollback journal, not WAL
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM items").get == 50  # its read lock is held from here
        flag.unlink()
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        if reader is not None:
            reader.close()
    assert proc.returncode == 1, (out, err)
    line = err.strip().splitlines()[-1]
    assert "Traceback" not in err and "another process has the new generation open" in line, err
    assert str(project.gen(2)) in line and "nothing was switched" in line
    assert state_of(project)["phase"] == "idle"
    assert not project.gen(2).exists()
    assert rows(project.blue, "SELECT id, name FROM items ORDER BY id") == blue_before
    before = disk_state(project.root)
    assert project.cli("status").code == 0 and disk_state(project.root) == before
