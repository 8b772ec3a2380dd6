"""bluegreen's own objects are out of a migration's reach (hazard 15, issue 10 item 3).

`_bluegreen_*` tables, triggers and indexes hold change capture, fences and replay positions: a
migration that wrote `_bluegreen_meta` moved green's replay position, and a write made on blue
after prepare was then missing from green, exit 0. Now any reference to them, in any case and
quoting, from a migration or any companion is refused with exit 2 naming the file and line,
before anything runs; mentions in comments and literals are not references. A reach the text does
not show (through a view, or a name given as a string to a pragma function) is denied by the
migration's authorizer at run time, with the same kind of message, never a raw SQLite error.

Everything runs on real files in tmp_path; "nothing changed" is `disk_state` of the data folder.
"""

from __future__ import annotations

import textwrap

import helpers
import pytest
from conftest import SHIPPED_SCHEMAS, Project, disk_state, rows
from helpers import generation_files

from bluegreen.engine.namedsql import references_internal

MIGRATION = "003_v3.0.0_more.sql"
STEM = MIGRATION[:-4]
HARMLESS = "CREATE TABLE more(id INTEGER PRIMARY KEY, label TEXT);\nINSERT INTO more(label) VALUES ('one');\n"

# Every way SQLite lets one name the same object: the line in the file is always 3.
QUOTINGS = {
    "bare": "_bluegreen_meta",
    "double": '"_bluegreen_meta"',
    "bracket": "[_bluegreen_meta]",
    "backtick": "`_bluegreen_meta`",
    "schema-qualified": "main._bluegreen_meta",
    "qualified-and-quoted": 'main."_bluegreen_meta"',
    "upper case": "_BLUEGREEN_META",
    "mixed case quoted": '"_BlueGreen_Meta"',
    "spaced qualifier": "main . [_bluegreen_meta]",
}
MIGRATION_REACHES = (
    "CREATE TABLE more(id INTEGER PRIMARY KEY, label TEXT);\n"
    "-- move the replay position (what issue 10 found accepted, exit 0)\n"
    "UPDATE {name} SET value = 0 WHERE key = 'source_seq';\n"
)
# Other objects and statements: triggers, indexes, the capture table, reads as well as writes.
# (text after HARMLESS's two lines, line of the reference)
OTHER_REACHES = {
    "read the capture table": ("INSERT INTO more(label) SELECT tbl FROM _bluegreen_capture;\n", 3),
    "drop a capture trigger": ("DROP TRIGGER IF EXISTS _bluegreen_cap_i_0123456789ab;\n", 3),
    "drop a guard index": ('DROP INDEX IF EXISTS "_bluegreen_guard_items";\n', 3),
    "create in bluegreen's namespace": ("CREATE TABLE _bluegreen_mine(x);\n", 3),
    "a trigger body": (
        "CREATE TRIGGER more_seen AFTER INSERT ON more BEGIN\n  DELETE FROM [_bluegreen_capture]; END;\n",
        4,
    ),
}

# Each companion kind, in its own format, with the reference on line 3.
COMPANIONS = {
    "sync": "-- re-derive more for the changed keys\nDELETE FROM more WHERE 0;\n"
    "DELETE FROM _bluegreen_capture WHERE 0;\n",
    "validate": "-- one check row\nSELECT 'more has rows', 1, 1,\n  CASE WHEN (SELECT count(*) FROM \"_bluegreen_meta\") "
    ">= 0 THEN 'PASS' ELSE 'FAIL' END;\n",
    "rollback": "-- bluegreen: carries more\nDELETE FROM more WHERE 0;\n"
    "INSERT INTO main.[_bluegreen_meta](key, value) VALUES ('source_seq', 0);\n",
    "benchmark": "-- benchmark: count_more\nSELECT count(*) FROM more\n  JOIN `_bluegreen_meta` ON 1;\n",
    "check": "-- check: peek_positions\nSELECT id FROM more\n  WHERE id IN (SELECT value FROM main._BLUEGREEN_META);\n",
}


# -- helpers ----------------------------------------------------------------------------------------
def assert_refused(result, code: int, *words: str) -> str:
    line = helpers.assert_refused(result, code, *words)
    assert "AuthError" not in line and "not authorized" not in line  # never a raw SQLite error
    return line


