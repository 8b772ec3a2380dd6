"""Migration files written for goose, dbmate and Flyway, deployed by bluegreen (issue 12, item 4).

Before: a goose or dbmate file was run whole, so its Down part undid its Up part (deploy exit 0,
the column gone); Flyway and timestamp names were refused. Now a file with markers runs its Up
part only, an unknown marker is refused (file and line, exit 2, nothing on disk changed), and
goose/dbmate/Flyway names are read as sequence and version (engine/migration_formats.py).

Everything runs on real projects in tmp_path; "nothing changed" is `disk_state` of the data
folder; the README's subsections are extracted and run as written.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import apsw
import helpers
import pytest
from conftest import REPO, Project, rows
from helpers import make_project, ok

from bluegreen.engine import migration_formats, migrations
from bluegreen.errors import MigrationInvalid

GOOSE = """\
-- +goose Up
-- a status for every item
ALTER TABLE items ADD COLUMN status TEXT NOT NULL DEFAULT 'new';
UPDATE items SET status = 'imported';
-- +goose StatementBegin
CREATE TRIGGER items_renamed AFTER UPDATE OF name ON items BEGIN
  UPDATE items SET status = 'renamed' WHERE id = new.id;
  UPDATE items SET status = upper(status) WHERE id = new.id;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER items_renamed;
DELETE FROM items WHERE id > 10;
ALTER TABLE items DROP COLUMN status;
"""

DBMATE = """\
-- migrate:up transaction:false
ALTER TABLE items ADD COLUMN status TEXT NOT NULL DEFAULT 'new';
UPDATE items SET status = 'imported';
CREATE TABLE tags(id INTEGER PRIMARY KEY, label TEXT NOT NULL);
INSERT INTO tags(label) VALUES ('one'), ('two');

