"""Leftovers of issue 10: each test fails without its fix.

NUL bytes in WITHOUT ROWID text keys, finalize with blue gone, the rehearsal's scratch file modes,
`_bluegreen_*` in config queries, `check` on an FK whose parent is not unique, the offline
deploy's one-edit fence, and the `next` line of `status` on every phase.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from conftest import disk_state, rows
from test_hostile_inputs import too_open


# ==================================================================================================
# 3. the rehearsal's scratch config.toml and writer log are never more readable than blue
# ==================================================================================================
def test_rehearsal_scratch_files_keep_blues_mode(toy_ready, tmp_path_factory):
    project = toy_ready
    os.chmod(project.blue, 0o600)
    scratch = tmp_path_factory.mktemp("elsewhere") / "rehearsal"
    old_umask = os.umask(0o022)
    try:
        result = project.cli("rehearse", "--json", "--into", str(scratch), "--keep", "--writer")
    finally:
        os.umask(old_umask)
    assert result.code == 0, result.err
    assert (scratch / "config.toml").exists() and (scratch / "writer.log").exists()
    assert stat.S_IMODE((scratch / "config.toml").stat().st_mode) == 0o600
    assert stat.S_IMODE((scratch / "writer.log").stat().st_mode) == 0o600
    assert too_open(scratch, 0o600, 0o777) == []


# ==================================================================================================
# 4. config queries that reach bluegreen's own objects are refused like a migration's (hazard 15)
# ==================================================================================================
@pytest.mark.parametrize("section, sql", [
    ("performance", "SELECT count(*) FROM _bluegreen_changes"),
    ("check", 'SELECT * FROM "_BLUEGREEN_META" WHERE key = 1'),
    ("check", "SELECT name FROM items WHERE id IN (SELECT row_key FROM main._bluegreen_changes)"),
])
@pytest.mark.parametrize("command", ["check", "deploy", "status"])
def test_config_queries_naming_bluegreen_objects_are_refused(toy_ready, section, sql, command):
    from conftest import write_config
    from test_failures import assert_refused

    project = toy_ready
    write_config(project.root, f'[{section}.queries]\nsneaky = """{sql}"""\n')
    before = disk_state(project.root)
    result = project.cli(command)
    line = assert_refused(result, 2, "config.toml", f"{section}.queries.sneaky", "_bluegreen")
    assert line.count("\n") == 0
    assert disk_state(project.root) == before


def test_config_queries_on_the_applications_own_tables_still_run(toy_ready):
    from conftest import write_config

    project = toy_ready
    write_config(project.root, '[check.queries]\nbluegreen_named = "SELECT id FROM items WHERE name = \'_bluegreen_x\'"\n')
    assert project.cli("check").code == 0


# ==================================================================================================
# 5. `check` on a foreign key whose parent key is not unique: the declaration named, exit 3
# ==================================================================================================
def test_check_names_a_foreign_key_sqlite_cannot_check(toy_ready):
    from test_failures import assert_refused

    project = toy_ready
    app = project.connect(project.blue)
    app.execute("CREATE TABLE parents(code TEXT); INSERT INTO parents VALUES ('a'), ('a');"
                "CREATE TABLE kids(id INTEGER PRIMARY KEY, code TEXT REFERENCES parents(code));"
                "INSERT INTO kids(code) VALUES ('a');"
                "CREATE TABLE pets(id INTEGER PRIMARY KEY, owner INTEGER REFERENCES items(id));"
                "INSERT INTO pets(owner) VALUES (9999);")  # a real violation beside it, still found
    app.close()
    before = disk_state(project.root)
    result = project.cli("check")
    line = assert_refused(result, 3, "kids", "foreign key mismatch", "parents", "UNIQUE index")
    assert "SQLError" not in line and "Traceback" not in result.err
    document = project.cli("check", "--json")
    assert document.code == 3
    fk = {c["name"]: c for c in document.json["checks"]}["foreign_key_check"]
    assert fk["found"] == 1 and fk["sample"] == [["pets", 1, "items"]]
    assert "kids" in fk["error"] and "pets" not in fk["error"]
    assert disk_state(project.root) == before


# ==================================================================================================
# 2. finalize when blue was deleted in the revert window: the window closes, green keeps its data
# ==================================================================================================
def state_of(project) -> dict:
    import json

    return json.loads((project.data / ".bluegreen" / "state.json").read_text())


def test_finalize_with_blue_deleted_in_the_revert_window(toy_ready):
    from test_failures import SIDE

    project = toy_ready
    assert project.cli("deploy").code == 0
    for path in [project.blue, *(Path(f"{project.blue}{s}") for s in SIDE)]:
        if path.exists():
            path.unlink()
    status = project.cli("status", "--json")
    assert status.code == 2  # a missing file is still a problem to report
    assert "bluegreen finalize" in status.json["next"] and "restore app.db" in status.json["next"]
    assert "bluegreen finalize" in status.json["problems"][0]
    refused = project.cli("revert")  # revert still needs blue
    assert refused.code == 2 and "cannot revert without it" in refused.err
    green_rows = rows(project.gen(2), "SELECT * FROM items ORDER BY id")
    before = disk_state(project.root)
    done = project.cli("finalize", "--json")
    assert done.code == 0, done.err
    assert "revert window is closed" in done.json["message"] and "already gone" in done.json["message"]
    state = state_of(project)
    assert state["phase"] == "idle" and "app.db" not in state["fences"]
    assert rows(project.gen(2), "SELECT * FROM items ORDER BY id") == green_rows
    assert rows(project.gen(2), "SELECT name FROM sqlite_schema WHERE name LIKE '_bluegreen%'") == [("_bluegreen_meta",)]
    assert not project.blue.exists()  # nothing recreated
    after = project.cli("status")
    assert after.code == 0 and "problem" not in after.out, after.out
    assert disk_state(project.root) != before  # the journal moved on (and only by finalize)

