"""The schema zoo (hazards 5 and 13): every table shape a REPLACE can delete a row through ×
inserts, updates, deletes, INSERT OR REPLACE, UPDATE OR REPLACE, UPSERT and key changes, on blue
while a generation is prepared and on green during the revert window, by hand and by writer
processes, with kill -9 crash points of the controller; each time every zoo table is compared row
by row (rowid, every column, exact types via quote()), blue against green.

The migration only adds an unrelated table, so every zoo table is same-shape and generic replay
carries it. BLUEGREEN_ZOO_SOAK=N runs N more seeds of the random writers, for longer.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import apsw
import pytest
from conftest import Project, rows, write_config
from helpers import Writer, bluegreen, make_project, pointer_active

from bluegreen.tools.zoo_data import (
    FK_SHAPES,
    FOLLOW_UP,
    SHAPES,
    WITHOUT_ROWID,
    ZOO_SCHEMA,
    ZOO_SEED,
    ZOO_TABLES,
    apply,
    random_operation,
)
from bluegreen.tools.zoo_data import ODD as ODD_NAME

SOAK = int(os.environ.get("BLUEGREEN_ZOO_SOAK", "0") or 0)
MIGRATION = {"001_v1.1.0_add_notes.sql": "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);\n"}


# -- helpers --------------------------------------------------------------------------------------
def zoo_project(root: Path) -> Project:
    return make_project(root, ZOO_SCHEMA + ZOO_SEED, MIGRATION)


def snapshot(path: Path) -> dict[str, list[tuple]]:
    """Every zoo table's rows: rowid (rowid tables), every column incl. generated, as quote()d SQL
    (so 1, 1.0, '1' and x'31', and 0.0 and -0.0, all differ); and the AUTOINCREMENT counters."""
    found = {}
    for table in ZOO_TABLES:
        quoted = '"' + table.replace('"', '""') + '"'
        columns = [c for (c,) in rows(path, "SELECT name FROM pragma_table_xinfo(?) WHERE hidden <> 1", (table,))]
        select = ", ".join(f'quote("{c.replace(chr(34), chr(34) * 2)}")' for c in columns)
        rowid = "" if table in WITHOUT_ROWID else "_rowid_, "
        found[table] = sorted(rows(path, f"SELECT {rowid}{select} FROM {quoted}"), key=repr)
    found["sqlite_sequence"] = rows(path, "SELECT name, seq FROM sqlite_sequence WHERE name IN ('autoinc') ORDER BY 1")
    return found


def assert_same(blue: Path, green: Path) -> None:
    mine, theirs = snapshot(blue), snapshot(green)
    differ = {t: {"blue": mine[t], "green": theirs[t]} for t in mine if mine[t] != theirs[t]}
    assert not differ, differ


def app(path: Path, sql: str, foreign_keys: bool = False) -> None:
    """Application writes, autocommit, triggers on (what the application's own connection does)."""
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READWRITE)
    conn.set_busy_timeout(10_000)
    conn.execute(f"PRAGMA foreign_keys = {int(foreign_keys)}")
    try:
        for statement in [s for s in sql.split(";") if s.strip()]:
            assert apply(conn, statement), f"refused: {statement}"
    finally:
        conn.close()


def ok(result) -> dict:
    assert result.code == 0, (result.code, result.out, result.err)
    assert "Traceback" not in result.err
    return result.json


def random_writes(path: Path, seed: int, count: int) -> None:
    rng = random.Random(seed)
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READWRITE)
    conn.set_busy_timeout(10_000)
    try:
        for i in range(count):
            apply(conn, *random_operation(rng, i))
    finally:
        conn.close()


