"""`bluegreen rehearse`: deploy, gates and revert on a scratch copy; the real project is only read.

"Untouched" is checked at the byte level: every file of the real project (config, schemas, the
data folder with the pointer, the journal, the event log and the lock) keeps its bytes and its
modification time, and no file appears or disappears — on top of disk_state's content check.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import pytest
from conftest import disk_state, rows
from helpers import assert_refused, json_error

SCRATCH_PREFIX = "bluegreen-rehearsal-"


def fingerprint(root: Path, skip: Path | None = None) -> dict:
    """Every file under root by bytes and mtime (nanoseconds), and every folder by its entries."""
    found = {}
    for path in sorted(root.rglob("*")):
        if skip is not None and (path == skip or skip in path.parents):
            continue
        rel = path.relative_to(root).as_posix()
        if path.is_dir():
            found[rel + "/"] = sorted(p.name for p in path.iterdir())
        else:
            found[rel] = (hashlib.sha256(path.read_bytes()).hexdigest(), os.stat(path).st_mtime_ns)
    return found


def real_state(project, skip: Path | None = None) -> tuple:
    """disk_state first: it opens each database, and closing the last connection to a WAL file
    checkpoints a leftover -wal; the byte fingerprint is then taken of files nobody has open."""
    content = disk_state(project.root)
    return fingerprint(project.root, skip), content


def scratch_folders() -> set[str]:
    return {p for p in os.listdir(tempfile.gettempdir()) if p.startswith(SCRATCH_PREFIX)}


def rehearse(project, *args: str):
    result = project.cli("rehearse", "--json", *args)
    return result


def phase_names(document: dict) -> list[str]:
    return [p["name"] for p in document["phases"]]


# ==================================================================================================
# passing rehearsals leave the real files byte-identical
# ==================================================================================================
@pytest.mark.parametrize("writer", [False, True], ids=["no-writer", "writer"])
def test_rehearsal_on_the_toy_project(toy_ready, writer):
    project = toy_ready
    before, temps = real_state(project), scratch_folders()
    result = rehearse(project, *(["--writer"] if writer else []))
    assert result.code == 0, result.err
    report = result.json
    assert (
        report["deploy"]["ok"] and report["deploy"]["generation"] == 2 and report["deploy"]["schema_version"] == "2.0.0"
    )
    assert report["deploy"]["write_pause_ms"] >= 0 and report["deploy"]["attempts"] >= 1
    assert report["validation"]["passed"] is True
    assert {c["source"] for c in report["validation"]["checks"]} == {
        "integrity_check",
        "foreign_key_check",
        "002_v2.0.0_split_names_validate.sql",
    }
    assert report["revert"]["ok"]
    # the writer followed the pointer: its writes on green are what the revert carried back
    assert report["revert"]["carried_back"] == (report["writer"]["green_rows"] if writer else 0)
    names = phase_names(report)
    assert names[0] == "copy" and {"snapshot", "migrate", "validate", "fence", "swap", "revert.swap"} <= set(names)
    assert report["pending"] == ["001_v1.0.0_items.sql", "002_v2.0.0_split_names.sql"]
    if writer:
        assert report["writer"]["kind"] == "touch" and report["writer"]["committed"] >= 5
        assert report["writer"]["met_fence"] and report["writer"]["longest_wait_ms"] > 0
        assert "writer (touch)" in report["message"]
        assert report["writer"]["on_green"] == 20 and report["writer"]["green_table"] == "items"
        assert report["writer"]["green_rank"] == "same shape in both" and report["writer"]["not_back"] == 0
        assert "20 write(s) on the new generation's items" in report["message"]
        assert "every one back in app.db row by row after the revert" in report["message"]
    else:
        assert report["writer"] is None
    assert "the real files were not touched" in report["message"]
    assert real_state(project) == before
    assert not Path(report["scratch"]).exists() and scratch_folders() == temps


@pytest.mark.parametrize("writer", [False, True], ids=["no-writer", "writer"])
def test_rehearsal_on_the_shipped_example(shipped, writer):
    project = shipped
    before = real_state(project)
    result = rehearse(project, *(["--writer"] if writer else []))
    assert result.code == 0, result.err
    report = result.json
    assert report["deploy"]["schema_version"] == "2.0.0" and report["validation"]["passed"]
    assert len(report["validation"]["checks"]) > 10  # the shipped _validate.sql compares counts, ids, urls…
    assert report["revert"]["ok"]
    if writer:
        # inserts, updates and deletes on content_v1, each found in the v2 shape after the cutover
        assert report["writer"]["kind"] == "sdm" and report["writer"]["committed"] >= 5
        assert report["writer"]["missing"] == 0 and "every one present after the cutover" in report["message"]
        # then on green, in the v2 file: a table both schemas have (v2 keeps the v1 tables), carried back
        assert report["writer"]["on_green"] == 20 and report["writer"]["not_back"] == 0
        assert report["writer"]["green_table"] in {"content_v1", "downloads_v1"}
        assert report["revert"]["carried_back"] >= report["writer"]["green_rows"] >= 1
    assert real_state(project) == before
    assert rows(project.blue, "SELECT count(*) FROM sqlite_schema WHERE name LIKE '_bluegreen%'") == [(0,)]


def test_rehearsal_kept_in_a_given_folder_is_a_project_of_its_own(toy_ready, tmp_path_factory):
    project = toy_ready
    scratch = tmp_path_factory.mktemp("elsewhere") / "rehearsal"
    before = real_state(project)
    result = rehearse(project, "--into", str(scratch), "--keep")
    assert result.code == 0, result.err
    assert result.json["scratch"] == str(scratch) and result.json["kept"] is True
    assert (scratch / "config.toml").exists() and (scratch / "data" / "app.gen2.db").exists()
    status = project.cli("--config", str(scratch / "config.toml"), "status", "--json")
    assert status.code == 0, status.err
    assert status.json["active"] == str(scratch / "data" / "app.db")  # reverted
    assert {k["name"]: k["role"] for k in status.json["kept"]}["app.gen2.db"] == "reverted"
    assert real_state(project) == before


def test_rehearsal_during_a_real_revert_window_copies_the_active_generation(toy_ready):
    """The real active file carries capture (revert window open): the copy is scrubbed of it and
    rehearses the next migration; the real file keeps its capture, byte for byte."""
    project = toy_ready
    assert project.cli("deploy").code == 0
    (project.schemas / "003_v3.0.0_more.sql").write_text("CREATE TABLE more(id INTEGER PRIMARY KEY);\n")
    before = real_state(project)
    result = rehearse(project)
    assert result.code == 0, result.err
    assert result.json["pending"] == ["003_v3.0.0_more.sql"] and result.json["deploy"]["schema_version"] == "3.0.0"
    assert result.json["source"] == str(project.gen(2))
    assert real_state(project) == before


def test_rehearsal_with_nothing_pending_says_so(toy_ready):
    project = toy_ready
    assert project.cli("deploy").code == 0 and project.cli("finalize").code == 0
    before, temps = real_state(project), scratch_folders()
    result = rehearse(project)
    assert result.code == 0, result.err
    assert "up to date: nothing to rehearse" in result.json["message"]
    assert real_state(project) == before and scratch_folders() == temps


# ==================================================================================================
# failing rehearsals: message, exit code, and the real files still byte-identical
# ==================================================================================================
FAILING_VALIDATE = "SELECT 'names are lower case', 'lower', 'upper', 'FAIL';\n"


@pytest.mark.parametrize("writer", [False, True], ids=["no-writer", "writer"])
def test_a_rehearsal_whose_gate_fails_exits_3_and_touches_nothing(toy_ready, tmp_path_factory, writer):
    project = toy_ready
    (project.schemas / "002_v2.0.0_split_names_validate.sql").write_text(FAILING_VALIDATE)
    scratch = tmp_path_factory.mktemp("elsewhere") / "rehearsal"
    before = real_state(project)
    result = rehearse(project, "--into", str(scratch), *(["--writer"] if writer else []))
    assert_refused(
        result,
        3,
        "rehearsal in",
        str(scratch),
        "deploy failed",
        "the real files were not touched",
        "validation refused generation 2",
        "names are lower case",
    )
    details = json_error(result, 3)["details"]
    failed = [c for c in details["validation"]["checks"] if c["status"] != "PASS"]
    assert [c["name"] for c in failed] == ["names are lower case"]
    assert "migrate" in [p["name"] for p in details["phases"]]
    assert real_state(project) == before
    assert not scratch.exists()


def test_a_rehearsal_whose_migration_fails_exits_2_and_touches_nothing(toy_ready):
    """The rehearsal's deploy refuses it up front (plan's preflight): exit 2, file and line."""
    project = toy_ready
    (project.schemas / "003_v3.0.0_broken.sql").write_text("ALTER TABLE no_such_table ADD COLUMN x;\n")
    before, temps = real_state(project), scratch_folders()
    result = rehearse(project)
    assert_refused(result, 2, "rehearsal in", "deploy failed", "003_v3.0.0_broken.sql:1:", "no such table")
    json_error(result, 2)
    assert real_state(project) == before and scratch_folders() == temps


def test_rehearse_refuses_a_folder_that_is_not_empty(toy_ready, tmp_path_factory):
    project = toy_ready
    scratch = tmp_path_factory.mktemp("busy")
    (scratch / "precious.txt").write_text("mine")
    before, kept = real_state(project), fingerprint(scratch)
    result = rehearse(project, "--into", str(scratch))
    assert_refused(result, 2, str(scratch), "not an empty folder", "--into")
    json_error(result, 2)
    assert real_state(project) == before and fingerprint(scratch) == kept


def test_rehearse_refuses_a_folder_inside_the_data_folder(toy_ready):
    project = toy_ready
    before = real_state(project)
    result = rehearse(project, "--into", str(project.data / "scratch"))
    assert_refused(result, 2, str(project.data / "scratch"), "inside the data folder")
    assert real_state(project) == before


def test_rehearse_needs_an_initialized_project(toy):
    project = toy
    before, temps = real_state(project), scratch_folders()
    result = rehearse(project)
    assert_refused(result, 2, str(project.pointer), "bluegreen init")
    assert real_state(project) == before and scratch_folders() == temps


def test_rehearsal_runs_no_hooks_and_ignores_the_hold_flag(toy_ready):
    """A rehearsal must not page anyone, reload the application or wait on the person holding
    the real cutover: the scratch project has no hooks and no hold flag."""
    from conftest import write_config

    project = toy_ready
    write_config(
        project.root,
        'wait_flag = "data/hold"\n[hooks]\npre-prepare = "touch hooked-pre"\n'
        'post-cutover = "touch hooked-post"\non-failure = "touch hooked-failure"\n',
    )
    (project.data / "hold").write_text("release at 02:00\n")
    before = real_state(project)
    result = rehearse(project, "--keep")
    assert result.code == 0, result.err
    assert result.json["deploy"]["ok"] and result.json["revert"]["ok"]
    assert not list(project.root.rglob("hooked-*")) and not list(Path(result.json["scratch"]).rglob("hooked-*"))
    assert "[hooks]" not in (Path(result.json["scratch"]) / "config.toml").read_text()
    assert real_state(project) == before
    held = project.cli("deploy")  # the real project is still held by its flag
    assert held.code == 3 and "hold" in held.err


def test_a_kept_rehearsal_config_keeps_the_named_queries(toy_ready, tmp_path_factory):
    """The scratch config.toml is a valid config with the real one's benchmark and check queries."""
    from conftest import write_config

    project = toy_ready
    write_config(
        project.root,
        '[performance.queries]\nby_id = "SELECT name FROM items WHERE id = 7"\n'
        '[check.queries]\nnameless = "SELECT id FROM items WHERE name IS NULL"\n',
    )
    scratch = tmp_path_factory.mktemp("elsewhere") / "rehearsal"
    result = rehearse(project, "--into", str(scratch), "--keep")
    assert result.code == 0, result.err
    checked = project.cli("--config", str(scratch / "config.toml"), "check", "--json")
    assert checked.code == 0, checked.err
    assert "nameless" in {c["name"] for c in checked.json["checks"]}
