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