class ZooWriter(Writer):
    """The writer program in zoo mode: random zoo operations on one file until it is fenced or stopped."""

    def __init__(self, path: Path, tmp: Path, seed: int):
        super().__init__(None, tmp, seed, "zoo", target=path, name="zoo")

    def written(self) -> int:
        """Statements made so far (logged every 10, and at the end)."""
        return max((e["written"] for e in self.records() if "written" in e), default=0)

    def wait_for_written(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.written() < count:
            assert self.process.poll() is None, self.stderr()
            assert time.monotonic() < deadline, "zoo writer made no progress"
            time.sleep(0.01)

    def finish(self, timeout: float = 60) -> int:
        """Wait for the writer to meet the fence (or stop it); its exit must be clean."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.stop(timeout=30)
        assert self.process.returncode == 0, self.stderr()
        return self.written()


# -- one deterministic write per shape ------------------------------------------------------------
@pytest.mark.parametrize("write", list(SHAPES.values()), ids=list(SHAPES))
def test_each_shape_on_blue_during_prepare_reaches_green(tmp_path, write):
    """The write lands on blue between prepare and cutover; green must hold exactly blue's rows
    (no row a REPLACE deleted comes back, and replay never wedges on the conflict)."""
    project = zoo_project(tmp_path)
    ok(project.cli("prepare", "--json"))
    app(project.blue, write + ";" + FOLLOW_UP)
    ok(project.cli("cutover", "--json"))
    assert pointer_active(project) == "app.gen2.db"
    assert_same(project.blue, project.gen(2))


@pytest.mark.parametrize("write", list(SHAPES.values()), ids=list(SHAPES))
def test_each_shape_on_green_during_the_revert_window_is_carried_back(tmp_path, write):
    project = zoo_project(tmp_path)
    ok(project.cli("deploy", "--json"))
    app(project.gen(2), write + ";" + FOLLOW_UP)
    ok(project.cli("revert", "--json"))
    assert pointer_active(project) == "app.db"
    assert_same(project.gen(2), project.blue)


@pytest.mark.parametrize("write", list(FK_SHAPES.values()), ids=list(FK_SHAPES))
def test_replace_cascading_through_foreign_keys_on_blue_and_on_green(tmp_path, write):
    """With foreign_keys on, a REPLACE's deletion cascades to child rows (ON DELETE CASCADE, SET
    NULL, ON UPDATE CASCADE): the children's own triggers fire, so capture sees them too."""
    project = zoo_project(tmp_path)
    ok(project.cli("prepare", "--json"))
    app(project.blue, write, foreign_keys=True)
    ok(project.cli("cutover", "--json"))
    assert_same(project.blue, project.gen(2))
    app(
        project.gen(2),
        "INSERT OR REPLACE INTO parents VALUES (9, 'c'); INSERT OR REPLACE INTO parents VALUES (2, 'z')",
        foreign_keys=True,
    )
    ok(project.cli("revert", "--json"))
    assert_same(project.gen(2), project.blue)


def test_all_shapes_at_once_then_deleted_again(tmp_path):
    """Every shape's write in one go, then each REPLACE's new row deleted: the keys the REPLACEs
    freed and the keys they took are both gone on blue, and must be gone on green."""
    project = zoo_project(tmp_path)
    ok(project.cli("prepare", "--json"))
    for write in SHAPES.values():
        app(project.blue, write)
    app(
        project.blue,
        "DELETE FROM settings WHERE key = 'a'; DELETE FROM users WHERE id = 10; DELETE FROM tags WHERE id = 10",
    )
    ok(project.cli("cutover", "--json"))
    assert_same(project.blue, project.gen(2))


# -- random operations ----------------------------------------------------------------------------
SEEDS = list(range(3 + SOAK))


@pytest.mark.parametrize("seed", SEEDS)
def test_random_zoo_writes_on_blue_then_on_green(tmp_path, seed):
    """Random writes between prepare and cutover, then on green, then a revert: equal both times."""
    project = zoo_project(tmp_path)
    count = 300 * (1 + 3 * bool(SOAK))
    ok(project.cli("prepare", "--json"))
    random_writes(project.blue, seed, count)
    ok(project.cli("cutover", "--json"))
    assert_same(project.blue, project.gen(2))
    random_writes(project.gen(2), seed + 1000, count)
    ok(project.cli("revert", "--json"))
    assert_same(project.gen(2), project.blue)