def phase_of(project: Project) -> str:
    import json

    return json.loads((project.data / ".bluegreen" / "state.json").read_text())["phase"]


def assert_untouched(project: Project, before: dict, generation: int = 2) -> None:
    assert disk_state(project.data) == before
    assert generation_files(project, generation) == []


# ==================================================================================================
# the tokenizer: identifiers outside comments and literals, with their line
# ==================================================================================================
@pytest.mark.parametrize(
    "text, line, written",
    [
        ("UPDATE _bluegreen_meta SET value = 1", 1, "_bluegreen_meta"),
        ("SELECT 1;\n\n  DROP TRIGGER _BLUEGREEN_cap_x", 3, "_BLUEGREEN_cap_x"),
        ("/* a comment\nover two lines */ SELECT 'a\nliteral' FROM\n\"_bluegreen_meta\"", 4, '"_bluegreen_meta"'),
        ("SELECT 'it''s _bluegreen_meta', x'00' FROM t -- _bluegreen_meta\n, [_bluegreen_x]", 2, "[_bluegreen_x]"),
        ('SELECT "_bluegreen_""odd" FROM t', 1, '"_bluegreen_""odd"'),
        ("SELECT * FROM main . `_bluegreen_meta`", 1, "`_bluegreen_meta`"),
    ],
)
def test_tokenizer_finds_the_reference_and_its_line(text, line, written):
    found = references_internal(text)
    assert found is not None and (found.line, found.written) == (line, written)


@pytest.mark.parametrize(
    "text",
    [
        "-- UPDATE _bluegreen_meta SET value = 0\nSELECT 1",
        "/* _bluegreen_capture */ SELECT 1",
        "/* unterminated _bluegreen_meta",
        "SELECT '_bluegreen_meta', 'x''_bluegreen_meta'",
        "SELECT * FROM temp.bluegreen_changes JOIN temp.bluegreen_uncarried USING (table_name)",
        'SELECT "a""_bluegreen_" FROM t',  # the name is a"_bluegreen_: it does not start with the prefix
        "SELECT my_bluegreen_meta, bluegreen_meta FROM t",
        "SELECT :_bluegreen_p",  # a parameter, not an object
    ],
)
def test_tokenizer_ignores_comments_literals_and_other_names(text):
    assert references_internal(text) is None


# ==================================================================================================
# a migration: every quoting form, refused before anything runs (prepare, deploy, plan)
# ==================================================================================================
@pytest.mark.parametrize("quoting", list(QUOTINGS))
@pytest.mark.parametrize("command", ["prepare", "deploy", "plan"])
def test_migration_reaching_bluegreen_meta_is_refused_with_file_and_line(at_v2, command, quoting):
    project = at_v2
    path = project.schemas / MIGRATION
    path.write_text(MIGRATION_REACHES.format(name=QUOTINGS[quoting]))
    before = disk_state(project.data)

    result = project.cli(command)

    assert_refused(
        result, 2, f"{path}:3:", QUOTINGS[quoting].split(".")[-1].strip(), "bluegreen's own objects", "remove"
    )
    assert_untouched(project, before, generation=3)
    assert phase_of(project) == "idle"


@pytest.mark.parametrize("case", list(OTHER_REACHES))
def test_other_bluegreen_objects_are_refused_too(at_v2, case):
    project = at_v2
    path = project.schemas / MIGRATION
    text, line = OTHER_REACHES[case]
    path.write_text(HARMLESS + text)
    before = disk_state(project.data)
    assert_refused(project.cli("deploy"), 2, f"{path}:{line}:", "bluegreen's own objects")
    assert_untouched(project, before, generation=3)


def test_apply_on_its_own_refuses_and_leaves_the_position_alone(at_v2):
    """migrations.apply() checks the text too (file and line), whoever calls it: nothing of the
    migration runs and the position bluegreen stored is untouched."""
    from bluegreen.engine import migrations
    from bluegreen.errors import InputError

    project = at_v2
    path = project.schemas / MIGRATION
    path.write_text(MIGRATION_REACHES.format(name="_bluegreen_meta"))
    [migration] = [m for m in migrations.discover(project.schemas) if m.file == MIGRATION]
    conn = project.connect(project.gen(2))
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS _bluegreen_meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID")
        conn.execute("INSERT OR REPLACE INTO _bluegreen_meta VALUES ('source_seq', 7)")
        with pytest.raises(InputError) as refused:
            migrations.apply(conn, migration, "2.0.0")
        assert f"{path}:3:" in refused.value.message
        assert conn.execute("SELECT value FROM _bluegreen_meta WHERE key = 'source_seq'").get == 7
        assert not conn.execute("SELECT 1 FROM sqlite_schema WHERE name = 'more'").fetchall()
    finally:
        conn.close()


