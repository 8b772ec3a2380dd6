"""Crash injection: the controller is killed with SIGKILL (as `kill -9`) after every journaled step
and at random instants, while a writer process keeps writing through the pointer; then `resume`
or `abort` finishes. Every run must end with a valid pointer, an integrity-checked file, and every
write the writer was told committed present in the file the pointer names.

The fast variant runs by default; BLUEGREEN_SOAK=N runs N random-instant kills per operation.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from conftest import rows
from helpers import DEPLOY_POINTS, REVERT_POINTS, Writer, bluegreen

from bluegreen.engine import barrier
from bluegreen.engine.db import open_db
from bluegreen.errors import OperationFailed

SOAK = int(os.environ.get("BLUEGREEN_SOAK", "0"))


def start_writer(project, tmp_path: Path, seed: int = 1) -> Writer:
    """A pointer-mode writer that has made its first 10 writes."""
    writer = Writer(project, tmp_path, seed)
    writer.wait_for(10)
    return writer


def kill_after(project, delay: float, *args: str) -> int:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bluegreen", "--config", str(project.config), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    return proc.wait()


def check_consistent(project, expected: dict[int, str | None]) -> Path:
    """Pointer valid, file intact, every committed write there, controller idle or cut over."""
    pointer = tomllib.loads(project.pointer.read_text())
    active = project.data / pointer["active"]
    assert active.is_file()
    assert rows(active, "PRAGMA integrity_check") == [("ok",)]
    have = dict(rows(active, "SELECT id, name FROM items"))
    missing = {i: n for i, n in expected.items() if n is not None and have.get(i) != n}
    resurrected = [i for i, n in expected.items() if n is None and i in have]
    assert not missing and not resurrected, (missing, resurrected)
    status = project.cli("status", "--json").json
    assert status["phase"] in ("idle", "cut_over"), status
    return active


def recover(project) -> None:
    """What the on-call person does: read status, then resume."""
    status = project.cli("status", "--json")
    assert status.code == 0, status.err
    resumed = bluegreen(project, "resume")
    assert resumed.returncode == 0, resumed.stderr


@pytest.mark.parametrize("point", DEPLOY_POINTS)
def test_deploy_killed_after_each_step_then_resumed(toy_ready, tmp_path, point):
    project = toy_ready
    writer = start_writer(project, tmp_path)
    crashed = bluegreen(project, "deploy", crash_at=point)
    assert crashed.returncode == -signal.SIGKILL
    time.sleep(0.2)  # the writer goes on meanwhile, or is refused by a fence: never lost
    recover(project)
    writer.wait_for(20)
    active = check_consistent(project, writer.finish())
    assert active.name.startswith("app.gen")  # the deploy completed


@pytest.mark.parametrize(
    "point", ["prepare:capture", "prepare:snapshot", "prepare:migrate", "prepare:catch_up", "prepare:validate"]
)
def test_prepare_killed_after_each_step_then_resumed(toy_ready, tmp_path, point):
    project = toy_ready
    writer = start_writer(project, tmp_path)
    assert bluegreen(project, "prepare", crash_at=point).returncode == -signal.SIGKILL
    recover(project)
    assert project.cli("status", "--json").json["phase"] == "prepared"
    writer.wait_for(20)
    assert bluegreen(project, "cutover").returncode == 0
    writer.wait_for(20)
    active = check_consistent(project, writer.finish())
    assert active.name.startswith("app.gen")


def test_finalize_killed_then_run_again(toy_ready, tmp_path):
    project = toy_ready
    writer = start_writer(project, tmp_path)
    assert bluegreen(project, "deploy").returncode == 0
    assert bluegreen(project, "finalize", crash_at="finalize:closing").returncode == -signal.SIGKILL
    assert project.cli("status", "--json").json["phase"] == "cut_over"
    assert bluegreen(project, "finalize").returncode == 0
    writer.wait_for(20)
    active = check_consistent(project, writer.finish())
    assert rows(active, "SELECT count(*) FROM sqlite_schema WHERE name GLOB '_bluegreen_cap*'") == [(0,)]


@pytest.mark.parametrize("point", ["deploy:capture", "deploy:migrate", "deploy:catch_up", "deploy:validated"])
def test_deploy_killed_then_aborted(toy_ready, tmp_path, point):
    project = toy_ready
    writer = start_writer(project, tmp_path)
    assert bluegreen(project, "deploy", crash_at=point).returncode == -signal.SIGKILL
    aborted = bluegreen(project, "abort")
    assert aborted.returncode == 0, aborted.stderr
    writer.wait_for(20)
    active = check_consistent(project, writer.finish())
    assert active == project.blue
    assert not [p for p in project.data.iterdir() if p.name.startswith("app.gen")]
    assert rows(project.blue, "SELECT count(*) FROM sqlite_schema WHERE name LIKE '\\_bluegreen%' ESCAPE '\\'") == [
        (0,)
    ]


@pytest.mark.parametrize("point", REVERT_POINTS)
def test_revert_killed_after_each_step_then_resumed(toy_ready, tmp_path, point):
    project = toy_ready
    writer = start_writer(project, tmp_path)
    assert bluegreen(project, "deploy").returncode == 0
    writer.wait_for(30)  # the writer follows the pointer to green and writes there
    crashed = bluegreen(project, "revert", crash_at=point)
    assert crashed.returncode == -signal.SIGKILL
    recover(project)
    writer.wait_for(20)
    active = check_consistent(project, writer.finish())
    assert active == project.blue


@pytest.mark.parametrize("seed", range(max(SOAK, 4)))
def test_killed_at_a_random_instant_then_resumed(toy_ready, tmp_path, seed):
    project = toy_ready
    rng = random.Random(seed)
    writer = start_writer(project, tmp_path, seed=seed + 1)
    kill_after(project, rng.uniform(0.05, 0.6), "deploy")
    recover(project)
    writer.wait_for(10)
    if tomllib.loads(project.pointer.read_text())["active"] != "app.db":
        kill_after(project, rng.uniform(0.05, 0.5), "revert")
        recover(project)
        state = project.cli("status", "--json").json
        if state["phase"] == "cut_over":
            assert bluegreen(project, "revert").returncode == 0
    writer.wait_for(10)
    check_consistent(project, writer.finish())


def test_revert_takes_blues_lock_while_a_writer_retries_on_its_fence(toy_ready, tmp_path):
    """After a revert killed between swap and unfence, the writer retries on fenced blue every few
    ms. Taking blue's lock for the resumed revert must wait for it, never fail at once: set_meta
    reads before it writes, and SQLite then answers BUSY without calling the busy handler (this
    failed 10 times in 300 before lock_main retried by itself)."""
    project = toy_ready
    writer = start_writer(project, tmp_path)
    assert bluegreen(project, "deploy").returncode == 0
    writer.wait_for(10)
    assert bluegreen(project, "revert", crash_at="revert:swapped").returncode == -signal.SIGKILL
    failures = []
    for _ in range(200):
        conn = open_db(project.blue, triggers=False)
        try:
            barrier.lock_main(conn, project.blue, 3000)
        except OperationFailed as exc:
            failures.append(exc.message)
        finally:
            barrier.rollback(conn)
            conn.close()
        time.sleep(0.002)
    assert failures == []
    recover(project)
    writer.wait_for(10)
    assert check_consistent(project, writer.finish()) == project.blue
