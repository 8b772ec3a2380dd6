"""The shipped example's later releases (bluegreen/tools/example/releases/): 2.0.1 (the SDM plan's
008) renames the v1 tables to *_backup and records old_schema_cleanup_date 30 days out, once
2.0.0 is finalized; 2.1.0 drops the backups and is refused by the not-before gate until that day.
Real deploys on the generated v1.2.1 data; every refusal leaves the files as they were."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import rows
from helpers import app, assert_refused, pointer_of, refused

from bluegreen.errors import NotYetDue

RELEASES = Path(__file__).resolve().parent.parent / "bluegreen" / "tools" / "example" / "releases"
CLEANUP = "SELECT setting_value FROM application_settings WHERE setting_key = 'old_schema_cleanup_date'"


def add_release(project, version: str) -> None:
    for path in sorted((RELEASES / version).glob("*.sql")):
        shutil.copy(path, project.schemas / path.name)


def names_of(path, kind: str) -> set[str]:
    return {n for (n,) in rows(path, "SELECT name FROM sqlite_schema WHERE type = ?", (kind,))}


def at_2_0_1(project) -> None:
    for command in ("deploy", "finalize"):
        assert project.cli(command).code == 0
    add_release(project, "v2.0.1")
    deployed = project.cli("deploy", "--json")
    assert deployed.code == 0, deployed.err
    assert project.cli("finalize").code == 0


def test_2_0_1_archives_the_v1_tables_after_2_0_0_and_records_the_cleanup_date(shipped):
    project = shipped
    assert project.cli("deploy").code == 0
    add_release(project, "v2.0.1")
    # 2.0.0's revert window is open: 2.0.1 waits until it is finalized
    assert_refused(project.cli("deploy"), 2, "finalize")
    assert project.cli("finalize").code == 0

    plan = project.cli("plan", "--json")
    assert plan.code == 0, plan.err
    tables = plan.json["tables"]
    assert tables["content_v1"].startswith("carried by the sync companion")
    assert tables["application_settings"].startswith("carried by the sync companion")
    v1_rows = rows(project.gen(2), "SELECT * FROM content_v1 ORDER BY id")
    assert project.cli("deploy").code == 0
    green = project.gen(3)
    assert pointer_of(project)["schema_version"] == "2.0.1"
    names = {n for (n,) in rows(green, "SELECT name FROM sqlite_schema WHERE type = 'table'")}
    assert {"content_v1_backup", "downloads_v1_backup"} <= names and not {"content_v1", "downloads_v1"} & names
    assert rows(green, "SELECT * FROM content_v1_backup ORDER BY id") == v1_rows
    assert rows(green, CLEANUP) == rows(green, "SELECT date('now', '+30 days')")
    assert rows(green, "SELECT setting_value FROM application_settings WHERE setting_key = 'data_version'") == [
        ("2.0.1",)
    ]
    assert rows(green, "SELECT count(*) FROM downloads_v1_backup") == rows(
        project.gen(2), "SELECT count(*) FROM downloads_v1"
    )
    # 003's v1 -> v2 views are gone, the v2 -> v1 ones still rebuild every backup row
    assert not {"v1_content_platform", "migrate_v1_content"} & names_of(green, "view")
    assert rows(green, "SELECT count(*) FROM content") == [(len(v1_rows),)]
    assert rows(
        green,
        "SELECT count(*) FROM legacy_content_v1 l JOIN content_v1_backup b USING (id)"
        " WHERE l.url IS b.url AND l.title IS b.title",
    ) == [(len(v1_rows),)]


def test_2_1_0_is_refused_before_the_cleanup_date_then_drops_the_backups(shipped):
    project = shipped
    at_2_0_1(project)
    add_release(project, "v2.1.0")
    active = project.gen(3)
    (day,) = rows(active, CLEANUP)[0]

    for command in ("plan", "deploy", "prepare"):
        line = refused(project, command, code=3)
        assert f"005_v2.1.0_drop_v1_backups.sql may not run yet: not before {day}; today (UTC) is" in line
    document = project.cli("plan", "--json").json
    finding = document["details"]["findings"][0]
    assert (finding["cause"], finding["file"], finding["line"]) == ("NotYetDue", "005_v2.1.0_drop_v1_backups.sql", 1)
    assert pointer_of(project)["active"] == "app.gen3.db"

    # the day comes (here: the operator moves it, an application write on the active file)
    app(
        project,
        "UPDATE application_settings SET setting_value = date('now') WHERE setting_key = 'old_schema_cleanup_date'",
        active,
    )
    assert project.cli("plan").code == 0
    deployed = project.cli("deploy", "--json")
    assert deployed.code == 0, deployed.err
    green = project.gen(4)
    names = {n for (n,) in rows(green, "SELECT name FROM sqlite_schema")}
    assert not {"content_v1_backup", "downloads_v1_backup"} & names
    assert {"content", "content_metadata", "legacy_content_v1", "data_integrity_monitor"} <= names
    assert rows(green, CLEANUP) == [(None,)]
    assert project.cli("check").code == 3  # the demo data's downloads of missing content: still named
    assert "downloads_without_content" in project.cli("check").out


def test_2_1_0_with_2_0_1_still_pending_has_no_date_yet(shipped):
    """From 2.0.0 straight to 2.1.0: the date 2.0.1 would set is not in the active file."""
    project = shipped
    for command in ("deploy", "finalize"):
        assert project.cli(command).code == 0
    add_release(project, "v2.0.1")
    add_release(project, "v2.1.0")
    # 2.0.1's companions cannot run on a schema without the backups either (exit 2 comes first)
    refused(project, "deploy", code=2)
    findings = {f["cause"]: f for f in project.cli("plan", "--json").json["details"]["findings"]}
    assert "its not-before query gives no date on app.gen2.db (got None)" in findings["NotYetDue"]["message"]


def test_a_not_before_query_that_does_not_run_is_a_broken_migration(at_v2):
    project = at_v2
    (project.schemas / "003_v3.0.0_later.sql").write_text(
        "CREATE TABLE later(id INTEGER PRIMARY KEY);\n-- bluegreen: not-before SELECT day FROM no_such_table\n"
    )
    line = refused(project, "plan", code=2)
    assert "003_v3.0.0_later.sql:2: the not-before query does not run on app.gen2.db" in line
    assert "no such table: no_such_table" in line
    (project.schemas / "003_v3.0.0_later.sql").write_text(
        "-- bluegreen: not-before SELECT '2000-01-01'\n-- bluegreen: not-before SELECT '2000-01-02'\nSELECT 1;\n"
    )
    assert "a second `-- bluegreen: not-before` line" in refused(project, "deploy", code=2)
    (project.schemas / "003_v3.0.0_later.sql").write_text(
        "-- bluegreen: not-before SELECT '2000-01-01'\nCREATE TABLE later(id INTEGER PRIMARY KEY);\n"
    )
    assert project.cli("deploy").code == 0  # a date in the past: due


def test_not_yet_due_is_a_gate_refusal():
    assert NotYetDue("x").exit_code == 3


SETTING = (
    "SELECT setting_key, setting_value FROM application_settings WHERE setting_key IN ('theme', 'language',"
    " 'data_version', 'old_schema_cleanup_date', 'max_retries') ORDER BY setting_key"
)


def test_2_0_1_online_keeps_settings_changed_during_prepare_and_revert_carries_them_back(shipped):
    """The application changes its settings on 2.0.0 while 2.0.1 is prepared (the sync companion
    carries them, 004's two settings stay 004's), then on 2.0.1 after cutover (the rollback
    companion carries them back; blue keeps its own 2.0.0 values of 004's two)."""
    project = shipped
    for command in ("deploy", "finalize"):
        assert project.cli(command).code == 0
    add_release(project, "v2.0.1")
    assert project.cli("prepare").code == 0
    app(
        project,
        "UPDATE application_settings SET setting_value = 'dark' WHERE setting_key = 'theme';"
        "DELETE FROM application_settings WHERE setting_key = 'language';"
        "INSERT INTO application_settings(setting_key, setting_value) VALUES ('proxy', 'socks5://x');"
        "UPDATE application_settings SET setting_value = 'tampered' WHERE setting_key = 'data_version'",
        project.gen(2),
    )
    cut = project.cli("cutover", "--json")
    assert cut.code == 0, cut.err
    green = project.gen(3)
    (day,) = rows(green, "SELECT date('now', '+30 days')")[0]
    assert rows(green, SETTING) == [
        ("data_version", "2.0.1"),
        ("max_retries", "3"),
        ("old_schema_cleanup_date", day),
        ("theme", "dark"),
    ]
    assert rows(green, "SELECT setting_value FROM application_settings WHERE setting_key = 'proxy'") == [
        ("socks5://x",)
    ]

    app(
        project,
        "UPDATE application_settings SET setting_value = '5' WHERE setting_key = 'max_retries';"
        "UPDATE application_settings SET setting_value = '2099-01-01' WHERE setting_key = 'old_schema_cleanup_date'",
        green,
    )
    reverted = project.cli("revert", "--json")
    assert reverted.code == 0, reverted.err
    assert pointer_of(project)["active"] == "app.gen2.db"
    assert rows(project.gen(2), SETTING) == [
        ("data_version", "tampered"),  # blue's own value: 004's backfill is not carried back
        ("max_retries", "5"),
        ("old_schema_cleanup_date", "2099-01-01"),  # the application's write on green is
        ("theme", "dark"),
    ]
    assert {n for (n,) in rows(project.gen(2), "SELECT name FROM sqlite_schema WHERE type = 'table'")} >= {
        "content_v1",
        "downloads_v1",
    }
