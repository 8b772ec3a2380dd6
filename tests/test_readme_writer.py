"""A writer that follows only the README's client rules (tests/readme_writer.py: stdlib sqlite3,
retry on the same connection while the pointer is unchanged) through every journaled crash point
of deploy, cutover, deploy --offline and revert (SIGKILL via BLUEGREEN_CRASH_AT), recovered as the
on-call would (`resume`, or `abort` first, or `revert` again). It must never stick: it commits
again within a bounded time after the recovery (hazard 16: a lifted fence under a connection that
compiled against it fails its retries for ever); and it must never lose a write: its log of
commits is checked row by row against the file the pointer names.
"""

from __future__ import annotations

import signal
import sys
import time
import tomllib
from pathlib import Path

import pytest
from conftest import rows
from helpers import CUTOVER_POINTS, DEPLOY_POINTS, OFFLINE_POINTS, REVERT_POINTS, Writer, bluegreen

WRITER = Path(__file__).resolve().parent / "readme_writer.py"
UNSTUCK_S = 20  # after recovery, the writer commits again within this (generous on a loaded 2-core box)


def start_writer(project, tmp_path: Path, seed: int = 1) -> Writer:
    """readme_writer.py as a real process, logging like the writer program; its first 10 writes made."""
    log = tmp_path / f"readme{seed}.log"
    writer = Writer(
        project,
        tmp_path,
        seed,
        name="readme",
        command=[sys.executable, str(WRITER), str(project.pointer), str(log), f"{log}.stop", str(seed)],
    )
    writer.wait_for(10, timeout=UNSTUCK_S)
    return writer


def on_call(project, first: str) -> list[str]:
    """What the on-call person runs after a crash: `first`, then what each refusal points to."""
    ran, command = [], first
    for _ in range(3):
        ran.append(command)
        done = bluegreen(project, command)
        if done.returncode == 0:
            return ran
        assert done.returncode == 2, (command, done.returncode, done.stderr)
        assert done.stderr.startswith("bluegreen: error:") and "Traceback" not in done.stderr, done.stderr
        command = "resume" if "bluegreen resume" in done.stderr else "revert"
    raise AssertionError(f"no recovery after {ran}")


def check_every_write(project, expected: dict[int, str | None]) -> Path:
    active = project.data / tomllib.loads(project.pointer.read_text())["active"]
    assert rows(active, "PRAGMA integrity_check") == [("ok",)]
    have = dict(rows(active, "SELECT id, name FROM items"))
    missing = {i: (n, have.get(i)) for i, n in expected.items() if n is not None and have.get(i) != n}
    resurrected = [i for i, n in expected.items() if n is None and i in have]
    assert not missing and not resurrected, (missing, resurrected)
    assert project.cli("status", "--json").json["phase"] in ("idle", "cut_over")
    return active


@pytest.mark.parametrize("recovery", ["resume", "abort"])
@pytest.mark.parametrize("point", DEPLOY_POINTS)
def test_deploy_crash(toy_ready, tmp_path, point, recovery):
    project = toy_ready
    writer = start_writer(project, tmp_path)
    assert bluegreen(project, "deploy", crash_at=point).returncode == -signal.SIGKILL
    time.sleep(0.2)  # the writer goes on meanwhile, or waits on a fence: never lost
    ran = on_call(project, recovery)
    writer.wait_for(10, timeout=UNSTUCK_S)
    if ran == ["abort", "resume"]:  # past blue's fence abort refused: resume finished the swap
        assert point == "deploy:fenced"
    active = check_every_write(project, writer.finish())
    assert (active.name != "app.db") == (ran[-1] == "resume"), (ran, active.name)


@pytest.mark.parametrize("point", CUTOVER_POINTS)
def test_cutover_crash(toy_ready, tmp_path, point):
    project = toy_ready
    writer = start_writer(project, tmp_path)
    assert bluegreen(project, "prepare").returncode == 0
    writer.wait_for(10, timeout=UNSTUCK_S)
    assert bluegreen(project, "cutover", crash_at=point).returncode == -signal.SIGKILL
    time.sleep(0.2)
    on_call(project, "resume")
    writer.wait_for(10, timeout=UNSTUCK_S)
    assert check_every_write(project, writer.finish()).name.startswith("app.gen")


@pytest.mark.parametrize("point", OFFLINE_POINTS)
def test_offline_deploy_crash(toy_ready, tmp_path, point):
    project = toy_ready
    writer = start_writer(project, tmp_path)
    assert bluegreen(project, "deploy", "--offline", crash_at=point).returncode == -signal.SIGKILL
    time.sleep(0.2)
    on_call(project, "abort")  # the harder path: abort when it may, resume when abort says so
    writer.wait_for(10, timeout=UNSTUCK_S)
    check_every_write(project, writer.finish())


@pytest.mark.parametrize("recovery", ["resume", "revert"])
@pytest.mark.parametrize("point", REVERT_POINTS)
def test_revert_crash(toy_ready, tmp_path, point, recovery):
    project = toy_ready
    writer = start_writer(project, tmp_path)
    assert bluegreen(project, "deploy").returncode == 0
    writer.wait_for(20, timeout=UNSTUCK_S)  # the writer follows the pointer to green and writes there
    assert bluegreen(project, "revert", crash_at=point).returncode == -signal.SIGKILL
    time.sleep(0.2)
    on_call(project, recovery)
    writer.wait_for(10, timeout=UNSTUCK_S)
    assert check_every_write(project, writer.finish()) == project.blue
