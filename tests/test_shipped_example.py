"""The shipped v1.2.1 → v2.0 example end to end, with real writer processes."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import apsw
import pytest
from conftest import rows, write_config
from helpers import Writer

from bluegreen.tools import demo


def start_writer(project, tmp_path: Path) -> Writer:
    """The writer program in demo mode: the shipped example's application, through the pointer."""
    return Writer(project, tmp_path, 7, "demo", seconds=120)


def test_deploy_moves_every_v1_row_and_keeps_blue(shipped):
    project = shipped
    v1_rows = "SELECT * FROM content_v1 ORDER BY id"
    blue_before = rows(project.blue, v1_rows) + rows(project.blue, "SELECT * FROM downloads_v1 ORDER BY id")
    result = project.cli("deploy", "--json")
    assert result.code == 0, result.err
    pointer = tomllib.loads(project.pointer.read_text())
    assert (pointer["active"], pointer["generation"], pointer["schema_version"]) == ("app.gen2.db", 2, "2.0.0")

    green = project.gen(2)
    conn = apsw.Connection(str(green), flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_URI)
    conn.execute("ATTACH ? AS blue", (f"file:{project.blue}?mode=ro",))
    v1 = conn.execute("SELECT count(*) FROM blue.content_v1").get
    assert v1 == 2000
    # Every v1 row arrived, with its id and url, and with its metadata row.
    assert (
        conn.execute(
            "SELECT count(*) FROM content c JOIN blue.content_v1 v ON v.id = c.id AND v.url = c.original_url"
        ).get
        == v1
    )
    # ... and every v1 metadata value has its v2 home: the v1 row rebuilt from v2 has it again
    assert (
        conn.execute(
            "SELECT count(*) FROM blue.content_v1 v JOIN legacy_content_v1 l ON l.id = v.id"
            " WHERE (v.metadata IS NULL) <> (l.metadata IS NULL) OR (v.download_info IS NULL) <> (l.download_info IS NULL)"
        ).get
        == 0
    )
    assert conn.execute("SELECT count(*) FROM content_metadata WHERE metadata_type = 'video_specs'").get > 1000
    assert (
        conn.execute("SELECT count(*) FROM downloads").get == conn.execute("SELECT count(*) FROM blue.downloads_v1").get
    )
    tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    for table in (
        "platforms",
        "content",
        "content_metadata",
        "quality_options",
        "downloads",
        "download_sessions",
        "download_errors",
        "tags",
        "content_tags",
        "application_settings",
        "schema_migrations",
        "migration_status",
        "migration_performance_tests",
        "content_history",
        "content_v1",
        "downloads_v1",
    ):
        assert table in tables, table
    # the plan's governance columns of the history table
    assert conn.execute(
        "SELECT migration_file, rollback_file, executed_at = applied_at, rollback_notes FROM schema_migrations"
        " WHERE version = '2.0.0' ORDER BY id"
    ).fetchall() == [
        ("002_v2.0.0_normalized_schema.sql", None, 1, None),
        (
            "003_v2.0.0_migrate_content.sql",
            "003_v2.0.0_migrate_content_rollback.sql",
            1,
            "revert runs 003_v2.0.0_migrate_content_rollback.sql on blue; it carries content, content_history,"
            " content_metadata, download_errors, downloads",
        ),
    ]
    conn.close()

    blue_after = rows(project.blue, v1_rows) + rows(project.blue, "SELECT * FROM downloads_v1 ORDER BY id")
    assert blue_after == blue_before  # blue's rows unchanged
    with pytest.raises(apsw.SQLError, match="bluegreen"):
        project.connect().execute("UPDATE content_v1 SET title = 'x' WHERE id = -1")

    assert project.cli("revert").code == 0
    app = project.connect()
    app.execute("INSERT INTO content_v1(url, title) VALUES ('https://example.com/after-revert', 'ok')")
    app.close()
    assert tomllib.loads(project.pointer.read_text())["active"] == "app.db"


