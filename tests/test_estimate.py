"""`plan` estimates (tables touched, row counts, size of green, free space, pause budget) and the
free-space refusal of prepare/deploy. The refusal is tested without mocks: the configured margin
is made larger than the real free space of the file system the test runs on."""

from __future__ import annotations

import os
import shutil

import pytest
from conftest import BASE_CONFIG, disk_state, rows
from helpers import assert_refused, json_error, pointer_of, state_of

MB = 1024 * 1024


def plan(project, code: int = 0) -> dict:
    before = disk_state(project.data)
    result = project.cli("plan", "--json")
    assert result.code == code, result.err
    assert disk_state(project.data) == before, "plan must not write"
    return result.json


def page_bytes(path) -> int:
    ((count,),) = rows(path, "PRAGMA page_count")
    ((size,),) = rows(path, "PRAGMA page_size")
    return count * size


def test_plan_estimates_the_shipped_migration_and_green_comes_out_near_it(shipped):
    document = plan(shipped)
    found = document["estimate"]
    by_file = {m["file"]: m for m in found["migrations"]}
    migrate = by_file["003_v2.0.0_migrate_content.sql"]
    reads = {t["table"]: t for t in migrate["reads"]}
    writes = {t["table"]: t for t in migrate["writes"]}
    assert set(reads) == {"content_v1", "downloads_v1"}
    assert reads["content_v1"]["rows"] == rows(shipped.blue, "SELECT count(*) FROM content_v1")[0][0] == 2000
    assert reads["downloads_v1"]["rows"] == rows(shipped.blue, "SELECT count(*) FROM downloads_v1")[0][0]
    assert reads["content_v1"]["bytes"] > 0
    assert {"content", "content_metadata", "downloads", "download_errors", "migration_status"} <= set(writes)
    assert writes["content"]["rows"] is None  # created by the migrations: not in blue
    assert by_file["001_v1.2.1_baseline.sql"]["writes"] == []

    assert found["blue_bytes"] == page_bytes(shipped.blue)
    assert found["copied_bytes"] == reads["content_v1"]["bytes"] + reads["downloads_v1"]["bytes"]
    assert found["green_bytes"] == found["blue_bytes"] + found["copied_bytes"]
    assert found["needed_bytes"] == found["green_bytes"] + found["wal_bytes"] + 64 * MB
    assert found["fits"] is True and found["max_write_pause_ms"] == 100 and found["lock_timeout_ms"] == 3000
    real_free = shutil.disk_usage(shipped.data).free
    assert abs(found["free_bytes"] - real_free) < max(real_free * 0.1, 512 * MB)

    text = shipped.cli("plan").out
    assert "content_v1 (2,000 rows" in text and "content (new)" in text
    assert "free: enough" in text and "writers wait at most 100 ms" in text

    assert shipped.cli("deploy").code == 0
    actual = page_bytes(shipped.gen(2))
    # the plan's 2.0 stores each JSON key as a content_metadata row (with its lookup index), about
    # 1.6 times the JSON text it reads: green comes out about a third above the estimate
    assert abs(actual - found["green_bytes"]) < actual * 0.4, (actual, found["green_bytes"])


def test_plan_says_when_a_migration_cannot_be_dry_run(toy_ready):
    (toy_ready.schemas / "003_v3.0.0_broken.sql").write_text("INSERT INTO nowhere SELECT * FROM items;\n")
    (toy_ready.schemas / "004_v4.0.0_later.sql").write_text("CREATE TABLE later(x);\n")
    found = plan(toy_ready, code=2)["estimate"]  # plan is the gate (issue 12): exit 2, the plan still shown
    by_file = {m["file"]: m for m in found["migrations"]}
    assert "no such table: nowhere" in by_file["003_v3.0.0_broken.sql"]["error"]
    assert by_file["004_v4.0.0_later.sql"]["error"] == "after 003_v3.0.0_broken.sql"
    assert [t["table"] for t in by_file["002_v2.0.0_split_names.sql"]["reads"]] == ["items"]
    assert by_file["002_v2.0.0_split_names.sql"]["reads"][0]["rows"] == 50
    shown = toy_ready.cli("plan")
    assert shown.code == 2 and "could not be dry-run on blue's schema" in shown.out


def too_small(project) -> None:
    """A margin a terabyte over what this file system has free: the real check, no mock."""
    free_mb = shutil.disk_usage(project.data).free // MB
    project.config.write_text(BASE_CONFIG + f"[disk]\nmin_free_mb = {free_mb + 1024 * 1024}\n")


@pytest.mark.parametrize("argv", [("prepare",), ("deploy",), ("deploy", "--offline")])
def test_disk_too_small_refuses_before_anything_is_written(toy_ready, argv):
    project = toy_ready
    too_small(project)
    before = disk_state(project.data)
    last = state_of(project)["last_generation"]

    result = project.cli(*argv)

    assert_refused(
        result,
        1,
        str(project.data),
        "not enough free disk space",
        "[disk] min_free_mb",
        "Nothing was changed",
        "free some space",
    )
    assert disk_state(project.data) == before
    assert state_of(project)["last_generation"] == last  # no generation number spent
    assert not os.path.exists(project.gen(2))
    document = json_error(project.cli(*argv, "--json"), 1)
    assert document["details"]["estimate"]["fits"] is False
    assert document["details"]["estimate"]["needed_bytes"] > document["details"]["estimate"]["free_bytes"]
    assert disk_state(project.data) == before

    shown = project.cli("plan")  # plan reports it, and is not itself refused
    assert shown.code == 0 and "NOT ENOUGH, prepare and deploy would refuse" in shown.out
    assert plan(project)["estimate"]["fits"] is False

    project.config.write_text(BASE_CONFIG + "[disk]\nmin_free_mb = 0\n")  # room again: the same command works
    assert project.cli(*argv).code == 0
    assert project.gen(2).exists()
    if argv[0] == "deploy":
        assert pointer_of(project)["active"] == "app.gen2.db"


@pytest.mark.parametrize(
    "value, words",
    [("-1", ["disk.min_free_mb", "whole number, 0 or more"]), ('"64MB"', ["disk.min_free_mb", "'64MB'"])],
)
def test_bad_disk_config(toy_ready, value, words):
    toy_ready.config.write_text(BASE_CONFIG + f"[disk]\nmin_free_mb = {value}\n")
    before = disk_state(toy_ready.data)
    assert_refused(toy_ready.cli("plan"), 2, str(toy_ready.config), *words)
    assert_refused(toy_ready.cli("deploy"), 2, str(toy_ready.config), *words)
    assert disk_state(toy_ready.data) == before