# ==================================================================================================
# every companion kind
# ==================================================================================================
@pytest.mark.parametrize("kind", list(COMPANIONS))
@pytest.mark.parametrize("command", ["prepare", "deploy", "plan"])
def test_companion_reaching_bluegreen_objects_is_refused_with_file_and_line(at_v2, command, kind):
    project = at_v2
    (project.schemas / MIGRATION).write_text(HARMLESS)
    companion = project.schemas / f"{STEM}_{kind}.sql"
    companion.write_text(COMPANIONS[kind])
    before = disk_state(project.data)

    result = project.cli(command)

    assert_refused(result, 2, f"{companion}:3:", "_bluegreen_", "bluegreen's own objects")
    assert_untouched(project, before, generation=3)


def test_status_keeps_working_and_names_the_bad_file(at_v2):
    """status is the on-call's first command: it shows everything, reports the refusal, and exits 2
    (a migration error is among what it shows, issue 12)."""
    project = at_v2
    (project.schemas / MIGRATION).write_text(MIGRATION_REACHES.format(name="_bluegreen_meta"))
    before = disk_state(project.data)
    result = project.cli("status", "--json")
    assert result.code == 2, result.err
    assert result.json["ok"] is False and result.json["pending"] == []
    assert f"{project.schemas / MIGRATION}:3:" in result.json["pending_error"]
    human = project.cli("status")
    assert human.code == 2 and f"{MIGRATION}:3:" in human.out and "active " in human.out
    assert disk_state(project.data) == before


def test_companion_edited_after_prepare_is_refused_at_cutover(at_v2):
    project = at_v2
    (project.schemas / MIGRATION).write_text(HARMLESS)
    assert project.cli("prepare").code == 0
    companion = project.schemas / f"{STEM}_validate.sql"
    companion.write_text(COMPANIONS["validate"])
    before = disk_state(project.data)
    assert_refused(project.cli("cutover"), 2, f"{companion}:3:", "bluegreen's own objects")
    assert disk_state(project.data) == before
    assert phase_of(project) == "prepared"
    companion.unlink()
    done = project.cli("cutover")
    assert done.code == 0, done.err


def test_benchmark_of_an_applied_migration_is_judged_when_the_gate_reads_it(at_v2):
    """An applied migration's benchmark companion runs at every validation (it guards later
    migrations too): added later with a reference, it is refused when read, and the deploy that
    met it leaves nothing behind. Files already applied never block `status`."""
    project = at_v2
    companion = project.schemas / "002_v2.0.0_split_names_benchmark.sql"
    companion.write_text(COMPANIONS["benchmark"].replace("more", "names"))
    (project.schemas / MIGRATION).write_text(HARMLESS)
    before = disk_state(project.data)
    assert_refused(project.cli("deploy"), 2, f"{companion}:3:", "bluegreen's own objects")
    assert disk_state(project.data) == before
    assert generation_files(project, 3) == [] and phase_of(project) == "idle"
    status = project.cli("status", "--json")
    assert status.code == 0 and status.json["pending"] == [MIGRATION]


def test_check_companion_of_an_applied_migration_is_refused_by_bluegreen_check(at_v2):
    project = at_v2
    companion = project.schemas / "002_v2.0.0_split_names_check.sql"
    companion.write_text(COMPANIONS["check"].replace("more", "names"))
    before = disk_state(project.data)
    assert_refused(project.cli("check"), 2, f"{companion}:3:", "bluegreen's own objects")
    assert disk_state(project.data) == before


