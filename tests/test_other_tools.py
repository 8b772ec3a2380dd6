"""Issue 14, item 4: other tools on the application's files during the revert window.

A table rebuild (`sqlite-utils transform`, the 12-step CREATE new / copy / DROP / RENAME other
tools do too) drops the table's capture triggers: writes to it after that are never captured, so a
revert cannot carry them back. SQLite gives no way to refuse a DROP TABLE, so bluegreen says so at
every point it can: the BLOB guard index sqlite-utils stops at carries bluegreen's own note, status
names the rebuilt table as what revert would refuse, and revert refuses it (exit 5) instead of
dropping the rebuilt table's writes, even when the rebuilt table has the very same CREATE text.
"""

from __future__ import annotations

import re
import subprocess
import sys

import apsw
import pytest
from conftest import disk_state, make_toy_database, rows
from helpers import ok, refused

pytest.importorskip("sqlite_utils")


def sqlite_utils(*args: str) -> subprocess.CompletedProcess:
    """The real sqlite-utils command line."""
    return subprocess.run(
        [sys.executable, "-m", "sqlite_utils", *map(str, args)], capture_output=True, text=True, timeout=60
    )


def test_sqlite_utils_transform_stops_with_bluegreen_advice_until_finalize(toy_ready):
    project = toy_ready
    assert project.cli("deploy").code == 0
    green = project.gen(2)
    before = disk_state(project.data)
    done = sqlite_utils("transform", green, "items", "--rename", "name", "title")
    assert done.returncode == 1
    assert "bluegreen finalize closes a revert window" in done.stderr  # bluegreen's note, not "drop it"
    assert "make the change a bluegreen migration" in done.stderr
    assert disk_state(project.data) == before  # sqlite-utils changed nothing
    expected = rows(green, "SELECT id, name FROM items ORDER BY id")
    assert project.cli("finalize").code == 0  # the revert window closes: no guard, no capture on green
    done = sqlite_utils("transform", green, "items", "--rename", "name", "title")
    assert done.returncode == 0, done.stderr
    assert rows(green, "SELECT id, title FROM items ORDER BY id") == expected
    assert ok(project.cli("status", "--json"))["phase"] == "idle"


def test_a_transform_that_goes_through_is_named_by_status_and_refused_by_revert(toy_ready):
    """A transform that renames nothing recreates the guard and succeeds; the table's capture is
    gone with the old table. status says revert would refuse, and revert does, changing nothing."""
    project = toy_ready
    assert project.cli("deploy").code == 0
    green = project.gen(2)
    done = sqlite_utils("transform", green, "items", "--default", "name", "unnamed")
    assert done.returncode == 0, done.stderr
    conn = project.connect(green)
    conn.execute("INSERT INTO items(name) VALUES ('written after the rebuild')")
    conn.close()
    status = project.cli("status")
    assert "revert      would refuse (exit 5): table items was changed on green after cutover" in status.out
    assert "bluegreen finalize keeps generation 2" in status.out
    line = refused(project, "revert", code=5)
    assert "table items was changed on green after cutover" in line
    assert project.cli("finalize").code == 0
    assert rows(green, "SELECT name FROM items WHERE name LIKE 'written%'") == [("written after the rebuild",)]


def test_a_rebuild_with_the_same_create_text_is_refused_not_lost(tmp_path):
    """The hazard behind item 4: a table first created as `CREATE TABLE "items"(...)`, rebuilt by
    hand on green in the revert window, has the very CREATE text the cutover recorded; before this
    check revert reported success and dropped the row written after the rebuild."""
    from conftest import make_toy_project

    project = make_toy_project(tmp_path)
    project.blue.unlink()
    conn = apsw.Connection(str(project.blue))
    conn.execute("PRAGMA journal_mode=WAL").get
    conn.execute('CREATE TABLE "items"(id INTEGER PRIMARY KEY, name TEXT)')
    conn.execute("INSERT INTO items(name) VALUES ('a'), ('b')")
    conn.close()
    assert project.cli("init").code == 0 and project.cli("deploy").code == 0
    green = project.gen(2)
    schema_before = rows(green, "SELECT sql FROM sqlite_schema WHERE name = 'items'")
    conn = project.connect(green)
    conn.execute(
        "BEGIN; CREATE TABLE new_items(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO new_items SELECT * FROM items; "
        "DROP TABLE items; ALTER TABLE new_items RENAME TO items; COMMIT"
    )
    conn.execute("INSERT INTO items(name) VALUES ('after the rebuild')")
    conn.close()
    assert rows(green, "SELECT sql FROM sqlite_schema WHERE name = 'items'") == schema_before  # same text
    line = refused(project, "revert", code=5)
    assert "table items was rebuilt on green after cutover" in line and "capture triggers are gone" in line
    done = project.cli("revert", "--accept-loss", "--json")
    assert done.code == 0, done.err
    lost = next(project.data.glob("app.gen2.lost-*.db"))
    assert rows(lost, 'SELECT id, name FROM "items (whole table)" ORDER BY id') == [
        (1, "a"),
        (2, "b"),
        (3, "after the rebuild"),
    ]


