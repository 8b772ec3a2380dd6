"""Environments, approvals, the maintenance window and the verified backup (issue #5, items 1-2).

Every refusal shows its message, its exit code and that nothing on disk changed; every rule also
has its passing case. Windows are computed around the real clock (open: it contains now; closed:
it starts an hour from now), so no test depends on the time of day; the window arithmetic itself
(wrapping midnight, time zones) is tested with fixed instants.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import apsw
import pytest
from conftest import make_toy_database, rows, write_config
from helpers import assert_refused, events, everything, json_error, pointer_of, replace_blue

from bluegreen.config import load
from bluegreen.gates import backup
from bluegreen.gates.environments import window_state


# -- helpers ----------------------------------------------------------------------------------------
def window(open_now: bool) -> str:
    """A UTC window that contains now, or one that starts an hour from now (wraps past midnight
    when it has to: the window parser accepts both)."""
    now = datetime.now(UTC)
    start, end = (
        (now - timedelta(hours=1), now + timedelta(hours=1))
        if open_now
        else (now + timedelta(hours=1), now + timedelta(hours=2))
    )
    return f"{start:%H:%M}-{end:%H:%M}"


def configure(project, **environments: str) -> None:
    """Rewrite the config with `[environments.NAME]` tables (their TOML bodies as given)."""
    write_config(project.root, "".join(f"[environments.{name}]\n{body}\n" for name, body in environments.items()))


def production(project, *, open_now: bool = True, approvals: int = 2) -> str:
    """Configure production with a window open (or closed) now; returns the window as written,
    so a test never recomputes it a minute later."""
    text = window(open_now)
    configure(
        project, production=f'approvals = {approvals}\nwindow = "{text}"\ntimezone = "UTC"\nbackup_dir = "backups"'
    )
    return text


def history(path: Path) -> list[tuple]:
    return rows(path, "SELECT version, approved_by, approved_at FROM schema_migrations ORDER BY id")


def backups(project) -> list[str]:
    folder = project.root / "backups"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ==================================================================================================
# config and selection
# ==================================================================================================
BAD_ENVIRONMENTS = {
    "approvals negative": ("[environments.staging]\napprovals = -1\n", ["environments.staging.approvals", "got -1"]),
    "approvals text": ('[environments.staging]\napprovals = "two"\n', ["environments.staging.approvals", "'two'"]),
    "window shape": ('[environments.staging]\nwindow = "2-4"\n', ["environments.staging.window", "HH:MM-HH:MM"]),
    "window hour": ('[environments.staging]\nwindow = "25:00-03:00"\n', ["environments.staging.window", "25:00"]),
    "window empty": ('[environments.staging]\nwindow = "02:00-02:00"\n', ["environments.staging.window", "empty"]),
    "time zone": (
        '[environments.staging]\ntimezone = "Mars/Olympus"\n',
        ["environments.staging.timezone", "IANA", "Mars/Olympus"],
    ),
    "backup not bool": ('[environments.staging]\nbackup = "yes"\n', ["environments.staging.backup", "true or false"]),
    "unknown key": (
        "[environments.staging]\napprovers = 1\n",
        ["unknown key environments.staging.approvers", "approvals"],
    ),
    "not a table": ("[environments]\nstaging = 3\n", ["environments must hold tables", "[environments.production]"]),
    "production without window": (
        "[environments.production]\napprovals = 2\n",
        ["environments.production.window is required", "02:00-04:00"],
    ),
}


@pytest.mark.parametrize("case", BAD_ENVIRONMENTS, ids=list(BAD_ENVIRONMENTS))
def test_bad_environment_config_is_refused(toy_ready, case):
    extra, words = BAD_ENVIRONMENTS[case]
    write_config(toy_ready.root, extra)
    before = everything(toy_ready)
    assert_refused(toy_ready.cli("--env", "staging", "deploy"), 2, str(toy_ready.config), *words)
    json_error(toy_ready.cli("--env", "staging", "deploy", "--json"), 2)
    assert everything(toy_ready) == before


def test_defaults_follow_the_well_known_names(tmp_path):
    write_config(
        tmp_path,
        "[environments.development]\n[environments.staging]\n"
        '[environments.production]\nwindow = "22:00-02:00"\n[environments.qa]\n',
    )
    envs = load(tmp_path / "config.toml").environments
    assert (envs["development"].approvals, envs["development"].backup, envs["development"].window) == (0, False, None)
    assert (envs["staging"].approvals, envs["staging"].backup) == (1, False)
    assert (envs["production"].approvals, envs["production"].backup) == (2, True)
    assert envs["production"].backup_dir == (tmp_path / "backups").resolve()
    assert envs["production"].timezone == "UTC"
    assert (envs["qa"].approvals, envs["qa"].backup) == (0, False)


def test_unknown_environment_is_an_input_error(toy_ready, monkeypatch):
    configure(toy_ready, staging="")
    before = everything(toy_ready)
    assert_refused(toy_ready.cli("--env", "prodution", "deploy"), 2, "[environments.prodution]", "configured: staging")
    monkeypatch.setenv("BLUEGREEN_ENV", "prodution")
    assert_refused(toy_ready.cli("approve", "2.0.0", "--by", "alice"), 2, "'prodution'", "BLUEGREEN_ENV")
    assert everything(toy_ready) == before


def test_environments_configured_but_none_chosen(toy_ready, monkeypatch):
    monkeypatch.delenv("BLUEGREEN_ENV", raising=False)
    configure(toy_ready, development="", staging="")
    before = everything(toy_ready)
    for command in ("prepare", "deploy"):
        assert_refused(toy_ready.cli(command), 2, "defines environments (development, staging)", "--env NAME")
    assert everything(toy_ready) == before
    status = toy_ready.cli("status", "--json")  # read-only commands still work, and say why
    assert status.code == 0 and "--env NAME" in status.json["environment_error"]


def test_env_variable_selects_and_option_wins(toy_ready, monkeypatch):
    configure(toy_ready, development="", staging="")
    monkeypatch.setenv("BLUEGREEN_ENV", "staging")
    assert toy_ready.cli("status", "--json").json["environment"] == "staging"
    assert toy_ready.cli("--env", "development", "status", "--json").json["environment"] == "development"


def test_development_runs_everything_automatically(toy_ready):
    configure(toy_ready, development="")
    result = toy_ready.cli("--env", "development", "deploy", "--json")
    assert result.code == 0, result.err
    assert pointer_of(toy_ready)["active"] == "app.gen2.db"
    assert history(toy_ready.gen(2)) == [("1.0.0", None, None), ("2.0.0", None, None)]
    assert backups(toy_ready) == []


# ==================================================================================================
# approvals
# ==================================================================================================
def test_approve_a_version_that_is_not_pending(toy_ready):
    configure(toy_ready, staging="")
    before = everything(toy_ready)
    line = assert_refused(
        toy_ready.cli("--env", "staging", "approve", "3.1.0", "--by", "alice"),
        2,
        "3.1.0",
        "not a pending version of app.db",
        "pending: 1.0.0, 2.0.0",
    )
    assert "approve one of those" in line
    json_error(toy_ready.cli("--env", "staging", "approve", "3.1.0", "--by", "alice", "--json"), 2)
    assert everything(toy_ready) == before


def test_approving_an_intermediate_version_says_which_one_counts(toy_ready):
    configure(toy_ready, staging="")
    result = toy_ready.cli("--env", "staging", "approve", "1.0.0", "--by", "alice")
    assert result.code == 0, result.err
    assert "alice approved v1.0.0 for staging: 1 of 1" in result.out
    assert "cutover counts approvals of the target version v2.0.0" in result.out
    before = everything(toy_ready)
    assert_refused(toy_ready.cli("--env", "staging", "deploy"), 3, "staging needs 1 distinct approval(s) of v2.0.0")
    assert everything(toy_ready) == before


def test_approve_needs_a_name(toy_ready):
    configure(toy_ready, staging="")
    before = everything(toy_ready)
    result = toy_ready.cli("--env", "staging", "approve", "2.0.0")
    assert result.code == 2 and "--by" in result.err
    assert_refused(toy_ready.cli("--env", "staging", "approve", "2.0.0", "--by", "  "), 2, "--by needs a name")
    assert everything(toy_ready) == before


def test_approving_twice_counts_once(toy_ready):
    production(toy_ready)
    first = toy_ready.cli("--env", "production", "approve", "v2.0.0", "--by", "alice", "--note", "CHG-1", "--json")
    assert first.code == 0, first.err
    assert (first.json["approved_by"], first.json["required"], first.json["new"]) == (["alice"], 2, True)
    assert "1 of 2 distinct approval(s) (alice)" in first.json["message"]
    again = toy_ready.cli("--env", "production", "approve", "2.0.0", "--by", "Alice")
    assert again.code == 0 and "alice had already approved v2.0.0 for production" in again.out
    assert "counted once: 1 of 2" in again.out
    second = toy_ready.cli("--env", "production", "approve", "2.0.0", "--by", "bob", "--json")
    assert second.json["approved_by"] == ["alice", "bob"]
    assert [(e["by"], e["note"]) for e in events(toy_ready, "approval")] == [("alice", "CHG-1"), ("bob", "")]
    status = toy_ready.cli("--env", "production", "status")
    assert "environment production" in status.out and "approvals   2 of 2 for v2.0.0 (alice, bob)" in status.out


def test_approvals_of_another_environment_do_not_count(toy_ready):
    configure(toy_ready, staging="", qa="approvals = 1")
    assert toy_ready.cli("--env", "qa", "approve", "2.0.0", "--by", "alice").code == 0
    before = everything(toy_ready)
    assert_refused(
        toy_ready.cli("--env", "staging", "deploy"), 3, "staging needs 1 distinct approval(s) of v2.0.0", "have 0"
    )
    assert everything(toy_ready) == before


def test_cutover_refuses_until_approved_then_stamps_green(toy_ready):
    configure(toy_ready, staging="")
    assert toy_ready.cli("--env", "staging", "prepare").code == 0
    before = everything(toy_ready)
    line = assert_refused(
        toy_ready.cli("--env", "staging", "cutover"),
        3,
        "staging needs 1 distinct approval(s) of v2.0.0 (have 0)",
        "bluegreen --env staging approve 2.0.0 --by NAME",
        "Nothing was changed",
    )
    assert "window" not in line
    document = json_error(toy_ready.cli("--env", "staging", "cutover", "--json"), 3)
    assert document["details"]["missing"] == ["staging needs 1 distinct approval(s) of v2.0.0 (have 0)"]
    assert everything(toy_ready) == before

    assert toy_ready.cli("--env", "staging", "approve", "2.0.0", "--by", "carol").code == 0
    result = toy_ready.cli("--env", "staging", "cutover")
    assert result.code == 0, result.err
    stamped = history(toy_ready.gen(2))
    assert [(v, by) for v, by, _ in stamped] == [("1.0.0", "carol"), ("2.0.0", "carol")]
    assert all(at and at.startswith("20") for _, _, at in stamped)
    # The stamp is not an application write: a revert carries nothing back, and blue's own
    # history is untouched.
    reverted = toy_ready.cli("--env", "staging", "revert", "--json")
    assert reverted.code == 0, reverted.err
    assert reverted.json["carried_back"] == 0
    assert rows(toy_ready.blue, "SELECT count(*) FROM sqlite_schema WHERE name = 'schema_migrations'") == [(0,)]


# ==================================================================================================
# the maintenance window
# ==================================================================================================
def test_everything_missing_is_listed_at_once(toy_ready):
    closed = production(toy_ready, open_now=False)
    assert toy_ready.cli("--env", "production", "approve", "2.0.0", "--by", "alice").code == 0
    before = everything(toy_ready)
    line = assert_refused(
        toy_ready.cli("--env", "production", "deploy"),
        3,
        "production needs 2 distinct approval(s) of v2.0.0 (have 1: alice)",
        f"cutover window {closed} UTC is closed (now ",
        " UTC)",
        "--force --reason TEXT",
    )
    assert line.index("approval") < line.index("window")
    assert everything(toy_ready) == before
    assert backups(toy_ready) == []


def test_closed_window_refuses_cutover(toy_ready):
    production(toy_ready, open_now=False, approvals=1)
    assert toy_ready.cli("--env", "production", "approve", "2.0.0", "--by", "alice").code == 0
    before = everything(toy_ready)
    line = assert_refused(toy_ready.cli("--env", "production", "deploy"), 3, "cutover window", "is closed")
    assert "approval" not in line.split("Nothing was changed")[0]
    assert everything(toy_ready) == before


def test_force_needs_a_reason(toy_ready):
    production(toy_ready, open_now=False, approvals=1)
    before = everything(toy_ready)
    for args in (["deploy", "--force"], ["cutover", "--force", "--reason", " "], ["deploy", "--reason", "why"]):
        result = toy_ready.cli("--env", "production", *args)
        assert result.code == 2, result
        assert "--reason" in result.err
    assert everything(toy_ready) == before


def test_force_cannot_replace_approvals(toy_ready):
    production(toy_ready, open_now=False)
    before = everything(toy_ready)
    line = assert_refused(
        toy_ready.cli("--env", "production", "deploy", "--force", "--reason", "hotfix"),
        3,
        "production needs 2 distinct approval(s)",
    )
    assert "window" not in line.split("Nothing was changed")[0]
    assert everything(toy_ready) == before
    assert events(toy_ready, "window_forced") == []


@pytest.mark.parametrize("offline", [False, True], ids=["online", "offline"])
def test_forced_cutover_outside_the_window_is_logged(toy_ready, offline):
    closed = production(toy_ready, open_now=False, approvals=1)
    assert toy_ready.cli("--env", "production", "approve", "2.0.0", "--by", "alice").code == 0
    args = ["deploy", "--force", "--reason", "INC-42: data loss bug"] + (["--offline"] if offline else [])
    result = toy_ready.cli("--env", "production", *args)
    assert result.code == 0, result.err
    assert pointer_of(toy_ready)["active"] == "app.gen2.db"
    forced = events(toy_ready, "window_forced")
    assert len(forced) == 1
    assert forced[0]["reason"] == "INC-42: data loss bug" and forced[0]["by"] and forced[0]["at"]
    assert forced[0]["window"] == f"{closed} UTC" and forced[0]["version"] == "2.0.0"
    assert [by for _, by, _ in history(toy_ready.gen(2))] == ["alice", "alice"]


def test_open_window_with_approvals_deploys_with_a_verified_backup(toy_ready):
    opened = production(toy_ready, open_now=True)
    for name in ("alice", "bob"):
        assert toy_ready.cli("--env", "production", "approve", "2.0.0", "--by", name).code == 0
    blue_rows = rows(toy_ready.blue, "SELECT * FROM items ORDER BY id")
    status = toy_ready.cli("--env", "production", "status", "--json").json
    assert status["window"]["open"] is True and status["approvals"]["approved_by"] == ["alice", "bob"]
    text = toy_ready.cli("status", "--env", "production").out  # --env after the command works too
    assert f"window      {opened} UTC, open now (" in text
    result = toy_ready.cli("--env", "production", "deploy", "--json")
    assert result.code == 0, result.err
    assert "backup" in [p["name"] for p in result.json["phases"]]
    assert events(toy_ready, "window_forced") == []
    made = backups(toy_ready)
    assert len(made) == 1 and made[0].startswith("app.backup-") and made[0].endswith(".db")
    copy = toy_ready.root / "backups" / made[0]
    assert rows(copy, "SELECT * FROM items ORDER BY id") == blue_rows
    assert rows(copy, "PRAGMA integrity_check") == [("ok",)]
    assert rows(copy, "SELECT count(*) FROM sqlite_schema WHERE name LIKE '_bluegreen%'") == [(0,)]
    logged = events(toy_ready, "backup")
    assert logged[0]["file"] == str(copy) and logged[0]["rows"] == len(blue_rows)
    assert [by for _, by, _ in history(toy_ready.gen(2))] == ["alice, bob", "alice, bob"]


@pytest.mark.parametrize(
    "now, expected",
    [
        (datetime(2026, 1, 5, 23, 30, tzinfo=UTC), True),  # inside, before midnight
        (datetime(2026, 1, 6, 1, 59, tzinfo=UTC), True),  # inside, after midnight
        (datetime(2026, 1, 6, 2, 0, tzinfo=UTC), False),  # the end is exclusive
        (datetime(2026, 1, 6, 12, 0, tzinfo=UTC), False),
        (datetime(2026, 1, 5, 22, 0, tzinfo=UTC), True),  # the start is inclusive
    ],
)
def test_window_wraps_past_midnight(tmp_path, now, expected):
    write_config(tmp_path, '[environments.production]\nwindow = "22:00-02:00"\n')
    state = window_state(load(tmp_path / "config.toml").environments["production"], now)
    assert state.open is expected
    assert state.now == f"{now:%H:%M} UTC" and state.text == "22:00-02:00 UTC"


def test_window_is_read_in_its_time_zone(tmp_path):
    write_config(tmp_path, '[environments.production]\nwindow = "02:00-04:00"\ntimezone = "Europe/Berlin"\n')
    env = load(tmp_path / "config.toml").environments["production"]
    winter = window_state(env, datetime(2026, 1, 6, 1, 30, tzinfo=UTC))  # 02:30 in Berlin (CET)
    summer = window_state(env, datetime(2026, 7, 6, 1, 30, tzinfo=UTC))  # 03:30 in Berlin (CEST)
    late = window_state(env, datetime(2026, 7, 6, 2, 30, tzinfo=UTC))  # 04:30 in Berlin
    assert (winter.open, winter.now) == (True, "02:30 Europe/Berlin")
    assert (summer.open, summer.now) == (True, "03:30 Europe/Berlin")
    assert (late.open, late.now) == (False, "04:30 Europe/Berlin")


def test_window_until_midnight(tmp_path):
    write_config(tmp_path, '[environments.staging]\nwindow = "20:00-24:00"\n')
    env = load(tmp_path / "config.toml").environments["staging"]
    assert window_state(env, datetime(2026, 1, 6, 23, 59, 59, tzinfo=UTC)).open
    assert not window_state(env, datetime(2026, 1, 6, 0, 0, tzinfo=UTC)).open


# ==================================================================================================
# the verified backup
# ==================================================================================================
def test_backup_folder_that_cannot_be_created_refuses_prepare(toy_ready):
    configure(toy_ready, production=f'window = "{window(True)}"\nbackup_dir = "config.toml/backups"')
    before = everything(toy_ready)
    line = assert_refused(
        toy_ready.cli("--env", "production", "prepare"),
        1,
        "config.toml/backups",
        "cannot create the backup folder",
        "nothing was changed",
    )
    assert "backup_dir" in line
    json_error(toy_ready.cli("--env", "production", "prepare", "--json"), 1)
    assert everything(toy_ready) == before


def _blue_with_a_broken_index(path: Path) -> None:
    """A real damaged database: the index's definition no longer matches its entries."""
    make_toy_database(path)
    conn = apsw.Connection(str(path))
    conn.execute("CREATE INDEX items_name ON items(name)")
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute(
        "UPDATE sqlite_schema SET sql = 'CREATE INDEX items_name ON items(name DESC)' WHERE name = 'items_name'"
    )
    conn.close()


