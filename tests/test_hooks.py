"""Hooks ([hooks] in config.toml): each event runs its command with the BLUEGREEN_* variables; a
failing pre-* hook refuses with nothing changed (exit 3); a failing post-* hook leaves the
operation standing (exit 6); on-failure hears errors without masking them; a hook over its time
limit is killed with everything it started; no hook runs while blue's write lock is held.

Hooks are real shell commands run by real /bin/sh processes; the databases are real files.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from conftest import BASE_CONFIG, disk_state, rows
from helpers import assert_refused, json_error, pointer_of, state_of

EVENTS = ("pre-prepare", "post-prepare", "pre-cutover", "post-cutover", "post-revert", "on-failure")
VARIABLES = (
    "EVENT",
    "COMMAND",
    "PHASE",
    "CONFIG",
    "POINTER",
    "ACTIVE",
    "GENERATION",
    "BLUE",
    "GREEN",
    "GREEN_GENERATION",
    "FROM_VERSION",
    "TO_VERSION",
    "ERROR",
    "EXIT_CODE",
)

# Records the hook's environment and working folder as one JSON line, then writes a row into the
# active database with a busy timeout of 0: if bluegreen held the active file's write lock while
# the hook ran, the write would fail at once and so would the hook.
RECORDER = """\
import json, os, sys
import apsw
record = {k[len("BLUEGREEN_"):]: v for k, v in os.environ.items() if k.startswith("BLUEGREEN_")}
record["cwd"] = os.getcwd()
with open(sys.argv[1], "a") as out:
    out.write(json.dumps(record) + "\\n")
if os.environ["BLUEGREEN_EVENT"] != "on-failure":
    conn = apsw.Connection(os.environ["BLUEGREEN_ACTIVE"], flags=apsw.SQLITE_OPEN_READWRITE)
    conn.set_busy_timeout(0)
    conn.execute("INSERT INTO items(name) VALUES (?)", ("hook " + os.environ["BLUEGREEN_EVENT"],))
"""


def hooks_config(project, **commands: str) -> None:
    """Write config.toml with a [hooks] section; keyword names use _ for the event's -."""
    lines = [
        f"{key.replace('_', '-') if key != 'timeout_s' else key} = {json.dumps(value)}"
        for key, value in commands.items()
    ]
    project.config.write_text(BASE_CONFIG + "[hooks]\n" + "\n".join(lines) + "\n")


def recording(project, *events: str) -> Path:
    """Configure every given event to run the recorder; returns the log it appends to."""
    script = project.root / "recorder.py"
    script.write_text(RECORDER)
    log = project.root / "hooks.jsonl"
    hooks_config(project, **{e.replace("-", "_"): f'"{sys.executable}" recorder.py hooks.jsonl' for e in events})
    return log


