"""Throttling (issue 17, lifecycle/throttle.py): the flag file and `bluegreen throttle on|off|status`;
a real copy and a real migration paused by it, seen by their events, not by a clock; the probe
write on blue that measures what the application's writes wait; the bound past which a throttled
build goes on (the probe) or fails with nothing switched (the flag)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import apsw
import pytest
from conftest import disk_state, make_toy_project, rows
from helpers import assert_refused, events, refused, state_of, until

from bluegreen import config as config_module
from bluegreen.engine import snapshot
from bluegreen.engine.db import open_db
from bluegreen.engine.migrations import discover
from bluegreen.files.journal import Store
from bluegreen.gates import validate
from bluegreen.lifecycle.builder import Builder
from bluegreen.lifecycle.throttle import Throttle

WAIT = {"timeout": 60, "interval": 0.02}


def project_with(tmp_path, extra: str = "", rows_added: int = 30_000):
    project = make_toy_project(tmp_path, "[snapshot]\npages_per_step = 16\n" + extra)
    conn = apsw.Connection(str(project.blue))
    with conn:
        conn.executemany("INSERT INTO items(name) VALUES (?)", [(f"item {i} " + "x" * 100,) for i in range(rows_added)])
    conn.close()
    assert project.cli("init").code == 0
    return project


def flag_of(project):
    return project.data / ".bluegreen" / "throttle"


def green_copy_and_builder(project):
    """A real copy of blue as green, a Builder on the project's config, and the 2.0.0 migration."""
    cfg = config_module.load(project.config)
    green = project.data / "green.db"
    source = open_db(project.blue, query_only=True)
    snapshot.copy(source, green, mode=0o644)
    source.close()
    builder = Builder(cfg, Store(cfg.database.pointer), lambda phase, done, total: None)
    return green, builder, [m for m in discover(cfg.migrations.dir) if m.version == "2.0.0"]


def paused_in_a_thread(project, opened, work, phase: str):
    """Run work(conn) on a connection opened in a thread; return once it is paused in `phase`,
    still running, with the thread and the list its exception (if any) lands in."""
    failed: list[BaseException] = []

    def run() -> None:
        conn = opened()
        try:
            work(conn)
        except BaseException as exc:  # pragma: no cover - shown by the callers' asserts
            failed.append(exc)
        finally:
            conn.close()

    worker = threading.Thread(target=run)
    worker.start()
    until(lambda: events(project, "throttle"), f"the {phase} to pause", **WAIT)
    assert events(project, "throttle")[0]["phase"] == phase
    assert worker.is_alive()
    return worker, failed


# -- the command and the flag file ------------------------------------------------------------------
def test_throttle_on_off_status_create_and_remove_the_flag(toy_ready):
    project = toy_ready
    status = project.cli("throttle", "status", "--json")
    assert status.code == 0 and status.json["throttle"] == "off"
    on = project.cli("throttle", "on", "--reason", "nightly backup")
    assert on.code == 0, on.err
    assert "throttle on" in on.out and str(flag_of(project)) in on.out
    assert flag_of(project).read_text() == "nightly backup\n"
    again = project.cli("throttle", "on")  # idempotent, and keeps the reason it was turned on with
    assert again.code == 0 and "was there already" in again.out
    assert project.cli("throttle", "status", "--json").json == {
        "ok": True,
        "command": "throttle",
        "message": f"throttle is on (nightly backup): {flag_of(project)} exists",
        "phases": [],
        "throttle": "on",
        "flag": str(flag_of(project)),
        "reason": "nightly backup",
    }
    off = project.cli("throttle", "off")
    assert off.code == 0 and "removed" in off.out and not flag_of(project).exists()
    assert project.cli("throttle", "off").code == 0  # already off: says so, exit 0
    assert [e["state"] for e in events(project, "throttle_flag")] == ["on", "on", "off", "off"]


@pytest.mark.parametrize(
    "args, words",
    [
        (("throttle", "maybe"), ("invalid choice: 'maybe'", "on", "off", "status")),
        (("throttle",), ("the following arguments are required: state",)),
        (("throttle", "off", "--reason", "x"), ("--reason goes with `throttle on`",)),
    ],
)
def test_throttle_bad_input_is_a_usage_error_and_changes_nothing(toy_ready, args, words):
    before = disk_state(toy_ready.root)
    result = toy_ready.cli(*args)
    assert result.code == 2 and "Traceback" not in result.err
    assert "error: " in result.err and all(word in result.err for word in words), result.err
    assert disk_state(toy_ready.root) == before