def test_backup_that_fails_verification_refuses_prepare(toy_ready):
    replace_blue(toy_ready, _blue_with_a_broken_index)
    production(toy_ready)
    before = everything(toy_ready)
    line = assert_refused(
        toy_ready.cli("--env", "production", "prepare"),
        1,
        "backup could not be verified",
        "integrity_check says",
        "missing from index items_name",
        "prepare refused",
        "the copy was removed",
    )
    assert str(toy_ready.root / "backups") in line
    assert everything(toy_ready) == before
    assert not (toy_ready.root / "backups").exists()  # the folder it made for the copy is gone too


def test_verify_compares_schema_and_counts_at_the_copy_position(tmp_path):
    blue = tmp_path / "app.db"
    make_toy_database(blue)
    made = backup.take(blue, tmp_path / "backups")
    conn = apsw.Connection(str(blue))
    expected = backup.fingerprint(conn)
    conn.close()
    assert backup.verify(made.path, expected) == ""
    assert made.rows == 50 and made.tables == 1

    writer = apsw.Connection(str(made.path))
    writer.execute("DELETE FROM items WHERE id <= 3")
    assert backup.verify(made.path, expected) == "row counts differ from blue's (items: 47 rows, blue had 50)"
    writer.execute("CREATE TABLE extra(x)")
    writer.close()
    assert backup.verify(made.path, expected) == "its schema differs from blue's (extra)"


