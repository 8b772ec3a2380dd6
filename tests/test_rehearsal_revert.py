"""`rehearse --writer` rehearses the revert too: its writer follows the pointer to green and writes
there in green's schema, so a project whose real revert would refuse (exit 5) fails its rehearsal
with the same message, and one whose rollback companion carries the writes passes with each row
the writer wrote on green back in blue. The exit-5 message names each table and what would carry
its rows: the `_rollback.sql` to write, or that blue has no place for them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import disk_state, rows
from helpers import assert_refused, make_project

ITEMS = "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT); " + " ".join(
    f"INSERT INTO items(name) VALUES ('item {i}');" for i in range(50)
)
BASELINE = {"001_v1.0.0_items.sql": "CREATE TABLE IF NOT EXISTS items(id INTEGER PRIMARY KEY, name TEXT);\n"}
# 002 reshapes items (a column blue does not have); its sync companion carries blue's writes forward.
# With a new application trigger, the change is not one revert derives (engine/derive.py; a bare
# ADD COLUMN is carried back without a rollback companion since issue 13): it needs its companion.
ADD_PRICE = {
    "002_v2.0.0_add_price.sql": "ALTER TABLE items ADD COLUMN price INTEGER NOT NULL DEFAULT 0;\n"
    "CREATE TRIGGER items_priced AFTER UPDATE OF price ON items BEGIN SELECT 1; END;\n",
    "002_v2.0.0_add_price_sync.sql": """\
        INSERT INTO main.items(id, name) SELECT id, name FROM source.items
        WHERE id IN (SELECT row_key FROM temp.bluegreen_changes WHERE table_name = 'items' AND present = 1)
        ON CONFLICT(id) DO UPDATE SET name = excluded.name;
        DELETE FROM main.items
        WHERE id IN (SELECT row_key FROM temp.bluegreen_changes WHERE table_name = 'items' AND present = 0);
        """,
}
ROLLBACK = """\
    -- bluegreen: carries items
    INSERT INTO main.items(id, name) SELECT id, {value} FROM source.items
    WHERE id IN (SELECT row_key FROM temp.bluegreen_changes WHERE table_name = 'items' AND present = 1)
    ON CONFLICT(id) DO UPDATE SET name = excluded.name;
    DELETE FROM main.items
    WHERE id IN (SELECT row_key FROM temp.bluegreen_changes WHERE table_name = 'items' AND present = 0);
    """
ROLLBACK_FILE = "002_v2.0.0_add_price_rollback.sql"


def reshaping_project(root: Path, rollback: str | None = None):
    migrations = dict(BASELINE, **ADD_PRICE)
    if rollback is not None:
        migrations[ROLLBACK_FILE] = rollback
    return make_project(root, ITEMS, migrations)


def counted(message: str) -> str:
    return re.sub(r"\b\d+ (changed row|row)", r"N \1", message)


def scratch_log(scratch: Path) -> list[dict]:
    return [json.loads(line) for line in (scratch / "writer.log").read_text().splitlines()]


# ==================================================================================================
# a reshaped table without a rollback companion: the rehearsal refuses as the real revert does
# ==================================================================================================
def test_a_reshape_without_rollback_fails_its_rehearsal_with_exit_5_naming_the_file(tmp_path):
    project = reshaping_project(tmp_path)
    before = disk_state(project.root)
    result = project.cli("rehearse", "--writer", "--json")
    line = assert_refused(
        result,
        5,
        "the deploy passed but its revert after the writer's 20 write(s) on items failed",
        "the real files were not touched",
        "items: ",
        "002_v2.0.0_add_price.sql changed its shape and has no rollback companion",
        f"write {project.schemas / ROLLBACK_FILE} to carry them back",
        "`-- bluegreen: carries items`",
        "`bluegreen revert --accept-loss` saves them to a file first",
    )
    document = result.json
    assert document["exit_code"] == 5 and document["details"]["writer"]["on_green"] == 20
    assert document["details"]["writer"]["green_rank"] == "reshaped in green"
    why = document["details"]["why"]["items"]
    assert why["kind"] == "rollback" and why["file"] == str(project.schemas / ROLLBACK_FILE)
    assert disk_state(project.root) == before  # the real project: not one byte of its content moved
    assert not (project.schemas / ROLLBACK_FILE).exists()

    # the real revert, after the same kind of write on green, refuses with the same message
    assert project.cli("deploy").code == 0
    green = project.connect(project.gen(2))
    green.execute("UPDATE items SET name = 'written on v2' WHERE id IN (1, 2)")
    green.close()
    real = project.cli("revert", "--json")
    assert real.code == 5
    real_message = real.json["error"]
    assert real_message.startswith("generation 2 has 2 changed row(s) since cutover that cannot be carried back")
    assert counted(real_message) in counted(line)  # the same words, only the row counts differ


def test_without_writer_the_rehearsal_cannot_see_it_and_says_nothing_was_written_on_green(tmp_path):
    project = reshaping_project(tmp_path)
    result = project.cli("rehearse", "--json")
    assert result.code == 0, result.err
    assert result.json["writer"] is None and result.json["revert"]["carried_back"] == 0


# ==================================================================================================
# with the rollback companion: the rehearsal passes and green's writes are back in blue
# ==================================================================================================
def test_with_the_rollback_companion_the_rehearsal_passes_and_greens_writes_are_back_row_by_row(
    tmp_path, tmp_path_factory
):
    project = reshaping_project(tmp_path, ROLLBACK.format(value="name"))
    original = dict(rows(project.blue, "SELECT id, name FROM items"))
    scratch = tmp_path_factory.mktemp("scratch") / "kept"
    before = disk_state(project.root)
    result = project.cli("rehearse", "--writer", "--into", str(scratch), "--keep", "--json")
    assert result.code == 0, result.err
    report = result.json
    writer = report["writer"]
    assert writer["on_green"] == 20 and writer["green_table"] == "items" and writer["not_back"] == 0
    assert report["revert"]["carried_back"] == writer["green_rows"]
    assert "20 write(s) on the new generation's items (reshaped in green)" in report["message"]
    assert "every one back in app.db row by row after the revert" in report["message"]
    assert disk_state(project.root) == before

    # row by row, from the kept scratch project: each row written on green is in blue as green has it
    blue, green = scratch / "data" / "app.db", scratch / "data" / "app.gen2.db"
    written = {e["id"] for e in scratch_log(scratch) if e["event"] == "green_write" and e["file"] == "app.gen2.db"}
    assert len(written) == writer["green_rows"]
    for key in written:
        assert rows(blue, "SELECT id, name FROM items WHERE id = ?", (key,)) == rows(
            green, "SELECT id, name FROM items WHERE id = ?", (key,)
        )
    # and the writes were real changes, made on green only: blue got them from the revert
    moved = {k for k in written if rows(blue, "SELECT name FROM items WHERE id = ?", (k,))[0][0] != original[k]}
    assert moved
    untouched = rows(blue, "SELECT id, name FROM items ORDER BY id")
    assert [r for r in untouched if r[0] not in written] == [r for r in sorted(original.items()) if r[0] not in written]


def test_a_rollback_companion_that_carries_the_wrong_values_fails_the_rehearsal(tmp_path):
    project = reshaping_project(tmp_path, ROLLBACK.format(value="'garbled ' || name"))
    before = disk_state(project.root)
    result = project.cli("rehearse", "--writer", "--json")
    assert_refused(
        result,
        1,
        "the revert passed, but",
        "row(s) the synthetic writer wrote on items after the cutover are not in app.db as they were",
        "the real files were not touched",
    )
    assert result.json["details"]["writer"]["not_back"] == result.json["details"]["writer"]["green_rows"]
    assert disk_state(project.root) == before


# ==================================================================================================
# rows blue truly has no place for
# ==================================================================================================
RENAME = {
    # With a trigger on the renamed table: not a rename revert derives (engine/derive.py; a bare
    # RENAME TO is carried back into items since issue 13), so products has no place in blue.
    "002_v2.0.0_rename.sql": "ALTER TABLE items RENAME TO products;\n"
    "CREATE TRIGGER products_touched AFTER UPDATE ON products BEGIN SELECT 1; END;\n",
    "002_v2.0.0_rename_sync.sql": """\
        INSERT INTO main.products(id, name) SELECT id, name FROM source.items
        WHERE id IN (SELECT row_key FROM temp.bluegreen_changes WHERE table_name = 'items' AND present = 1)
        ON CONFLICT(id) DO UPDATE SET name = excluded.name;
        DELETE FROM main.products
        WHERE id IN (SELECT row_key FROM temp.bluegreen_changes WHERE table_name = 'items' AND present = 0);
        """,
}


def test_a_table_blue_does_not_have_fails_the_rehearsal_saying_the_rows_have_no_place(tmp_path):
    project = make_project(tmp_path, ITEMS, dict(BASELINE, **RENAME))
    before = disk_state(project.root)
    result = project.cli("rehearse", "--writer", "--json")
    assert_refused(
        result,
        5,
        "products: ",
        "app.db has no table products: the old schema has no place for them",
        "`-- bluegreen: carries products`",
        "`bluegreen revert --accept-loss` saves them to a file first",
    )
    assert result.json["details"]["why"]["products"]["kind"] == "no_place"
    assert result.json["details"]["writer"]["green_rank"] == "not in blue"
    assert disk_state(project.root) == before


@pytest.mark.parametrize("declared", [False, True], ids=["undeclared", "declared-then-listed"])
def test_a_rollback_companion_that_does_not_declare_or_lists_the_rows_is_named(tmp_path, declared):
    """A companion that exists but has no `carries` line for the table is named as the file to
    fix; one that declares it but lists the rows in temp.bluegreen_uncarried is named as the one
    that refused them."""
    if declared:
        rollback = ROLLBACK.format(value="name") + (
            "INSERT INTO temp.bluegreen_uncarried(table_name, row_key) "
            "SELECT 'items', row_key FROM temp.bluegreen_changes WHERE table_name = 'items';\n"
        )
    else:
        rollback = ROLLBACK.format(value="name").replace("-- bluegreen: carries items", "-- carries nothing declared")
    project = reshaping_project(tmp_path, rollback)
    assert project.cli("deploy").code == 0
    green = project.connect(project.gen(2))
    green.execute("UPDATE items SET name = 'written on v2' WHERE id = 3")
    green.close()
    before = disk_state(project.data)
    result = project.cli("revert", "--json")
    assert result.code == 5, result.err
    why = result.json["details"]["why"]["items"]
    if declared:
        assert why["kind"] == "script"
        assert f"{ROLLBACK_FILE} lists them in temp.bluegreen_uncarried" in result.json["error"]
    else:
        assert why["kind"] == "rollback" and why["file"] == str(project.schemas / ROLLBACK_FILE)
        assert f"{project.schemas / ROLLBACK_FILE} does not declare it" in result.json["error"]
        assert "add the line `-- bluegreen: carries items`" in result.json["error"]
    assert disk_state(project.data) == before
    assert rows(project.blue, "SELECT name FROM items WHERE id = 3") == [("item 2",)]


def test_the_toy_projects_new_table_is_named_as_having_no_place(toy_ready):
    project = toy_ready
    assert project.cli("deploy").code == 0
    green = project.connect(project.gen(2))
    green.execute("UPDATE names SET upper_name = 'ONLY IN V2' WHERE id = 1")
    green.close()
    result = project.cli("revert", "--json")
    assert_refused(result, 5, "names: 1 row(s) (app.db has no table names: the old schema has no place for them")
    assert result.json["details"]["why"]["names"]["kind"] == "no_place"


def test_the_shipped_examples_rehearsal_with_its_writer_passes_and_carries_greens_writes_back(shipped):
    """The shipped example's rollback companion carries the v2 file's writes: its rehearsal passes
    (test_rehearsal.py checks the rest of that report)."""
    result = shipped.cli("rehearse", "--writer", "--json")
    assert result.code == 0, result.err
    writer = result.json["writer"]
    assert writer["on_green"] == 20 and writer["not_back"] == 0 and result.json["revert"]["ok"]


def test_a_write_greens_own_trigger_refuses_is_reported_not_a_traceback(tmp_path):
    """Green's schema may refuse the writer's update (here a trigger that makes items read-only in
    v2): the writer stops writing there, says why, and the rehearsal goes on to its revert."""
    migrations = dict(
        BASELINE,
        **{
            "002_v2.0.0_freeze.sql": "CREATE TRIGGER items_frozen BEFORE UPDATE ON items "
            "BEGIN SELECT RAISE(ABORT, 'items are read-only in v2'); END;\n",
            "002_v2.0.0_freeze_sync.sql": ADD_PRICE["002_v2.0.0_add_price_sync.sql"],
        },
    )
    project = make_project(tmp_path, ITEMS, migrations)
    result = project.cli("rehearse", "--writer", "--json")
    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    writer = result.json["writer"]
    assert writer["on_green"] == 0 and "items are read-only in v2" in writer["green_refused"]
    assert "no write on the new generation's items (then the new generation refused one:" in result.json["message"]
    assert result.json["revert"]["ok"] and result.json["revert"]["carried_back"] == 0


def test_a_table_the_application_altered_on_green_is_named_with_the_schema_changes(toy_ready):
    project = toy_ready
    assert project.cli("deploy").code == 0
    green = project.connect(project.gen(2))
    green.execute("ALTER TABLE items ADD COLUMN note TEXT; UPDATE items SET note = 'v2 only' WHERE id = 4")
    green.close()
    before = disk_state(project.data)
    result = project.cli("revert", "--json")
    line = assert_refused(
        result, 5, "items: 1 row(s) (the table itself was changed on the new generation after cutover"
    )
    assert "schema changes made on it since cutover" in line and "table items was" in line
    assert result.json["details"]["why"]["items"]["kind"] == "ddl"
    assert disk_state(project.data) == before
