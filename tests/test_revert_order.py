"""Revert's order (fence green → unfence blue → swap), abort's refusal once blue is fenced, and DDL
made on green during the revert window (hazards 14 and 16)."""

from __future__ import annotations

import signal
import tomllib
from pathlib import Path

import apsw
import pytest
from conftest import disk_state, rows
from helpers import bluegreen

FENCED = "bluegreen_fenced_use_generation_"


def named(project) -> Path:
    return project.data / tomllib.loads(project.pointer.read_text())["active"]


def fenced(path: Path) -> bool:
    return bool(rows(path, "SELECT 1 FROM sqlite_schema WHERE name GLOB '_bluegreen_fence_*'"))


def try_insert(conn: apsw.Connection) -> str | None:
    """One write; the fence error's text, or None if it committed."""
    try:
        conn.execute("INSERT INTO items(name) VALUES ('probe')")
        return None
    except apsw.SQLError as exc:
        assert FENCED in str(exc), exc
        return str(exc)


# -- hazard 16: a file the pointer names is never unfenced under a connection ----------------------
CRASHES = [
    ("deploy", "deploy:fenced", "resume"),
    ("deploy", "deploy:fenced", "abort"),
    ("deploy", "deploy:swapped", "resume"),
    ("deploy --offline", "deploy:fenced", "abort"),
    ("revert", "revert:carry_back", "resume"),
    ("revert", "revert:fenced", "resume"),
    ("revert", "revert:unfenced", "resume"),
    ("revert", "revert:swapped", "resume"),
    ("revert", "revert:fenced", "revert"),
]


@pytest.mark.parametrize("command, point, recovery", CRASHES)
def test_a_connection_that_met_a_fence_on_the_named_file_is_never_stranded(toy_ready, command, point, recovery):
    """At the crash point, a connection on the file the pointer names tries a write. After the
    on-call's recovery, if the pointer still names that file, the same connection must be able to
    write: the fence it compiled against was never lifted under it; the pointer moved instead.
    (Before: `abort` after the fence, and `resume` of a revert killed after its swap, lifted the
    fence under it, and its retries failed for ever.)"""
    project = toy_ready
    if command == "revert":
        assert bluegreen(project, "deploy").returncode == 0
    assert bluegreen(project, *command.split(), crash_at=point).returncode == -signal.SIGKILL
    before = named(project)
    conn = project.connect(before)
    try_insert(conn)  # meets the fence if the named file has one
    done = bluegreen(project, recovery)
    if done.returncode == 2 and "bluegreen resume" in done.stderr:  # abort refused: the on-call resumes
        done = bluegreen(project, "resume")
    assert done.returncode == 0, done.stderr
    if named(project) == before:  # the same file: the same connection writes again
        assert try_insert(conn) is None, f"{before.name}: its fence was lifted under a connection that met it"
    else:  # the pointer moved: this file is fenced now, so the connection learns to reopen
        assert try_insert(conn) is not None
    conn.close()


def test_revert_keeps_the_pointer_on_green_until_blue_is_open(toy_ready):
    """Each journaled step of a revert, as the files show it after a kill there."""
    project = toy_ready
    assert bluegreen(project, "deploy").returncode == 0
    green = project.gen(2)
    seen = {}
    for point in ["revert:carry_back", "revert:fenced", "revert:unfenced", "revert:swapped"]:
        assert bluegreen(project, "revert", crash_at=point).returncode == -signal.SIGKILL
        seen[point] = (named(project).name, fenced(green), fenced(project.blue))
    assert seen == {
        "revert:carry_back": ("app.gen2.db", False, True),  # nothing committed yet
        "revert:fenced": ("app.gen2.db", True, True),  # green fenced; blue not written yet
        "revert:unfenced": ("app.gen2.db", True, False),  # blue holds everything and is open
        "revert:swapped": ("app.db", True, False),
    }
    done = bluegreen(project, "resume")
    assert done.returncode == 0, done.stderr
    assert named(project) == project.blue and project.cli("status", "--json").json["phase"] == "idle"


# -- abort once blue is fenced ---------------------------------------------------------------------
@pytest.mark.parametrize("offline", [False, True])
def test_abort_after_the_fence_refuses_and_resume_finishes(toy_ready, offline):
    project = toy_ready
    args = ["deploy", "--offline"] if offline else ["deploy"]
    assert bluegreen(project, *args, crash_at="deploy:fenced").returncode == -signal.SIGKILL
    assert "bluegreen resume" in project.cli("status", "--json").json["next"]
    before = disk_state(project.data)
    refused = project.cli("abort")
    assert refused.code == 2
    assert refused.err.startswith("bluegreen: error: too late to abort: app.db is already fenced for generation 2")
    assert "run `bluegreen resume` to finish the swap, then `bluegreen revert`" in refused.err
    assert len(refused.err.splitlines()) == 1
    assert disk_state(project.data) == before
    resumed = project.cli("resume", "--json")
    assert resumed.code == 0, resumed.err
    assert named(project) == project.gen(2) and not fenced(project.gen(2))
    reverted = project.cli("revert", "--json")
    assert reverted.code == 0, reverted.err
    assert named(project) == project.blue and not fenced(project.blue)


