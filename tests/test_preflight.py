"""`plan` is the gate before anything is built (issue 12, item 3).

One preflight (bluegreen/gates/preflight.py) dry-runs every pending migration and its companions
on a schema-only copy of the active file. For each kind of broken input, and its siblings (a
failure in the third statement, a statement over several lines, a trigger body, CRLF line
endings, a companion with the error), these tests show: `plan` prints the plan and exits 2 (an
input error, with file and line) or 3 ("will be refused"), `--json` with `"ok": false` and the
findings in details; `status` shows everything and exits 2 (0 for a missing sync companion, which
`deploy --offline` does not need); `prepare` and `deploy` refuse the same way before the
free-space estimate and the hooks, with nothing on disk changed and no generation number spent
(the next good deploy makes generation 2). The configuration and file
errors `status` used to print with exit 0 (a missing migrations folder, an edited applied
migration, a misnamed file) exit 2 too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import apsw
import pytest
from conftest import BASE_CONFIG, Project, disk_state, rows
from helpers import (
    assert_refused,
    generation_files,
    json_error,
    make_project,
    pointer_of,
    set_cutover,
    state_of,
)

from bluegreen.engine import statements

MORE = "003_v3.0.0_more.sql"
SYNC = "003_v3.0.0_more_sync.sql"
ROLLBACK = "003_v3.0.0_more_rollback.sql"
VALIDATE = "003_v3.0.0_more_validate.sql"
BENCHMARK = "003_v3.0.0_more_benchmark.sql"
CHECK = "003_v3.0.0_more_check.sql"
NEW_TABLE = "CREATE TABLE more(a INTEGER PRIMARY KEY, b TEXT);\n"
INTERNAL = "SELECT count(*) FROM sqlite_schema WHERE name LIKE '\\_bluegreen\\_%' ESCAPE '\\'"

# kind -> (files written into the toy's schemas (None: removed), the file at fault, its line, words, exit code)
BROKEN = {
    "syntax error": (
        {MORE: "CREATE TABLE more(a);\nINSERT INTO more VALUES (1);\nSELEC oops;\n"},
        MORE,
        3,
        ['near "SELEC": syntax error'],
        2,
    ),
    "syntax error, CRLF line endings": (
        {MORE: "CREATE TABLE more(a);\r\nINSERT INTO more VALUES (1);\r\nSELEC oops;\r\n"},
        MORE,
        3,
        ['near "SELEC": syntax error'],
        2,
    ),
    "no such table, third statement": (
        {MORE: "CREATE TABLE more(a);\nINSERT INTO more VALUES (1);\nUPDATE missing_table SET x = 1;\n"},
        MORE,
        3,
        ["no such table: missing_table"],
        2,
    ),
    "no such column, inside a statement over lines": (
        {
            MORE: "CREATE TABLE more(a);\n\n-- a comment; with a semicolon\nINSERT INTO more\n  SELECT nope\n  FROM items;\n"
        },
        MORE,
        5,
        ["no such column: nope"],
        2,
    ),
    "after a trigger body and a string holding ;": (
        {
            MORE: "CREATE TABLE more(a TEXT);\n"
            "CREATE TRIGGER more_note AFTER INSERT ON more BEGIN\n"
            "  UPDATE more SET a = 'x; y' WHERE rowid = NEW.rowid;\n"
            "  SELECT 1;\n"
            "END;\n"
            "INSERT INTO nowhere VALUES (1);\n"
        },
        MORE,
        6,
        ["no such table: nowhere"],
        2,
    ),
    "BEGIN/COMMIT": (
        {MORE: "BEGIN;\nCREATE TABLE more(a);\nCOMMIT;\n"},
        MORE,
        1,
        ["BEGIN/COMMIT/ROLLBACK (BEGIN)", "own transaction"],
        2,
    ),
    "BEGIN after a byte-order mark, CRLF": (
        {MORE: "\ufeffBEGIN;\r\nCREATE TABLE more(a);\r\nCOMMIT;\r\n"},
        MORE,
        1,
        ["BEGIN/COMMIT/ROLLBACK (BEGIN)"],
        2,
    ),
    "COMMIT mid-file": (
        {MORE: "CREATE TABLE more(a);\nINSERT INTO more VALUES (1);\nCOMMIT;\nCREATE TABLE later(a);\n"},
        MORE,
        3,
        ["BEGIN/COMMIT/ROLLBACK (COMMIT)"],
        2,
    ),
    "VACUUM": ({MORE: "CREATE TABLE more(a);\n\n  vacuum;\n"}, MORE, 3, ["VACUUM is not allowed"], 2),
    "ATTACH": (
        {MORE: "CREATE TABLE more(a);\nATTACH 'elsewhere.db' AS elsewhere;\n"},
        MORE,
        2,
        ["ATTACH is not allowed"],
        2,
    ),
    "a sync companion that fails": (
        {
            MORE: NEW_TABLE,
            SYNC: "DELETE FROM more WHERE a IN (SELECT row_key FROM temp.bluegreen_changes);\n"
            "INSERT INTO more SELECT a, b FROM source.more_typo;\n",
        },
        SYNC,
        2,
        ["sync companion fails on the migrated schema", "no such table: source.more_typo"],
        2,
    ),
    "a sync companion with BEGIN": (
        {MORE: NEW_TABLE, SYNC: "SELECT 1;\nBEGIN;\nSELECT 2;\n"},
        SYNC,
        2,
        ["sync companion contains BEGIN (transaction control)"],
        2,
    ),
    "a rollback companion that fails": (
        {MORE: NEW_TABLE, ROLLBACK: "-- bluegreen: carries more\nDELETE FROM main.more;\n"},
        ROLLBACK,
        2,
        ["rollback companion fails on the schema before the migrations", "no such table: main.more"],
        2,
    ),
    "a rollback companion that writes to source": (
        {MORE: NEW_TABLE, ROLLBACK: "-- bluegreen: carries more\nSELECT 1;\n\nDELETE FROM more;\n"},
        ROLLBACK,
        4,
        ["rollback companion writes to source.more", "attached read-only"],
        2,
    ),
    "a validate companion of 3 columns": (
        {MORE: NEW_TABLE, VALIDATE: "-- one check\nSELECT 'more exists', 1, 1;\n"},
        VALIDATE,
        2,
        ["returns 3 column(s)", "(check_name, expected, actual, status)"],
        2,
    ),
    "a benchmark that fails on green": (
        {
            MORE: NEW_TABLE,
            BENCHMARK: "-- benchmark: by_b\nSELECT a FROM more WHERE b = 'x';\n-- benchmark: by_c\nSELECT a FROM more WHERE c = 1;\n",
        },
        BENCHMARK,
        3,
        ["benchmark 'by_c' cannot run on the migrated schema", "no such column: c"],
        2,
    ),
    "a check query that fails": (
        {MORE: NEW_TABLE, CHECK: "-- check: no orphans\nSELECT * FROM more_typo;\n"},
        CHECK,
        1,
        ["check 'no orphans'", "no such table: more_typo"],
        2,
    ),
    "a missing sync companion": (
        {"002_v2.0.0_split_names_sync.sql": None},
        "002_v2.0.0_split_names.sql",
        None,
        ["002_v2.0.0_split_names.sql: needs a sync companion", "it derives rows from tables blue keeps writing"],
        3,
    ),
}


def broken(project: Project, kind: str) -> tuple[str, list[str], int]:
    """Write the kind's files; (what the error line starts with, its words, the exit code)."""
    files, at_fault, line, words, code = BROKEN[kind]
    for name, text in files.items():
        path = project.schemas / name
        if text is None:
            path.unlink()
        else:
            path.write_bytes(text.encode())
    where = f"{project.schemas / at_fault}:{line}: " if line else at_fault
    if code == 3:
        words = [*words, str(project.schemas / "002_v2.0.0_split_names_sync.sql")]  # the file to create
    return where, words, code