-- migrate:down
DELETE FROM items WHERE id > 10;
ALTER TABLE items DROP COLUMN status;
DROP TABLE tags;
"""

ROLLBACK = """\
-- bluegreen: carries items
DELETE FROM items WHERE id IN (SELECT row_key FROM temp.bluegreen_changes WHERE table_name = 'items');
INSERT INTO items(id, name) SELECT id, name FROM source.items
WHERE id IN (SELECT row_key FROM temp.bluegreen_changes WHERE table_name = 'items' AND present = 1);
"""


def active(project: Project) -> Path:
    return project.data / helpers.pointer_active(project)


def columns(path: Path, table: str) -> list[str]:
    return [r[1] for r in rows(path, f"PRAGMA table_info({table})")]


def deploy(project: Project) -> dict:
    """Offline: the goose and dbmate examples ALTER a table blue keeps writing, which online needs a
    _sync.sql companion (shapes.missing_sync); the formats, not the catch-up, are under test here."""
    return ok(project.cli("deploy", "--offline", "--json"))


def estimate_of(project: Project, file: str) -> dict:
    plan = ok(project.cli("plan", "--offline", "--json"))
    return next(m for m in plan["estimate"]["migrations"] if m["file"] == file)


# ==================================================================================================
# goose and dbmate files deploy with their Up part only
# ==================================================================================================
def test_goose_file_deploys_its_up_part_only(toy_ready):
    project = toy_ready
    name = "20240101120000_add_status.sql"
    (project.schemas / name).write_text(GOOSE)
    (project.schemas / "20240101120000_add_status_rollback.sql").write_text(ROLLBACK)

    plan = ok(project.cli("plan", "--offline", "--json"))
    [mine] = [m for m in plan["pending"] if m["file"] == name]
    assert (mine["version"], mine["description"], mine["rollback"]) == (
        "20240101120000",
        "add_status",
        "20240101120000_add_status_rollback.sql",
    )
    assert [t["table"] for t in estimate_of(project, name)["writes"]] == ["items"]
    assert "writes  items (50 rows" in project.cli("plan", "--offline").out

    deploy(project)
    green = active(project)
    # row by row: every item kept (the Down part deletes ids > 10), every status set by the Up part
    assert rows(green, "SELECT id, name, status FROM items ORDER BY id") == [
        (i, f"item {i - 1}", "imported") for i in range(1, 51)
    ]
    assert "status" in columns(green, "items") and "status" not in columns(project.blue, "items")
    assert rows(green, "SELECT type FROM sqlite_schema WHERE name = 'items_renamed'") == [("trigger",)]
    # the trigger's body, two statements between StatementBegin and StatementEnd, runs whole
    helpers.app(project, "UPDATE items SET name = 'x' WHERE id = 7", green)
    assert rows(green, "SELECT status FROM items WHERE id = 7") == [("RENAMED",)]
    history = rows(green, "SELECT version, description, file FROM schema_migrations ORDER BY id")
    assert history[-1] == ("20240101120000", "add_status", name)
    status = ok(project.cli("status", "--json"))
    assert (status["schema_version"], status["pending"]) == ("20240101120000", [])

    # bluegreen's revert is not the Down part: blue active again, the rename carried back by the
    # _rollback.sql companion that attached to the timestamp name
    ok(project.cli("revert", "--json"))
    assert helpers.pointer_active(project) == "app.db"
    assert rows(project.blue, "SELECT count(*), max(CASE WHEN id = 7 THEN name END) FROM items") == [(50, "x")]
    assert "status" not in columns(project.blue, "items")


def test_dbmate_file_deploys_its_up_part_only(toy_ready):
    project = toy_ready
    name = "20240102090000_add_tags.sql"
    (project.schemas / name).write_text(DBMATE)
    assert [t["table"] for t in estimate_of(project, name)["writes"]] == ["items", "tags"]

    deploy(project)
    green = active(project)
    assert rows(green, "SELECT id, status FROM items ORDER BY id") == [(i, "imported") for i in range(1, 51)]
    assert rows(green, "SELECT id, label FROM tags ORDER BY id") == [(1, "one"), (2, "two")]
    assert rows(green, "SELECT file, version FROM schema_migrations ORDER BY id")[-1] == (name, "20240102090000")


def test_no_transaction_is_accepted_and_begin_is_still_refused(toy_ready):
    project = toy_ready
    path = project.schemas / "00003_flags.sql"
    path.write_text("-- +goose NO TRANSACTION\n-- +goose Up\nCREATE TABLE flags(id INTEGER PRIMARY KEY);\n")
    read = migration_formats.read(path, path.read_text())
    assert (read.tool, read.no_transaction, read.up_line) == ("goose", True, 3)
    path.write_text(path.read_text() + "BEGIN;\nCREATE TABLE more(x);\nCOMMIT;\n-- +goose Down\nDROP TABLE flags;\n")
    helpers.assert_refused(project.cli("deploy"), 2, str(path), "BEGIN/COMMIT/ROLLBACK", "own transaction")
    assert helpers.pointer_active(project) == "app.db"
    path.write_text("-- +goose NO TRANSACTION\n-- +goose Up\nCREATE TABLE flags(id INTEGER PRIMARY KEY);\n")
    deploy(project)
    assert rows(active(project), "SELECT name FROM sqlite_schema WHERE name = 'flags'") == [("flags",)]


def test_vacuum_in_the_down_part_never_runs_nor_refuses(toy_ready):
    project = toy_ready
    (project.schemas / "003_v3_x.sql").write_text(
        "-- migrate:up\nCREATE TABLE x(id INTEGER PRIMARY KEY);\n-- migrate:down\nDROP TABLE x;\nVACUUM;\n"
    )
    deploy(project)
    assert rows(active(project), "SELECT count(*) FROM sqlite_schema WHERE name = 'x'") == [(1,)]


# ==================================================================================================
# names: Flyway versions, timestamps and goose numbers, in order, mixed with bluegreen's own
# ==================================================================================================
LOG = "CREATE TABLE log(step TEXT);\n"


def logs(step: str) -> str:
    return f"INSERT INTO log(step) VALUES ('{step}');\n"


def test_flyway_names_deploy_in_version_order(tmp_path):
    files = {
        "V1__create_log.sql": LOG + logs("1"),
        "V10__ten.sql": logs("10"),
        "V2__two.sql": logs("2"),
        "V2.1__two_one.sql": logs("2.1"),
        "V2_10__two_ten.sql": logs("2.10"),
        "V3_0_1__three.sql": logs("3.0.1"),
        "V2__two_validate.sql": "SELECT 'two ran', 1, 1, CASE WHEN (SELECT count(*) FROM log WHERE step = '2') = 1 "
        "THEN 'PASS' ELSE 'FAIL' END;\n",
    }
    project = make_project(tmp_path, "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT);", files)
    plan = ok(project.cli("plan", "--json"))
    order = ["V1__create_log.sql", "V2__two.sql", "V2.1__two_one.sql", "V2_10__two_ten.sql"]
    order += ["V3_0_1__three.sql", "V10__ten.sql"]
    assert [m["file"] for m in plan["pending"]] == order
    assert [m["version"] for m in plan["pending"]] == ["1", "2", "2.1", "2.10", "3.0.1", "10"]
    assert plan["pending"][1]["validate"] == "V2__two_validate.sql"
    assert project.cli("status", "--json").json["pending"] == order

    deploy(project)
    green = active(project)
    assert rows(green, "SELECT step FROM log ORDER BY rowid") == [
        ("1",),
        ("2",),
        ("2.1",),
        ("2.10",),
        ("3.0.1",),
        ("10",),
    ]
    assert rows(green, "SELECT file FROM schema_migrations ORDER BY id") == [(f,) for f in order]
    assert ok(project.cli("status", "--json"))["schema_version"] == "10"


def test_timestamp_and_goose_numbered_names_deploy_in_number_order(tmp_path):
    files = {
        "00001_create_log.sql": "-- +goose Up\n" + LOG + logs("1") + "-- +goose Down\nDROP TABLE log;\n",
        "00002_second.sql": "-- +goose Up\n" + logs("2") + "-- +goose Down\nDELETE FROM log;\n",
        "20240215093000_later.sql": "-- migrate:up\n" + logs("feb") + "-- migrate:down\nDELETE FROM log;\n",
        "20240101120000_earlier.sql": logs("jan"),  # no marker: bluegreen's own text, run whole
    }
    project = make_project(tmp_path, "CREATE TABLE items(id INTEGER PRIMARY KEY);", files)
    order = ["00001_create_log.sql", "00002_second.sql", "20240101120000_earlier.sql", "20240215093000_later.sql"]
    plan = ok(project.cli("plan", "--json"))
    assert [(m["file"], m["version"]) for m in plan["pending"]] == list(
        zip(order, ["1", "2", "20240101120000", "20240215093000"], strict=True)
    )
    deploy(project)
    assert rows(active(project), "SELECT step FROM log ORDER BY rowid") == [("1",), ("2",), ("jan",), ("feb",)]


def test_mixed_schemes_run_by_their_numbers(toy_ready):
    """bluegreen's 001/002, then Flyway 2.5 (after 002, before 3), then a timestamp."""
    project = toy_ready
    (project.schemas / "V2.5__log.sql").write_text(LOG + logs("2.5"))
    (project.schemas / "003_v3.0.0_three.sql").write_text(logs("3"))
    (project.schemas / "20240101120000_stamp.sql").write_text("-- +goose Up\n" + logs("stamp") + "-- +goose Down\n")
    order = ["001_v1.0.0_items.sql", "002_v2.0.0_split_names.sql", "V2.5__log.sql", "003_v3.0.0_three.sql"]
    order.append("20240101120000_stamp.sql")
    assert [m["file"] for m in ok(project.cli("plan", "--json"))["pending"]] == order
    deploy(project)
    assert rows(active(project), "SELECT step FROM log ORDER BY rowid") == [("2.5",), ("3",), ("stamp",)]


