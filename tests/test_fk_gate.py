"""The foreign-key gate compares like with like (hazard 17, issue 10 item 6).

With foreign keys off (SQLite's default) an application may delete a parent row, or point a child
at nothing, while green is being built. Green mirrors blue faithfully, so it has the same
violations; the gate used to compare green after every catch-up with blue at the snapshot and
refused ("rows newly violating foreign keys"), which intermittently blocked online deploys of the
shipped example. Now green's violations are compared with blue's at the same capture position.
A migration that itself breaks a reference is still refused.

Writers are real processes writing blue through their own apsw connection (foreign keys off);
they start only once the journal says the snapshot is done (step `migrate`), so every reference
they break is one the snapshot did not have. A pre-cutover hook breaks one more just before the
cutover's catch-up, so the cutover's own validation meets it too. Everything is checked on the
files, row by row.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import helpers
import pytest
from conftest import Project, disk_state, rows
from helpers import error_line, ok, pointer_active

# The writer: waits until the snapshot is taken, then breaks references on blue until blue's
# fence refuses it (or it is told to stop). Each write is its own transaction.
WRITER = textwrap.dedent(
    r"""
    import json, os, random, sys, time
    import apsw

    blue, state, stop, kind = sys.argv[1:5]
    parent = os.getppid()

    def step():
        try:
            with open(state) as handle:
                return json.load(handle).get("step", "")
        except (OSError, ValueError):
            return ""

    while step() not in ("migrate", "catch_up", "validate", "validated") and not os.path.exists(stop):
        time.sleep(0.001)
    conn = apsw.Connection(blue)
    conn.set_busy_timeout(20_000)
    rng = random.Random(7)
    done = 0
    TOY = [
        "INSERT INTO parents(name) VALUES ('new parent')",
        "INSERT INTO children(parent_id, note) SELECT id, 'new child' FROM parents ORDER BY random() LIMIT 1",
        # delete a parent that still has children: they now point at nothing
        "DELETE FROM parents WHERE id = (SELECT parent_id FROM children WHERE parent_id IN "
        "(SELECT id FROM parents) ORDER BY random() LIMIT 1)",
        "UPDATE children SET parent_id = 900000 + id WHERE id = (SELECT id FROM children ORDER BY random() LIMIT 1)",
    ]
    SHIPPED = [
        "DELETE FROM content_v1 WHERE id = (SELECT content_id FROM downloads_v1 WHERE content_id IN "
        "(SELECT id FROM content_v1) ORDER BY random() LIMIT 1)",
        "INSERT INTO downloads_v1(content_id, status, progress) VALUES (800000 + abs(random() % 1000), 'queued', 0)",
        "UPDATE downloads_v1 SET status = 'downloading' WHERE id = (SELECT id FROM downloads_v1 ORDER BY random() LIMIT 1)",
    ]
    writes = TOY if kind == "toy" else SHIPPED
    while not os.path.exists(stop) and os.getppid() == parent:
        try:
            conn.execute(rng.choice(writes))
        except apsw.SQLError as exc:
            if "bluegreen_fenced" in str(exc):
                break  # blue is fenced: from here on every write would be refused
            raise
        done += 1
        time.sleep(0.002)
    print(done, flush=True)
    """
)

# The pre-cutover hook: one more broken reference, after prepare validated and before the
# cutover's catch-up and validation; it records which parent it deleted.
HOOK = textwrap.dedent(
    r"""
    import sys
    import apsw

    blue, parent_table, child_table, column, out = sys.argv[1:6]
    conn = apsw.Connection(blue)
    conn.set_busy_timeout(20_000)
    gone = conn.execute(
        f"SELECT {column} FROM {child_table} WHERE {column} IN (SELECT id FROM {parent_table}) ORDER BY {column} LIMIT 1"
    ).get
    conn.execute(f"DELETE FROM {parent_table} WHERE id = ?", (gone,))
    open(out, "w").write(str(gone))
    """
)

PARENTS_AND_CHILDREN = (
    "CREATE TABLE parents(id INTEGER PRIMARY KEY, name TEXT NOT NULL);"
    "CREATE TABLE children(id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parents(id), note TEXT);"
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300) "
    "INSERT INTO parents(id, name) SELECT i, 'parent ' || i FROM n;"
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 900) "
    "INSERT INTO children(parent_id, note) SELECT 1 + i % 300, 'child ' || i FROM n;"
)
# Long enough (a few hundred ms) that the writer breaks references between snapshot and catch-up;
# it touches no table blue has, so it needs no sync script.
SLOW_HARMLESS_MIGRATION = (
    "CREATE INDEX children_parent ON children(parent_id);\n"
    "CREATE TABLE audit AS WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 400000) "
    "SELECT n FROM r;\n"
)


# -- helpers ----------------------------------------------------------------------------------------
def make_project(root: Path, hook: str = "") -> Project:
    migrations = {"001_v1.1.0_audit.sql": SLOW_HARMLESS_MIGRATION}
    return helpers.make_project(root, PARENTS_AND_CHILDREN, migrations, config=hook)


def hook_config(project_root: Path, parent: str, child: str, column: str) -> str:
    """[hooks] pre-cutover running HOOK on blue (TOML literal string: the paths keep their quotes)."""
    script = project_root / "break_one_reference.py"
    script.write_text(HOOK)
    blue, out = project_root / "data" / "app.db", project_root / "hook_deleted.txt"
    command = f'"{sys.executable}" "{script}" "{blue}" {parent} {child} {column} "{out}"'
    return f"[hooks]\npre-cutover = '{command}'\n"


class Writer:
    def __init__(self, project: Project, kind: str):
        self.stop = project.root / "writer.stop"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                str(project.blue),
                str(project.data / ".bluegreen" / "state.json"),
                str(self.stop),
                kind,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish(self, timeout: float = 60) -> int:
        """Waits for the writer to meet blue's fence; returns how many writes it made."""
        out, err = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode == 0, err
        return int(out.strip())

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.stop.write_text("stop")
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def writers():
    started: list[Writer] = []

    def start(project: Project, kind: str) -> Writer:
        writer = Writer(project, kind)
        started.append(writer)
        return writer

    yield start
    for writer in started:
        writer.kill()


