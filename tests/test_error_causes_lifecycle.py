"""The lifecycle's failures carry their cause as a type (errors.py), still under the exit-code
class the CLI maps: each test drives a real Controller on a real temporary project into one
cause and asserts the type, not the message text."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap

import apsw
import pytest
from conftest import disk_state
from test_failures import FAILING_VALIDATE
from test_online_hazards import make_project, set_cutover
from test_pause_budget import ADD_TABLE, many_tables

from bluegreen.config import load
from bluegreen.engine import capture
from bluegreen.engine.db import open_db
from bluegreen.errors import (
    EXIT_FAILED,
    EXIT_GATE,
    EXIT_USAGE,
    CaptureLost,
    CompanionMissing,
    ConfigInvalid,
    FenceTampered,
    GateRefused,
    InputError,
    NoSpace,
    PauseBudgetExceeded,
    SchemaDrift,
    StillInUse,
    Throttled,
    ValidationRefused,
    WrongPhase,
)
from bluegreen.files import contract
from bluegreen.files.journal import Phase, Step, Store
from bluegreen.lifecycle.controller import Controller


def controller(project) -> Controller:
    return Controller(load(project.config))


def ddl(path, sql: str) -> None:
    """Someone's DDL on the file, outside bluegreen (no triggers involved)."""
    conn = apsw.Connection(str(path))
    try:
        conn.execute(sql)
    finally:
        conn.close()


def test_an_initial_file_outside_the_pointers_folder_is_a_config_error(toy):
    config = load(toy.config)
    config = dataclasses.replace(config, database=dataclasses.replace(config.database, initial=toy.root / "app.db"))
    with pytest.raises(ConfigInvalid) as caught:
        Controller(config).init()
    assert isinstance(caught.value, InputError) and caught.value.exit_code == EXIT_USAGE
    assert not toy.pointer.exists()


def test_a_migration_that_derives_rows_without_a_sync_companion_is_companion_missing(toy_ready):
    (toy_ready.schemas / "002_v2.0.0_split_names_sync.sql").unlink()
    with pytest.raises(CompanionMissing) as caught:
        controller(toy_ready).prepare()
    assert caught.value.exit_code == EXIT_GATE  # "will be refused", found before anything is built
    assert str(toy_ready.schemas / "002_v2.0.0_split_names_sync.sql") in caught.value.message
    assert Store(toy_ready.pointer).load().phase == Phase.IDLE  # nothing kept
    assert not toy_ready.gen(2).exists()


def test_ddl_on_blue_after_prepare_is_schema_drift_at_cutover(toy_ready):
    run = controller(toy_ready)
    run.prepare()
    ddl(toy_ready.blue, "CREATE TABLE added_meanwhile(a)")
    with pytest.raises(SchemaDrift) as caught:
        run.cutover()
    assert caught.value.exit_code == EXIT_FAILED
    state = Store(toy_ready.pointer).load()
    assert (state.phase, state.step) == (Phase.PREPARED, Step.VALIDATED)  # green stays prepared, blue active


def test_capture_reinstalled_on_blue_just_before_the_barrier_is_capture_lost(toy_ready, monkeypatch):
    """Read through the barrier itself (hazard 6): a capture reinstalled after green's last
    catch-up (earlier, the replayer itself refuses the other epoch) is found under blue's lock."""
    from bluegreen.lifecycle.cutover import Cutover

    catch_up = Cutover._catch_up

    def then_capture_is_reinstalled(self, replayer, budget):  # what another tool does at that moment
        catch_up(self, replayer, budget)
        conn = apsw.Connection(str(toy_ready.blue))
        try:
            conn.execute("BEGIN IMMEDIATE")
            capture.remove_capture(conn)
            capture.install_capture(conn, guard=False)  # a new epoch: green's position means nothing now
            conn.execute("COMMIT")
        finally:
            conn.close()

    run = controller(toy_ready)
    run.prepare()
    monkeypatch.setattr(Cutover, "_catch_up", then_capture_is_reinstalled)
    with pytest.raises(CaptureLost) as caught:
        run.cutover()
    assert caught.value.exit_code == EXIT_FAILED
    assert Store(toy_ready.pointer).load().phase == Phase.PREPARED
    conn = open_db(toy_ready.blue, query_only=True)
    try:
        assert contract.fenced_generation(conn) is None  # blue was never fenced
    finally:
        conn.close()


def test_a_write_pause_budget_the_fence_alone_cannot_fit_is_pause_budget_exceeded(tmp_path):
    project = make_project(tmp_path, many_tables(300), ADD_TABLE)  # fencing 300 tables takes well over 1 ms
    run = controller(project)
    run.prepare()
    set_cutover(project, max_write_pause_ms=1)
    with pytest.raises(PauseBudgetExceeded) as caught:
        controller(project).cutover()
    assert caught.value.exit_code == EXIT_FAILED
    assert Store(project.pointer).load().phase == Phase.PREPARED


def test_ddl_on_fenced_blue_is_schema_drift_at_finalize_and_at_revert(toy_ready):
    run = controller(toy_ready)
    run.deploy()
    ddl(toy_ready.blue, "CREATE TABLE tampered(a)")
    with pytest.raises(SchemaDrift):
        run.finalize()
    with pytest.raises(SchemaDrift):
        run.revert()
    assert Store(toy_ready.pointer).load().phase == Phase.CUT_OVER  # nothing was changed