# -- hazard 14: DDL on green during the revert window ----------------------------------------------
def deployed(project) -> apsw.Connection:
    assert project.cli("deploy").code == 0
    return project.connect(project.gen(2))


def table_rows(path: Path, table: str) -> list[tuple]:
    return rows(path, f'SELECT rowid, * FROM "{table}" ORDER BY rowid')


def test_a_table_created_on_green_is_carried_back_row_by_row(toy_ready):
    project = toy_ready
    green = deployed(project)
    with green:
        green.execute("CREATE TABLE notes(id INTEGER PRIMARY KEY AUTOINCREMENT, item INT, body TEXT NOT NULL)")
        green.execute("CREATE INDEX notes_item ON notes(item)")
        green.execute("CREATE TABLE tags(label TEXT PRIMARY KEY, n INT) WITHOUT ROWID")
        green.execute("CREATE TABLE plain(a, b)")  # rowids without an alias must survive too
        green.executemany("INSERT INTO notes(item, body) VALUES (?, ?)", [(i, f"note {i}") for i in range(40)])
        green.execute("DELETE FROM notes WHERE id > 35")  # the AUTOINCREMENT counter is past the last row
        green.executemany("INSERT INTO tags VALUES (?, ?)", [(f"t{i}", i) for i in range(10)])
        green.executemany(
            "INSERT INTO plain(rowid, a, b) VALUES (?, ?, ?)", [(i * 7, i, b"\x00\x01") for i in range(5)]
        )
        green.execute("INSERT INTO items(name) VALUES ('on green')")
    green.close()
    expected = {t: table_rows(project.gen(2), t) for t in ("notes", "plain")}
    expected_tags = rows(project.gen(2), "SELECT * FROM tags ORDER BY label")
    result = project.cli("revert", "--json")
    assert result.code == 0, result.err
    assert result.json["carried_tables"] == {"notes": 35, "plain": 5, "tags": 10}
    assert "carried back whole: notes (35 row(s))" in result.json["message"]
    for table, want in expected.items():
        assert table_rows(project.blue, table) == want
    assert rows(project.blue, "SELECT * FROM tags ORDER BY label") == expected_tags
    assert rows(project.blue, "SELECT seq FROM sqlite_sequence WHERE name = 'notes'") == [(40,)]
    assert rows(project.blue, "SELECT sql FROM sqlite_schema WHERE name = 'notes_item'") == [
        ("CREATE INDEX notes_item ON notes(item)",)
    ]
    assert rows(project.blue, "SELECT count(*) FROM items WHERE name = 'on green'") == [(1,)]
    # blue takes writes on the new table; green's fence covers it too
    with project.connect(project.blue) as conn:
        conn.execute("INSERT INTO notes(item, body) VALUES (1, 'after revert')")
    assert rows(project.blue, "SELECT max(id) FROM notes") == [(41,)]
    conn = project.connect(project.gen(2))
    with pytest.raises(apsw.SQLError, match=FENCED):
        conn.execute("INSERT INTO notes(item, body) VALUES (1, 'refused')")
    conn.close()


@pytest.mark.parametrize(
    "ddl, listed",
    [
        ("ALTER TABLE items ADD COLUMN price REAL DEFAULT 1.5", "table items was changed on green after cutover"),
        ("ALTER TABLE items RENAME COLUMN name TO title", "table items was changed on green after cutover"),
        ("DROP TABLE names", "table names was dropped on green after cutover"),
        ("CREATE INDEX items_name ON items(name)", "index items_name was created on green after cutover"),
        ("CREATE VIEW named AS SELECT * FROM names", "view named was created on green after cutover"),
        ("CREATE VIRTUAL TABLE docs USING fts5(body)", "virtual table docs was created on green after cutover"),
        (
            "CREATE TABLE names_old AS SELECT 1 AS x; DROP TABLE names; ALTER TABLE names_old RENAME TO names",
            "table names was changed on green after cutover",
        ),
    ],
)
def test_other_ddl_on_green_refuses_the_revert_by_name(toy_ready, ddl, listed):
    project = toy_ready
    green = deployed(project)
    green.execute(ddl)
    green.close()
    before = disk_state(project.data)
    result = project.cli("revert", "--json")
    assert result.code == 5, result.err
    assert listed in result.json["error"]
    assert result.json["error"].endswith(
        "Nothing was changed; `bluegreen revert --accept-loss` saves them to a file first"
    )
    assert listed in result.err and len(result.err.splitlines()) == 1
    assert disk_state(project.data) == before
    assert named(project) == project.gen(2)