def bluegreen_objects(path) -> dict[str, int]:
    """bluegreen's objects in a file, by kind (the per-table tag cut off), with how many of each."""
    found: dict[str, int] = {}
    for kind, name in rows(path, "SELECT type, name FROM sqlite_schema WHERE name LIKE '\\_bluegreen%' ESCAPE '\\'"):
        key = f"{kind} {re.sub(r'_[0-9a-f]{12}$', '', name)}"
        found[key] = found.get(key, 0) + 1
    return found


CAPTURED = {
    "table _bluegreen_meta": 1,
    "table _bluegreen_capture": 1,
    "trigger _bluegreen_cap_i": 1,
    "trigger _bluegreen_cap_u": 1,
    "trigger _bluegreen_cap_d": 1,
    "index _bluegreen_guard": 1,
}
# green also holds bluegreen's history table, schema_migrations (an application table to bluegreen:
# captured like items, plus the BEFORE triggers its UNIQUE(file) needs, hazard 5)
GREEN_CAPTURED = {
    "table _bluegreen_meta": 1,
    "table _bluegreen_capture": 1,
    "trigger _bluegreen_cap_i": 2,
    "trigger _bluegreen_cap_u": 2,
    "trigger _bluegreen_cap_d": 2,
    "trigger _bluegreen_cap_ri": 1,
    "trigger _bluegreen_cap_ru": 1,
    "index _bluegreen_guard": 2,
}
FENCED = {
    "table _bluegreen_meta": 1,
    "table _bluegreen_capture": 1,
    "index _bluegreen_guard": 1,
    "trigger _bluegreen_fence_i": 3,  # items, and bluegreen's own two tables
    "trigger _bluegreen_fence_u": 3,
    "trigger _bluegreen_fence_d": 3,
}


def test_which_bluegreen_objects_live_in_the_files_and_when(tmp_path):
    """What the README's "bluegreen's objects in your files" table says, phase by phase, on one
    table (`items`) with no other uniqueness index than its key."""
    from conftest import Project, write_config

    project = Project(tmp_path)
    write_config(tmp_path)
    project.schemas.mkdir()
    (project.schemas / "001_v1.0.0_items.sql").write_text(
        "CREATE TABLE IF NOT EXISTS items(id INTEGER PRIMARY KEY, name TEXT);\n"
    )
    (project.schemas / "002_v2.0.0_more.sql").write_text("ALTER TABLE items ADD COLUMN note TEXT;\n")
    project.data.mkdir()
    make_toy_database(project.blue)
    assert project.cli("init").code == 0
    assert bluegreen_objects(project.blue) == {}  # init adopts the file as it is
    assert project.cli("prepare").code == 0
    assert bluegreen_objects(project.blue) == CAPTURED
    assert bluegreen_objects(project.gen(2)) == GREEN_CAPTURED
    assert project.cli("cutover").code == 0
    assert bluegreen_objects(project.blue) == FENCED
    assert bluegreen_objects(project.gen(2)) == GREEN_CAPTURED  # the revert window: green captured
    assert project.cli("finalize").code == 0
    assert bluegreen_objects(project.gen(2)) == {"table _bluegreen_meta": 1}  # the generation stamp stays
    assert bluegreen_objects(project.blue) == FENCED  # until prune deletes it
