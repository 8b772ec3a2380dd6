"""`bluegreen check`: the integrity monitor on the active file. Problems are made with real SQL
(foreign keys off, duplicates), and every run is shown to leave the files exactly as they were."""

from __future__ import annotations

import pytest
from conftest import BASE_CONFIG, disk_state, rows
from helpers import assert_refused, error_line, pointer_of

NAMES_CHECK = (
    "-- check: names_match_items\nSELECT n.id FROM names AS n LEFT JOIN items AS i ON i.id = n.id WHERE i.id IS NULL;\n"
)


def check(project, *args):
    before = disk_state(project.data)
    result = project.cli("check", *args)
    assert disk_state(project.data) == before, "check must never write"
    return result


def test_a_clean_file_passes(toy_ready):
    result = check(toy_ready)
    assert result.code == 0, result.err
    assert result.err == ""
    assert "app.db: 2 check(s), all clean" in result.out
    assert "integrity_check" in result.out and "foreign_key_check" in result.out

    document = check(toy_ready, "--json").json
    assert document["ok"] is True and document["clean"] is True
    assert [(c["name"], c["found"]) for c in document["checks"]] == [("integrity_check", 0), ("foreign_key_check", 0)]


def test_config_query_that_finds_rows_exits_3_with_samples(toy_ready):
    project = toy_ready
    project.config.write_text(
        BASE_CONFIG + "[check]\nsample_rows = 2\n[check.queries]\n"
        'unnamed_items = "SELECT id, name FROM items WHERE name IS NULL"\n'
    )
    assert check(project).code == 0
    conn = project.connect()
    conn.execute("UPDATE items SET name = NULL WHERE id IN (3, 4, 5)")
    conn.close()

    result = check(project)
    line = assert_refused(result, 3, str(project.blue), "check found problems", "unnamed_items: 3 row(s)")
    assert "foreign_key_check" not in line
    assert "unnamed_items                    3 row(s)  [config [check.queries]]" in result.out
    assert "(3, None)" in result.out and "(4, None)" in result.out and "(5, None)" not in result.out  # 2 samples

    document = check(project, "--json")
    assert document.code == 3 and document.out.count("\n") == 1
    body = document.json
    assert body["ok"] is False and body["exit_code"] == 3 and body["clean"] is False
    assert "unnamed_items: 3 row(s)" in body["error"]
    found = {c["name"]: c for c in body["checks"]}
    assert found["unnamed_items"]["found"] == 3 and found["unnamed_items"]["columns"] == ["id", "name"]
    assert found["unnamed_items"]["sample"] == [[3, None], [4, None]]


def test_a_query_that_cannot_run_is_not_clean(toy_ready):
    toy_ready.config.write_text(
        BASE_CONFIG + '[check.queries]\nghost = "SELECT id FROM ghosts"\nwriter = "DELETE FROM items"\n'
    )
    result = check(toy_ready)
    assert_refused(
        result, 3, "ghost: could not run", "no such table: ghosts", "writer: could not run", "not a read-only query"
    )
    assert rows(toy_ready.blue, "SELECT count(*) FROM items") == [(50,)]


def test_companions_of_applied_migrations_only_and_they_do_not_change_checksums(toy_ready):
    project = toy_ready
    (project.schemas / "002_v2.0.0_split_names_check.sql").write_text(NAMES_CHECK)
    at_v1 = check(project, "--json").json  # 002 is not applied to app.db: its check is not run
    assert [c["name"] for c in at_v1["checks"]] == ["integrity_check", "foreign_key_check"]

    assert project.cli("deploy").code == 0
    assert project.cli("finalize").code == 0
    (project.schemas / "002_v2.0.0_split_names_check.sql").write_text(NAMES_CHECK + "\n-- edited later\n")
    at_v2 = check(project, "--json")
    assert at_v2.code == 0, at_v2.err
    assert [c["name"] for c in at_v2.json["checks"]] == ["integrity_check", "foreign_key_check", "names_match_items"]
    assert project.cli("status").code == 0  # no "changed after it was applied"


@pytest.mark.parametrize(
    "text, words",
    [
        ("SELECT 1;\n", ["_check.sql:1", "SQL before the first", "-- check: NAME"]),
        ("-- check: a\nSELECT 1;\n-- check: a\nSELECT 2;\n", ["'a' is used twice"]),
    ],
)
def test_a_malformed_check_file_is_an_input_error(toy_ready, text, words):
    assert toy_ready.cli("deploy").code == 0
    (toy_ready.schemas / "002_v2.0.0_split_names_check.sql").write_text(text)
    assert_refused(check(toy_ready), 2, "002_v2.0.0_split_names_check.sql", *words)


def clean_the_demo_oddities(project) -> None:
    """The generated v1.2.1 data has downloads of missing content on purpose; remove them."""
    conn = project.connect(project.gen(2))
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("DELETE FROM downloads WHERE content_id IS NULL")
    conn.execute("DELETE FROM downloads_v1 WHERE content_id IS NULL OR content_id NOT IN (SELECT id FROM content_v1)")
    conn.close()


def test_shipped_checks_find_orphans_and_duplicates(shipped):
    project = shipped
    assert project.cli("deploy").code == 0 and project.cli("finalize").code == 0
    assert pointer_of(project)["active"] == "app.gen2.db"
    dirty = check(project, "--json").json
    assert {c["name"]: c["found"] for c in dirty["checks"] if c["found"]}["downloads_without_content"] > 0

    clean_the_demo_oddities(project)
    clean = check(project, "--json")
    assert clean.code == 0, clean.out
    assert [c["name"] for c in clean.json["checks"]] == [
        "integrity_check",
        "foreign_key_check",
        "data_integrity_monitor",
        "orphaned_metadata",
        "missing_platform_references",
        "duplicate_content",
        "downloads_without_content",
        "untyped_metadata",
    ]

    conn = project.connect(project.gen(2))
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute(
        "INSERT INTO content_metadata(content_id, metadata_type, metadata_key, metadata_value, data_type)"
        " VALUES (987654, 'extra', 'note', 'orphan', 'string')"
    )
    conn.execute(
        "INSERT INTO content(platform_id, original_url, title) SELECT platform_id, original_url, 'copy' FROM content WHERE id = 10"
    )
    copy = conn.last_insert_rowid()
    conn.execute(
        "INSERT INTO content_metadata(content_id, metadata_type, metadata_key, metadata_value, data_type)"
        " SELECT ?, metadata_type, metadata_key, metadata_value, data_type FROM content_metadata"
        " WHERE content_id = 10 AND metadata_type = 'platform_specific'",
        (copy,),
    )
    assert conn.changes() == 1
    conn.execute("UPDATE content SET platform_id = 77 WHERE id = 11")
    conn.execute(
        "UPDATE content_metadata SET metadata_value = '1080' WHERE content_id = 12 AND metadata_key = 'resolution_height'"
    )
    assert conn.changes() == 1
    conn.close()

    result = check(project)
    assert_refused(
        result,
        3,
        "app.gen2.db",
        "data_integrity_monitor:",
        "orphaned_metadata: 1 row(s)",
        "duplicate_content: 2 row(s)",
        "missing_platform_references: 1 row(s)",
        "untyped_metadata: 1 row(s)",
        "foreign_key_check:",
    )
    assert "(987654, 'extra', 'note')" in result.out and "'url'" in result.out and f"'10,{copy}'" in result.out
    assert "('orphaned_metadata', 1)" in result.out and "('duplicate_platform_ids', 1)" in result.out
    assert "(11, 77, " in result.out
    assert error_line(result).startswith("bluegreen: error:")