# ==================================================================================================
# refusals: exit 2, the file (and line), nothing on disk changed; plan, deploy, status
# ==================================================================================================
TEXT_REFUSALS = {
    "unknown goose marker": ("-- +goose Up\nSELECT 1;\n-- +goose Sideways\nSELECT 2;\n", 3, "unknown goose marker"),
    "goose marker glued": ("-- +goose Up\nSELECT 1;\n-- +gooseDown\nSELECT 2;\n", 3, "unknown goose marker"),
    "goose without its plus": ("-- +goose Up\nSELECT 1;\n-- goose Down\nSELECT 2;\n", 3, "without its '+'"),
    "goose down without up": ("-- a comment\n-- +goose Down\nDROP TABLE items;\n", 2, "no -- +goose Up"),
    "goose second up": ("-- +goose Up\nSELECT 1;\n-- +goose Up\nSELECT 2;\n", 3, "a second -- +goose Up"),
    "goose down before up": ("-- +goose Down\nSELECT 1;\n-- +goose Up\nSELECT 2;\n", 1, "comes before"),
    "goose sql before up": ("\nCREATE TABLE t(x);\n-- +goose Up\nSELECT 1;\n", 2, "SQL before -- +goose Up"),
    "goose envsub": ("-- +goose ENVSUB ON\n-- +goose Up\nSELECT '${X}';\n", 1, "does not substitute"),
    "goose unclosed block": (
        "-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\n-- +goose Down\nSELECT 2;\n",
        2,
        "not closed before -- +goose Down",
    ),
    "goose end without begin": ("-- +goose Up\nSELECT 1;\n-- +goose StatementEnd\n", 3, "without a StatementBegin"),
    "goose block never closed": ("-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\n", 2, "never closed"),
    "unknown dbmate marker": ("-- migrate:up\nSELECT 1;\n-- migrate:left\nSELECT 2;\n", 3, "unknown dbmate marker"),
    "dbmate down without up": ("-- migrate:down\nDROP TABLE items;\n", 1, "no -- migrate:up"),
    "dbmate second down": (
        "-- migrate:up\nSELECT 1;\n-- migrate:down\n-- migrate:down\n",
        4,
        "a second -- migrate:down",
    ),
    "dbmate unknown option": ("-- migrate:up transaction:maybe\nSELECT 1;\n", 1, "transaction:maybe"),
    "dbmate sql before up": ("SELECT 0;\n-- migrate:up\nSELECT 1;\n", 1, "SQL before -- migrate:up"),
    "both tools": ("-- +goose Up\nSELECT 1;\n-- migrate:down\nSELECT 2;\n", 3, "dbmate markers and goose markers"),
}