def records(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def items(path: Path) -> list[str]:
    return [name for (name,) in rows(path, "SELECT name FROM items WHERE name LIKE 'hook %' ORDER BY id")]


# ==================================================================================================
# passing cases
# ==================================================================================================
def test_deploy_and_revert_run_each_hook_in_order_with_its_environment(toy_ready):
    project = toy_ready
    log = recording(project, *EVENTS)
    result = project.cli("deploy", "--json")
    assert result.code == 0, result.err
    document = result.json
    seen = records(log)
    assert [r["EVENT"] for r in seen] == ["pre-prepare", "post-prepare", "pre-cutover", "post-cutover"]
    assert [h["event"] for h in document["hooks"]] == [r["EVENT"] for r in seen]
    assert all(h["exit_code"] == 0 and not h["timed_out"] for h in document["hooks"])
    assert [p["name"] for p in document["phases"] if p["name"].endswith(" hook")] == [
        f"{e} hook" for e in [r["EVENT"] for r in seen]
    ]
    blue, green = str(project.blue), str(project.gen(2))
    for record in seen:
        assert record["COMMAND"] == "deploy"
        assert record["CONFIG"] == str(project.config) and record["POINTER"] == str(project.pointer)
        assert record["cwd"] == str(project.root)  # the config's folder
        assert (record["BLUE"], record["FROM_VERSION"], record["TO_VERSION"]) == (blue, "unversioned", "2.0.0")
        assert "ERROR" not in record and "EXIT_CODE" not in record
    pre_prepare, post_prepare, pre_cutover, post_cutover = seen
    assert (pre_prepare["PHASE"], pre_prepare["GREEN"], pre_prepare["GREEN_GENERATION"]) == ("idle", "", "")
    for record, phase in ((post_prepare, "prepared"), (pre_cutover, "prepared")):
        assert (record["PHASE"], record["ACTIVE"], record["GENERATION"]) == (phase, blue, "1")
        assert (record["GREEN"], record["GREEN_GENERATION"]) == (green, "2")
    assert (post_cutover["PHASE"], post_cutover["ACTIVE"], post_cutover["GENERATION"]) == ("cut_over", green, "2")
    # Each hook wrote to the active file with no busy timeout: no lock was held. The rows written
    # on blue before the cutover reached green; the post-cutover one was written on green.
    assert items(project.gen(2)) == ["hook pre-prepare", "hook post-prepare", "hook pre-cutover", "hook post-cutover"]

    revert = project.cli("revert", "--json")
    assert revert.code == 0, revert.err
    last = records(log)[-1]
    assert (last["EVENT"], last["COMMAND"], last["PHASE"]) == ("post-revert", "revert", "idle")
    assert (last["ACTIVE"], last["GENERATION"], last["BLUE"], last["GREEN"]) == (blue, "1", blue, green)
    assert (last["FROM_VERSION"], last["TO_VERSION"]) == ("2.0.0", "unversioned")
    assert [h["event"] for h in revert.json["hooks"]] == ["post-revert"]
    assert items(project.blue)[-1] == "hook post-revert"
    logged = [json.loads(line) for line in (project.data / ".bluegreen/events.jsonl").read_text().splitlines()]
    hooks = [e for e in logged if e["event"] == "hook"]
    assert [e["hook"] for e in hooks] == [*(r["EVENT"] for r in seen), "post-revert"] and all(e["ok"] for e in hooks)


def test_prepare_then_cutover_run_their_own_hooks(toy_ready):
    project = toy_ready
    log = recording(project, "pre-prepare", "post-prepare", "pre-cutover", "post-cutover")
    assert project.cli("prepare").code == 0
    assert [(r["EVENT"], r["COMMAND"]) for r in records(log)] == [
        ("pre-prepare", "prepare"),
        ("post-prepare", "prepare"),
    ]
    result = project.cli("cutover")
    assert result.code == 0, result.err
    assert "pre-cutover hook" in result.out and "post-cutover hook" in result.out  # timed like any phase
    assert [(r["EVENT"], r["COMMAND"]) for r in records(log)][2:] == [
        ("pre-cutover", "cutover"),
        ("post-cutover", "cutover"),
    ]


def test_offline_deploy_runs_its_pre_hooks_before_taking_the_lock(toy_ready):
    project = toy_ready
    log = recording(project, *EVENTS)
    result = project.cli("deploy", "--offline")
    assert result.code == 0, result.err
    # No post-prepare: green is never prepared without blue's lock held, and no hook runs under it.
    assert [r["EVENT"] for r in records(log)] == ["pre-prepare", "pre-cutover", "post-cutover"]
    assert items(project.gen(2)) == ["hook pre-prepare", "hook pre-cutover", "hook post-cutover"]


def test_no_hook_runs_when_there_is_nothing_to_do(toy_ready):
    project = toy_ready
    assert project.cli("deploy").code == 0
    log = recording(project, *EVENTS)
    assert "already cut over" in project.cli("cutover").out
    assert project.cli("finalize").code == 0
    assert "up to date" in project.cli("deploy").out
    assert "up to date" in project.cli("prepare").out
    assert records(log) == []


# ==================================================================================================
# a failing pre-* hook: exit 3, nothing changed, no generation number spent
# ==================================================================================================
@pytest.mark.parametrize("command", ["prepare", "deploy", "deploy --offline"])
def test_a_failing_pre_prepare_hook_refuses_with_nothing_changed(toy_ready, command):
    project = toy_ready
    hooks_config(project, pre_prepare="echo checking; echo 'no releases on Friday' >&2; exit 7")
    before = disk_state(project.data)
    result = project.cli(*command.split())
    line = assert_refused(
        result,
        3,
        "pre-prepare hook",
        "refused",
        "exit 7: no releases on Friday",
        "nothing was changed",
        str(project.config),
    )
    assert f"`bluegreen {command}` again" in line
    assert disk_state(project.data) == before
    assert state_of(project)["last_generation"] == 1  # no generation number spent
    document = json_error(project.cli(*command.split(), "--json"), 3)
    assert document["details"]["hook"]["output"] == "checking\nno releases on Friday\n"
    assert disk_state(project.data) == before


def test_a_failing_pre_cutover_hook_refuses_with_green_still_prepared(toy_ready):
    project = toy_ready
    assert project.cli("prepare").code == 0
    hooks_config(project, pre_cutover="test -f approved || { echo 'not approved yet'; exit 1; }")
    before = disk_state(project.data)
    result = project.cli("cutover")
    assert_refused(
        result,
        3,
        "pre-cutover hook",
        "exit 1: not approved yet",
        "generation 2 stays prepared",
        "blue active",
        "`bluegreen cutover`",
    )
    assert disk_state(project.data) == before
    assert state_of(project)["phase"] == "prepared" and pointer_of(project)["active"] == "app.db"
    (project.root / "approved").write_text("yes")  # the gate passes now: the same cutover goes ahead
    assert project.cli("cutover").code == 0
    assert pointer_of(project)["active"] == "app.gen2.db"


def test_a_failing_pre_cutover_hook_stops_deploy_after_prepare(toy_ready):
    project = toy_ready
    hooks_config(project, pre_cutover="exit 2")
    result = project.cli("deploy")
    assert_refused(result, 3, "pre-cutover hook", "exit 2, no output", "generation 2 stays prepared")
    assert state_of(project)["phase"] == "prepared" and pointer_of(project)["active"] == "app.db"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def test_a_pre_hook_over_its_time_limit_is_killed_with_its_children(toy_ready):
    project = toy_ready
    # The hook starts a child that would outlive it, then hangs: the time limit ends both.
    hooks_config(project, pre_prepare="sleep 60 & echo $! > child.pid; echo started; wait", timeout_s=1)
    before = disk_state(project.data)
    result = project.cli("prepare")
    assert_refused(
        result, 3, "pre-prepare hook", "timed out after 1 s ([hooks] timeout_s): started", "nothing was changed"
    )
    assert disk_state(project.data) == before
    child = int((project.root / "child.pid").read_text())
    deadline = time.monotonic() + 10  # the kill is immediate; this only allows for scheduling
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), f"hook child {child} survived the time limit"