def violations(path: Path) -> set[tuple]:
    return {(t, r, p) for t, r, p, _ in rows(path, "PRAGMA foreign_key_check")}


def table(path: Path, name: str) -> list[tuple]:
    return rows(path, f"SELECT * FROM {name} ORDER BY id")


# ==================================================================================================
# the application breaks references while green is built: the deploy goes through
# ==================================================================================================
def test_a_writer_deleting_parents_during_prepare_and_cutover_never_refuses_the_deploy(tmp_path, writers):
    project = make_project(tmp_path, hook_config(tmp_path, "parents", "children", "parent_id"))
    assert violations(project.blue) == set()  # the snapshot will have none: the writer has not started
    writer = writers(project, "toy")

    ok(project.cli("prepare", "--json"))
    # Green now holds references the application broke after the snapshot (nothing writes green
    # after prepare's last catch-up): prepare's validation met them and passed.
    at_prepare = violations(project.gen(2))
    assert at_prepare, "the writer broke no reference while prepare ran: the test proves nothing"

    ok(project.cli("cutover", "--json"))
    made = writer.finish()
    assert made > 0
    assert pointer_active(project) == "app.gen2.db"
    # The hook's deletion came after prepare and before the cutover's validation.
    gone = int((tmp_path / "hook_deleted.txt").read_text())
    orphans = {r for t, r, p in violations(project.gen(2)) if t == "children"}
    assert rows(project.gen(2), f"SELECT count(*) FROM children WHERE parent_id = {gone}")[0][0] > 0
    assert {r for (r,) in rows(project.gen(2), f"SELECT id FROM children WHERE parent_id = {gone}")} <= orphans
    # Green is blue, row by row, as of blue's fence (the writer stopped at it).
    for name in ("parents", "children"):
        assert table(project.gen(2), name) == table(project.blue, name)
    assert violations(project.gen(2)) == violations(project.blue) != set()
    assert rows(project.gen(2), "PRAGMA integrity_check") == [("ok",)]


def test_the_shipped_example_deploys_while_an_application_breaks_references(shipped, writers):
    project = shipped
    with project.config.open("a") as handle:
        handle.write(hook_config(project.root, "content_v1", "downloads_v1", "content_id"))
    before = violations(project.blue)  # the generated v1 data has orphans of its own
    writer = writers(project, "shipped")

    prepared = ok(project.cli("prepare", "--json"))
    assert violations(project.gen(2)) - before, "the writer broke no reference while prepare ran"
    fk = next(c for c in prepared["validation"] if c["source"] == "foreign_key_check")
    assert fk["status"] == "PASS" and "already in blue at capture position" in fk["actual"]

    ok(project.cli("cutover", "--json"))
    assert writer.finish() > 0
    assert pointer_active(project) == "app.gen2.db"
    gone = int((project.root / "hook_deleted.txt").read_text())
    assert rows(project.gen(2), f"SELECT count(*) FROM content_v1 WHERE id = {gone}") == [(0,)]
    # v1 tables equal blue row by row; their violations are blue's; the v2 tables have none (orphan
    # downloads keep content_id NULL and the v1 value in orphan_content_id).
    for name in ("content_v1", "downloads_v1"):
        assert table(project.gen(2), name) == table(project.blue, name)
    assert violations(project.gen(2)) == violations(project.blue)
    assert {t for t, _, _ in violations(project.gen(2))} <= {"downloads_v1"}
    assert rows(project.gen(2), "SELECT count(*) FROM downloads WHERE orphan_content_id = ?", (gone,))[0][0] > 0
    assert rows(project.gen(2), "PRAGMA integrity_check") == [("ok",)]