def refused_everywhere(project: Project, path: Path, *words: str) -> None:
    """plan, deploy and prepare refuse (exit 2, the words, nothing on disk changed, no generation
    number spent); status shows it."""
    spent = helpers.state_of(project)["last_generation"]
    for command in ("plan", "deploy", "prepare"):
        line = helpers.refused(project, command, code=2)
        for word in words:
            assert word in line, (command, word, line)
    status = project.cli("status", "--json").json
    assert str(path) in status["pending_error"] and words[-1] in status["pending_error"]
    assert helpers.generation_files(project, 2) == []
    assert helpers.state_of(project)["last_generation"] == spent


@pytest.mark.parametrize("case", list(TEXT_REFUSALS))
def test_markers_that_do_not_read_are_refused_with_file_and_line(toy_ready, case):
    project = toy_ready
    text, line, words = TEXT_REFUSALS[case]
    path = project.schemas / "003_v3.0.0_other_tool.sql"
    path.write_text(text)
    refused_everywhere(project, path, f"{path}:{line}:", words)
    assert "status" not in columns(project.blue, "items")


def test_flyway_placeholder_is_refused_with_its_line(toy_ready):
    path = toy_ready.schemas / "V3__placeholder.sql"
    path.write_text("CREATE TABLE t(x);\nINSERT INTO t VALUES ('${owner}');\n")
    refused_everywhere(toy_ready, path, f"{path}:2:", "Flyway placeholder")


def test_marker_in_a_companion_is_refused(toy_ready):
    project = toy_ready
    (project.schemas / "003_v3.0.0_x.sql").write_text("-- +goose Up\nCREATE TABLE x(id);\n")
    companion = project.schemas / "003_v3.0.0_x_rollback.sql"
    companion.write_text("-- bluegreen: carries x\n-- +goose Down\nDROP TABLE x;\n")
    refused_everywhere(project, companion, f"{companion}:2:", "marker in a companion")


NAME_REFUSALS = {
    "U2__undo_two.sql": "undo migration",
    "R__views.sql": "repeatable migration",
    "B5__baseline.sql": "baseline migration",
}


@pytest.mark.parametrize("name", list(NAME_REFUSALS))
def test_flyway_undo_repeatable_and_baseline_files_are_refused(toy_ready, name):
    path = toy_ready.schemas / name
    path.write_text("DROP TABLE items;\n")
    refused_everywhere(toy_ready, path, str(path), NAME_REFUSALS[name])


DUPLICATES = {
    "V2.1 and V2_1": (["V3.1__a.sql", "V3_1__b.sql"], "V3_1__b.sql", "same place as V3.1__a.sql"),
    "V3 and V3.0": (["V3__a.sql", "V3.0__b.sql"], "V3__a.sql", "same place as V3.0__b.sql"),
    "Flyway V2 and 002": (["V2__a.sql"], "V2__a.sql", "same place as 002_v2.0.0_split_names.sql"),
    "goose 00002 and 002": (["00002_a.sql"], "002_v2.0.0_split_names.sql", "number 2 is also used by 00002_a.sql"),
    "two timestamps": (["20240101120000_a.sql", "20240101120000_b.sql"], "20240101120000_b.sql", "sequence number"),
}


