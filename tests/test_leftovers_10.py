"""Leftovers of issue 10: each test fails without its fix.

NUL bytes in WITHOUT ROWID text keys, finalize with blue gone, the rehearsal's scratch file modes,
`_bluegreen_*` in config queries, `check` on an FK whose parent is not unique, the offline
deploy's one-edit fence, and the `next` line of `status` on every phase.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from conftest import disk_state, rows
from helpers import remove_database, state_of, too_open


# ==================================================================================================
# 3. the rehearsal's scratch config.toml and writer log are never more readable than blue
# ==================================================================================================
def test_rehearsal_scratch_files_keep_blues_mode(toy_ready, tmp_path_factory):
    project = toy_ready
    os.chmod(project.blue, 0o600)
    scratch = tmp_path_factory.mktemp("elsewhere") / "rehearsal"
    old_umask = os.umask(0o022)
    try:
        result = project.cli("rehearse", "--json", "--into", str(scratch), "--keep", "--writer")
    finally:
        os.umask(old_umask)
    assert result.code == 0, result.err
    assert (scratch / "config.toml").exists() and (scratch / "writer.log").exists()
    assert stat.S_IMODE((scratch / "config.toml").stat().st_mode) == 0o600
    assert stat.S_IMODE((scratch / "writer.log").stat().st_mode) == 0o600
    assert too_open(scratch, 0o600, 0o777) == []


# ==================================================================================================
# 4. config queries that reach bluegreen's own objects are refused like a migration's (hazard 15)
# ==================================================================================================
@pytest.mark.parametrize(
    "section, sql",
    [
        ("performance", "SELECT count(*) FROM _bluegreen_changes"),
        ("check", 'SELECT * FROM "_BLUEGREEN_META" WHERE key = 1'),
        ("check", "SELECT name FROM items WHERE id IN (SELECT row_key FROM main._bluegreen_changes)"),
    ],
)
@pytest.mark.parametrize("command", ["check", "deploy", "status"])
def test_config_queries_naming_bluegreen_objects_are_refused(toy_ready, section, sql, command):
    from conftest import write_config
    from helpers import assert_refused

    project = toy_ready
    write_config(project.root, f'[{section}.queries]\nsneaky = """{sql}"""\n')
    before = disk_state(project.root)
    result = project.cli(command)
    line = assert_refused(result, 2, "config.toml", f"{section}.queries.sneaky", "_bluegreen")
    assert line.count("\n") == 0
    assert disk_state(project.root) == before


def test_config_queries_on_the_applications_own_tables_still_run(toy_ready):
    from conftest import write_config

    project = toy_ready
    write_config(
        project.root, "[check.queries]\nbluegreen_named = \"SELECT id FROM items WHERE name = '_bluegreen_x'\"\n"
    )
    assert project.cli("check").code == 0


# ==================================================================================================
# 5. `check` on a foreign key whose parent key is not unique: the declaration named, exit 3
# ==================================================================================================
def test_check_names_a_foreign_key_sqlite_cannot_check(toy_ready):
    from helpers import assert_refused

    project = toy_ready
    app = project.connect(project.blue)
    app.execute(
        "CREATE TABLE parents(code TEXT); INSERT INTO parents VALUES ('a'), ('a');"
        "CREATE TABLE kids(id INTEGER PRIMARY KEY, code TEXT REFERENCES parents(code));"
        "INSERT INTO kids(code) VALUES ('a');"
        "CREATE TABLE pets(id INTEGER PRIMARY KEY, owner INTEGER REFERENCES items(id));"
        "INSERT INTO pets(owner) VALUES (9999);"
    )  # a real violation beside it, still found
    app.close()
    before = disk_state(project.root)
    result = project.cli("check")
    line = assert_refused(result, 3, "kids", "foreign key mismatch", "parents", "UNIQUE index")
    assert "SQLError" not in line and "Traceback" not in result.err
    document = project.cli("check", "--json")
    assert document.code == 3
    fk = {c["name"]: c for c in document.json["checks"]}["foreign_key_check"]
    assert fk["found"] == 1 and fk["sample"] == [["pets", 1, "items"]]
    assert "kids" in fk["error"] and "pets" not in fk["error"]
    assert disk_state(project.root) == before


# ==================================================================================================
# 2. finalize when blue was deleted in the revert window: the window closes, green keeps its data
# ==================================================================================================
def test_finalize_with_blue_deleted_in_the_revert_window(toy_ready):

    project = toy_ready
    assert project.cli("deploy").code == 0
    remove_database(project.blue)
    status = project.cli("status", "--json")
    assert status.code == 2  # a missing file is still a problem to report
    assert "bluegreen finalize" in status.json["next"] and "restore app.db" in status.json["next"]
    assert "bluegreen finalize" in status.json["problems"][0]
    refused = project.cli("revert")  # revert still needs blue
    assert refused.code == 2 and "cannot revert without it" in refused.err
    green_rows = rows(project.gen(2), "SELECT * FROM items ORDER BY id")
    before = disk_state(project.root)
    done = project.cli("finalize", "--json")
    assert done.code == 0, done.err
    assert "revert window is closed" in done.json["message"] and "already gone" in done.json["message"]
    state = state_of(project)
    assert state["phase"] == "idle" and "app.db" not in state["fences"]
    assert rows(project.gen(2), "SELECT * FROM items ORDER BY id") == green_rows
    assert rows(project.gen(2), "SELECT name FROM sqlite_schema WHERE name LIKE '_bluegreen%'") == [
        ("_bluegreen_meta",)
    ]
    assert not project.blue.exists()  # nothing recreated
    after = project.cli("status")
    assert after.code == 0 and "problem" not in after.out, after.out
    assert disk_state(project.root) != before  # the journal moved on (and only by finalize)


# ==================================================================================================
# 1. TEXT primary keys holding a NUL byte in WITHOUT ROWID tables (quote() stops at the NUL)
# ==================================================================================================
NUL_SCHEMA = """
CREATE TABLE kv(k TEXT PRIMARY KEY, v INTEGER) WITHOUT ROWID;
CREATE TABLE pair(a TEXT, b INTEGER, u TEXT UNIQUE, v TEXT, PRIMARY KEY (a, b)) WITHOUT ROWID;
CREATE TABLE plain(k TEXT PRIMARY KEY, v INTEGER);
"""
NUL_SEED = [
    ("INSERT INTO kv VALUES (?, ?)", ("seed\x00gone", 1)),
    ("INSERT INTO kv VALUES (?, ?)", ("seed\x00kept", 2)),
    ("INSERT INTO kv VALUES (?, ?)", ("seed", 3)),
    ("INSERT INTO pair VALUES (?, ?, ?, ?)", ("p\x00q", 1, "u\x001", "first")),
    ("INSERT INTO pair VALUES (?, ?, ?, ?)", ("p\x00q", 2, "u2", "second")),
    ("INSERT INTO plain VALUES (?, ?)", ("r\x00s", 1)),
]
NUL_WRITES = [
    ("INSERT INTO kv VALUES (?, ?)", ("a\x00b", 10)),
    ("INSERT INTO kv VALUES (?, ?)", ("a\x00c", 11)),
    ("INSERT INTO kv VALUES (?, ?)", ("a", 12)),  # shares quote()'s 'a' with the two above
    ("UPDATE kv SET v = v + 100 WHERE k = ?", ("a\x00b",)),
    ("DELETE FROM kv WHERE k = ?", ("a\x00c",)),
    ("DELETE FROM kv WHERE k = ?", ("seed\x00gone",)),
    ("INSERT OR REPLACE INTO kv VALUES (?, ?)", ("seed\x00kept", 20)),
    ("UPDATE kv SET k = ? WHERE k = ?", ("moved\x00here", "a")),  # a key change
    ("REPLACE INTO pair VALUES (?, ?, ?, ?)", ("z", 9, "u\x001", "took u1")),  # deletes ('p\0q', 1)
    ("INSERT OR REPLACE INTO pair VALUES (?, ?, ?, ?)", ("p\x00q", 2, "u2", "replaced")),
    ("UPDATE pair SET a = ? WHERE b = 2", ("p\x00r",)),
    ("INSERT OR REPLACE INTO plain VALUES (?, ?)", ("r\x00s", 2)),  # rowid table: keyed by rowid
    ("INSERT INTO plain VALUES (?, ?)", ("t\x00u", 3)),
]


def nul_project(root: Path):
    import textwrap

    import apsw
    from conftest import Project, write_config

    project = Project(root)
    write_config(root)
    project.schemas.mkdir()
    project.data.mkdir()
    (project.schemas / "001_v1.1.0_add_notes.sql").write_text(
        "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);\n"
    )
    conn = apsw.Connection(str(project.blue))
    conn.execute("PRAGMA journal_mode=WAL").get
    with conn:
        conn.execute(textwrap.dedent(NUL_SCHEMA))
        for sql, params in NUL_SEED:
            conn.execute(sql, params)
    conn.close()
    assert project.cli("init").code == 0
    return project


def nul_write(path: Path, writes) -> None:
    import apsw

    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READWRITE)
    try:
        for sql, params in writes:
            conn.execute(sql, params)
    finally:
        conn.close()


def nul_rows(path: Path) -> dict[str, list[tuple]]:
    """Every row by typeof and hex of each value: quote() would hide what follows a NUL."""
    spelled = lambda *cols: ", ".join(f"typeof({c}), hex({c})" for c in cols)  # noqa: E731
    return {
        "kv": rows(path, f"SELECT {spelled('k', 'v')} FROM kv ORDER BY hex(k)"),
        "pair": rows(path, f"SELECT {spelled('a', 'b', 'u', 'v')} FROM pair ORDER BY hex(a), b"),
        "plain": rows(path, f"SELECT _rowid_, {spelled('k', 'v')} FROM plain ORDER BY _rowid_"),
    }


def test_nul_text_keys_written_on_blue_during_prepare_reach_green(tmp_path):
    project = nul_project(tmp_path)
    assert project.cli("prepare").code == 0
    nul_write(project.blue, NUL_WRITES)
    result = project.cli("cutover")
    assert result.code == 0, result.err
    expected = nul_rows(project.blue)
    assert ("text", b"moved\x00here".hex().upper()) in [r[:2] for r in expected["kv"]]  # the NUL kept
    assert nul_rows(project.gen(2)) == expected


def test_nul_text_keys_written_on_green_in_the_revert_window_are_carried_back(tmp_path):
    project = nul_project(tmp_path)
    assert project.cli("deploy").code == 0
    nul_write(project.gen(2), NUL_WRITES)
    result = project.cli("revert")
    assert result.code == 0, result.err
    assert nul_rows(project.blue) == nul_rows(project.gen(2))


def test_key_encoding_is_quote_for_every_value_without_a_nul(tmp_path):
    """Sync scripts read row_key: only NUL-holding text is spelled differently."""
    import apsw

    from bluegreen.engine import capture
    from bluegreen.engine.db import user_tables

    conn = apsw.Connection(str(tmp_path / "k.db"))
    conn.execute("CREATE TABLE w(k PRIMARY KEY) WITHOUT ROWID; CREATE TABLE r(id INTEGER PRIMARY KEY)")
    values = [1, -5, 2.5, -0.0, 1e300, "plain", "it's", "", "ü😀", b"\x00\x01", b"", "x\x00y"]
    conn.executemany("INSERT INTO w VALUES (?)", [(v,) for v in values])
    tables = {t.name: t for t in user_tables(conn)}
    keyed = capture.key_expression(tables["w"], "w")
    for value in values:
        (got,) = conn.execute(f"SELECT {keyed} FROM w WHERE k IS ?", (value,)).fetchone()
        (quoted,) = conn.execute("SELECT quote(?)", (value,)).fetchone()
        if isinstance(value, str) and "\x00" in value:
            assert got == f"CAST(X'{value.encode().hex().upper()}' AS TEXT)"
            assert conn.execute(f"SELECT k = {got} FROM w WHERE k IS ?", (value,)).fetchone() == (1,)
        else:
            assert got == quoted, value
    assert capture.key_expression(tables["r"], "NEW") == f"NEW.{tables['r'].rowid_alias}"  # rowid: unchanged


# ==================================================================================================
# 6. offline deploy fences blue as cutover does: one schema edit, every table, fence version right
# ==================================================================================================
def test_offline_deploy_fences_a_blue_holding_capture_in_one_edit(toy_ready):
    """A blue restored from a backup taken while it was captured still holds capture's triggers,
    table and BLOB guard. The offline deploy drops the capture triggers and adds the fence in one
    sqlite_schema edit (hazard 18), keeps the guard instead of rebuilding it index by index, and
    fences every table, bluegreen's own included, as cutover's fence does."""
    import json

    from bluegreen.engine import barrier, capture

    project = toy_ready
    with barrier.holding(project.blue, 5000) as conn:
        capture.install_capture(conn, guard=True)
    guard = rows(project.blue, "SELECT name, rootpage FROM sqlite_schema WHERE name LIKE '_bluegreen_guard%'")
    assert guard
    (before,) = rows(project.blue, "PRAGMA schema_version")
    result = project.cli("deploy", "--offline")
    assert result.code == 0, result.err
    (after,) = rows(project.blue, "PRAGMA schema_version")
    assert after[0] - before[0] == 2  # DROP TABLE of the capture table, then one trigger edit
    names = {n for (n,) in rows(project.blue, "SELECT name FROM sqlite_schema WHERE name LIKE '_bluegreen%'")}
    assert not {n for n in names if n.startswith(capture.CAPTURE_PREFIX)}
    assert capture.CAPTURE_TABLE not in names
    assert rows(project.blue, "SELECT name, rootpage FROM sqlite_schema WHERE name LIKE '_bluegreen_guard%'") == guard
    conn = project.connect(project.blue)
    try:
        fenced = {s for (s,) in conn.execute("SELECT sql FROM sqlite_schema WHERE name LIKE '_bluegreen_fence%'")}
        assert fenced == set(capture.fence_sql(conn, 2))  # every table, _bluegreen_meta too
    finally:
        conn.close()
    state = json.loads((project.data / ".bluegreen" / "state.json").read_text())
    assert state["fences"]["app.db"] == after[0]
    assert project.cli("revert").code == 0  # the fence's recorded version is right: revert accepts it
    assert rows(project.blue, "SELECT count(*) FROM sqlite_schema WHERE name LIKE '_bluegreen_fence%'") == [(0,)]


# ==================================================================================================
# 7. status's `next` line never advises a command that refuses in that state
# ==================================================================================================
def crashed(project, *args: str, at: str):
    import subprocess
    import sys

    env = {**os.environ, "BLUEGREEN_CRASH_AT": at}
    done = subprocess.run(
        [sys.executable, "-m", "bluegreen", "--config", str(project.config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == -9, (done.returncode, done.stderr)


def offline_fenced_but_not_journaled(project) -> None:
    """deploy --offline killed between its fence's COMMIT and the journal: blue is fenced, the
    journal still says preparing (resume knows this case: it finishes the swap)."""
    import json

    crashed(project, "deploy", "--offline", at="deploy:fenced")
    path = project.data / ".bluegreen" / "state.json"
    state = json.loads(path.read_text())
    state.update(phase="preparing", step="barrier")
    state["fences"].pop("app.db")
    path.write_text(json.dumps(state))


def unlocked_state(project) -> dict:
    """disk_state but the controller lock, which holds the last holder's pid and time."""
    return {k: v for k, v in disk_state(project.root).items() if not k.endswith(".bluegreen/lock")}