# ==================================================================================================
# a failing post-* hook: the operation stands, exit 6 (deploy's post-prepare: a gate, exit 3)
# ==================================================================================================
def test_a_failing_post_cutover_hook_exits_6_and_the_cutover_stands(toy_ready):
    project = toy_ready
    log = project.root / "on-failure.log"
    hooks_config(project, post_cutover="echo 'could not restart the workers'; exit 4", on_failure=f"echo ran >> {log}")
    result = project.cli("deploy", "--json")
    document = json_error(result, 6)
    for words in (
        "generation 2 is active",
        "post-cutover hook failed",
        "exit 4: could not restart the workers",
        "do not deploy again",
        "bluegreen revert",
    ):
        assert words in document["error"]
    assert document["details"]["generation"] == 2 and document["details"]["active"] == str(project.gen(2))
    assert document["details"]["hook"]["exit_code"] == 4
    assert pointer_of(project)["active"] == "app.gen2.db" and state_of(project)["phase"] == "cut_over"
    assert not log.exists()  # the operation did not fail: on-failure is not told it did


def test_a_failing_post_prepare_hook(toy_ready):
    project = toy_ready
    hooks_config(project, post_prepare="echo 'smoke test failed'; exit 1")
    # prepare: the generation stands prepared, exit 6.
    result = project.cli("prepare")
    assert_refused(
        result, 6, "generation 2 prepared", "post-prepare hook failed", "exit 1: smoke test failed", "stays prepared"
    )
    assert state_of(project)["phase"] == "prepared"
    assert project.cli("abort").code == 0
    # deploy: post-prepare is the last word before the cutover; it stops there, blue still active.
    result = project.cli("deploy")
    assert_refused(
        result,
        3,
        "generation 3 is prepared",
        "post-prepare hook failed",
        "deploy stopped before the cutover",
        "blue is still active",
    )
    assert state_of(project)["phase"] == "prepared" and pointer_of(project)["active"] == "app.db"
    assert project.cli("cutover").code == 0  # post-prepare does not run again at cutover