@pytest.mark.parametrize("case", list(DUPLICATES))
def test_two_files_at_one_place_are_refused(toy_ready, case):
    names, named, words = DUPLICATES[case]
    for name in names:
        (toy_ready.schemas / name).write_text("CREATE TABLE IF NOT EXISTS t(x);\n")
    refused_everywhere(toy_ready, toy_ready.schemas / named, str(toy_ready.schemas / named), words)


def test_a_name_no_tool_writes_is_still_refused(toy_ready):
    path = toy_ready.schemas / "1_create.up.sql"  # golang-migrate: not read, never run wrong
    path.write_text("CREATE TABLE t(x);\n")
    refused_everywhere(toy_ready, path, str(path), "does not fit", "V2__add_x.sql")


def test_an_applied_file_keeps_its_whole_text_checksum(toy_ready):
    project = toy_ready
    path = project.schemas / "20240101120000_add_status.sql"
    path.write_text(GOOSE)
    deploy(project)
    ok(project.cli("finalize", "--json"))
    assert ok(project.cli("status", "--json"))["pending"] == []
    path.write_text(GOOSE.replace("DROP TRIGGER items_renamed;", "DROP TRIGGER IF EXISTS items_renamed;"))
    line = helpers.refused(project, "plan", code=2)
    assert str(path) in line and "changed after it was applied" in line


# ==================================================================================================
# the reader: line numbers of the file as written
# ==================================================================================================
def test_the_up_part_keeps_the_lines_of_the_file():
    path = Path("20240101120000_add_status.sql")
    read = migration_formats.read(path, GOOSE)
    original = GOOSE.split("\n")
    up = read.sql.split("\n")
    assert read.tool == "goose" and read.up_line == 2
    assert len(up) == original.index("-- +goose Down")  # the Down part cut off
    for number, line in enumerate(up, 1):
        assert line in (original[number - 1], ""), number  # every line in its place, or blank
    assert "ALTER TABLE items DROP COLUMN status;" in read.down and "DROP COLUMN" not in read.sql
    assert "+goose" not in read.sql


def test_an_error_in_the_up_part_names_the_line_of_the_file(toy_ready):
    """apply() judges the Up part: a reach into bluegreen's objects on line 6 of the file is reported at 6."""
    project = toy_ready
    text = "-- header\n\n-- +goose Up\nCREATE TABLE more(x);\n-- +goose StatementBegin\nUPDATE _bluegreen_meta SET value = 0;\n"
    path = project.schemas / "003_v3.0.0_more.sql"
    path.write_text(text + "-- +goose StatementEnd\n-- +goose Down\nDROP TABLE more;\n")
    [migration] = [m for m in migrations.discover(project.schemas) if m.file == path.name]
    memory = apsw.Connection(":memory:")
    try:
        with pytest.raises(MigrationInvalid) as refused:
            migrations.apply(memory, migration, None)
        assert f"{path}:6:" in refused.value.message
    finally:
        memory.close()


@pytest.mark.parametrize("newline, bom", [("\r\n", ""), ("\n", "\ufeff"), ("\r\n", "\ufeff")])
def test_crlf_and_bom_files_are_read_the_same(newline, bom):
    for text in (GOOSE, DBMATE, "-- leading comment\n" + DBMATE):
        read = migration_formats.read(Path("x.sql"), bom + text.replace("\n", newline))
        assert read.tool in ("goose", "dbmate") and "DELETE FROM items" not in read.sql
        assert read.sql.replace("\r", "").split("\n") == migration_formats.read(Path("x.sql"), text).sql.split("\n")


def test_files_without_markers_are_read_as_they_are():
    text = "-- migrate: copies rows (a comment, not a marker)\nCREATE TABLE t(x);\r\nSELECT '-- +goose Down';\n"
    read = migration_formats.read(Path("003_v3_x.sql"), text)
    assert (read.tool, read.sql, read.down) == ("bluegreen", text, "")


@pytest.mark.parametrize(
    "name, expected",
    [
        ("20240101120000_add_x.sql", (20240101120000, "20240101120000", "add_x")),
        ("00001_add-x.sql", (1, "1", "add-x")),
        ("V2__add_x.sql", (2, "2", "add_x")),
        ("V2.1__add_x.sql", (2, "2.1", "add_x")),
        ("V2_1__add_x.sql", (2, "2.1", "add_x")),
        ("V001_02__x.sql", (1, "001.02", "x")),
        ("v2__lowercase.sql", None),
        ("V2_x.sql", None),
        ("1_create.up.sql", None),
    ],
)
def test_names(name, expected):
    assert migration_formats.parse_name(Path(name)) == expected


