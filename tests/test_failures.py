"""Bad input and failed operations: each gets its documented exit code, one clear error line that
names the file (and the key or the fix), and leaves nothing changed on disk (invariants 5 and 6).

Every test here runs on real files in tmp_path; where the issue is about processes (a second
controller, a full disk) the other party is a real process.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import apsw
import pytest
from conftest import (
    BASE_CONFIG,
    TOY_SCHEMAS,
    CliResult,
    Project,
    disk_state,
    make_toy_database,
    rows,
    run_cli,
    write_config,
)
from helpers import (
    HOLD_LOCK,
    assert_refused,
    error_line,
    everything,
    generation_files,
    json_error,
    pointer_of,
    replace_blue,
    state_of,
)


# -- helpers ----------------------------------------------------------------------------------------
def set_pointer(project, **changes) -> None:
    """Rewrite keys of the pointer (plain TOML, as an operator with an editor would)."""
    document = pointer_of(project)
    document.update(changes)
    lines = [f"{k} = {json.dumps(v)}" for k, v in document.items()]
    project.pointer.write_text("\n".join(lines) + "\n")


@pytest.fixture
def at_v2(toy_ready):
    """Deployed to generation 2 (both toy migrations applied) and finalized: app.gen2.db is active
    with a migration history, app.db is fenced and kept."""
    assert toy_ready.cli("deploy").code == 0
    assert toy_ready.cli("finalize").code == 0
    assert pointer_of(toy_ready)["active"] == "app.gen2.db"
    return toy_ready


# ==================================================================================================
# config
# ==================================================================================================
GOOD_CONFIG = BASE_CONFIG

BAD_CONFIGS = {
    "invalid TOML": ("[database\npointer = 'data/current.toml'\n", ["not valid TOML", "fix the syntax"]),
    "unknown section": (GOOD_CONFIG + "[rollout]\nspeed = 1\n", ["unknown section [rollout]", "expected one of"]),
    "unknown key": (
        GOOD_CONFIG.replace("lock_timeout_ms", "lock_timout_ms"),
        ["unknown key cutover.lock_timout_ms", "lock_timeout_ms"],
    ),
    "negative value": (
        GOOD_CONFIG.replace("= 3000", "= -1"),
        ["cutover.lock_timeout_ms", "must be a positive integer", "-1"],
    ),
    "zero value": (GOOD_CONFIG.replace("= 3000", "= 0"), ["cutover.lock_timeout_ms", "positive integer", "got 0"]),
    "string value": (GOOD_CONFIG.replace("= 3000", '= "3s"'), ["cutover.lock_timeout_ms", "positive integer", "'3s'"]),
    "bool value": (GOOD_CONFIG.replace("= 3000", "= true"), ["cutover.lock_timeout_ms", "positive integer", "True"]),
    "path not a string": (GOOD_CONFIG.replace('dir = "schemas"', "dir = 7"), ["migrations.dir", "path string"]),
    "missing key": (GOOD_CONFIG.replace('initial = "data/app.db"\n', ""), ["missing key database.initial"]),
    "missing section": (GOOD_CONFIG.replace('[migrations]\ndir = "schemas"\n', ""), ["missing section [migrations]"]),
    "section not a table": (
        'database = "data/app.db"\n[migrations]\ndir = "schemas"\n',
        ["database", "must be a table"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
@pytest.mark.parametrize("command", ["deploy", "status"])
def test_bad_config_is_refused_naming_file_and_key(toy_ready, case, command):
    project = toy_ready
    text, words = BAD_CONFIGS[case]
    project.config.write_text(text)
    before = disk_state(project.data)

    result = project.cli(command)

    assert_refused(result, 2, f"bluegreen: error: {project.config}:", *words)
    assert disk_state(project.data) == before
    as_json = json_error(project.cli(command, "--json"), 2)
    assert str(project.config) in as_json["error"]
    assert disk_state(project.data) == before


def test_missing_config_file(toy_ready, tmp_path):
    before = disk_state(toy_ready.data)
    missing = tmp_path / "nowhere" / "bluegreen.toml"
    result = run_cli("--config", str(missing), "deploy")
    assert_refused(result, 2, str(missing), "config file not found", "--config", "BLUEGREEN_CONFIG")
    assert not missing.exists() and not missing.parent.exists()
    assert disk_state(toy_ready.data) == before


def test_config_env_var_selects_the_file(toy_ready, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no ./config.toml here
    monkeypatch.delenv("BLUEGREEN_CONFIG", raising=False)
    default = run_cli("path")
    assert_refused(default, 2, "config.toml", "config file not found")

    monkeypatch.setenv("BLUEGREEN_CONFIG", str(toy_ready.config))
    found = run_cli("path")
    assert found.code == 0, found.err
    assert found.out.strip() == str(toy_ready.blue)

    missing = tmp_path / "env-missing.toml"
    monkeypatch.setenv("BLUEGREEN_CONFIG", str(missing))
    assert_refused(run_cli("path"), 2, str(missing), "config file not found")


def test_config_option_wins_over_env_var(toy_ready, tmp_path, monkeypatch):
    bad = tmp_path / "bad.toml"
    bad.write_text("this is [not toml\n")
    monkeypatch.setenv("BLUEGREEN_CONFIG", str(bad))
    result = run_cli("--config", str(toy_ready.config), "path")
    assert result.code == 0, result.err
    assert result.out.strip() == str(toy_ready.blue)

    # and the other way round: a good env var does not rescue a bad --config
    monkeypatch.setenv("BLUEGREEN_CONFIG", str(toy_ready.config))
    line = assert_refused(run_cli("path", "--config", str(bad)), 2, str(bad), "not valid TOML")
    assert str(toy_ready.config) not in line


# ==================================================================================================
# pointer
# ==================================================================================================
POINTER_COMMANDS = ["status", "path", "deploy"]


@pytest.mark.parametrize("command", POINTER_COMMANDS)
def test_pointer_missing(toy_ready, command):
    project = toy_ready
    project.pointer.unlink()
    before = disk_state(project.data)
    result = project.cli(command)
    assert_refused(result, 2, str(project.pointer), "pointer file not found", "bluegreen init")
    assert disk_state(project.data) == before
    assert not project.pointer.exists()


@pytest.mark.parametrize("command", POINTER_COMMANDS)
def test_pointer_malformed_toml(toy_ready, command):
    project = toy_ready
    project.pointer.write_text('active = "app.db\ngeneration = 1\n')
    before = disk_state(project.data)
    result = project.cli(command)
    assert_refused(result, 2, str(project.pointer), "not valid TOML")
    assert disk_state(project.data) == before


@pytest.mark.parametrize("command", POINTER_COMMANDS)
@pytest.mark.parametrize(
    "key,value,words",
    [
        ("active", "", ["'active' must be a file name"]),
        ("active", 3, ["'active' must be a file name"]),
        ("generation", 0, ["'generation' must be a positive integer"]),
        ("generation", "two", ["'generation' must be a positive integer"]),
    ],
)
def test_pointer_bad_keys(toy_ready, command, key, value, words):
    project = toy_ready
    set_pointer(project, **{key: value})
    before = disk_state(project.data)
    assert_refused(project.cli(command), 2, str(project.pointer), *words)
    assert disk_state(project.data) == before


@pytest.mark.parametrize("command", POINTER_COMMANDS)
@pytest.mark.parametrize("name", ["../other.db", "/etc/passwd", "ABSOLUTE", "sub/x.db", "..", "."])
def test_pointer_naming_a_file_outside_its_folder(toy_ready, command, name):
    project = toy_ready
    if name == "ABSOLUTE":
        name = str(project.root / "abs.db")
    set_pointer(project, active=name)
    passwd = Path("/etc/passwd").stat()
    before = everything(project)

    result = project.cli(command)

    assert_refused(result, 2, str(project.pointer), "outside the pointer's folder", "name the file only")
    assert everything(project) == before  # nothing created beside or above the data folder
    assert not (project.root / "other.db").exists()
    assert not (project.root / "abs.db").exists()
    assert not (project.data / "sub").exists()
    assert Path("/etc/passwd").stat().st_mtime_ns == passwd.st_mtime_ns


@pytest.mark.parametrize("command", POINTER_COMMANDS)
def test_pointer_naming_an_existing_database_outside_its_folder(toy_ready, command):
    """Refused because of where it is, not because it is missing: a real WAL database above the
    data folder is neither read as the active file nor written."""
    project = toy_ready
    make_toy_database(project.root / "other.db", rows=3)
    set_pointer(project, active="../other.db")
    before = everything(project)
    assert_refused(project.cli(command), 2, "outside the pointer's folder")
    assert everything(project) == before


def test_pointer_previous_outside_its_folder(toy_ready):
    project = toy_ready
    set_pointer(project, previous="../../elsewhere.db")
    before = everything(project)
    assert_refused(
        project.cli("status"), 2, str(project.pointer), "'../../elsewhere.db'", "outside the pointer's folder"
    )
    assert everything(project) == before


@pytest.mark.parametrize(
    "command",
    [
        "status",
        "path",
        "deploy",
        "prepare",
    ],
)
def test_pointer_naming_a_missing_generation(toy_ready, command):
    """A missing generation is an error, never a new empty database (hazard 11)."""
    project = toy_ready
    set_pointer(project, active="app.gen7.db", generation=7)
    before = disk_state(project.data)

    result = project.cli_process(command)  # a real process: an uncaught exception shows as what it is

    assert not project.gen(7).exists()
    assert generation_files(project, 7) == []
    assert disk_state(project.data) == before
    assert_refused(result, 2, str(project.gen(7)), "not found")


# ==================================================================================================
# the database itself: journal mode, not SQLite at all
# ==================================================================================================
def test_init_refuses_a_database_not_in_wal_mode(toy):
    project = toy
    replace_blue(project, lambda p: make_toy_database(p, wal=False))
    before = disk_state(project.data)
    result = project.cli("init")
    assert_refused(result, 2, str(project.blue), "'delete' journal mode", "WAL", "PRAGMA journal_mode=WAL")
    assert disk_state(project.data) == before
    assert not project.pointer.exists()


@pytest.mark.parametrize("command", ["deploy", "prepare"])
def test_blue_not_in_wal_mode(toy_ready, command):
    project = toy_ready
    replace_blue(project, lambda p: make_toy_database(p, wal=False))
    before = disk_state(project.data)
    result = project.cli(command)
    line = assert_refused(result, 2, str(project.blue), "journal mode", "needs WAL")
    assert f"sqlite3 {project.blue} 'PRAGMA journal_mode=WAL'" in line  # the fix, ready to paste
    assert disk_state(project.data) == before
    assert generation_files(project, 2) == []
    assert rows(project.blue, "PRAGMA journal_mode") == [("delete",)]  # not switched behind the user's back


GARBAGE = b"this is not a database, it only lives where one should be\n" * 100


def test_init_refuses_a_file_that_is_not_sqlite(toy):
    project = toy
    replace_blue(project, lambda p: p.write_bytes(GARBAGE))
    before = disk_state(project.data)
    assert_refused(project.cli("init"), 2, str(project.blue), "not a SQLite database")
    assert disk_state(project.data) == before
    assert project.blue.read_bytes() == GARBAGE
    assert not project.pointer.exists()


@pytest.mark.parametrize("command", ["deploy", "prepare"])
def test_blue_replaced_by_garbage_after_init(toy_ready, command):
    project = toy_ready
    replace_blue(project, lambda p: p.write_bytes(GARBAGE))
    before = disk_state(project.data)
    assert_refused(project.cli(command), 2, str(project.blue), "not a SQLite database")
    assert disk_state(project.data) == before
    assert project.blue.read_bytes() == GARBAGE
    assert generation_files(project, 2) == []


# ==================================================================================================
# migration files
# ==================================================================================================
@pytest.mark.parametrize("command", ["plan", "deploy", "prepare", "status"])
def test_misnamed_migration_file(toy_ready, command):
    project = toy_ready
    (project.schemas / "add_table.sql").write_text("CREATE TABLE extra(x);\n")
    before = disk_state(project.data)
    result = project.cli(command)
    if command == "status":  # status still shows everything, names the file, and exits 2 (issue 12)
        assert result.code == 2
        assert "add_table.sql" in result.out and "does not fit" in result.out
        assert_refused(result, 2, str(project.schemas / "add_table.sql"), "does not fit")
    else:
        assert_refused(
            result, 2, str(project.schemas / "add_table.sql"), "does not fit", "{seq}_{version}_{description}.sql"
        )
    assert disk_state(project.data) == before


@pytest.mark.parametrize("command", ["plan", "deploy"])
def test_duplicate_sequence_number(toy_ready, command):
    project = toy_ready
    (project.schemas / "002_v2.1.0_other.sql").write_text("CREATE TABLE other(x);\n")
    before = disk_state(project.data)
    assert_refused(
        project.cli(command), 2, "002_v2.1.0_other.sql", "sequence number 2", "002_v2.0.0_split_names", "its own number"
    )
    assert disk_state(project.data) == before


TRANSACTION_CONTROL = {
    "BEGIN/COMMIT": "BEGIN;\nCREATE TABLE t3(x);\nCOMMIT;\n",
    "COMMIT mid-file": "CREATE TABLE t3(x);\nCOMMIT;\nCREATE TABLE t4(x);\n",
    "ROLLBACK": "CREATE TABLE t3(x);\nROLLBACK;\n",
}


@pytest.mark.parametrize("case", list(TRANSACTION_CONTROL))
@pytest.mark.parametrize("command", ["deploy", "prepare"])
def test_migration_with_transaction_control(toy_ready, command, case):
    project = toy_ready
    path = project.schemas / "003_v3.0.0_tx.sql"
    path.write_text(TRANSACTION_CONTROL[case])
    before = disk_state(project.data)
    assert_refused(project.cli(command), 2, str(path), "BEGIN/COMMIT/ROLLBACK", "own transaction")
    assert disk_state(project.data) == before
    assert generation_files(project, 2) == []
    assert state_of(project)["phase"] == "idle"


@pytest.mark.parametrize(
    "text",
    [
        "CREATE TABLE t3(x);\nVACUUM;\n",
        "CREATE TABLE t3(x);\n  vacuum main;\n",
        "/* tidy up */ VACUUM;\n",
        pytest.param("CREATE TABLE t3(x); VACUUM;\n", id="same-line"),
    ],
)
def test_migration_with_vacuum(toy_ready, text):
    project = toy_ready
    path = project.schemas / "003_v3.0.0_tidy.sql"
    path.write_text(text)
    before = disk_state(project.data)
    assert_refused(project.cli("deploy"), 2, str(path), "VACUUM is not allowed")
    assert disk_state(project.data) == before
    assert generation_files(project, 2) == []


@pytest.mark.parametrize("command", ["plan", "deploy", "prepare"])
def test_applied_migration_edited_afterwards(at_v2, command):
    project = at_v2
    path = project.schemas / "001_v1.0.0_items.sql"
    path.write_text("CREATE TABLE IF NOT EXISTS items(id INTEGER PRIMARY KEY, name TEXT, extra TEXT);\n")
    (project.schemas / "003_v3.0.0_more.sql").write_text("CREATE TABLE more(x);\n")  # something is pending
    before = disk_state(project.data)
    assert_refused(
        project.cli(command), 2, str(path), "changed after it was applied", "restore the file and add a new migration"
    )
    assert disk_state(project.data) == before
    assert generation_files(project, 3) == []


def test_crlf_line_endings_of_an_applied_file_are_not_an_edit(at_v2):
    project = at_v2
    for path in project.schemas.glob("*.sql"):
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert b"\r\n" in (project.schemas / "001_v1.0.0_items.sql").read_bytes()
    before = disk_state(project.data)
    plan = project.cli("plan", "--json")
    assert plan.code == 0, plan.err
    assert plan.json["pending"] == []
    deploy = project.cli("deploy")
    assert deploy.code == 0, deploy.err
    assert "nothing to deploy" in deploy.out
    assert disk_state(project.data) == before


@pytest.mark.parametrize("command", ["plan", "deploy"])
def test_applied_migration_missing_from_the_folder(at_v2, command):
    project = at_v2
    (project.schemas / "001_v1.0.0_items.sql").unlink()
    before = disk_state(project.data)
    assert_refused(
        project.cli(command),
        2,
        "001_v1.0.0_items.sql",
        "applied to the database",
        "missing from the migrations folder",
        "restore it",
    )
    assert disk_state(project.data) == before


# ==================================================================================================
# failing migration SQL: refused up front when a dry run shows it (exit 2, no number spent); when
# only blue's rows show it, exit 1 after building, no partial generation, numbers never reused
# ==================================================================================================
FAILING_SQL = {
    "syntax error": (
        "CREATE TABLE more(a INTEGER PRIMARY KEY, b TEXT);\nINSERT INTO more(b) VALUES ('x');\nSELEC oops;\n",
        "syntax error",
        2,  # the preflight's dry run on a schema-only copy finds it: nothing built, no number spent
        3,  # the line
    ),
    "constraint mid-file": (
        "CREATE TABLE more(a INTEGER PRIMARY KEY, b TEXT NOT NULL);\n"
        "INSERT INTO more(b) VALUES ('fine');\n"
        "UPDATE items SET name = 'renamed' WHERE id <= 10;\n"
        "INSERT INTO names(id, upper_name) VALUES (1, 'DUPLICATE');\n"
        "INSERT INTO more(b) VALUES ('never');\n",
        "UNIQUE constraint failed: names.id",
        1,  # only blue's rows break it: green was built, so its number is spent
        4,
    ),
}
FIXED_SQL = "CREATE TABLE more(a INTEGER PRIMARY KEY, b TEXT);\nINSERT INTO more(b) VALUES ('x');\n"
# The constraint case writes kept tables: without a sync companion the preflight would refuse first.
TRIVIAL_SYNC = "-- re-derives nothing: the migration under test fails before any batch\nSELECT 1;\n"


@pytest.mark.parametrize("kind", list(FAILING_SQL))
@pytest.mark.parametrize("command", ["deploy", "prepare"])
def test_failing_migration_sql(at_v2, command, kind):
    project = at_v2
    blue = project.gen(2)  # active, with a migration history
    path = project.schemas / "003_v3.0.0_more.sql"
    text, words, code, line = FAILING_SQL[kind]
    path.write_text(text)
    (project.schemas / "003_v3.0.0_more_sync.sql").write_text(TRIVIAL_SYNC)
    history = rows(blue, "SELECT * FROM schema_migrations ORDER BY id")
    items = rows(blue, "SELECT * FROM items ORDER BY id")
    before = disk_state(project.data)

    result = project.cli(command, "--json")

    assert_refused(result, code, f"{path}:{line}:", "migration failed", words)
    document = json_error(result, code)
    assert document["details"]["file"] == "003_v3.0.0_more.sql" and document["details"]["line"] == line
    assert generation_files(project, 3) == []  # no partial generation, no -wal/-shm/-journal
    assert disk_state(project.data) == before
    assert rows(blue, "SELECT * FROM schema_migrations ORDER BY id") == history
    assert rows(blue, "SELECT * FROM items ORDER BY id") == items
    assert state_of(project)["phase"] == "idle"
    assert pointer_of(project)["active"] == "app.gen2.db"

    path.write_text(FIXED_SQL)
    fixed = project.cli(command, "--json")
    assert fixed.code == 0, fixed.err
    spent = code == 1  # 3 was spent by the failure after building and is never reused
    assert fixed.json["generation"] == (4 if spent else 3)
    assert project.gen(4 if spent else 3).exists() and (generation_files(project, 3) == []) == spent


def test_failed_generation_2_makes_the_fixed_deploy_generation_3(toy_ready):
    """A migration that fails on blue's rows (a dry run cannot see it): green was built, so its
    number is spent; the fixed deploy makes generation 3."""
    project = toy_ready
    path = project.schemas / "003_v3.0.0_more.sql"
    path.write_text(
        "CREATE TABLE more(a INTEGER PRIMARY KEY, b TEXT NOT NULL);\nINSERT INTO more(a, b) SELECT id, NULL FROM items;\n"
    )
    (project.schemas / "003_v3.0.0_more_sync.sql").write_text(TRIVIAL_SYNC)
    before = disk_state(project.data)
    assert_refused(project.cli("deploy"), 1, f"{path}:2:", "NOT NULL constraint failed: more.b")
    assert generation_files(project, 2) == []
    assert disk_state(project.data) == before
    assert rows(project.blue, "SELECT count(*) FROM sqlite_schema WHERE name = 'schema_migrations'") == [(0,)]

    path.write_text(FIXED_SQL)
    fixed = project.cli("deploy")
    assert fixed.code == 0, fixed.err
    assert pointer_of(project)["active"] == "app.gen3.db"
    assert generation_files(project, 2) == []
    assert [r[0] for r in rows(project.gen(3), "SELECT file FROM schema_migrations ORDER BY id")] == [
        "001_v1.0.0_items.sql",
        "002_v2.0.0_split_names.sql",
        "003_v3.0.0_more.sql",
    ]


# ==================================================================================================
# the validation gate
# ==================================================================================================
FAILING_VALIDATE = (
    "SELECT 'every item has a name row', (SELECT count(*) FROM items), (SELECT count(*) FROM names), 'PASS'\n"
    "UNION ALL\n"
    "SELECT 'names are lower case', 'lower', 'upper', CASE WHEN (SELECT count(*) FROM names "
    "WHERE upper_name <> lower(upper_name)) = 0 THEN 'PASS' ELSE 'FAIL' END;\n"
)


@pytest.mark.parametrize("command", ["deploy", "prepare"])
def test_failing_validation_is_refused_with_the_failed_check(toy_ready, command):
    project = toy_ready
    (project.schemas / "002_v2.0.0_split_names_validate.sql").write_text(FAILING_VALIDATE)
    before = disk_state(project.data)

    result = project.cli(command, "--json")

    line = assert_refused(
        result, 3, "validation refused generation 2", "names are lower case", "expected lower, got upper"
    )
    assert "every item has a name row" not in line  # only the failed check is named
    document = json_error(result, 3)
    checks = document["details"]["validation"]
    failed = [c for c in checks if c["status"] != "PASS"]
    assert failed == [
        {
            "source": "002_v2.0.0_split_names_validate.sql",
            "name": "names are lower case",
            "expected": "lower",
            "actual": "upper",
            "status": "FAIL",
        }
    ]
    assert {c["source"] for c in checks} >= {"integrity_check", "foreign_key_check"}
    assert generation_files(project, 2) == []
    assert disk_state(project.data) == before
    assert state_of(project)["phase"] == "idle"


# ==================================================================================================
# one controller at a time
# ==================================================================================================
def test_second_controller_is_busy_while_another_process_holds_the_lock(toy_ready):
    project = toy_ready
    lock = project.data / ".bluegreen" / "lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = disk_state(project.data)
        for command in ("deploy", "prepare", "cutover", "abort", "finalize", "revert", "init"):
            result = project.cli(command, "--json")
            assert_refused(
                result, 4, str(lock), "another bluegreen controller is running", f"pid {holder.pid}", "wait for it"
            )
            json_error(result, 4)
        assert disk_state(project.data) == before
        assert generation_files(project, 2) == []
        # reads do not need the lock
        assert project.cli("status").code == 0
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    # the lock dies with its holder: the next controller runs
    assert project.cli("deploy").code == 0


def _wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_second_controller_is_busy_while_a_real_deploy_waits_for_blue(toy_ready):
    """A real `bluegreen deploy` holds the controller lock while it waits for blue's write lock
    (held here by an application transaction); a second controller is told it is busy."""
    project = toy_ready
    lock = project.data / ".bluegreen" / "lock"
    app = project.connect()
    app.execute("BEGIN IMMEDIATE")
    app.execute("INSERT INTO items(name) VALUES ('written while deploy waits')")
    first = subprocess.Popen(
        [sys.executable, "-m", "bluegreen", "--config", str(project.config), "deploy", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(
            lambda: lock.read_text().startswith(f"pid {first.pid} ") and state_of(project)["phase"] == "preparing"
        )
        before = disk_state(project.data)
        second = project.cli("prepare", "--json")
        assert_refused(second, 4, "another bluegreen controller is running", f"pid {first.pid}")
        json_error(second, 4)
        assert disk_state(project.data) == before
        assert first.poll() is None  # still waiting for blue
        app.execute("COMMIT")
        out, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        app.close()
    assert first.returncode == 0, err
    assert json.loads(out)["generation"] == 2
    # the write the application committed while deploy waited is in green
    assert rows(project.gen(2), "SELECT count(*) FROM items WHERE name = 'written while deploy waits'") == [(1,)]


# ==================================================================================================
# disk full while green is written
# ==================================================================================================
def _limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG, not a dead process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def _big_database(path: Path) -> None:
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA journal_mode=WAL").get
    with conn:
        conn.execute("CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO items(name) VALUES (?)", ((f"item {i} " + "x" * 200,) for i in range(20_000)))
    conn.close()


@pytest.fixture(scope="module")
def disk_full(tmp_path_factory):
    """A real `bluegreen deploy` process whose file-size limit is far below green's size (EFBIG on
    the first write past it, as on a full disk), on a blue of 20,000 longer rows. Run once; the
    tests below read what it left."""
    project = Project(tmp_path_factory.mktemp("disk_full"))
    write_config(project.root)
    project.schemas.mkdir()
    for name, text in TOY_SCHEMAS.items():
        (project.schemas / name).write_text(text)
    project.data.mkdir()
    _big_database(project.blue)
    assert project.cli("init").code == 0
    limit = 512 * 1024
    assert project.blue.stat().st_size > 4 * limit  # the copy must cross the limit...
    before = disk_state(project.data)
    pointer_bytes = project.pointer.read_bytes()
    assert len(pointer_bytes) < 4096  # ...while the pointer and the journal still fit
    done = subprocess.run(
        [sys.executable, "-m", "bluegreen", "--config", str(project.config), "deploy", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit_file_size(limit),
    )
    return project, CliResult(done.returncode, done.stdout, done.stderr), before, pointer_bytes


def test_disk_full_while_green_is_written(disk_full):
    project, result, before, pointer_bytes = disk_full
    assert_refused(result, 1, str(project.gen(2)))
    json_error(result, 1)
    assert generation_files(project, 2) == []  # no partial generation, no -wal/-shm/-journal
    assert project.pointer.read_bytes() == pointer_bytes
    assert disk_state(project.data) == before  # blue's content, the pointer, the journal
    assert state_of(project)["phase"] == "idle"

    again = project.cli("deploy")  # with room again, the next deploy works, under a new number
    assert again.code == 0, again.err
    assert pointer_of(project)["active"] == "app.gen3.db"
    assert rows(project.gen(3), "SELECT count(*) FROM names") == [(20_000,)]


def test_disk_full_message_says_what_happened_and_what_to_do(disk_full):
    project, result, _, _ = disk_full
    line = error_line(result)
    assert str(project.gen(2)) in line
    assert "not an error" not in line
    assert "free space" in line and "again" in line


# ==================================================================================================
# file modes follow blue
# ==================================================================================================
@pytest.mark.parametrize("mode", [0o600, 0o640])
def test_green_and_pointer_take_blues_mode(toy, mode):
    project = toy
    os.chmod(project.blue, mode)
    assert project.cli("init").code == 0
    assert project.pointer.stat().st_mode & 0o777 == mode
    assert project.cli("deploy").code == 0
    assert project.gen(2).stat().st_mode & 0o777 == mode
    assert project.pointer.stat().st_mode & 0o777 == mode
    assert project.blue.stat().st_mode & 0o777 == mode
    app = project.connect(project.gen(2))  # the side files SQLite makes for green
    try:
        app.execute("SELECT count(*) FROM items").get
        for suffix in ("-wal", "-shm"):
            assert Path(f"{project.gen(2)}{suffix}").stat().st_mode & 0o777 == mode
    finally:
        app.close()


# ==================================================================================================
# usage errors and --json on errors
# ==================================================================================================
@pytest.mark.parametrize(
    "argv,words",
    [
        (["frobnicate"], ["invalid choice: 'frobnicate'"]),
        (["deploy", "--bogus"], ["unrecognized arguments: --bogus"]),
        (["--bogus", "status"], ["unrecognized arguments: --bogus"]),
        ([], ["required: COMMAND"]),
        (["demo", "--rows", "-5"], ["expected a positive integer", "'-5'"]),
    ],
)
def test_usage_errors_exit_2(toy_ready, argv, words):
    before = disk_state(toy_ready.data)
    result = run_cli("--config", str(toy_ready.config), *argv)
    assert result.code == 2
    assert result.out == ""
    lines = [line for line in result.err.splitlines() if ": error: " in line]
    assert len(lines) == 1 and lines[0].startswith("bluegreen"), result.err
    for word in words:
        assert word in lines[0]
    assert "usage: bluegreen" in result.err
    assert disk_state(toy_ready.data) == before


@pytest.mark.parametrize("position", ["before", "after"])
def test_json_on_an_error_is_one_object(toy_ready, position):
    project = toy_ready
    project.pointer.unlink()
    argv = ["--json", "status"] if position == "before" else ["status", "--json"]
    result = project.cli(*argv)
    document = json_error(result, 2)
    assert document["command"] == "status"
    assert "pointer file not found" in document["error"]


def test_json_on_a_usage_error_is_one_object(toy_ready):
    result = run_cli("--config", str(toy_ready.config), "deploy", "--json", "--bogus")
    assert result.code == 2
    document = json.loads(result.out)
    assert document["ok"] is False and document["exit_code"] == 2


@pytest.mark.parametrize("command", ["init", "status", "plan", "deploy"])
def test_another_tools_schema_migrations_table_is_refused_by_name_not_a_raw_sqlite_error(toy, command):
    """bluegreen keeps its history in `schema_migrations`; a table of that name another tool made
    (Rails, dbmate: `version` alone) is refused as SchemaUnsupported (exit 2) by every command
    that reads the history, naming the table, with nothing on disk changed."""
    project = toy
    if command != "init":
        assert project.cli("init").code == 0  # adopted first; the other tool's table came later
    conn = apsw.Connection(str(project.blue))
    conn.execute("CREATE TABLE schema_migrations(version TEXT PRIMARY KEY); INSERT INTO schema_migrations VALUES ('1')")
    conn.close()
    before = disk_state(project.data)
    line = assert_refused(project.cli(command), 2, "has a schema_migrations table of another migration tool")
    assert "SQLite error" not in line and "no such column" not in line
    assert disk_state(project.data) == before
