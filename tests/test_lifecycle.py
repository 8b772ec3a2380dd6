"""The lifecycle on a toy schema: init → prepare → cutover → revert / finalize, abort, and the
exact refusal when blue changed between a separate prepare and cutover."""

from __future__ import annotations

import tomllib

import apsw
import pytest

from conftest import disk_state, rows


def pointer_of(project) -> dict:
    return tomllib.loads(project.pointer.read_text())


def test_init_adopts_without_touching_the_file(toy):
    before = disk_state(toy.data)
    result = toy.cli("init", "--json")
    assert result.code == 0, result.err
    assert result.json["generation"] == 1
    assert pointer_of(toy)["active"] == "app.db"
    after = disk_state(toy.data)
    assert after["app.db"] == before["app.db"]  # adopted, never rewritten
    again = toy.cli("init")
    assert again.code == 0 and "already initialized" in again.out


def test_status_json_has_the_documented_fields(toy_ready):
    status = toy_ready.cli("status", "--json").json
    for key in ("active", "generation", "schema_version", "phase", "previous", "pending"):
        assert key in status
    assert status["active"] == str(toy_ready.blue)
    assert status["phase"] == "idle"
    assert status["pending"] == ["001_v1.0.0_items.sql", "002_v2.0.0_split_names.sql"]
    assert toy_ready.cli("path").out.strip() == str(toy_ready.blue)


def test_plan_lists_pending_with_companions(toy_ready):
    plan = toy_ready.cli("plan", "--json").json
    assert [m["file"] for m in plan["pending"]] == ["001_v1.0.0_items.sql", "002_v2.0.0_split_names.sql"]
    assert plan["pending"][1]["validate"] == "002_v2.0.0_split_names_validate.sql"


def test_prepare_cutover_revert_round_trip(toy_ready):
    project = toy_ready
    blue_before = disk_state(project.data)["app.db"]
    app = project.connect()  # an application connection open across the whole cutover

    prepared = project.cli("prepare", "--json")
    assert prepared.code == 0, prepared.err
    assert pointer_of(project)["active"] == "app.db"  # a generation is real only once named
    assert project.cli("status", "--json").json["phase"] == "prepared"

    cut = project.cli("cutover", "--json")
    assert cut.code == 0, cut.err
    pointer = pointer_of(project)
    assert (pointer["active"], pointer["generation"], pointer["previous"]) == ("app.gen2.db", 2, "app.db")
    assert pointer["schema_version"] == "2.0.0"
    assert rows(project.gen(2), "SELECT count(*) FROM names") == [(50,)]
    assert rows(project.gen(2), "SELECT upper_name FROM names WHERE id = 1") == [("ITEM 0",)]
    assert rows(project.gen(2), "SELECT count(*) FROM schema_migrations WHERE success = 1") == [(2,)]

    # Blue is fenced: every write fails naming bluegreen, reads go on; its data is as it was.
    with pytest.raises(apsw.SQLError, match="bluegreen_fenced_use_generation_2"):
        app.execute("INSERT INTO items(name) VALUES ('late')")
    assert app.execute("SELECT count(*) FROM items").get == 50
    app.close()
    blue_now = disk_state(project.data)["app.db"]
    assert blue_now[1][1] == blue_before[1][1]  # same rows

    reverted = project.cli("revert", "--json")
    assert reverted.code == 0, reverted.err
    assert (reverted.json["active"], reverted.json["generation"]) == (str(project.blue), 1)
    pointer = pointer_of(project)
    assert (pointer["active"], pointer["generation"], pointer["previous"]) == ("app.db", 1, "app.gen2.db")
    app = project.connect()
    app.execute("INSERT INTO items(name) VALUES ('after revert')")
    assert app.execute("SELECT count(*) FROM items").get == 51
    app.close()
    green = project.connect(project.gen(2))
    with pytest.raises(apsw.SQLError, match="bluegreen_fenced_use_generation_1"):
        green.execute("UPDATE names SET upper_name = 'x' WHERE id = -1")
    green.close()
    assert project.cli("status", "--json").json["phase"] == "idle"