# ==================================================================================================
# comments and literals are not access; the project's own names stay allowed
# ==================================================================================================
ALLOWED = {
    MIGRATION: textwrap.dedent(
        """\
        -- Do not touch _bluegreen_meta: bluegreen keeps its replay position there.
        /* _bluegreen_capture, "_bluegreen_meta", [_bluegreen_x] are bluegreen's */
        CREATE TABLE more(id INTEGER PRIMARY KEY, label TEXT, raw BLOB);
        INSERT INTO more(label, raw) VALUES ('_bluegreen_meta', x'5f626c7565677265656e5f');
        INSERT INTO more(label) VALUES ('it''s not _bluegreen_capture -- nor this');
        """
    ),
    f"{STEM}_sync.sql": textwrap.dedent(
        """\
        -- items' changed keys arrive in temp.bluegreen_changes; not in _bluegreen_capture
        DELETE FROM more WHERE label = '_bluegreen_' AND id IN (SELECT row_key FROM temp.bluegreen_changes);
        INSERT INTO temp.bluegreen_uncarried(table_name, row_key) SELECT 'more', 0 WHERE 0;
        """
    ),
    f"{STEM}_validate.sql": "SELECT 'labels', 2, (SELECT count(*) FROM more),\n"
    "  CASE WHEN (SELECT count(*) FROM more) = 2 THEN 'PASS' ELSE 'FAIL' END; -- _bluegreen_meta\n",
    f"{STEM}_check.sql": "-- check: odd_labels\nSELECT id FROM more WHERE label = '_bluegreen_capture' AND 0;\n",
}


def test_mentions_in_comments_and_literals_are_accepted(at_v2):
    project = at_v2
    for name, text in ALLOWED.items():
        (project.schemas / name).write_text(text)
    plan = project.cli("plan")
    assert plan.code == 0, plan.err
    deploy = project.cli("deploy")
    assert deploy.code == 0, deploy.err
    assert rows(project.gen(3), "SELECT label FROM more ORDER BY id") == [
        ("_bluegreen_meta",),
        ("it's not _bluegreen_capture -- nor this",),
    ]
    check = project.cli("check")
    assert check.code == 0, check.err


def test_shipped_and_toy_schemas_name_none_of_bluegreens_objects(toy):
    from bluegreen.engine import migrations

    for folder in (SHIPPED_SCHEMAS, toy.schemas):
        for migration in migrations.discover(folder):
            migrations.check_reach(migration)  # raises on a reference


# ==================================================================================================
# run time: reaches the text does not show are denied by the migration's authorizer
# ==================================================================================================
RUNTIME = {
    "through a view": (
        "CREATE VIEW peek AS SELECT key, value FROM _bluegreen_meta;",
        "CREATE TABLE seen AS SELECT count(*) AS n FROM peek;\n",
    ),
    "named by a string": ("", "CREATE TABLE seen AS SELECT name FROM pragma_table_info('_bluegreen_meta');\n"),
}


@pytest.mark.parametrize("case", list(RUNTIME))
@pytest.mark.parametrize("command", ["prepare", "deploy"])
def test_reach_at_run_time_is_denied_with_the_same_clear_message(toy, command, case):
    project = toy
    setup, text = RUNTIME[case]
    if setup:
        conn = project.connect()
        conn.execute(setup)
        conn.close()
    assert project.cli("init").code == 0
    path = project.schemas / MIGRATION
    path.write_text("CREATE TABLE more(x);\n" + text)
    before = disk_state(project.data)

    result = project.cli(command)

    assert_refused(result, 2, str(path), "reaches _bluegreen_meta", "bluegreen's own objects")
    assert_untouched(project, before)
    assert phase_of(project) == "idle"


def test_rollback_companion_edited_after_cutover_is_refused_at_revert(at_v2):
    """A rollback script runs on blue past its fence: one that names bluegreen's objects could move
    blue's positions. Refused before anything runs; fixed, the revert goes through."""
    project = at_v2
    (project.schemas / MIGRATION).write_text(HARMLESS)
    assert project.cli("deploy").code == 0
    companion = project.schemas / f"{STEM}_rollback.sql"
    companion.write_text(COMPANIONS["rollback"])
    before = disk_state(project.data)
    assert_refused(project.cli("revert"), 2, f"{companion}:3:", "bluegreen's own objects")
    assert disk_state(project.data) == before
    assert phase_of(project) == "cut_over"
    companion.unlink()
    done = project.cli("revert")
    assert done.code == 0, done.err