@pytest.mark.parametrize("mode", [["--offline"], []], ids=["offline", "online"])
def test_deploy_keeps_every_write_of_a_running_writer(shipped, tmp_path, mode):
    project = shipped
    writer = start_writer(project, tmp_path)
    try:
        writer.wait_for(30)
        deployed = project.cli_process("deploy", *mode, "--json")
        assert deployed.code == 0, deployed.err
        writer.process.wait(timeout=60)  # it stops at the fence
    finally:
        writer.kill()
    events = writer.records()
    committed = [e for e in events if e["event"] == "committed"]
    assert len(committed) >= 30
    assert {e["op"] for e in committed} >= {"insert", "update"}
    assert any(e["event"] == "fenced" and "bluegreen" in e["error"] for e in events)
    assert demo.verify_writes(events, project.gen(2)) == []
    assert rows(project.gen(2), "SELECT count(*) FROM content") == rows(
        project.gen(2), "SELECT count(*) FROM content_v1"
    )


def test_separate_prepare_then_cutover_with_a_writer_loses_nothing(shipped, tmp_path):
    """The writer keeps writing between prepare and cutover: cutover carries it all into v2."""
    project = shipped
    writer = start_writer(project, tmp_path)
    try:
        writer.wait_for(5)
        assert project.cli_process("prepare").code == 0
        writer.wait_for(50)
        cut = project.cli_process("cutover", "--json")
        assert cut.code == 0, cut.err
        writer.process.wait(timeout=60)
    finally:
        writer.kill()
    events = writer.records()
    assert demo.verify_writes(events, project.gen(2)) == []
    validated = project.cli("status", "--json").json
    assert validated["phase"] == "cut_over"


