"""The writer program (bluegreen.tools.writer) and its wrapper (writer_process) on their own: the
modes only the benchmarks use (steady, pulse), the write count of snapshot mode, and how the
wrapper tells a writer that exited, stalled or gave up. The other modes are shown by the tests
that need them (demo: test_shipped_example; rehearsal: test_rehearsal; pointer: test_crash and
test_online_hazards; client: test_client_processes; snapshot: test_snapshot; zoo: test_schema_zoo).
"""

from __future__ import annotations

import subprocess
import time

import pytest
from conftest import rows
from helpers import make_project, read_rows

from bluegreen.tools import demo_data
from bluegreen.tools.writer_process import WriterExited, WriterGaveUp, WriterProcess, WriterStalled, read_log


def test_steady_mode_logs_every_write_once_it_stops(tmp_path):
    """The benchmark writer logs at the end (no I/O between the writes it times): nothing before
    the stop, then one committed record, with its wait, per write that is in the file."""
    db = tmp_path / "app.db"
    demo_data.create_v1_database(str(db), rows=200)
    before = rows(db, "SELECT max(id) FROM content_v1")[0][0]
    writer = WriterProcess.start("steady", db, tmp_path / "steady.log", interval=0.002)
    try:
        time.sleep(1.0)
        assert writer.running() and read_log(tmp_path / "steady.log") == []
        assert writer.stop(timeout=60) == 0
    finally:
        writer.kill()
    records = writer.records()
    assert len(records) > 10 and all(r["event"] == "committed" and r["wait_ms"] >= 0 for r in records)
    assert rows(db, "SELECT max(id) FROM content_v1")[0][0] > before  # it wrote (60% of its writes insert)
    assert rows(db, "PRAGMA integrity_check") == [("ok",)]


def test_pulse_mode_follows_the_pointer_and_every_insert_it_logged_is_there(tmp_path):
    project = make_project(tmp_path, "CREATE TABLE t0(id INTEGER PRIMARY KEY, a TEXT UNIQUE, b);", {})
    writer = WriterProcess.start("pulse", project.pointer, tmp_path / "pulse.log", interval=0.002)
    try:
        writer.wait_for(20)
        assert writer.stop(timeout=60) == 0
    finally:
        writer.kill()
    committed = [r for r in writer.records() if r["event"] == "committed"]
    assert len(committed) >= 20 and all(r["wait_ms"] >= 0 and r["at"] > 0 for r in committed)
    assert read_rows(project.blue, "SELECT count(*) FROM t0") == [(len(committed),)]


def test_snapshot_mode_makes_exactly_count_writes(tmp_path):
    make_project(
        tmp_path,
        "CREATE TABLE items(id INTEGER PRIMARY KEY, payload BLOB);"
        "CREATE TABLE history(seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT, item_id INT, payload BLOB);",
        {},
        init=False,
    )
    db = tmp_path / "data" / "app.db"
    writer = WriterProcess.start("snapshot", db, tmp_path / "snapshot.log", seed=3, count=25)
    assert writer.wait(timeout=60) == 0
    assert rows(db, "SELECT count(*) FROM history") == [(25,)]
    assert writer.records() == [{"event": "stop", "written": 25}]


def test_the_wrapper_says_why_a_writer_did_not_get_there(tmp_path):
    # a pointer to a file that is not there: the process fails
    missing = tmp_path / "missing.toml"
    missing.write_text('active = "nowhere.db"\ngeneration = 1\nschema_version = "1"\n')
    failing = WriterProcess.start("demo", missing, tmp_path / "failing.log", stderr=subprocess.DEVNULL)
    with pytest.raises(WriterExited) as exited:
        failing.wait_for(1, timeout=60)
    assert exited.value.returncode != 0

    # rehearsal mode on a schema with no rowid table to touch: it logs no_target and ends
    (tmp_path / "p").mkdir()
    project = make_project(
        tmp_path / "p", "CREATE TABLE kv(k TEXT PRIMARY KEY, v) WITHOUT ROWID;INSERT INTO kv VALUES ('a', 1);", {}
    )
    gave_up = WriterProcess.start("rehearsal", project.pointer, tmp_path / "rehearsal.log")
    with pytest.raises(WriterGaveUp):  # what it logged counts before its exit
        gave_up.wait_for(1, timeout=60, gives_up="no_target")
    assert gave_up.wait(timeout=60) == 0
    assert [r["event"] for r in gave_up.records()] == ["no_target"]

    # a writer that writes, but not as many as asked in time
    (tmp_path / "q").mkdir()
    pulsing = make_project(tmp_path / "q", "CREATE TABLE t0(id INTEGER PRIMARY KEY, a TEXT UNIQUE, b);", {})
    slow = WriterProcess.start("pulse", pulsing.pointer, tmp_path / "slow.log", interval=5)
    try:
        with pytest.raises(WriterStalled):
            slow.wait_for(1000, timeout=0.5)
        assert slow.running()
    finally:
        slow.kill()