def test_backup_under_a_running_writer_is_one_consistent_state(tmp_path, monkeypatch):
    """Counts are read inside the copy's own read transaction: writes landing during the copy
    neither fail the verification nor appear in the copy."""
    blue = tmp_path / "app.db"
    make_toy_database(blue, rows=2000)
    writer = apsw.Connection(str(blue))
    writer.set_busy_timeout(5000)
    from bluegreen.engine import snapshot

    original = snapshot.copy

    def copy_while_writing(*args, **kwargs):
        pinned = kwargs.pop("pinned")

        def pinned_then_write(conn):
            pinned(conn)
            with writer:  # a commit after the copy's snapshot was pinned
                writer.executemany("INSERT INTO items(name) VALUES (?)", [("late",)] * 100)

        return original(*args, pinned=pinned_then_write, **kwargs)

    monkeypatch.setattr(snapshot, "copy", copy_while_writing)
    try:
        made = backup.take(blue, tmp_path / "backups", pages_per_step=1)
    finally:
        writer.close()
    assert made.rows == 2000
    assert rows(made.path, "SELECT count(*) FROM items") == [(2000,)]
    assert rows(blue, "SELECT count(*) FROM items") == [(2100,)]


def test_resume_of_an_unfenced_cutover_checks_the_window_again(toy_ready, monkeypatch):
    """A cutover killed before its fence is a fresh cutover when resumed: the window applies."""
    production(toy_ready, open_now=True, approvals=1)
    assert toy_ready.cli("--env", "production", "approve", "2.0.0", "--by", "alice").code == 0
    assert toy_ready.cli("--env", "production", "prepare").code == 0
    monkeypatch.setenv("BLUEGREEN_CRASH_AT", "cutover:catch_up")
    killed = toy_ready.cli_process("--env", "production", "cutover")
    monkeypatch.delenv("BLUEGREEN_CRASH_AT")
    assert killed.code == -9, killed
    production(toy_ready, open_now=False, approvals=1)  # the window has closed meanwhile
    before = everything(toy_ready)
    assert_refused(
        toy_ready.cli("--env", "production", "resume"),
        3,
        "resume refused",
        "cutover window",
        "is closed",
        "bluegreen --env production cutover --force --reason TEXT",
    )
    assert everything(toy_ready) == before
    forced = toy_ready.cli("cutover", "--env", "production", "--force", "--reason", "finish the release")
    assert forced.code == 0, forced.err
    assert pointer_of(toy_ready)["active"] == "app.gen2.db"
    assert [e["reason"] for e in events(toy_ready, "window_forced")] == ["finish the release"]