def test_both_files_unfenced_in_a_revert_is_fence_tampered(toy_ready):
    run = controller(toy_ready)
    run.deploy()
    store = Store(toy_ready.pointer)
    state = store.load()
    state.phase, state.operation, state.step = Phase.REVERTING, "revert", Step.FENCED
    store.save(state)  # a revert that died after fencing green, as far as the journal says
    conn = open_db(toy_ready.blue, triggers=False)
    try:
        conn.execute("BEGIN IMMEDIATE")
        capture.remove_fence(conn)  # someone lifted blue's fence; green was never fenced
        conn.execute("COMMIT")
        assert contract.fenced_generation(conn) is None
    finally:
        conn.close()
    with pytest.raises(FenceTampered) as caught:
        run.resume()
    assert caught.value.exit_code == EXIT_FAILED


def test_finalize_while_a_process_has_blue_open_is_still_in_use(toy_ready):
    from bluegreen import client

    conn = client.connect(toy_ready.pointer, watch=False, poll_interval=3600)
    try:
        run = controller(toy_ready)
        run.deploy()
        with pytest.raises(StillInUse) as caught:
            run.finalize()
        assert caught.value.details["clients"]
        assert run.finalize(force=True).command == "finalize"  # the same Controller, a second command
    finally:
        conn.close()


FILE_SIZE_LIMIT = textwrap.dedent(
    """\
    import resource, signal, sys
    from bluegreen.config import load
    from bluegreen.lifecycle.controller import Controller

    controller = Controller(load(sys.argv[1]))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), resource.RLIM_INFINITY))
    try:
        controller.prepare()
    except Exception as exc:
        print(type(exc).__name__)
    """
)


def test_a_copy_that_cannot_be_written_is_no_space(toy):
    conn = apsw.Connection(str(toy.blue))
    with conn:
        conn.executemany("INSERT INTO items(name) VALUES (?)", [("x" * 200,) for _ in range(2000)])
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    assert toy.cli("init").code == 0
    limit = os.path.getsize(toy.blue) // 2  # blue fits as it is; a whole copy of it does not
    done = subprocess.run(
        [sys.executable, "-c", FILE_SIZE_LIMIT, str(toy.config), str(limit)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.split() == [NoSpace.__name__], (done.stdout, done.stderr)
    assert Store(toy.pointer).load().phase == Phase.IDLE and not toy.gen(2).exists()


# -- WrongPhase: a command the journal's phase does not allow; nothing on disk changes ---------------
@pytest.mark.parametrize(
    "command, phase_words",
    [
        ("cutover", "nothing prepared to cut over"),
        ("revert", "nothing to revert"),
    ],
)
def test_a_command_the_phase_does_not_allow_is_wrong_phase(toy_ready, command, phase_words):
    before = disk_state(toy_ready.data)
    with pytest.raises(WrongPhase) as caught:
        getattr(controller(toy_ready), command)()
    assert caught.value.exit_code == EXIT_USAGE and phase_words in caught.value.message
    assert disk_state(toy_ready.data) == before


def test_a_deploy_in_the_revert_window_and_one_over_an_interrupted_operation_are_wrong_phase(toy_ready):
    run = controller(toy_ready)
    run.deploy()
    with pytest.raises(WrongPhase) as caught:
        run.deploy()  # the same Controller: it serves the next command too
    assert "is in its revert window" in caught.value.message
    run.revert()
    # a new table: an ALTER of items would need its own sync companion (002's does not carry items)
    (toy_ready.schemas / "003_v3.0.0_add_notes.sql").write_text(
        "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);\n"
    )
    run.prepare()
    before = disk_state(toy_ready.data)
    with pytest.raises(WrongPhase) as caught:
        run.prepare()  # prepared: finish (cutover) or abort first
    assert "an operation is in progress or was interrupted" in caught.value.message
    assert disk_state(toy_ready.data) == before
    with pytest.raises(WrongPhase) as caught:
        run.finalize()
    assert caught.value.message == "nothing to finalize (phase prepared)"


# -- ValidationRefused: green fails a check; blue stays active ---------------------------------------
def test_a_failing_validation_check_is_validation_refused(toy_ready):
    (toy_ready.schemas / "002_v2.0.0_split_names_validate.sql").write_text(FAILING_VALIDATE)
    with pytest.raises(ValidationRefused) as caught:
        controller(toy_ready).deploy()
    assert isinstance(caught.value, GateRefused) and caught.value.exit_code == EXIT_GATE
    assert [c["name"] for c in caught.value.details["validation"] if c["status"] != "PASS"] == ["names are lower case"]
    assert Store(toy_ready.pointer).load().phase == Phase.IDLE
    assert toy_ready.cli("path").out.strip().endswith(toy_ready.blue.name)


def test_a_throttle_flag_left_on_past_max_throttled_s_is_throttled(toy_ready):
    config = load(toy_ready.config)
    config = dataclasses.replace(config, throttle=dataclasses.replace(config.throttle, max_throttled_s=1))
    (toy_ready.data / ".bluegreen" / "throttle").write_text("by hand\n")
    with pytest.raises(Throttled) as caught:
        Controller(config).prepare()
    assert caught.value.exit_code == EXIT_FAILED
    assert Store(toy_ready.pointer).load().phase == Phase.IDLE  # nothing switched, nothing kept
    assert not toy_ready.gen(2).exists()