def test_accept_loss_with_a_table_dropped_on_green_keeps_blues_table(toy_ready):
    """The dropped table is left out of replay (no raw `no such table`), listed in the export."""
    project = toy_ready
    green = deployed(project)
    with green:
        green.execute("UPDATE items SET name = 'changed' WHERE id = 1")
        green.execute("DROP TABLE items")
    green.close()
    kept = rows(project.blue, "SELECT * FROM items ORDER BY id")
    refused = project.cli("revert", "--json")
    assert refused.code == 5 and "table items was dropped on green after cutover" in refused.json["error"]
    result = project.cli("revert", "--accept-loss", "--json")
    assert result.code == 0, result.err
    exported = Path(result.json["exported"])
    assert ("table items", "table items was dropped on green after cutover") in rows(
        exported, "SELECT object, reason FROM bluegreen_lost_schema"
    )
    assert rows(exported, "SELECT table_name, row_key FROM bluegreen_lost_changes") == [("items", 1)]
    assert rows(project.blue, "SELECT * FROM items ORDER BY id") == kept
    assert result.json["lost"] == {"items": 1}


def test_accept_loss_exports_what_ddl_on_green_made_uncarriable(toy_ready):
    project = toy_ready
    green = deployed(project)
    with green:
        green.execute("ALTER TABLE items ADD COLUMN price REAL")
        green.execute("UPDATE items SET price = id * 2.5 WHERE id <= 10")
        green.execute("INSERT INTO items(name, price) VALUES ('new on green', 9.0)")
    green.close()
    whole = rows(project.gen(2), "SELECT * FROM items ORDER BY id")
    result = project.cli("revert", "--accept-loss", "--json")
    assert result.code == 0, result.err
    exported = Path(result.json["exported"])
    assert exported.is_file() and exported.parent == project.data
    assert str(exported) in result.json["message"]
    assert rows(exported, "SELECT object, reason FROM bluegreen_lost_schema") == [
        ("table items", "table items was changed on green after cutover (ALTER or DROP and CREATE)")
    ]
    assert rows(exported, 'SELECT * FROM "items (whole table)" ORDER BY id') == whole
    assert named(project) == project.blue and not fenced(project.blue)
    assert rows(project.blue, "SELECT count(*) FROM pragma_table_info('items')") == [(2,)]  # blue's schema kept


@pytest.mark.parametrize("point", ["revert:carry_back", "revert:fenced"])
def test_a_new_table_survives_a_revert_killed_mid_way(toy_ready, point):
    project = toy_ready
    green = deployed(project)
    with green:
        green.execute("CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)")
        green.executemany("INSERT INTO notes(body) VALUES (?)", [(f"n{i}",) for i in range(20)])
    assert bluegreen(project, "revert", crash_at=point).returncode == -signal.SIGKILL
    if point == "revert:carry_back":  # green is open again: the application goes on writing there
        with green:
            green.execute("INSERT INTO notes(body) VALUES ('after the crash')")
    green.close()
    expected = table_rows(project.gen(2), "notes")
    done = bluegreen(project, "resume")
    assert done.returncode == 0, done.stderr
    assert named(project) == project.blue
    assert table_rows(project.blue, "notes") == expected
    assert len(expected) == (21 if point == "revert:carry_back" else 20)


def test_a_refused_cutover_of_a_later_generation_leaves_its_inherited_record(toy_ready):
    """gen3 is a snapshot of gen2 and inherits gen2's schema record; a cutover that gives up puts
    back exactly what was there (nothing on disk changed), and the one that succeeds records gen3."""
    project = toy_ready
    assert project.cli("deploy").code == 0 and project.cli("finalize").code == 0
    (project.schemas / "003_v3.0.0_extra.sql").write_text("CREATE TABLE extra(id INTEGER PRIMARY KEY);\n")
    assert project.cli("prepare").code == 0
    app = project.connect(project.gen(2))
    app.execute("CREATE TABLE surprise(x)")
    app.close()
    before = disk_state(project.data)
    refused = project.cli("cutover")
    assert refused.code == 1 and "schema changed since prepare" in refused.err
    assert disk_state(project.data) == before
    assert project.cli("abort").code == 0 and project.cli("deploy").code == 0
    green = project.connect(project.gen(4))
    with green:
        green.execute("CREATE TABLE late(a)")
        green.execute("INSERT INTO late VALUES (1)")
    green.close()
    result = project.cli("revert", "--json")
    assert result.code == 0, result.err
    assert result.json["carried_tables"] == {"late": 1}  # extra and surprise were in gen4's record
    assert rows(project.gen(2), "SELECT a FROM late") == [(1,)]