def test_status_after_a_fence_the_journal_missed_does_not_advise_abort(toy_ready):
    project = toy_ready
    offline_fenced_but_not_journaled(project)
    status = project.cli("status", "--json")
    assert status.code == 0, status.err
    assert "abort" not in status.json["next"] and "resume" in status.json["next"]
    before = unlocked_state(project)
    refused = project.cli("abort")
    assert refused.code == 2 and "too late to abort" in refused.err  # what status must agree with
    assert unlocked_state(project) == before
    assert project.cli("resume").code == 0
    assert project.cli("status", "--json").json["phase"] == "cut_over"


def test_status_with_the_prepared_generation_gone_advises_what_works(toy_ready):
    from helpers import remove_database

    project = toy_ready
    assert project.cli("prepare").code == 0
    remove_database(project.gen(2))
    status = project.cli("status", "--json")
    assert status.code == 2
    assert status.json["next"].startswith("run `bluegreen abort`")  # not "restore": nothing to restore
    assert project.cli("abort").code == 0  # and abort indeed works
    assert project.cli("status", "--json").json["phase"] == "idle"


def test_status_with_green_gone_past_blues_fence_never_advises_abort(toy_ready):
    from helpers import remove_database

    project = toy_ready
    crashed(project, "deploy", at="deploy:fenced")
    remove_database(project.gen(2))
    status = project.cli("status", "--json")
    assert status.code == 2
    assert "abort" in status.json["next"] and "abort refuses" in status.json["next"]
    assert "restore app.gen2.db" in status.json["next"] and "resume" in status.json["next"]
    before = unlocked_state(project)
    assert project.cli("abort").code == 2  # what status must agree with
    assert unlocked_state(project) == before