def test_demo_runs_and_checks_itself(tmp_path):
    write_config(tmp_path)
    (tmp_path / "config.toml").write_text(
        (tmp_path / "config.toml").read_text().replace('dir = "schemas"', f'dir = "{demo_schemas()}"')
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bluegreen",
            "--config",
            str(tmp_path / "config.toml"),
            "demo",
            "--rows",
            "3000",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    import json

    report = json.loads(done.stdout)
    assert report["rows"] == 3000 and report["writes_committed"] >= 20 and report["writer_met_fence"]
    assert report["counts"]["content"] == report["counts"]["content_v1"]
    assert rows(tmp_path / "data" / "app.gen2.db", "SELECT count(*) FROM content") == [(report["counts"]["content"],)]
    # Running it again starts over in the folder it made.
    again = subprocess.run(
        [sys.executable, "-m", "bluegreen", "--config", str(tmp_path / "config.toml"), "demo", "--rows", "500"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert "longest wait any write saw" in again.stdout


def test_demo_refuses_a_folder_it_did_not_make(tmp_path):
    write_config(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "precious.db").write_bytes(b"keep me")
    done = subprocess.run(
        [sys.executable, "-m", "bluegreen", "--config", str(tmp_path / "config.toml"), "demo", "--rows", "100"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "not made by `bluegreen demo`" in done.stderr
    assert (tmp_path / "data" / "precious.db").read_bytes() == b"keep me"
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["precious.db"]


def demo_schemas():
    from conftest import SHIPPED_SCHEMAS

    return SHIPPED_SCHEMAS


def test_revert_carries_v2_writes_back_into_v1(shipped):
    """After cutover the application writes the v2 tables; revert rebuilds the v1 rows from them
    through the shipped _rollback.sql, and refuses changes v1 has no place for (tags)."""
    project = shipped
    assert project.cli("deploy").code == 0
    app = project.connect(project.gen(2))
    app.execute("PRAGMA foreign_keys = ON")
    app.execute(
        "INSERT INTO content(id, platform_id, original_url, title, author_name, description, duration_seconds,"
        " view_count) VALUES (900001, 1, 'https://www.youtube.com/watch?v=v2only', 'born on v2', 'v2 app',"
        " 'made after cutover', 61, 5);"
        "INSERT INTO content_metadata(content_id, metadata_type, metadata_key, metadata_value, data_type) "
        "VALUES (900001, 'video_specs', 'fps', 30, 'integer');"
        "UPDATE content SET title = 'retitled on v2' WHERE id = 5;"
        "UPDATE content SET view_count = 424242 WHERE id = 6;"
        "DELETE FROM content WHERE id = 7"
    )
    # the audit trail on green: the application's changes, with updated_at kept current
    assert rows(
        project.gen(2), "SELECT operation FROM content_history WHERE content_id IN (5, 6, 7, 900001) ORDER BY id"
    ) == [("insert",), ("update",), ("update",), ("delete",)]
    assert rows(project.gen(2), "SELECT updated_at > created_at FROM content WHERE id = 5") == [(1,)]
    assert rows(
        project.gen(2),
        "SELECT changed_columns, old_values ->> '$.title', new_values ->> '$.title' FROM content_history"
        " WHERE content_id = 5",
    ) == [('["title"]', rows(project.blue, "SELECT title FROM content_v1 WHERE id = 5")[0][0], "retitled on v2")]
    # bluegreen's own writes (load, catch-up) left no history: only these four application writes
    assert rows(project.gen(2), "SELECT count(*) FROM content_history") == [(4,)]
    app.close()
    reverted = project.cli("revert", "--json")
    assert reverted.code == 0, reverted.err
    assert reverted.json["carried_back"] >= 5
    blue = project.blue
    assert rows(blue, "SELECT url, title, author FROM content_v1 WHERE id = 900001") == [
        ("https://www.youtube.com/watch?v=v2only", "born on v2", "v2 app")
    ]
    assert rows(
        blue,
        "SELECT json_extract(metadata, '$.duration'), json_extract(metadata, '$.view_count'),"
        " json_extract(metadata, '$.fps') FROM content_v1 WHERE id = 900001",
    ) == [(61, 5, 30)]
    assert rows(blue, "SELECT title FROM content_v1 WHERE id = 5") == [("retitled on v2",)]
    assert rows(blue, "SELECT json_extract(metadata, '$.view_count') FROM content_v1 WHERE id = 6") == [(424242,)]
    assert rows(blue, "SELECT count(*) FROM content_v1 WHERE id = 7") == [(0,)]
    assert tomllib.loads(project.pointer.read_text())["active"] == "app.db"


def test_revert_refuses_v2_only_changes_then_exports_them(shipped):
    project = shipped
    assert project.cli("deploy").code == 0
    app = project.connect(project.gen(2))
    app.execute(
        "INSERT INTO tags(id, name) VALUES (1, 'favourite'); INSERT INTO content_tags(content_id, tag_id) VALUES (3, 1)"
    )
    app.close()
    refused = project.cli("revert", "--json")
    assert refused.code == 5
    assert refused.json["details"]["tables"] == {"content_tags": 1, "tags": 1}
    accepted = project.cli("revert", "--accept-loss", "--json")
    assert accepted.code == 0, accepted.err
    assert rows(accepted.json["exported"], "SELECT name FROM tags") == [("favourite",)]


def test_revert_refuses_a_v2_row_v1_cannot_hold(shipped):
    """quality_options is new in v2 (v1's one format is in its metadata, 2.0 puts it in video_specs
    rows): a quality option added on v2 cannot go back. Revert refuses before changing anything;
    --accept-loss exports it first."""
    project = shipped
    assert project.cli("deploy").code == 0
    app = project.connect(project.gen(2))
    app.execute(
        "INSERT INTO quality_options(id, content_id, quality_label, width, height, is_selected) "
        "VALUES (900001, 3, '144p', 256, 144, 0); UPDATE content SET title = 'kept' WHERE id = 3"
    )
    app.close()
    before = rows(project.blue, "SELECT * FROM content_v1 ORDER BY id")
    refused = project.cli("revert", "--json")
    assert refused.code == 5, refused.err
    assert refused.json["details"]["tables"] == {"quality_options": 1}
    assert rows(project.blue, "SELECT * FROM content_v1 ORDER BY id") == before  # nothing carried
    assert tomllib.loads(project.pointer.read_text())["active"] == "app.gen2.db"
    accepted = project.cli("revert", "--accept-loss", "--json")
    assert accepted.code == 0, accepted.err
    assert rows(accepted.json["exported"], "SELECT quality_label FROM quality_options WHERE id = 900001") == [("144p",)]
    assert rows(project.blue, "SELECT title FROM content_v1 WHERE id = 3") == [("kept",)]