def test_approvals_without_environments_are_recorded_and_stamped(toy_ready, monkeypatch):
    monkeypatch.delenv("BLUEGREEN_ENV", raising=False)
    result = toy_ready.cli("approve", "2.0.0", "--by", "alice")
    assert result.code == 0, result.err
    assert "alice approved v2.0.0; approved so far by alice (no environments configured: none required)" in result.out
    assert toy_ready.cli("deploy").code == 0
    assert [by for _, by, _ in history(toy_ready.gen(2))] == ["alice", "alice"]


def test_damaged_approvals_file_is_named(toy_ready):
    configure(toy_ready, staging="")
    approvals_file = toy_ready.data / ".bluegreen" / "approvals.json"
    approvals_file.write_text("{not json")
    before = everything(toy_ready)
    for args in (["approve", "2.0.0", "--by", "alice"], ["deploy"]):
        assert_refused(
            toy_ready.cli("--env", "staging", *args),
            2,
            str(approvals_file),
            "approvals file is damaged",
            "events.jsonl",
        )
    assert everything(toy_ready) == before


def test_concurrent_approvers_are_all_recorded(toy_ready):
    """Real processes approving at once: the approvals file's own lock keeps every one."""
    import subprocess
    import sys

    configure(toy_ready, production=f'approvals = 4\nwindow = "{window(True)}"')
    names = ["ann", "ben", "cat", "dan"]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bluegreen",
                "--config",
                str(toy_ready.config),
                "--env",
                "production",
                "approve",
                "2.0.0",
                "--by",
                name,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name in names
    ]
    assert [p.wait(timeout=60) for p in procs] == [0] * len(names)
    status = toy_ready.cli("--env", "production", "status", "--json").json
    assert sorted(status["approvals"]["approved_by"]) == names