def test_a_flag_file_in_a_missing_folder_is_refused_with_nothing_changed(tmp_path):
    project = make_toy_project(tmp_path, '[throttle]\nflag_file = "nowhere/throttle"\n')
    assert project.cli("init").code == 0
    line = refused(project, "throttle", "on", code=2)
    assert str(tmp_path / "nowhere" / "throttle") in line and "does not exist" in line
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize(
    "setting, words",
    [
        ("max_write_wait_ms = -1", ("throttle.max_write_wait_ms",)),
        ("probe_interval_ms = 0", ("throttle.probe_interval_ms",)),
        ("max_throttled_s = 0", ("throttle.max_throttled_s",)),
        ("unknown = 1", ("unknown key throttle.unknown",)),
    ],
)
def test_bad_throttle_settings_name_the_key(tmp_path, setting, words):
    project = make_toy_project(tmp_path, f"[throttle]\n{setting}\n")
    assert_refused(project.cli("status"), 2, str(project.config), *words)


# -- pausing real work ------------------------------------------------------------------------------
def test_a_flag_set_before_prepare_pauses_the_copy_until_it_is_removed(tmp_path):
    project = project_with(tmp_path)
    assert project.cli("throttle", "on", "--reason", "test").code == 0
    before = rows(project.blue, "SELECT id, name FROM items ORDER BY id")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bluegreen", "--config", str(project.config), "prepare", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        until(lambda: events(project, "throttle"), "the copy to pause", **WAIT)
        paused = events(project, "throttle")[0]
        assert (paused["throttle"], paused["phase"]) == ("on", "snapshot")
        assert state_of(project)["step"] == "snapshot" and proc.poll() is None  # it waits, it did not fail
        assert project.cli("throttle", "off").code == 0
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    kinds = [(e["event"], e.get("throttle") or e.get("phase")) for e in lines]
    on, off = kinds.index(("throttle", "on")), kinds.index(("throttle", "off"))
    assert on < off < kinds.index(("progress", "migrate"))  # paused in the copy, went on after
    assert "test" in lines[on]["reason"] and lines[on]["phase"] == "snapshot"
    assert rows(project.gen(2), "SELECT id, name FROM items ORDER BY id") == before


def test_a_migration_pauses_inside_its_statement_through_sqlites_progress_handler(tmp_path):
    """The builder's migrate step on a real green file, paused inside its INSERT ... SELECT."""
    project = project_with(tmp_path)
    green, builder, pending = green_copy_and_builder(project)
    flag_of(project).write_text("test\n")

    def migrate(conn) -> None:
        with builder.throttled(project.blue, green):
            builder._pause_inside(conn, "migrate")
            builder._migrate(conn, pending)

    worker, failed = paused_in_a_thread(project, lambda: open_db(green), migrate, "migrate")
    # Paused inside the migration's transaction: nothing of it is committed yet.
    assert rows(green, "SELECT count(*) FROM sqlite_schema WHERE name = 'names'") == [(0,)]
    flag_of(project).unlink()
    worker.join(60)
    assert not worker.is_alive() and not failed, failed
    assert [e["throttle"] for e in events(project, "throttle")] == ["on", "off"]
    items = rows(green, "SELECT id, name FROM items ORDER BY id")
    assert rows(green, "SELECT id, upper_name FROM names ORDER BY id") == [(i, n.upper()) for i, n in items]


LONG_VALIDATE = """\
WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 300000)
SELECT 'a long check', 0, (SELECT count(*) FROM n WHERE seen(x) AND x < 0), 'PASS';
"""


