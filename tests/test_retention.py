"""Retention: `bluegreen generations` lists what is kept, `bluegreen prune` removes fenced
generations retired [retention] keep_days or more days ago — never the active file, never the
revert target, never a file whose fence moved or that a live client still has open.

Ages are real: a retirement time comes from the swap event in the real event log (rewritten
here to an older time, as a file that was retired long ago would have it), or from the file's
own modification time (set with os.utime) when the log does not cover it. keep_days = 0 prunes
at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import BASE_CONFIG, disk_state, rows, write_config
from helpers import HOLD_LOCK, assert_refused, files_of, json_error, pointer_of, state_of

HOLDER = Path(__file__).resolve().parent / "test_client_processes.py"
DAY = 86_400


def keep_days(project, days: int) -> None:
    write_config(project.root, f"[retention]\nkeep_days = {days}\n")


def stable_state(project) -> dict:
    """disk_state of the data folder without client heartbeats (they beat on their own clock)."""
    return {k: v for k, v in disk_state(project.data).items() if not k.startswith(".bluegreen/clients/")}


def listing(project) -> dict[str, dict]:
    result = project.cli("generations", "--json")
    assert result.code == 0, result.err
    return {g["name"]: g for g in result.json["generations"]}


def age_events(project, file_name: str, days: float) -> None:
    """Move the swap that retired file_name `days` into the past, in the real event log."""
    log = project.data / ".bluegreen" / "events.jsonl"
    events = [json.loads(line) for line in log.read_text().splitlines()]
    when = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - days * DAY))
    moved = 0
    for event in events:
        if event["event"] == "swap" and event.get("previous") == file_name:
            event["at"] = when
            moved += 1
    assert moved, f"no swap retired {file_name}"
    log.write_text("".join(json.dumps(e) + "\n" for e in events))


@pytest.fixture
def retired(toy_ready):
    """Generation 2 active and finalized; app.db retired (fenced) a moment ago."""
    assert toy_ready.cli("deploy").code == 0
    assert toy_ready.cli("finalize").code == 0
    return toy_ready


@pytest.fixture
def two_retired(toy_ready):
    """Generation 3 active and finalized; app.gen2.db reverted, app.db retired: two fenced files."""
    for command in ("deploy", "revert", "deploy", "finalize"):
        assert toy_ready.cli(command).code == 0, command
    assert pointer_of(toy_ready)["active"] == "app.gen3.db"
    return toy_ready


# ==================================================================================================
# listing
# ==================================================================================================
def test_generations_lists_roles_sizes_and_age_from_the_swap(toy_ready):
    project = toy_ready
    assert project.cli("deploy").code == 0
    during = listing(project)
    assert {n: g["role"] for n, g in during.items()} == {"app.db": "revert_target", "app.gen2.db": "active"}
    assert during["app.db"]["age_days"] is None and not during["app.db"]["due"]

    assert project.cli("finalize").code == 0
    after = listing(project)
    assert after["app.db"]["role"] == "retired" and after["app.db"]["age_from"] == "swap event"
    swap = [
        e
        for e in map(json.loads, (project.data / ".bluegreen/events.jsonl").read_text().splitlines())
        if e["event"] == "swap"
    ][-1]
    assert after["app.db"]["retired_at"] == swap["at"] and swap["previous"] == "app.db"
    assert 0 <= after["app.db"]["age_days"] < 1 and not after["app.db"]["due"]  # keep_days 30
    for name in ("app.db", "app.gen2.db"):
        on_disk = sum(os.stat(project.data / f).st_size for f in files_of(project.data / name))
        assert after[name]["size_bytes"] == on_disk > 0
    text = project.cli("generations").out
    assert "app.db" in text and "retired" in text and "0 due now" in text
    status = project.cli("status")
    assert "kept        1 other file(s)" in status.out
    assert [k["name"] for k in project.cli("status", "--json").json["kept"]] == ["app.db", "app.gen2.db"]


def test_a_reverted_generation_and_an_export_are_listed(two_retired):
    project = two_retired
    export = project.data / "app.gen2.lost-2026-11-23T000000.000Z.db"
    export.write_bytes((project.data / "app.gen3.db").read_bytes())  # any SQLite file will do
    found = listing(project)
    assert {n: g["role"] for n, g in found.items()} == {
        "app.db": "retired",
        "app.gen2.db": "reverted",
        "app.gen3.db": "active",
        export.name: "export",
    }
    assert found[export.name]["generation"] is None and not found[export.name]["prunable"]


def test_age_falls_back_to_the_file_time_when_the_log_does_not_cover_it(two_retired):
    project = two_retired
    keep_days(project, 30)
    (project.data / ".bluegreen" / "events.jsonl").unlink()
    old = time.time() - 40 * DAY
    os.utime(project.data / "app.db", (old, old))
    found = listing(project)
    assert found["app.db"]["age_from"] == found["app.gen2.db"]["age_from"] == "file time"
    assert 39.9 < found["app.db"]["age_days"] < 40.1 and found["app.db"]["due"]
    assert found["app.gen2.db"]["age_days"] < 1 and not found["app.gen2.db"]["due"]
    pruned = project.cli("prune", "--json")
    assert pruned.code == 0, pruned.err
    assert [p["name"] for p in pruned.json["pruned"]] == ["app.db"]
    assert files_of(project.blue) == [] and files_of(project.gen(2))[0] == "app.gen2.db"


# ==================================================================================================
# prune: passing cases
# ==================================================================================================
def test_prune_removes_retired_generations_older_than_keep_days(two_retired):
    project = two_retired
    active_rows = rows(project.gen(3), "SELECT * FROM items ORDER BY id")
    nothing = project.cli("prune", "--json")  # both retired a moment ago; keep_days 30
    assert nothing.code == 0 and nothing.json["pruned"] == [] and "nothing to prune" in nothing.json["message"]

    age_events(project, "app.db", 31)
    age_events(project, "app.gen2.db", 29)
    before = disk_state(project.data)
    dry = project.cli("prune", "--dry-run", "--json")
    assert dry.code == 0, dry.err
    assert dry.json["dry_run"] and [p["name"] for p in dry.json["pruned"]] == ["app.db"]
    assert "dry run, nothing was changed" in dry.json["message"]
    assert disk_state(project.data) == before

    done = project.cli("prune", "--json")
    assert done.code == 0, done.err
    assert [p["name"] for p in done.json["pruned"]] == ["app.db"] == [p["name"] for p in dry.json["pruned"]]
    assert done.json["freed_bytes"] == dry.json["freed_bytes"] > 0
    assert files_of(project.blue) == []
    assert files_of(project.gen(2))[0] == "app.gen2.db" and files_of(project.gen(3))[0] == "app.gen3.db"
    assert "app.db" not in state_of(project)["fences"] and "app.gen2.db" in state_of(project)["fences"]
    assert rows(project.gen(3), "SELECT * FROM items ORDER BY id") == active_rows
    assert [
        e["file"]
        for e in map(json.loads, (project.data / ".bluegreen/events.jsonl").read_text().splitlines())
        if e["event"] == "pruned"
    ] == ["app.db"]
    # the pruned file is gone from the listing; the next deploy still gets a new number
    assert set(listing(project)) == {"app.gen2.db", "app.gen3.db"}


def test_keep_days_zero_prunes_every_retired_generation_and_the_next_deploy_goes_on(two_retired):
    project = two_retired
    keep_days(project, 0)
    done = project.cli("prune")
    assert done.code == 0, done.err
    assert "pruned app.db, app.gen2.db" in done.out and "freed" in done.out
    assert set(listing(project)) == {"app.gen3.db"}
    assert project.cli("revert").code == 2  # no revert window: nothing refers to the pruned files
    assert project.cli("status").code == 0


def test_prune_during_a_revert_window_keeps_the_revert_target(two_retired):
    project = two_retired
    keep_days(project, 0)
    (project.schemas / "003_v3.0.0_more.sql").write_text("CREATE TABLE more(id INTEGER PRIMARY KEY);\n")
    assert project.cli("deploy").code == 0  # gen 4 active, gen 3 the revert target
    done = project.cli("prune", "--json")
    assert done.code == 0, done.err
    assert [p["name"] for p in done.json["pruned"]] == ["app.db", "app.gen2.db"]
    assert files_of(project.gen(3))[0] == "app.gen3.db"
    assert project.cli("revert").code == 0  # the window still works
    assert pointer_of(project)["active"] == "app.gen3.db"


def test_prune_a_named_generation_whatever_its_age(two_retired):
    project = two_retired
    before_gen1 = files_of(project.blue)
    dry = project.cli("prune", "app.gen2.db", "--dry-run", "--json")
    assert dry.code == 0 and [p["name"] for p in dry.json["pruned"]] == ["app.gen2.db"]
    assert files_of(project.gen(2))[0] == "app.gen2.db"
    done = project.cli("prune", str(project.gen(2)))  # a path in the data folder works too
    assert done.code == 0, done.err
    assert files_of(project.gen(2)) == [] and files_of(project.blue) == before_gen1


# ==================================================================================================
# prune: refusals — message, exit code, nothing changed
# ==================================================================================================
def test_prune_refuses_the_revert_target(retired):
    project = retired
    keep_days(project, 0)
    (project.schemas / "003_v3.0.0_more.sql").write_text("CREATE TABLE more(id INTEGER PRIMARY KEY);\n")
    assert project.cli("deploy").code == 0  # gen 3 active, gen 2 the revert target
    before = disk_state(project.data)
    for args in (("app.gen2.db",), ("app.gen2.db", "--dry-run"), ("app.db", "app.gen2.db")):
        result = project.cli("prune", *args, "--json")
        assert_refused(
            result,
            2,
            str(project.gen(2)),
            "revert target",
            "prune refused",
            "nothing was changed",
            "bluegreen finalize",
        )
        json_error(result, 2)
    assert disk_state(project.data) == before
    assert files_of(project.blue)[0] == "app.db"  # named alongside: not removed either


@pytest.mark.parametrize(
    "name, words",
    [
        ("app.gen2.db", ["the active generation", "only retired generations"]),
        ("app.gen9.db", ["not a generation in the data folder", "bluegreen generations"]),
        ("/tmp/elsewhere/app.db", ["not in the data folder"]),
        ("current.toml", ["not a generation"]),
    ],
)
def test_prune_refuses_what_is_not_a_retired_generation(retired, name, words):
    project = retired
    keep_days(project, 0)
    before = disk_state(project.data)
    result = project.cli("prune", name, "--json")
    assert_refused(result, 2, *words)
    json_error(result, 2)
    assert disk_state(project.data) == before


def test_prune_refuses_an_export(two_retired):
    project = two_retired
    export = project.data / "app.gen3.lost-2026-11-23T000000.000Z.db"
    export.write_bytes((project.data / "app.gen3.db").read_bytes())
    keep_days(project, 0)
    before = disk_state(project.data)
    result = project.cli("prune", export.name)
    assert_refused(result, 2, export.name, "could not carry back", "remove it yourself")
    assert disk_state(project.data) == before
    assert project.cli("prune").code == 0 and export.exists()  # a sweep leaves it too


def test_prune_refuses_a_retired_file_whose_fence_moved(two_retired):
    project = two_retired
    keep_days(project, 0)
    tamper = project.connect(project.gen(2))
    tamper.execute("CREATE TABLE notes(x)")  # DDL on a fenced file: nothing stops it, the version moves
    tamper.close()
    before = disk_state(project.data)
    for args in ((), ("--dry-run",), ("app.gen2.db",)):
        result = project.cli("prune", *args)
        assert_refused(result, 1, str(project.gen(2)), "schema changed after it was fenced", "prune refused")
    assert disk_state(project.data) == before
    assert files_of(project.blue)[0] == "app.db"  # all or nothing: the intact one stays too
    assert project.cli("prune", "app.db").code == 0  # named alone, the intact one can go


def test_prune_refuses_a_file_a_live_client_process_has_open(toy_ready):
    project = toy_ready
    keep_days(project, 0)
    holder = subprocess.Popen(
        [sys.executable, str(HOLDER), "hold", str(project.pointer)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().split() == ["on", "1"]
        assert project.cli("deploy").code == 0
        assert project.cli("finalize", "--force").code == 0
        before = stable_state(project)
        for args in (("--json",), ("--dry-run", "--json"), ("app.db", "--json")):
            result = project.cli("prune", *args)
            assert_refused(result, 1, str(project.blue), "live process", f"-{holder.pid}", "prune refused")
            assert [c["pid"] for c in json_error(result, 1)["details"]["clients"]] == [holder.pid]
        assert stable_state(project) == before
        holder.stdin.write("move\n")
        holder.stdin.flush()
        assert holder.stdout.readline().split() == ["on", "2"]
        assert project.cli("prune").code == 0 and files_of(project.blue) == []
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
        holder.stdout.close()


def test_prune_refuses_while_an_operation_is_in_flight(retired):
    project = retired
    keep_days(project, 0)
    (project.schemas / "003_v3.0.0_more.sql").write_text("CREATE TABLE more(id INTEGER PRIMARY KEY);\n")
    assert project.cli("prepare").code == 0
    before = disk_state(project.data)
    result = project.cli("prune", "--json")
    assert_refused(result, 2, "phase prepared", "prune refused", "bluegreen resume", "bluegreen abort")
    json_error(result, 2)
    assert disk_state(project.data) == before


def test_prune_is_busy_while_another_controller_holds_the_lock(retired):
    project = retired
    keep_days(project, 0)
    lock = project.data / ".bluegreen" / "lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = disk_state(project.data)
        result = project.cli("prune", "--json")
        assert_refused(result, 4, "another bluegreen controller is running")
        json_error(result, 4)
        assert disk_state(project.data) == before
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


@pytest.mark.parametrize(
    "value, words",
    [
        ("-1", ["retention.keep_days", "0 or more", "-1"]),
        ('"30d"', ["retention.keep_days", "whole number", "'30d'"]),
        ("1.5", ["retention.keep_days", "1.5"]),
        ("true", ["retention.keep_days", "True"]),
    ],
)
def test_bad_keep_days_is_refused_naming_the_key(retired, value, words):
    project = retired
    (project.config).write_text(BASE_CONFIG + f"[retention]\nkeep_days = {value}\n")
    before = disk_state(project.data)
    for command in ("prune", "generations"):
        result = project.cli(command)
        assert_refused(result, 2, str(project.config), *words)
    assert disk_state(project.data) == before