def test_the_shipped_config_example_parses(tmp_path):
    """config.toml's commented environments, uncommented, are a valid configuration."""
    from conftest import REPO

    text = (REPO / "config.toml").read_text()
    start = text.index("# [environments.development]")
    body = "\n".join(line[2:] for line in text[start:].splitlines() if line.startswith("# "))
    (tmp_path / "config.toml").write_text(text[:start] + body + "\n")
    envs = load(tmp_path / "config.toml").environments
    assert sorted(envs) == ["development", "production", "staging"]
    assert envs["production"].window.text == "02:00-04:00" and envs["production"].approvals == 2
    assert envs["staging"].approvals == 1


def test_shipped_migration_is_stamped_and_reverts(shipped):
    """The shipped v2.0 migration declares schema_migrations itself: the stamp fits its columns, and
    a revert (with the shipped rollback script) still carries nothing of it back."""
    configure(shipped, staging="")
    assert shipped.cli("--env", "staging", "approve", "v2.0.0", "--by", "dana").code == 0
    result = shipped.cli("--env", "staging", "deploy")
    assert result.code == 0, result.err
    stamped = rows(shipped.gen(2), "SELECT version, approved_by FROM schema_migrations WHERE file LIKE '%.sql'")
    assert stamped and all(by == "dana" for _, by in stamped)
    reverted = shipped.cli("revert", "--json")
    assert reverted.code == 0, reverted.err
    assert reverted.json["carried_back"] == 0