@pytest.mark.parametrize("kind", list(BROKEN))
def test_plan_prints_the_plan_and_exits_with_the_finding(toy_ready, kind):
    project = toy_ready
    where, words, code = broken(project, kind)
    before = disk_state(project.root)

    shown = project.cli("plan")
    line = assert_refused(shown, code, *words)
    assert line.startswith(f"bluegreen: error: {where}")
    assert "pending migration(s) for app.db" in shown.out and "estimates" in shown.out  # still the plan
    assert f"prepare and deploy would refuse (exit {code})" in shown.out and where in shown.out

    document = json_error(project.cli("plan", "--json"), code)
    assert document["pending"] and document["estimate"]
    finding = document["details"]["findings"][0]
    _, at_fault, at_line, _, _ = BROKEN[kind]
    assert finding["cause"] == ("CompanionMissing" if code == 3 else "MigrationInvalid")
    assert (finding["file"], finding["line"], finding["exit_code"]) == (at_fault, at_line, code)
    assert disk_state(project.root) == before  # plan wrote nothing, anywhere
    assert not os.path.exists("elsewhere.db") and not (project.root / "elsewhere.db").exists()


@pytest.mark.parametrize("kind", list(BROKEN))
def test_status_shows_the_finding_and_exits_2_for_an_input_error(toy_ready, kind):
    """A broken migration or companion is an input error: status shows it with everything else and
    exits 2. A missing sync companion is no error (`deploy --offline` needs none): status shows
    what prepare and deploy would refuse and exits 0."""
    project = toy_ready
    where, words, code = broken(project, kind)
    before = disk_state(project.root)

    shown = project.cli("status")
    assert "active      " in shown.out and "phase       idle" in shown.out  # the whole status, still
    assert "pending     001_v1.0.0_items.sql, 002_v2.0.0_split_names.sql" in shown.out
    document = project.cli("status", "--json").json
    assert document["details"]["findings"][0]["cause"] == ("CompanionMissing" if code == 3 else "MigrationInvalid")
    if code == 3:
        assert shown.code == 0, shown.err
        assert f"refusal     prepare and deploy would refuse (exit 3): {where}" in shown.out
        assert all(word in shown.out for word in words) and "bluegreen deploy --offline" in shown.out
        assert document["ok"] is True and "problems" not in document
    else:
        line = assert_refused(shown, 2, *words)
        assert line.startswith(f"bluegreen: error: {where}")
        assert f"problem     {where}" in shown.out and "bluegreen plan" in shown.out
        document = json_error(project.cli("status", "--json"), 2)
        assert document["phase"] == "idle" and document["problems"][0].startswith(where)
        assert document["details"]["findings"][0]["message"] == document["error"]
    assert disk_state(project.root) == before