@pytest.mark.parametrize("seed", SEEDS[:1] + SEEDS[3:])
def test_a_zoo_writer_process_during_deploy_and_revert(tmp_path, seed):
    """A writer process runs random zoo operations on blue through the whole deploy until the
    fence stops it; then another on green until the revert's fence stops it."""
    project = zoo_project(tmp_path)
    writer = ZooWriter(project.blue, tmp_path, seed)
    writer.wait_for_written(50)
    ok(project.cli_process("deploy", "--json"))
    assert writer.finish() >= 50
    assert_same(project.blue, project.gen(2))
    writer = ZooWriter(project.gen(2), tmp_path, seed + 1000)
    writer.wait_for_written(50)
    ok(project.cli_process("revert", "--json"))
    assert writer.finish() >= 50
    assert_same(project.gen(2), project.blue)


CUTOVER_POINTS = ["cutover:catch_up", "cutover:fenced", "cutover:swapped"]
REVERT_POINTS = ["revert:carry_back", "revert:fenced", "revert:swapped", "revert:unfenced"]


@pytest.mark.parametrize("point", CUTOVER_POINTS)
def test_cutover_killed_with_a_zoo_writer_then_resumed(tmp_path, point):
    project = zoo_project(tmp_path)
    ok(project.cli("prepare", "--json"))
    writer = ZooWriter(project.blue, tmp_path, 7)
    writer.wait_for_written(50)
    crashed = bluegreen(project, "cutover", crash_at=point)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    if point == "cutover:catch_up":
        writer.wait_for_written(writer.written() + 20)  # blue still active: the writer goes on
    resumed = bluegreen(project, "resume")
    assert resumed.returncode == 0, resumed.stderr
    writer.finish()
    assert pointer_active(project) == "app.gen2.db"
    assert_same(project.blue, project.gen(2))


@pytest.mark.parametrize("point", REVERT_POINTS)
def test_revert_killed_with_a_zoo_writer_on_green_then_resumed(tmp_path, point):
    """Every shape's write on green, then a writer process on green through the killed revert and
    its resume, until green's fence stops it."""
    project = zoo_project(tmp_path)
    ok(project.cli("deploy", "--json"))
    for write in SHAPES.values():
        app(project.gen(2), write)
    writer = ZooWriter(project.gen(2), tmp_path, 99)
    writer.wait_for_written(50)
    crashed = bluegreen(project, "revert", crash_at=point)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    resumed = bluegreen(project, "resume")
    assert resumed.returncode == 0, resumed.stderr
    writer.finish()
    assert pointer_active(project) == "app.db"
    assert_same(project.gen(2), project.blue)


# -- what capture cannot evaluate is refused at prepare, before anything changes --------------------
def _custom_project(root: Path, sql: str) -> Project:
    project = Project(root)
    write_config(root)
    project.schemas.mkdir()
    project.data.mkdir()
    for name, text in MIGRATION.items():
        (project.schemas / name).write_text(text)
    conn = apsw.Connection(str(project.blue))
    conn.create_collation("app_order", lambda a, b: (a > b) - (a < b))
    conn.create_scalar_function("app_norm", lambda v: (v or "").strip().lower(), 1, deterministic=True)
    conn.execute("PRAGMA journal_mode=WAL").get
    with conn:
        for _ in conn.execute(sql):
            pass
    conn.close()
    assert project.cli("init").code == 0
    return project