# ==================================================================================================
# a migration that breaks a reference is still refused
# ==================================================================================================
BREAKING = {
    "dangling child rows": (
        "001_v1.1.0_notes.sql",
        "CREATE TABLE notes(id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parents(id));\n"
        "INSERT INTO notes VALUES (1, 1), (2, 424242);\n",
        "notes rowid 2 -> parents",
    ),
    "a reference moved to nothing": (
        "001_v1.1.0_renumber.sql",
        "CREATE TABLE extra(id INTEGER PRIMARY KEY);\nUPDATE children SET parent_id = parent_id + 1000 WHERE id = 5;\n",
        "children rowid 5 -> parents",
    ),
}


@pytest.mark.parametrize("case", list(BREAKING))
@pytest.mark.parametrize("command", [("prepare",), ("deploy",), ("deploy", "--offline")])
def test_a_migration_that_breaks_a_reference_is_refused(tmp_path, command, case):
    project = make_project(tmp_path)
    name, text, words = BREAKING[case]
    (project.schemas / "001_v1.1.0_audit.sql").unlink()
    (project.schemas / name).write_text(text)
    if "UPDATE children" in text:  # it writes a table blue keeps: online it needs a sync script
        (project.schemas / name.replace(".sql", "_sync.sql")).write_text(
            "UPDATE children SET parent_id = parent_id + 1000 WHERE id = 5 "
            "AND id IN (SELECT row_key FROM temp.bluegreen_changes WHERE table_name = 'children');\n"
        )
    before = disk_state(project.data)

    result = project.cli(*command, "--json")

    assert result.code == 3, (result.out, result.err)
    line = error_line(result)
    assert "validation refused generation 2" in line and "rows newly violating foreign keys" in line
    assert words in line
    assert result.json["ok"] is False and result.json["exit_code"] == 3
    assert pointer_active(project) == "app.db"
    assert disk_state(project.data) == before
    assert not project.gen(2).exists()


def test_a_breaking_migration_is_refused_even_while_the_application_breaks_references(tmp_path, writers):
    """The application's violations are not counted; the migration's are, and are the ones named."""
    project = make_project(tmp_path)
    (project.schemas / "002_v1.2.0_notes.sql").write_text(BREAKING["dangling child rows"][1])
    writer = writers(project, "toy")
    result = project.cli("deploy", "--json")
    writer.kill()
    assert result.code == 3, (result.out, result.err)
    line = error_line(result)
    assert "notes rowid 2 -> parents" in line and "already in blue at capture position" in line
    assert "children rowid" not in line.split("already in blue")[0]  # the application's are not counted
    assert pointer_active(project) == "app.db"
    assert not project.gen(2).exists()
    assert json.loads((project.data / ".bluegreen" / "state.json").read_text())["phase"] == "idle"


# ==================================================================================================
# what blue already had never refuses; a declaration SQLite cannot check is named, not a raw error
# ==================================================================================================
@pytest.mark.parametrize("command", [("deploy",), ("deploy", "--offline")])
def test_violations_and_uncheckable_declarations_blue_already_has_never_refuse(tmp_path, command):
    project = make_project(tmp_path)
    conn = project.connect()
    for _ in conn.execute(
        "UPDATE children SET parent_id = 5000 WHERE id = 1;"  # an orphan from before bluegreen
        "CREATE TABLE tags(label TEXT);"  # not unique: SQLite cannot check references to it
        "CREATE TABLE tagged(child_id INTEGER, label TEXT REFERENCES tags(label));"
        "INSERT INTO tags VALUES ('a'); INSERT INTO tagged VALUES (1, 'a');"
    ):
        pass
    conn.close()
    result = project.cli(*command, "--json")
    assert result.code == 0, (result.out, result.err)
    assert pointer_active(project) == "app.gen2.db"
    for name in ("parents", "children"):
        assert table(project.gen(2), name) == table(project.blue, name)


@pytest.mark.parametrize("command", [("deploy",), ("deploy", "--offline")])
def test_a_migration_adding_an_uncheckable_reference_is_refused_by_name(tmp_path, command):
    """Before: `SQLite error: foreign key mismatch`, exit 1. Now the gate names the table."""
    project = make_project(tmp_path)
    (project.schemas / "001_v1.1.0_audit.sql").write_text(
        "CREATE TABLE labels(name TEXT);\nCREATE TABLE labelled(id INTEGER PRIMARY KEY, name TEXT REFERENCES labels(name));\n"
    )
    before = disk_state(project.data)
    result = project.cli(*command, "--json")
    assert result.code == 3, (result.out, result.err)
    line = error_line(result)
    assert 'labelled: foreign key mismatch - "labelled" referencing "labels"' in line
    assert "not PRIMARY KEY or UNIQUE" in line
    assert pointer_active(project) == "app.db"
    assert disk_state(project.data) == before