@pytest.mark.parametrize("command", ["deploy", "prepare"])
@pytest.mark.parametrize("kind", list(BROKEN))
def test_deploy_and_prepare_refuse_before_the_estimate_the_hooks_and_the_number(toy_ready, kind, command):
    """The preflight runs first: a disk far too small (exit 1) and a pre-prepare hook that would
    leave a mark are never reached; nothing on disk changes and no number is spent."""
    project = toy_ready
    ran = project.root / "pre-prepare-ran"
    too_small = shutil.disk_usage(project.data).free // (1024 * 1024) + 1024 * 1024  # a terabyte short
    project.config.write_text(
        BASE_CONFIG + f'[disk]\nmin_free_mb = {too_small}\n[hooks]\npre-prepare = "touch {ran}"\n'
    )
    assert project.cli("deploy", "--offline").code == 1  # the disk check would refuse...
    where, words, code = broken(project, kind)
    before = disk_state(project.data)
    last = state_of(project)["last_generation"]

    result = project.cli(command, "--json")

    line = assert_refused(result, code, *words)
    assert line.startswith(f"bluegreen: error: {where}")
    document = json_error(result, code)
    assert document["details"]["findings"][0]["message"] == document["error"]
    assert disk_state(project.data) == before
    assert state_of(project)["last_generation"] == last and state_of(project)["phase"] == "idle"
    assert generation_files(project, 2) == [] and rows(project.blue, INTERNAL) == [(0,)]  # no capture on blue
    assert not ran.exists()