def test_a_validate_script_pauses_inside_its_statement_and_the_gate_after_it_does_not(tmp_path):
    """Validation's long statements have pause points too (their temp files are flushed there, and
    the throttle waits there); once validate.run is done the handler is gone, so a performance
    gate query on the same connection is never paused (nor flushed) while it is timed. The
    script itself turns the flag on, 1,000 rows into its 300,000 (the function seen())."""
    project = make_toy_project(tmp_path)
    (project.schemas / "002_v2.0.0_split_names_validate.sql").write_text(LONG_VALIDATE)
    assert project.cli("init").code == 0
    green, builder, pending = green_copy_and_builder(project)
    setup = open_db(green)
    builder._migrate(setup, pending)
    setup.close()
    reached: list[int] = [0]
    outcome: dict = {}

    def seen(x: int) -> int:
        reached[0] = x
        if x == 1000:
            flag_of(project).write_text("test\n")
        return 1

    def opened():
        conn = open_db(green, triggers=False)
        conn.create_scalar_function("seen", seen, 1)
        return conn

    def check(conn) -> None:
        with builder.throttled(project.blue, green):
            no_violations = validate.ForeignKeys(frozenset(), frozenset())
            outcome["report"] = builder.validate(conn, 2, pending, blue=project.blue, fk=no_violations)
            outcome["after"] = conn.execute(LONG_VALIDATE).fetchall()  # the flag is on again

    worker, failed = paused_in_a_thread(project, opened, check, "validate")
    assert 1000 <= reached[0] < 300_000  # paused inside the statement
    flag_of(project).unlink()
    worker.join(60)
    assert not worker.is_alive() and not failed, failed
    assert outcome["report"].passed and "a long check" in [c.name for c in outcome["report"].checks]
    assert outcome["after"] == [("a long check", 0, 0, "PASS")] and reached[0] == 300_000
    assert [e["throttle"] for e in events(project, "throttle")] == ["on", "off"]  # none after validate.run


def test_a_flag_left_on_past_max_throttled_s_fails_the_prepare_with_nothing_switched(tmp_path):
    project = project_with(tmp_path, "[throttle]\nmax_throttled_s = 1\n", rows_added=2_000)
    blue_before = rows(project.blue, "SELECT id, name FROM items ORDER BY id")
    assert project.cli("throttle", "on").code == 0
    result = project.cli_process("prepare", "--json")
    assert result.code == 1, result.err
    document = json.loads(result.out)
    assert "throttled for" in document["error"] and "max_throttled_s = 1" in document["error"]
    assert "bluegreen throttle off" in document["error"]
    assert [e["throttle"] for e in events(project, "throttle")] == ["on", "failed"]
    assert state_of(project)["phase"] == "idle"
    assert not project.gen(2).exists()  # the half-built green is gone (invariant 5)
    assert rows(project.blue, "SELECT id, name FROM items ORDER BY id") == blue_before
    assert rows(project.blue, "SELECT count(*) FROM sqlite_schema WHERE name LIKE '_bluegreen%'") == [(0,)]


# -- the probe --------------------------------------------------------------------------------------
def test_the_probe_feels_a_long_write_transaction_on_blue_and_its_throttle_is_lifted_at_the_bound(tmp_path):
    project = make_toy_project(tmp_path, "[throttle]\nmax_write_wait_ms = 5\nmax_throttled_s = 1\n")
    assert project.cli("init").code == 0
    conn = project.connect()
    conn.execute("CREATE TABLE _bluegreen_meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID")  # as capture makes it
    cfg = config_module.load(project.config)
    store = Store(cfg.database.pointer)
    notes: list[dict] = []
    throttle = Throttle(cfg, store, project.blue, lambda message, fields: notes.append(fields))
    try:
        assert throttle.probe_ms() is not None  # an idle blue: the probe commits
        conn.execute("BEGIN IMMEDIATE")  # the application's long write transaction
        assert throttle.probe_ms() >= 100  # waits out its busy timeout (20 × max_write_wait_ms)
        until(throttle.reason, "the prober to feel the lock", **WAIT)
        why = throttle.reason()
        assert "waited" in why and "max_write_wait_ms = 5" in why
        throttle.point("catch_up")  # paused, then lifted at max_throttled_s: the build goes on
        assert [n["throttle"] for n in notes] == ["on", "lifted"] and throttle.lifted
        assert throttle.reason() == ""  # lifted for the rest of the command
        conn.execute("ROLLBACK")
    finally:
        throttle.close()
        conn.close()
    assert rows(project.blue, "SELECT count(*) FROM _bluegreen_meta") == [(0,)]  # the probe leaves nothing
    assert [e["throttle"] for e in events(project, "throttle")] == ["on", "lifted"]