# ==================================================================================================
# the README's subsections, run as written
# ==================================================================================================
def readme_section(title: str) -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index(f"\n{title}\n") + 1
    end = re.search(r"^#{2,3} ", readme[start + len(title) :], re.MULTILINE)
    return readme[start : start + len(title) + (end.start() if end else len(readme))]


def run_section(project: Project, title: str) -> list[str]:
    """Each ```sql block saved under the `schemas/NAME` named last before it; each ```sh block
    run by bash -e in the project folder with this environment's bluegreen on PATH."""
    text = readme_section(title)
    outputs = []
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("BLUEGREEN_CONFIG", None)
    blocks = list(re.finditer(r"^```(\w+)\n(.*?)^```$", text, re.MULTILINE | re.DOTALL))
    assert [b.group(1) for b in blocks].count("sh") == 1 and len(blocks) == 3, title
    for block in blocks:
        language, body = block.groups()
        if language == "sql":
            name = re.findall(r"`schemas/([^`]+\.sql)`", text[: block.start()])[-1]
            (project.schemas / name).write_text(body)
            continue
        assert language == "sh"
        done = subprocess.run(["bash", "-e", "-c", body], cwd=project.root, env=env, capture_output=True, text=True)
        assert done.returncode == 0, (title, done.stdout, done.stderr)
        outputs.append(done.stdout)
    return outputs


def test_readme_goose_and_dbmate_runs_as_written(toy_ready):
    project = toy_ready
    [out] = run_section(project, "### goose and dbmate")
    assert "20240101120000_add_status.sql  (v20240101120000" in out
    assert "20240102090000_create_tags.sql  (v20240102090000" in out
    assert out.rstrip().endswith("new|50\nnew\nrenamed")  # the sqlite3 line: Up parts only, Down never ran
    green = active(project)
    assert "status" in columns(green, "items")
    assert rows(green, "SELECT name FROM sqlite_schema WHERE name IN ('items_by_status', 'items_renamed')") != []
    helpers.app(project, "UPDATE items SET name = 'y' WHERE id = 3", green)
    assert rows(green, "SELECT status FROM items WHERE id = 3") == [("renamed",)]


def test_readme_flyway_runs_as_written(toy_ready):
    project = toy_ready
    [out] = run_section(project, "### Flyway")
    assert out.index("V3__create_labels.sql  (v3;") < out.index("V3_1__first_label.sql  (v3.1;")
    history = out.strip().splitlines()[-2:]
    assert "V3__create_labels.sql" in history[0] and "V3_1__first_label.sql" in history[1]
    assert rows(active(project), "SELECT item_id, text FROM labels") == [(1, "first")]
    assert ok(project.cli("status", "--json"))["schema_version"] == "3.1"


def test_readme_sections_are_self_contained():
    """Each subsection names the files its blocks are saved as, and says what is refused."""
    for title in ("### goose and dbmate", "### Flyway"):
        text = readme_section(title)
        assert text.count("`schemas/") == 2 and "Refused" in text, title


@pytest.mark.parametrize(
    "files, expected",
    [
        ({"V1__create_log.sql": LOG, "V2_1__two_one.sql": logs("2.1")}, "003_v2.2_add_more.sql"),
        ({"20240101120000_create_log.sql": "-- +goose Up\n" + LOG + "-- +goose Down\nDROP TABLE log;\n"}, None),
    ],
)
def test_bluegreen_new_in_another_tools_folder_runs_last(tmp_path, files, expected):
    """`bluegreen new` numbers the next file after the last one, whatever scheme that one is named in."""
    project = make_project(tmp_path, "CREATE TABLE items(id INTEGER PRIMARY KEY);", files)
    made = Path(ok(project.cli("new", "add_more", "--json"))["path"])
    assert expected is None or made.name == expected
    made.write_text(logs("new"))
    plan = ok(project.cli("plan", "--json"))
    assert [m["file"] for m in plan["pending"]] == [*files, made.name]
    deploy(project)
    assert rows(active(project), "SELECT step FROM log ORDER BY rowid")[-1] == ("new",)