def test_refused_deploys_spend_no_number_the_next_good_deploy_makes_generation_2(toy_ready):
    project = toy_ready
    sync = project.schemas / "002_v2.0.0_split_names_sync.sql"
    kept = sync.read_text()
    for kind in ("syntax error", "BEGIN/COMMIT", "a sync companion that fails", "a missing sync companion"):
        for name in (MORE, SYNC):
            (project.schemas / name).unlink(missing_ok=True)
        sync.write_text(kept)
        _, _, code = broken(project, kind)
        assert project.cli("deploy").code == code, kind
        assert project.cli("deploy", "--json").code == code, kind
    for name in (MORE, SYNC):
        (project.schemas / name).unlink(missing_ok=True)
    sync.write_text(kept)
    (project.schemas / MORE).write_text(NEW_TABLE)

    done = project.cli("deploy", "--json")
    assert done.code == 0, done.err
    assert done.json["generation"] == 2 and pointer_of(project)["active"] == "app.gen2.db"
    assert state_of(project)["last_generation"] == 2
    assert rows(project.gen(2), "SELECT file FROM schema_migrations ORDER BY id")[-1] == (MORE,)


# ==================================================================================================
# the missing sync companion: asked of the migration that needs it, naming the file to create
# ==================================================================================================
ITEMS = "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT);INSERT INTO items(name) VALUES ('a'), ('b');"


@pytest.mark.parametrize("command", ["plan", "deploy", "prepare"])
def test_the_migration_that_reshapes_is_named_not_its_neighbours(tmp_path, command):
    project = make_project(
        tmp_path,
        ITEMS,
        {
            "001_v1.1.0_tags.sql": "CREATE TABLE tags(id INTEGER PRIMARY KEY, name TEXT);\n",
            # A new application trigger: replay runs with triggers off, so it is not derived.
            "002_v1.2.0_item_notes.sql": "ALTER TABLE items ADD COLUMN note TEXT;\n"
            "CREATE TRIGGER items_note AFTER INSERT ON items BEGIN "
            "UPDATE items SET note = 'new' WHERE id = NEW.id; END;\n",
            "003_v1.3.0_tag_index.sql": "CREATE INDEX tags_name ON tags(name);\n",
        },
    )
    before = disk_state(project.data)
    line = assert_refused(project.cli(command), 3, "items (definition or triggers changed)")
    assert line.startswith("bluegreen: error: 002_v1.2.0_item_notes.sql: needs a sync companion, ")
    assert str(project.schemas / "002_v1.2.0_item_notes_sync.sql") in line
    assert "001_v1.1.0_tags" not in line and "003_v1.3.0_tag_index" not in line
    assert disk_state(project.data) == before and state_of(project)["last_generation"] == 1


def test_two_migrations_that_need_one_are_both_named_with_their_files(tmp_path):
    project = make_project(
        tmp_path,
        ITEMS + "CREATE TABLE settings(id INTEGER PRIMARY KEY, key TEXT, value TEXT);",
        {
            "001_v1.1.0_seed.sql": "INSERT INTO settings(key, value) VALUES ('theme', 'dark');\n",
            "002_v1.2.0_tags.sql": "CREATE TABLE tags(id INTEGER PRIMARY KEY);\n",
            # values computed across rows: not a derivable backfill (engine/derive.py)
            "003_v1.3.0_upper.sql": "UPDATE items SET name = upper(name) || (SELECT count(*) FROM items);\n",
        },
    )
    document = json_error(project.cli("plan", "--json"), 3)
    finding = document["details"]["findings"][0]
    assert finding["cause"] == "CompanionMissing"
    assert finding["create"] == [
        str(project.schemas / "001_v1.1.0_seed_sync.sql"),
        str(project.schemas / "003_v1.3.0_upper_sync.sql"),
    ]
    assert "settings (written by 001_v1.1.0_seed.sql)" in document["error"]
    assert "items (written by 003_v1.3.0_upper.sql)" in document["error"]
    assert "002_v1.2.0_tags.sql:" not in document["error"]