@pytest.mark.parametrize(
    "index, named",
    [
        ("CREATE UNIQUE INDEX t_label ON t(label COLLATE app_order)", "collation 'app_order'"),
        ("CREATE UNIQUE INDEX t_label ON t(app_norm(label))", "app_norm(label)"),
        ("CREATE UNIQUE INDEX t_label ON t(label) WHERE app_norm(label) <> ''", "app_norm(label)"),
    ],
    ids=["application collation", "application function", "application function in WHERE"],
)
def test_an_index_only_the_application_can_evaluate_is_refused_at_prepare(tmp_path, index, named):
    from conftest import disk_state

    project = _custom_project(
        tmp_path,
        f"CREATE TABLE t(id INTEGER PRIMARY KEY, label TEXT); {index}; INSERT INTO t(label) VALUES ('a'), ('b');",
    )
    before = disk_state(project.data)
    for command in ("prepare", "deploy"):
        result = project.cli(command, "--json")
        assert result.code == 2, (result.code, result.out, result.err)
        assert "Traceback" not in result.err
        lines = [line for line in result.err.splitlines() if line.startswith("bluegreen: error:")]
        assert len(lines) == 1, result.err
        assert "table 't'" in lines[0] and "'t_label'" in lines[0] and named in lines[0], lines[0]
        assert "before deploying" in lines[0] or "built-in collation" in lines[0]
        assert disk_state(project.data) == before


def test_index_definitions_with_odd_quoting_are_read_exactly(tmp_path):
    """Commas, parentheses and keywords inside strings, comments and quoted names do not split
    an index's terms; a REPLACE through that index is captured."""
    project = _custom_project(
        tmp_path,
        textwrap.dedent("""\
        CREATE TABLE "c,(odd)"(id INTEGER PRIMARY KEY, "la,bel" TEXT, [x)y] TEXT);
        CREATE UNIQUE INDEX "i, (1)" ON "c,(odd)"( substr("la,bel", 1, 3) /* a, ) comment */ COLLATE NOCASE DESC,
          [x)y] -- trailing, ) comment
          ) WHERE "la,bel" <> 'x,) WHERE' AND 1e-3 > 0;
        INSERT INTO "c,(odd)" VALUES (1, 'abcdef', 'k'), (2, 'xyz', 'k');
        """),
    )
    ok(project.cli("prepare", "--json"))
    app(project.blue, """INSERT OR REPLACE INTO "c,(odd)" VALUES (3, 'ABCzzz', 'k')""")
    ok(project.cli("cutover", "--json"))
    table = '"c,(odd)"'
    assert (
        rows(project.gen(2), f"SELECT * FROM {table} ORDER BY id")
        == rows(project.blue, f"SELECT * FROM {table} ORDER BY id")
        == [(2, "xyz", "k"), (3, "ABCzzz", "k")]
    )


def test_one_replace_trigger_per_table_and_event(tmp_path):
    """The per-write cost stays bounded: one BEFORE INSERT and one BEFORE UPDATE trigger per table
    whatever its number of uniqueness indexes, UPDATE OF the indexed columns when every index is on
    plain columns, none where no REPLACE can delete a row under another key."""
    project = zoo_project(tmp_path)
    ok(project.cli("prepare", "--json"))
    triggers = rows(
        project.blue,
        "SELECT tbl_name, sql FROM sqlite_schema WHERE type = 'trigger' "
        "AND name LIKE '\\_bluegreen\\_cap\\_r%' ESCAPE '\\'",
    )
    per_table: dict[str, list[str]] = {}
    for table, sql in triggers:
        per_table.setdefault(table, []).append(sql)
    assert all(len(sqls) == 2 for sqls in per_table.values()), per_table
    assert "nokey" not in per_table and "wr_single" not in per_table  # the rowid / an exactly-encoded key
    assert {"settings", "intpk", "descpk", "comppk", "wr_nocase", "wr_untyped", "tags", "handles", ODD_NAME} <= set(
        per_table
    )
    assert any('BEFORE UPDATE OF "key" ON "settings"' in sql for sql in per_table["settings"])
    assert any('BEFORE UPDATE OF "a", "b", "u" ON "wr_comp"' in sql for sql in per_table["wr_comp"])
    assert any('BEFORE UPDATE ON "tags"' in sql for sql in per_table["tags"])  # an expression: every update
    assert any('BEFORE UPDATE ON "gen"' in sql for sql in per_table["gen"])  # a generated column: every update
