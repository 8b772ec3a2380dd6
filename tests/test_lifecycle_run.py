"""One Run per command (lifecycle/run.py): a Controller serves any number of commands, each
reporting only its own timed steps, and the journal's vocabulary (Phase, Step) reads back from
state.json as the same plain strings it always was."""

from __future__ import annotations

import json

from bluegreen.config import load
from bluegreen.files.journal import PHASES, Phase, Step, Store
from bluegreen.lifecycle.controller import Controller


def test_one_controller_runs_deploy_then_revert_each_with_its_own_timings(toy_ready):
    controller = Controller(load(toy_ready.config))
    deployed = controller.deploy()
    reverted = controller.revert()
    deploy_steps = [t.name for t in deployed.timings]
    revert_steps = [t.name for t in reverted.timings]
    assert {"capture", "snapshot", "migrate", "validate", "fence", "swap"} <= set(deploy_steps)
    assert "snapshot" not in revert_steps and {"carry_back", "fence", "unfence", "swap"} <= set(revert_steps)
    assert Store(toy_ready.pointer).load().phase == Phase.IDLE
    again = controller.deploy()  # and a third command: generation 3 from the reverted blue
    assert again.data["generation"] == 3 and [t.name for t in again.timings].count("swap") == 1


def test_the_journal_stores_phases_and_steps_as_their_plain_names(toy_ready):
    controller = Controller(load(toy_ready.config))
    controller.prepare()
    raw = json.loads((toy_ready.data / ".bluegreen" / "state.json").read_text())
    assert (raw["phase"], raw["step"]) == ("prepared", "validated")
    assert type(Store(toy_ready.pointer).load().phase) is str  # read back as a plain string, equal to the member
    assert Store(toy_ready.pointer).load().phase == Phase.PREPARED and Step.VALIDATED == "validated"
    assert PHASES == ("idle", "preparing", "prepared", "cutting_over", "cut_over", "reverting")


def test_the_cli_reports_timings_under_phases(toy_ready):
    document = toy_ready.cli("deploy", "--json").json
    assert document["ok"] and {"name", "duration_ms"} == set(document["phases"][0])
    assert "swap" in [p["name"] for p in document["phases"]]
