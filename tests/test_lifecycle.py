"""The lifecycle on a toy schema: init → prepare → cutover → revert / finalize, abort, and the
exact refusal when blue changed between a separate prepare and cutover."""

from __future__ import annotations

import apsw
import pytest
from conftest import disk_state, rows
from helpers import pointer_of


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
    blue_items = rows(project.blue, "SELECT * FROM items ORDER BY id")
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
    assert rows(project.blue, "SELECT * FROM items ORDER BY id") == blue_items  # same rows

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
    "change, item_7, names_7, count",
    [
        ("INSERT INTO items(id, name) VALUES (700, 'written after prepare')", "item 6", "ITEM 6", 51),
        ("UPDATE items SET name = 'renamed' WHERE id = 7", "renamed", "RENAMED", 50),
        ("UPDATE items SET name = name WHERE id = 7", "item 6", "ITEM 6", 50),
        ("DELETE FROM items WHERE id = 7", None, None, 49),
        ("UPDATE items SET id = 7000 WHERE id = 7", None, None, 50),
    ],
)
def test_cutover_carries_writes_made_after_prepare(toy_ready, change, item_7, names_7, count):
    """Online: blue keeps taking writes after prepare; cutover replays them into green, and the
    sync script re-derives the reshaped rows."""
    project = toy_ready
    assert project.cli("prepare").code == 0
    app = project.connect()
    app.execute(change)
    app.close()
    result = project.cli("cutover", "--json")
    assert result.code == 0, result.err
    green = project.gen(2)
    assert rows(green, "SELECT count(*) FROM items") == [(count,)]
    assert rows(green, "SELECT name FROM items WHERE id = 7") == ([(item_7,)] if item_7 else [])
    assert rows(green, "SELECT upper_name FROM names WHERE id = 7") == ([(names_7,)] if names_7 else [])
    assert rows(green, "SELECT count(*) FROM names") == [(count,)]
    assert rows(green, "SELECT id, upper(name) FROM items EXCEPT SELECT id, upper_name FROM names") == []


def test_cutover_refuses_a_schema_change_on_blue_after_prepare(toy_ready):
    project = toy_ready
    assert project.cli("prepare").code == 0
    app = project.connect()
    app.execute("CREATE TABLE surprise(x)")
    app.close()
    before = disk_state(project.data)
    refused = project.cli("cutover", "--json")
    assert refused.code == 1
    assert "schema changed since prepare" in refused.err
    assert disk_state(project.data) == before
    assert pointer_of(project)["active"] == "app.db"
    assert project.cli("status", "--json").json["phase"] == "prepared"
    # The way out the message names works.
    assert project.cli("abort").code == 0
    assert not project.gen(2).exists()
    assert project.cli("deploy").code == 0
    assert pointer_of(project)["active"] == "app.gen3.db"
    assert rows(project.gen(3), "SELECT count(*) FROM sqlite_schema WHERE name = 'surprise'") == [(1,)]


def test_cutover_with_no_change_after_prepare_proceeds(toy_ready):
    assert toy_ready.cli("prepare").code == 0
    app = toy_ready.connect()
    app.execute("SELECT count(*) FROM items").get  # reads are not changes
    app.execute("UPDATE items SET name = 'x' WHERE id = -1")  # matches no row: nothing committed
    app.close()
    assert toy_ready.cli("cutover").code == 0


def test_revert_carries_same_shape_writes_back(toy_ready):
    project = toy_ready
    assert project.cli("deploy").code == 0
    app = project.connect(project.gen(2))
    app.execute(
        "INSERT INTO items(id, name) VALUES (900, 'on green'); UPDATE items SET name = 'changed' WHERE id = 1;"
        "DELETE FROM items WHERE id = 2"
    )
    app.close()
    result = project.cli("revert", "--json")
    assert result.code == 0, result.err
    assert result.json["carried_back"] == 3
    assert rows(project.blue, "SELECT name FROM items WHERE id IN (1, 2, 900) ORDER BY id") == [
        ("changed",),
        ("on green",),
    ]
    assert rows(project.blue, "SELECT count(*) FROM sqlite_schema WHERE name LIKE '\\_bluegreen\\_%' ESCAPE '\\'") == [
        (0,)
    ]