def test_deploy_offline_needs_no_sync_companion(toy_ready):
    """The sync rule is an online rule: plan says 3, `deploy --offline` deploys, as generation 2."""
    project = toy_ready
    broken(project, "a missing sync companion")
    assert project.cli("plan").code == 3
    assert project.cli("deploy").code == 3
    offline = project.cli("plan", "--offline", "--json")  # checked as for deploy --offline
    assert offline.code == 0 and offline.json["details"]["findings"] == []
    done = project.cli("deploy", "--offline", "--json")
    assert done.code == 0, done.err
    assert done.json["generation"] == 2


def test_the_builder_applies_the_same_rule_on_green(toy_ready, monkeypatch):
    """One rule, two callers: the preflight's CompanionMissing is the builder's too (here the
    preflight is skipped to reach the builder's own check after green is built)."""
    from bluegreen.config import load
    from bluegreen.errors import CompanionMissing
    from bluegreen.gates import preflight
    from bluegreen.lifecycle.controller import Controller

    project = toy_ready
    broken(project, "a missing sync companion")
    with pytest.raises(CompanionMissing) as up_front:
        Controller(load(project.config)).prepare()
    monkeypatch.setattr(preflight, "require", lambda *args, **kwargs: None)
    with pytest.raises(CompanionMissing) as on_green:
        Controller(load(project.config)).prepare()
    assert on_green.value.message == up_front.value.message
    assert state_of(project)["phase"] == "idle" and generation_files(project, 2) == []
    assert state_of(project)["last_generation"] == 2  # built, then refused: that one was spent


# ==================================================================================================
# configuration and file errors: plan, deploy and prepare exit 2; status shows them and exits 2
# ==================================================================================================
def _missing_folder(project: Project) -> tuple[str, list[str]]:
    project.schemas.rename(project.root / "schemas.moved")
    return str(project.schemas), ["migrations folder not found", "[migrations] dir"]


def _edited(project: Project) -> tuple[str, list[str]]:
    path = project.schemas / "001_v1.0.0_items.sql"
    path.write_text(path.read_text() + "-- edited after it ran\nCREATE TABLE sneaky(x);\n")
    return str(path), ["changed after it was applied", "checksum"]


def _misnamed(project: Project) -> tuple[str, list[str]]:
    path = project.schemas / "add_status.sql"
    path.write_text("ALTER TABLE items ADD COLUMN status TEXT;\n")
    return str(path), ["migration file name does not fit", "{seq}_{version}_{description}.sql"]


def _not_utf8(project: Project) -> tuple[str, list[str]]:
    path = project.schemas / SYNC
    path.write_bytes("-- r\xe9sum\xe9 in Latin-1\nSELECT 1;\n".encode("latin-1"))
    return str(path), ["not UTF-8 text", "save the migration as UTF-8"]


STATIC = {
    "missing migrations folder": _missing_folder,
    "checksum mismatch": _edited,
    "misnamed file": _misnamed,
    "a companion not in UTF-8": _not_utf8,
}


@pytest.mark.parametrize("kind", list(STATIC))
def test_status_exits_2_on_a_configuration_or_migration_error_and_still_shows_everything(at_v2, kind):
    project = at_v2
    (project.schemas / MORE).write_text(NEW_TABLE)  # something is pending
    where, words = STATIC[kind](project)
    before = disk_state(project.root)

    shown = project.cli("status")
    line = assert_refused(shown, 2, where, *words)
    assert "active      " in shown.out and "generation 2" in shown.out
    assert "pending     unknown (see the problem line below)" in shown.out
    assert f"problem     {line.removeprefix('bluegreen: error: ')}" in shown.out

    document = json_error(project.cli("status", "--json"), 2)
    assert document["generation"] == 2 and where in document["pending_error"]
    assert document["problems"] == [document["error"]]
    assert disk_state(project.root) == before


