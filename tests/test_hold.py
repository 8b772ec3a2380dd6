"""Postponing a cutover with a flag file ([cutover] wait_flag): without --wait a present flag
refuses (exit 3) with nothing changed; `cutover --wait` / `deploy --wait` keep green caught up
while the flag exists and cut over once it is gone; a time limit or Ctrl-C leaves green prepared.

The waits are real `bluegreen` processes, with a real writer process writing to blue meanwhile.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BASE_CONFIG, disk_state, rows
from helpers import assert_refused, check_writes, events, json_error, pointer_of, state_of, until

FLAG = "data/hold-cutover"
PROCESS_WAIT = {"timeout": 60, "interval": 0.05}  # for a `bluegreen` process to get somewhere


def hold_config(project, extra: str = "") -> Path:
    project.config.write_text(BASE_CONFIG + f'wait_flag = "{FLAG}"\n' + extra)
    return project.root / FLAG


def green_position(project, generation: int = 2) -> int:
    """The capture position green has replayed up to (stored in green with the rows)."""
    [(seq,)] = rows(project.gen(generation), "SELECT value FROM _bluegreen_meta WHERE key = 'source_seq'")
    return int(seq)


class Background:
    """`bluegreen ...` as a real process; never outlives the test."""

    def __init__(self, project, *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bluegreen", "--config", str(project.config), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def running(self) -> bool:
        return self.proc.poll() is None

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def background():
    started: list[Background] = []

    def start(project, *args: str) -> Background:
        started.append(Background(project, *args))
        return started[-1]

    yield start
    for process in started:
        process.kill()


# ==================================================================================================
# refusals: exit 3 with the flag named, nothing changed
# ==================================================================================================
def test_a_present_flag_refuses_cutover_with_green_still_prepared(toy_ready):
    project = toy_ready
    flag = hold_config(project)
    assert project.cli("prepare").code == 0
    flag.write_text("")
    before = disk_state(project.data)
    line = assert_refused(
        project.cli("cutover"),
        3,
        str(flag),
        "on hold while this file exists",
        "generation 2 stays prepared",
        "nothing was changed",
        "`bluegreen cutover --wait`",
    )
    document = json_error(project.cli("cutover", "--offline", "--json"), 3)  # --offline is held too
    assert document["details"]["wait_flag"] == str(flag)
    assert disk_state(project.data) == before
    assert state_of(project)["phase"] == "prepared" and pointer_of(project)["active"] == "app.db"
    flag.unlink()
    assert project.cli("cutover").code == 0, line
    assert pointer_of(project)["active"] == "app.gen2.db"


@pytest.mark.parametrize("args", [["deploy"], ["deploy", "--offline"]])
def test_a_present_flag_refuses_deploy_before_anything_is_built(toy_ready, args):
    project = toy_ready
    flag = hold_config(project)
    flag.write_text("")
    before = disk_state(project.data)
    assert_refused(
        project.cli(*args), 3, str(flag), "blue stays active", "nothing was changed", "`bluegreen deploy --wait`"
    )
    assert disk_state(project.data) == before
    assert state_of(project)["last_generation"] == 1  # no generation number spent


@pytest.mark.parametrize("command", ["cutover", "deploy"])
def test_wait_without_a_flag_configured_is_an_input_error(toy_ready, command):
    project = toy_ready
    before = disk_state(project.data)
    assert_refused(
        project.cli(command, "--wait"), 2, str(project.config), "--wait needs a hold flag", "[cutover] wait_flag"
    )
    assert disk_state(project.data) == before


@pytest.mark.parametrize(
    "value, words",
    [("-1", ["cutover.wait_timeout_s", "0 or more", "-1"]), ('"1h"', ["cutover.wait_timeout_s", "'1h'"])],
)
def test_a_bad_wait_timeout_is_an_input_error(toy_ready, value, words):
    project = toy_ready
    hold_config(project, f"wait_timeout_s = {value}\n")
    before = disk_state(project.data)
    assert_refused(project.cli("deploy"), 2, str(project.config), *words)
    assert disk_state(project.data) == before


def test_waiting_past_the_time_limit_leaves_green_prepared(toy_ready):
    project = toy_ready
    flag = hold_config(project, "wait_timeout_s = 1\n")
    assert project.cli("prepare").code == 0
    flag.write_text("")
    before = disk_state(project.data)
    assert_refused(
        project.cli("cutover", "--wait"),
        3,
        str(flag),
        "still present after 1 s",
        "[cutover] wait_timeout_s",
        "generation 2 stays prepared",
        "`bluegreen cutover --wait`",
    )
    assert disk_state(project.data) == before  # no write landed on blue meanwhile: green is as it was
    assert [e["wait_flag"] for e in events(project, "hold")][:1] == [str(flag)]


# ==================================================================================================
# passing cases
# ==================================================================================================
def test_wait_with_no_flag_present_cuts_over_at_once(toy_ready):
    project = toy_ready
    hold_config(project)
    result = project.cli("deploy", "--wait", "--json")
    assert result.code == 0, result.err
    assert pointer_of(project)["active"] == "app.gen2.db"
    assert "hold" not in [p["name"] for p in result.json["phases"]]


def test_cutover_wait_keeps_green_caught_up_and_cuts_over_once_the_flag_is_gone(toy_ready, background, spawn):
    project = toy_ready
    flag = hold_config(project)
    assert project.cli("prepare").code == 0
    flag.write_text("held by the on-call person")
    writer = spawn(project, 1)
    writer.wait_for(10)
    waiting = background(project, "cutover", "--wait", "--json")
    until(lambda: events(project, "hold") or not waiting.running(), "the cutover to start waiting", **PROCESS_WAIT)
    assert waiting.running(), waiting.finish()
    # While it waits: still prepared, the pointer on blue, and green follows blue's writes.
    start = green_position(project)
    writer.wait_for(20, on="app.db")
    until(lambda: green_position(project) > start, "green to catch up while waiting", **PROCESS_WAIT)
    assert waiting.running() and state_of(project)["phase"] == "prepared"
    assert pointer_of(project)["active"] == "app.db"
    flag.unlink()
    code, out, err = waiting.finish()
    assert code == 0, err
    document = json.loads(out)
    assert document["ok"] and document["generation"] == 2
    assert any(p["name"] == "hold" for p in document["phases"])
    notes = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(n.get("event") == "note" and n["wait_flag"] == str(flag) for n in notes)
    writer.wait_for(10, on="app.gen2.db")  # the writer followed the pointer
    check_writes(project.gen(2), 1, writer.finish())  # every write it was told committed is in green


def test_deploy_wait_prepares_then_waits(toy_ready, background):
    project = toy_ready
    flag = hold_config(project)
    flag.write_text("")
    waiting = background(project, "deploy", "--wait")
    until(lambda: events(project, "hold") or not waiting.running(), "the deploy to start waiting", **PROCESS_WAIT)
    assert waiting.running(), waiting.finish()
    assert state_of(project)["phase"] == "prepared" and pointer_of(project)["active"] == "app.db"
    flag.unlink()
    code, out, err = waiting.finish()
    assert code == 0, err
    assert "generation 2 is active" in out and pointer_of(project)["active"] == "app.gen2.db"


def test_offline_deploy_wait_waits_before_building_anything(toy_ready, background):
    project = toy_ready
    flag = hold_config(project)
    flag.write_text("")
    waiting = background(project, "deploy", "--offline", "--wait")
    until(lambda: events(project, "hold") or not waiting.running(), "the deploy to start waiting", **PROCESS_WAIT)
    assert waiting.running(), waiting.finish()
    assert state_of(project)["phase"] == "idle" and not project.gen(2).exists()
    flag.unlink()
    code, out, err = waiting.finish()
    assert code == 0, err
    assert pointer_of(project)["active"] == "app.gen2.db"


def test_ctrl_c_while_waiting_leaves_green_prepared(toy_ready, background):
    project = toy_ready
    flag = hold_config(project)
    assert project.cli("prepare").code == 0
    flag.write_text("")
    before = disk_state(project.data)
    waiting = background(project, "cutover", "--wait")
    until(lambda: events(project, "hold") or not waiting.running(), "the cutover to start waiting", **PROCESS_WAIT)
    waiting.proc.send_signal(signal.SIGINT)
    code, out, err = waiting.finish()
    assert code == 1 and "interrupted; run `bluegreen status`" in err, err
    assert disk_state(project.data) == before
    assert state_of(project)["phase"] == "prepared" and pointer_of(project)["active"] == "app.db"
    flag.unlink()
    assert project.cli("cutover").code == 0  # and it can go ahead later