def test_commands_are_harmless_to_repeat(toy_ready):
    assert toy_ready.cli("abort").out.startswith("nothing to abort")
    assert toy_ready.cli("deploy").code == 0
    again = toy_ready.cli("cutover")
    assert again.code == 0 and "already cut over" in again.out
    assert toy_ready.cli("deploy").code == 2  # in the revert window: finalize or revert first
    assert toy_ready.cli("finalize").code == 0
    assert toy_ready.cli("finalize").out.startswith("nothing to finalize")
    assert toy_ready.cli("revert").code == 2
    up_to_date = toy_ready.cli("deploy")
    assert up_to_date.code == 0 and "up to date" in up_to_date.out


@pytest.mark.parametrize(
    "change",
    [
        "INSERT INTO items(name) VALUES ('written after prepare')",
        "UPDATE items SET name = name WHERE id = 7",  # same value: still a committed write
        "DELETE FROM items WHERE id = 3",
        "CREATE TABLE surprise(x)",
    ],
)
def test_cutover_refuses_exactly_when_blue_changed_after_prepare(toy_ready, change):
    project = toy_ready
    assert project.cli("prepare").code == 0
    app = project.connect()
    app.execute(change)
    app.close()
    before = disk_state(project.data)
    refused = project.cli("cutover", "--json")
    assert refused.code == 1
    assert "blue changed since prepare" in refused.err
    assert disk_state(project.data) == before
    assert pointer_of(project)["active"] == "app.db"
    assert project.cli("status", "--json").json["phase"] == "prepared"
    # The way out the message names works and keeps the write.
    assert project.cli("abort").code == 0
    assert not project.gen(2).exists()
    assert project.cli("deploy").code == 0
    assert pointer_of(project)["active"] == "app.gen3.db"


def test_cutover_with_no_change_after_prepare_proceeds(toy_ready):
    assert toy_ready.cli("prepare").code == 0
    app = toy_ready.connect()
    app.execute("SELECT count(*) FROM items").get  # reads are not changes
    app.execute("UPDATE items SET name = 'x' WHERE id = -1")  # matches no row: nothing committed
    app.close()
    assert toy_ready.cli("cutover").code == 0


def test_revert_refuses_when_green_has_writes(toy_ready):
    project = toy_ready
    assert project.cli("deploy").code == 0
    app = project.connect(project.gen(2))
    app.execute("INSERT INTO items(name) VALUES ('on green')")
    app.close()
    before = disk_state(project.data)
    refused = project.cli("revert", "--json")
    assert refused.code == 5
    assert "items: 1" in refused.err and "Nothing was changed" in refused.err
    assert refused.json["details"]["tables"] == {"items": 1}
    assert disk_state(project.data) == before
    assert pointer_of(project)["active"] == "app.gen2.db"


def test_abort_removes_the_prepared_generation_and_capture(toy_ready):
    project = toy_ready
    before = disk_state(project.data)
    assert project.cli("prepare").code == 0
    assert project.gen(2).exists()
    assert rows(project.blue, "SELECT count(*) FROM sqlite_schema WHERE name LIKE '_bluegreen_cap%'") != [(0,)]
    assert project.cli("abort").code == 0
    assert not any(p.name.startswith("app.gen2") for p in project.data.iterdir())
    assert rows(project.blue, "SELECT count(*) FROM sqlite_schema WHERE name LIKE '\\_bluegreen\\_%' ESCAPE '\\'") == [(0,)]
    assert disk_state(project.data) == before


def test_history_shows_applied_migrations(toy_ready):
    assert toy_ready.cli("deploy").code == 0
    history = toy_ready.cli("history", "--json").json["migrations"]
    assert [h["file"] for h in history] == ["001_v1.0.0_items.sql", "002_v2.0.0_split_names.sql"]
    first = history[0]
    for column in ("version", "description", "checksum", "execution_time_ms", "success", "error_message",
                   "depends_on", "can_rollback", "approved_by", "approved_at"):
        assert column in first
    assert history[1]["depends_on"] == "1.0.0"


def test_events_log_every_phase_with_its_duration(toy_ready):
    import json

    assert toy_ready.cli("deploy").code == 0
    events = [json.loads(line) for line in (toy_ready.data / ".bluegreen" / "events.jsonl").read_text().splitlines()]
    phases = [e["phase"] for e in events if e["event"] == "phase"]
    assert phases == ["snapshot", "migrate", "validate", "fence", "swap"]
    assert all(e["duration_ms"] >= 0 for e in events if e["event"] == "phase")
    validation = next(e for e in events if e["event"] == "validation")
    assert validation["passed"] is True and validation["checks"]