@pytest.mark.parametrize("command", ["plan", "deploy", "prepare"])
@pytest.mark.parametrize("kind", list(STATIC))
def test_plan_deploy_and_prepare_refuse_a_configuration_or_migration_error(at_v2, kind, command):
    project = at_v2
    (project.schemas / MORE).write_text(NEW_TABLE)
    where, words = STATIC[kind](project)
    before = disk_state(project.data)
    last = state_of(project)["last_generation"]
    assert_refused(project.cli(command), 2, where, *words)
    assert disk_state(project.data) == before and state_of(project)["last_generation"] == last


# ==================================================================================================
# what a dry run cannot see: a failure only blue's rows cause is still named by line, on green
# ==================================================================================================
def test_a_failure_only_rows_cause_passes_plan_and_deploy_names_its_line(toy_ready):
    project = toy_ready
    path = project.schemas / MORE
    path.write_text(
        "CREATE TABLE more(a INTEGER PRIMARY KEY, b TEXT NOT NULL);\n\n"
        "INSERT INTO more(a, b)\n  SELECT id, CASE WHEN id > 40 THEN NULL ELSE name END FROM items;\n"
    )
    (project.schemas / SYNC).write_text("SELECT 1;\n")  # it derives rows: an online deploy needs one
    assert project.cli("plan").code == 0
    result = project.cli("deploy", "--json")
    assert_refused(result, 1, f"{path}:3: migration failed", "NOT NULL constraint failed: more.b")
    assert json_error(result, 1)["details"]["line"] == 3
    assert state_of(project)["phase"] == "idle" and generation_files(project, 2) == []


# ==================================================================================================
# deploy --offline: a busy blue refuses before the generation number is spent
# ==================================================================================================
HOLD_WRITE_LOCK = textwrap.dedent(
    """\
    import sys, time, apsw
    conn = apsw.Connection(sys.argv[1])
    conn.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    time.sleep(60)
    """
)


def test_offline_deploy_on_a_busy_blue_spends_no_number(toy_ready):
    project = toy_ready
    set_cutover(project, lock_timeout_ms=300)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_WRITE_LOCK, str(project.blue)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = disk_state(project.data)
        result = project.cli_process("deploy", "--offline")
        assert_refused(result, 1, str(project.blue), "write lock", "nothing was changed")
        assert disk_state(project.data) == before
        assert state_of(project)["phase"] == "idle" and state_of(project)["last_generation"] == 1
    finally:
        holder.kill()
        holder.wait()
    done = project.cli("deploy", "--offline", "--json")
    assert done.code == 0, done.err
    assert done.json["generation"] == 2


# ==================================================================================================
# statements and their lines (engine/statements.py)
# ==================================================================================================
@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["LF", "CRLF"])
def test_statements_start_on_their_lines_whatever_the_line_endings(newline):
    text = newline.join(
        [
            "-- header; not a statement",
            "CREATE TABLE a(x);",
            "",
            "CREATE TRIGGER a_t AFTER INSERT ON a BEGIN",
            "  INSERT INTO a VALUES ('; inside a string');",
            "END;",
            "/* a; comment */ INSERT INTO a",
            "  VALUES (1);;",
            "CREATE TABLE [b;c](\"d;e\", `f;g`, h DEFAULT x'3b');",
            "SELECT 'no semicolon at the end'",
        ]
    )
    found = statements.split(text)
    assert [s.line for s in found] == [2, 4, 7, 9, 10]
    assert [s.keyword for s in found] == ["CREATE", "CREATE", "INSERT", "CREATE", "SELECT"]
    assert found[1].sql.endswith("END;")
    conn = apsw.Connection(":memory:")  # and each runs as SQLite reads it
    statements.run(conn, text)
    assert conn.execute("SELECT x FROM a ORDER BY rowid").fetchall() == [(1,), ("; inside a string",)]
    assert conn.execute("SELECT name FROM pragma_table_info('b;c')").fetchall() == [("d;e",), ("f;g",), ("h",)]


def test_an_error_offset_after_non_ascii_text_names_the_right_line():
    conn = apsw.Connection(":memory:")
    conn.execute("CREATE TABLE t(a)")
    text = "INSERT INTO t VALUES ('ünïcödé… ✓');\nINSERT INTO t\n  SELECT 'é✓é', missing\n  FROM t;\n"
    with pytest.raises(statements.StatementFailed) as failed:
        statements.run(conn, text)
    assert failed.value.line == 3 and "no such column: missing" in str(failed.value.error)
    assert failed.value.statement.line == 2