def test_revert_refuses_when_writes_cannot_be_carried_back(toy_ready):
    project = toy_ready
    assert project.cli("deploy").code == 0
    app = project.connect(project.gen(2))
    app.execute("UPDATE names SET upper_name = 'ONLY IN V2' WHERE id = 1")
    app.close()
    before = disk_state(project.data)
    refused = project.cli("revert", "--json")
    assert refused.code == 5
    assert "names: 1" in refused.err and "Nothing was changed" in refused.err
    assert refused.json["details"]["tables"] == {"names": 1}
    assert disk_state(project.data) == before
    assert pointer_of(project)["active"] == "app.gen2.db"

    accepted = project.cli("revert", "--accept-loss", "--json")
    assert accepted.code == 0, accepted.err
    exported = accepted.json["exported"]
    assert rows(exported, "SELECT id, upper_name FROM names") == [(1, "ONLY IN V2")]
    assert rows(exported, "SELECT table_name, row_key, op FROM bluegreen_lost_changes") == [("names", 1, "U")]
    assert pointer_of(project)["active"] == "app.db"


def test_abort_removes_the_prepared_generation_and_capture(toy_ready):
    project = toy_ready
    before = disk_state(project.data)
    assert project.cli("prepare").code == 0
    assert project.gen(2).exists()
    assert rows(project.blue, "SELECT count(*) FROM sqlite_schema WHERE name LIKE '_bluegreen_cap%'") != [(0,)]
    assert project.cli("abort").code == 0
    assert not any(p.name.startswith("app.gen2") for p in project.data.iterdir())
    assert rows(project.blue, "SELECT count(*) FROM sqlite_schema WHERE name LIKE '\\_bluegreen\\_%' ESCAPE '\\'") == [
        (0,)
    ]
    assert disk_state(project.data) == before


def test_history_shows_applied_migrations(toy_ready):
    assert toy_ready.cli("deploy").code == 0
    history = toy_ready.cli("history", "--json").json["migrations"]
    assert [h["file"] for h in history] == ["001_v1.0.0_items.sql", "002_v2.0.0_split_names.sql"]
    first = history[0]
    for column in (
        "version",
        "description",
        "checksum",
        "execution_time_ms",
        "success",
        "error_message",
        "depends_on",
        "can_rollback",
        "approved_by",
        "approved_at",
    ):
        assert column in first
    assert history[1]["depends_on"] == "1.0.0"


def test_events_log_every_phase_with_its_duration(toy_ready):
    import json

    assert toy_ready.cli("deploy", "--offline").code == 0
    events = [json.loads(line) for line in (toy_ready.data / ".bluegreen" / "events.jsonl").read_text().splitlines()]
    phases = [e["phase"] for e in events if e["event"] == "phase"]
    assert phases == ["snapshot", "migrate", "validate", "fence", "swap"]
    assert all(e["duration_ms"] >= 0 for e in events if e["event"] == "phase")
    validation = next(e for e in events if e["event"] == "validation")
    assert validation["passed"] is True and validation["checks"]


@pytest.mark.parametrize("guard", [True, False])
def test_blob_guard_follows_the_config(toy, guard):
    from conftest import write_config

    write_config(toy.root, f"[capture]\nguard_blob_writes = {str(guard).lower()}\n")
    assert toy.cli("init").code == 0
    assert toy.cli("prepare").code == 0
    guards = rows(
        toy.blue, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name GLOB '_bluegreen_guard_*'"
    )
    assert guards == [(1 if guard else 0,)]
    app = toy.connect()
    blob = app.blob_open("main", "items", "name", 1, True) if not guard else None
    if guard:
        with pytest.raises(apsw.SQLError, match="indexed"):
            app.blob_open("main", "items", "name", 1, True)
    else:
        blob.close()
    app.close()