def test_a_failing_post_revert_hook_exits_6_and_the_revert_stands(toy_ready):
    project = toy_ready
    assert project.cli("deploy").code == 0
    hooks_config(project, post_revert="exit 3")
    result = project.cli("revert")
    assert_refused(result, 6, "reverted: app.db", "post-revert hook failed", "the revert stands")
    assert pointer_of(project)["active"] == "app.db" and state_of(project)["phase"] == "idle"


# ==================================================================================================
# on-failure
# ==================================================================================================
def test_on_failure_is_told_the_error_and_exit_code(toy_ready):
    project = toy_ready
    log = project.root / "failure.jsonl"
    (project.root / "recorder.py").write_text(RECORDER)
    hooks_config(
        project, pre_cutover="echo 'change freeze'; exit 1", on_failure=f'"{sys.executable}" recorder.py {log.name}'
    )
    result = project.cli("deploy")
    line = assert_refused(result, 3, "pre-cutover hook")
    [record] = records(log)
    assert (record["EVENT"], record["COMMAND"], record["EXIT_CODE"]) == ("on-failure", "deploy", "3")
    assert line == f"bluegreen: error: {record['ERROR']}"
    assert (record["PHASE"], record["GREEN"]) == ("prepared", str(project.gen(2)))


def test_on_failure_runs_for_a_validation_gate_but_not_for_input_errors(toy_ready):
    project = toy_ready
    log = project.root / "failure.log"
    hooks_config(project, on_failure=f'echo "$BLUEGREEN_EXIT_CODE $BLUEGREEN_ERROR" >> {log.name}')
    assert_refused(project.cli("cutover"), 2, "nothing prepared to cut over")  # nothing was attempted
    assert not log.exists()
    (project.schemas / "002_v2.0.0_split_names_validate.sql").write_text("SELECT 'always fails', 1, 2, 'FAIL';\n")
    line = assert_refused(project.cli("prepare"), 3, "validation refused generation 2")
    assert log.read_text() == f"3 {line.removeprefix('bluegreen: error: ')}\n"


def test_a_failing_on_failure_hook_does_not_mask_the_error(toy_ready):
    project = toy_ready
    hooks_config(project, pre_prepare="echo 'maintenance'; exit 1", on_failure="echo 'pager down'; exit 9")
    before = disk_state(project.data)
    result = project.cli("prepare", "--json")
    document = json_error(result, 3)  # the original error's code
    assert document["error"].startswith("the pre-prepare hook")
    assert "exit 1: maintenance" in document["error"]
    assert "(the on-failure hook also failed: exit 9: pager down)" in document["error"]
    assert document["details"]["hook"]["event"] == "pre-prepare"
    assert document["details"]["on_failure_hook"]["exit_code"] == 9
    assert disk_state(project.data) == before


# ==================================================================================================
# bad configuration: exit 2, named key, nothing changed
# ==================================================================================================
@pytest.mark.parametrize(
    "extra, words",
    [
        ("[hooks]\npre-cutover = 5\n", ["hooks.pre-cutover", "non-empty shell command", "got 5"]),
        ('[hooks]\npre-cutover = "  "\n', ["hooks.pre-cutover", "leave the key out"]),
        ('[hooks]\npre-deploy = "true"\n', ["unknown key hooks.pre-deploy", "pre-prepare", "on-failure"]),
        ('[hooks]\npre_cutover = "true"\n', ["unknown key hooks.pre_cutover", "pre-cutover"]),
        ("[hooks]\ntimeout_s = 0\n", ["hooks.timeout_s", "positive integer"]),
    ],
)
def test_bad_hooks_config_is_refused(toy_ready, extra, words):
    project = toy_ready
    project.config.write_text(BASE_CONFIG + extra)
    before = disk_state(project.data)
    assert_refused(project.cli("deploy"), 2, str(project.config), *words)
    assert disk_state(project.data) == before