def test_plan_passes_with_no_problem_on_good_migrations(toy_ready):
    shown = toy_ready.cli("plan", "--json")
    assert shown.code == 0, shown.err
    assert shown.json["ok"] is True and shown.json["details"] == {"findings": [], "note": ""}
    assert "no problem" in toy_ready.cli("plan").out


def test_the_console_script_exits_with_the_findings_code(toy_ready):
    """As a real process, the way a release script runs it: `plan` stops the release."""
    project = toy_ready
    where, _, _ = broken(project, "no such table, third statement")
    shown = project.cli_process("plan")
    assert shown.code == 2 and f"bluegreen: error: {where}" in shown.err and "checks      1 problem(s)" in shown.out
    assert project.cli_process("status").code == 2
    assert project.cli_process("deploy").code == 2 and state_of(project)["last_generation"] == 1


UPPER_SYNC = """\
DELETE FROM items WHERE id IN (SELECT row_key FROM temp.bluegreen_changes WHERE table_name = 'items');
INSERT INTO items(id, name) SELECT id, upper(name) FROM source.items
WHERE id IN (SELECT row_key FROM temp.bluegreen_changes WHERE table_name = 'items' AND present = 1);
"""
SETTINGS_SYNC = """\
DELETE FROM settings WHERE id IN (SELECT row_key FROM temp.bluegreen_changes WHERE table_name = 'settings');
INSERT INTO settings(id, key, value) SELECT id, key, value FROM source.settings
WHERE id IN (SELECT row_key FROM temp.bluegreen_changes WHERE table_name = 'settings' AND present = 1);
"""


def test_another_migrations_sync_does_not_cover_a_table_it_never_touched(tmp_path):
    """001 upper-cases items and has a sync companion; 002 alters settings and has none. 001's
    sync never touches settings, so blue's writes to settings during prepare would not reach
    green (they were lost after cutover: any sync companion used to count for every table)."""
    project = make_project(
        tmp_path,
        ITEMS + "CREATE TABLE settings(id INTEGER PRIMARY KEY, key TEXT, value TEXT);"
        "INSERT INTO settings(key, value) VALUES ('a', '1');",
        {
            "001_v1.1.0_upper_names.sql": "UPDATE items SET name = upper(name);\n",
            "001_v1.1.0_upper_names_sync.sql": UPPER_SYNC,
            # With a new application trigger: not derived (engine/derive.py), a companion is needed.
            "002_v1.2.0_setting_note.sql": "ALTER TABLE settings ADD COLUMN note TEXT;\n"
            "CREATE TRIGGER settings_note AFTER UPDATE ON settings BEGIN SELECT 1; END;\n",
        },
    )
    line = assert_refused(project.cli("plan"), 3, "settings (definition or triggers changed)")
    assert line.startswith("bluegreen: error: 002_v1.2.0_setting_note.sql: needs a sync companion, ")
    assert str(project.schemas / "002_v1.2.0_setting_note_sync.sql") in line and "001_v1.1.0" not in line
    assert project.cli("prepare").code == 3 and state_of(project)["last_generation"] == 1

    (project.schemas / "002_v1.2.0_setting_note_sync.sql").write_text(SETTINGS_SYNC)
    assert project.cli("plan").code == 0
    prepared = project.cli("prepare")
    assert prepared.code == 0, prepared.err
    conn = project.connect()
    conn.execute("INSERT INTO settings(key, value) VALUES ('written during prepare', '2')")
    conn.execute("UPDATE settings SET value = 'changed during prepare' WHERE key = 'a'")
    conn.close()
    done = project.cli("cutover")
    assert done.code == 0, done.err
    assert rows(project.gen(2), "SELECT id, key, value FROM settings ORDER BY id") == rows(
        project.blue, "SELECT id, key, value FROM settings ORDER BY id"
    )
    assert rows(project.gen(2), "SELECT count(*) FROM settings") == [(2,)]
