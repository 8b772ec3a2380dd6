"""Online prepare / cutover / revert against docs/design.md hazards 3, 5, 7, 9 and 10, application
triggers, virtual tables, AUTOINCREMENT, several writer processes, the pause budget, and commands
run twice. Where SQLite lets us, each hazard's failure is first reproduced without bluegreen's
guard (so the test proves the hazard is real), then shown closed through the CLI.

Everything runs on real files in tmp_path; writers and stale applications are real processes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import apsw
import pytest
from conftest import Project, disk_state, rows
from helpers import (
    FENCES,
    app,
    check_writes,
    error_line,
    expected_rows,
    make_project,
    ok,
    phase_of,
    pointer_of,
    read_rows,
    refused,
    script,
    set_cutover,
)

from bluegreen.engine import capture
from bluegreen.engine.db import open_db
from bluegreen.engine.replay import Replayer

ADD_NOTES = {"001_v1.1.0_add_notes.sql": "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);\n"}
INTERNAL = "SELECT type, name FROM sqlite_schema WHERE name LIKE '\\_bluegreen\\_%' ESCAPE '\\' ORDER BY name"


# ==================================================================================================
# helpers
# ==================================================================================================
def table(path: Path, name: str, with_rowid: bool = False) -> list[tuple]:
    """A table's full contents, in a stable order whatever the column types."""
    quoted = '"' + name.replace('"', '""') + '"'
    return sorted(rows(path, f"SELECT {'_rowid_, ' if with_rowid else ''}* FROM {quoted}"), key=repr)


def generation_files(project: Project) -> list[str]:
    return sorted(p.name for p in project.data.iterdir() if p.name.startswith("app.gen"))


def hand_made_green(blue: Path, green: Path, migration_sql: str) -> None:
    """What prepare does, by hand and without its guards: capture on blue, copy, drop the capture
    green inherited (keeping its position), run the migration with triggers on."""
    source = open_db(blue, triggers=False)
    source.execute("BEGIN IMMEDIATE")
    capture.install_capture(source)
    source.execute("COMMIT")
    target = apsw.Connection(str(green))
    with target.backup("main", source, "main") as copy:
        copy.step(-1)
    source.close()
    target.execute("BEGIN IMMEDIATE")
    position = capture.capture_position(target)
    capture.remove_capture(target)
    capture.set_meta(target, source_epoch=position.epoch, source_seq=position.seq)
    target.execute("COMMIT")
    with target:
        script(target, migration_sql)
    target.close()


# ==================================================================================================
# Hazard 5: REPLACE deletes are invisible to triggers
# ==================================================================================================
USERS = "CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT);\n" + "".join(
    f"INSERT INTO users VALUES ({i}, 'u{i}@example.com', 'user {i}');\n" for i in range(1, 9)
)


def test_hazard5_replace_deletes_a_row_without_firing_delete_triggers(tmp_path):
    """Reproduce: INSERT OR REPLACE that conflicts on a UNIQUE column deletes the other row, and an
    AFTER DELETE trigger (how capture sees deletes) never hears of it."""
    conn = apsw.Connection(str(tmp_path / "plain.db"))
    script(
        conn,
        USERS + "CREATE TABLE deletes(n INTEGER); INSERT INTO deletes VALUES (0);"
        "CREATE TRIGGER count_deletes AFTER DELETE ON users BEGIN UPDATE deletes SET n = n + 1; END;",
    )
    conn.execute("INSERT OR REPLACE INTO users(id, email, name) VALUES (100, 'u3@example.com', 'replacer')")
    assert conn.execute("SELECT count(*) FROM users WHERE id = 3").get == 0  # row 3 is gone...
    assert conn.execute("SELECT n FROM deletes").get == 0  # ...and no delete trigger fired
    conn.execute("UPDATE OR REPLACE users SET email = 'u5@example.com' WHERE id = 6")
    assert conn.execute("SELECT count(*) FROM users WHERE id = 5").get == 0
    assert conn.execute("SELECT n FROM deletes").get == 0
    conn.execute("DELETE FROM users WHERE id = 7")  # control: a plain delete is counted
    assert conn.execute("SELECT n FROM deletes").get == 1
    conn.close()


REPLACES = {
    "INSERT OR REPLACE over a UNIQUE email": "INSERT OR REPLACE INTO users(id, email, name) VALUES (100, 'u3@example.com', 'replacer')",
    "REPLACE INTO, two conflicts": "REPLACE INTO users(id, email, name) VALUES (4, 'u5@example.com', 'takes 5, keeps id 4')",
    "UPDATE OR REPLACE": "UPDATE OR REPLACE users SET email = 'u5@example.com' WHERE id = 6",
    "UNIQUE values swapped (no REPLACE: replay must not stall)": (
        "UPDATE users SET email = 'tmp' WHERE id = 1; UPDATE users SET email = 'u1@example.com' WHERE id = 2;"
        "UPDATE users SET email = 'u2@example.com' WHERE id = 1"
    ),
    "replacing row renamed afterwards": (
        "INSERT OR REPLACE INTO users(id, email, name) VALUES (100, 'u3@example.com', 'replacer');"
        "UPDATE users SET email = 'moved@example.com' WHERE id = 100"
    ),
    "replacing row deleted afterwards": (
        "INSERT OR REPLACE INTO users(id, email, name) VALUES (100, 'u3@example.com', 'replacer');"
        "DELETE FROM users WHERE id = 100"
    ),
}


@pytest.mark.parametrize("write", list(REPLACES.values()), ids=list(REPLACES))
def test_hazard5_cutover_carries_replace_deletes(tmp_path, write):
    project = make_project(tmp_path, USERS, ADD_NOTES)
    ok(project.cli("prepare", "--json"))
    app(project, write)
    cut = ok(project.cli("cutover", "--json"))
    assert cut["attempts"] >= 1 and pointer_of(project)["active"] == "app.gen2.db"
    assert table(project.gen(2), "users") == table(project.blue, "users")


@pytest.mark.parametrize(
    "write",
    [
        REPLACES["INSERT OR REPLACE over a UNIQUE email"],
        REPLACES["UPDATE OR REPLACE"],
        REPLACES["replacing row deleted afterwards"],
    ],
    ids=["INSERT OR REPLACE", "UPDATE OR REPLACE", "replacing row deleted afterwards"],
)
def test_hazard5_revert_carries_replace_deletes_back(tmp_path, write):
    project = make_project(tmp_path, USERS, ADD_NOTES)
    ok(project.cli("deploy", "--json"))
    app(project, write, project.gen(2))
    on_green = table(project.gen(2), "users")
    reverted = ok(project.cli("revert", "--json"))
    assert reverted["active"] == str(project.blue) and pointer_of(project)["active"] == "app.db"
    assert table(project.blue, "users") == on_green


def test_hazard5_a_unique_index_added_by_the_migration_never_costs_a_committed_row(tmp_path):
    """Blue allows duplicate emails; the migration adds a UNIQUE index. A duplicate written on blue
    during prepare must not make replay delete another committed row from green: prepare must
    refuse (the table needs a sync script), or cutover must refuse, or green must hold every row."""
    setup = USERS.replace("email TEXT NOT NULL UNIQUE", "email TEXT NOT NULL")
    project = make_project(
        tmp_path, setup, {"001_v1.1.0_unique_email.sql": "CREATE UNIQUE INDEX users_email ON users(email);\n"}
    )
    prepared = project.cli("prepare", "--json")
    if prepared.code == 3:  # refused up front (a sync companion is missing), naming the table: closed
        assert "users" in error_line(prepared)
        return
    ok(prepared)
    app(project, "INSERT INTO users(id, email, name) VALUES (100, 'u3@example.com', 'duplicate email')")
    cut = project.cli("cutover", "--json")
    if cut.code != 0:  # refused: blue still active, nothing lost
        assert pointer_of(project)["active"] == "app.db"
        assert "users" in error_line(cut)
        return
    assert table(project.gen(2), "users") == table(project.blue, "users")


# ==================================================================================================
# Hazard 3: replay must not undo the migration (a migration that writes to a table it keeps)
# ==================================================================================================
ITEMS_AND_SETTINGS = (
    "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT);"
    "CREATE TABLE settings(id INTEGER PRIMARY KEY, key TEXT, value TEXT);"
    + "".join(f"INSERT INTO items(name) VALUES ('Item {i}');" for i in range(10))
    + "INSERT INTO settings(key, value) VALUES ('a', '1'), ('b', '2');"
)

WRITERS = {
    "backfill": dict(
        file="001_v1.1.0_upper_names.sql",
        sql="UPDATE items SET name = upper(name);\n",
        table="items",
        blue_write="UPDATE items SET name = 'mixed Case' WHERE id = 1",
        undone="SELECT count(*) FROM items WHERE name IS NOT upper(name)",  # 0 right after the migration
    ),
    "seed": dict(
        file="001_v1.1.0_seed_settings.sql",
        sql="INSERT INTO settings(key, value) VALUES ('theme', 'dark');\n",
        table="settings",
        blue_write="INSERT INTO settings(key, value) VALUES ('locale', 'fr')",  # takes the seed's rowid on blue
        undone="SELECT count(*) = 0 FROM settings WHERE key = 'theme'",
    ),
}


@pytest.mark.parametrize("kind", list(WRITERS))
def test_hazard3_last_state_replay_undoes_a_migrations_writes(tmp_path, kind):
    """Reproduce with bluegreen's own Replayer, not told what the migration wrote: one write on
    blue during prepare and replay overwrites the migration's work in green."""
    case = WRITERS[kind]
    blue, green = tmp_path / "blue.db", tmp_path / "green.db"
    conn = apsw.Connection(str(blue))
    conn.execute("PRAGMA journal_mode=WAL").get
    script(conn, ITEMS_AND_SETTINGS)
    conn.close()
    hand_made_green(blue, green, case["sql"])
    assert rows(green, case["undone"]) == [(0,)]  # the migration did its work
    conn = apsw.Connection(str(blue))
    script(conn, case["blue_write"])
    conn.close()

    blind = Replayer(blue, green, [], effects={})
    try:
        assert case["table"] not in blind.reshape.reshaped
        blind.catch_up()
    finally:
        blind.close()
    assert rows(green, case["undone"]) == [(1,)]  # ...and replay undid it

    # What bluegreen records of the migration's connection makes the table reshaped.
    told = Replayer(blue, green, [], effects={case["file"]: {"written": [case["table"]], "read": []}})
    try:
        assert told.reshape.reshaped == {case["table"]: f"written by {case['file']}"}
        assert case["table"] not in told.tables  # generic replay keeps its hands off
    finally:
        told.close()


# A backfill over the row's own columns (WRITERS["backfill"]) is derived now (issue 13, engine/derive.py:
# re-applied to each changed row; see the test after the next); one over other rows is not.
NOT_DERIVED = {
    "backfill": dict(WRITERS["backfill"], sql="UPDATE items SET name = upper(name) || (SELECT count(*) FROM items);\n"),
    "seed": WRITERS["seed"],
}


@pytest.mark.parametrize("command", ["prepare", "deploy"])
@pytest.mark.parametrize("kind", list(NOT_DERIVED))
def test_hazard3_a_migration_writing_a_kept_table_needs_a_sync_script(tmp_path, kind, command):
    case = NOT_DERIVED[kind]
    project = make_project(tmp_path, ITEMS_AND_SETTINGS, {case["file"]: case["sql"]})
    line = refused(project, command, code=3)  # CompanionMissing, before anything is built (issue 12)
    assert case["file"] in line and f"{case['table']} (written by {case['file']})" in line
    assert str(project.schemas / case["file"].replace(".sql", "_sync.sql")) in line  # the file to create
    assert generation_files(project) == []
    assert rows(project.blue, INTERNAL) == []
    assert pointer_of(project)["active"] == "app.db" and phase_of(project) == "idle"


def test_hazard3_with_a_sync_script_blue_writes_during_prepare_are_re_derived(tmp_path):
    project = make_project(
        tmp_path,
        ITEMS_AND_SETTINGS,
        {
            "001_v1.1.0_upper_names.sql": "UPDATE items SET name = upper(name);\n",
            "001_v1.1.0_upper_names_sync.sql": """\
            -- items is reshaped: generic replay leaves it alone; copy the changed rows, upper-cased.
            DELETE FROM items WHERE id IN (SELECT row_key FROM temp.bluegreen_changes WHERE table_name = 'items');
            INSERT INTO items(id, name) SELECT id, upper(name) FROM source.items
            WHERE id IN (SELECT row_key FROM temp.bluegreen_changes WHERE table_name = 'items' AND present = 1);
            """,
        },
    )
    blue_writes_during_prepare_reach_green_upper_cased(project)


def blue_writes_during_prepare_reach_green_upper_cased(project) -> None:
    """Prepare, then an update, an insert, a delete and a key change on items (and a write to the
    same-shape settings) on blue, then cutover: green holds every items row upper-cased as the
    migration's backfill made it, settings as blue has it."""
    ok(project.cli("prepare", "--json"))
    app(
        project,
        "UPDATE items SET name = 'mixed Case' WHERE id = 1; INSERT INTO items(id, name) VALUES (500, 'brand New');"
        "DELETE FROM items WHERE id = 2; UPDATE items SET id = 600 WHERE id = 3;"
        "INSERT INTO settings(key, value) VALUES ('c', '3')",
    )
    ok(project.cli("cutover", "--json"))
    green = project.gen(2)
    assert table(green, "items") == sorted(((i, n.upper()) for i, n in table(project.blue, "items")), key=repr)
    assert rows(green, "SELECT name FROM items WHERE id IN (1, 500, 600) ORDER BY id") == [
        ("MIXED CASE",),
        ("BRAND NEW",),
        ("ITEM 2",),
    ]
    assert table(green, "settings") == table(project.blue, "settings")  # same-shape: replayed as is


def test_hazard3_a_backfill_over_the_row_is_re_applied_to_blue_writes_without_a_companion(tmp_path):
    """The same migration with no sync script: its UPDATE reads only items, so replay re-applies it
    to each row blue changed during prepare (issue 13, derived): the same green as the script's."""
    project = make_project(tmp_path, ITEMS_AND_SETTINGS, {"001_v1.1.0_upper_names.sql": WRITERS["backfill"]["sql"]})
    blue_writes_during_prepare_reach_green_upper_cased(project)


# ==================================================================================================
# Differing triggers (hazards 3 and 4)
# ==================================================================================================
ITEMS_AND_AUDIT = (
    "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT);"
    "CREATE TABLE audit(id INTEGER PRIMARY KEY, item_id INTEGER, what TEXT);"
)
AUDIT_TRIGGER = (
    "CREATE TRIGGER items_audit AFTER INSERT ON items BEGIN "
    "INSERT INTO audit(item_id, what) VALUES (NEW.id, 'inserted ' || NEW.name); END;\n"
)


def test_triggers_a_migration_adds_never_fire_for_replayed_rows(tmp_path):
    """Reproduce: replay runs with triggers off (hazard 4), so a trigger the migration added on an
    existing table never fires for the rows blue wrote during prepare."""
    blue, green = tmp_path / "blue.db", tmp_path / "green.db"
    conn = apsw.Connection(str(blue))
    conn.execute("PRAGMA journal_mode=WAL").get
    script(conn, ITEMS_AND_AUDIT)
    conn.close()
    hand_made_green(blue, green, AUDIT_TRIGGER)
    replay_like = open_db(green, triggers=False)
    replay_like.execute("INSERT INTO items(id, name) VALUES (1, 'written on blue')")
    replay_like.close()
    assert rows(green, "SELECT count(*) FROM audit") == [(0,)]  # no audit row: the migration's rule broke


@pytest.mark.parametrize("command", ["prepare", "deploy"])
def test_a_migration_adding_a_trigger_on_a_kept_table_needs_a_sync_script(tmp_path, command):
    project = make_project(
        tmp_path,
        ITEMS_AND_AUDIT + "INSERT INTO items(name) VALUES ('a'), ('b');",
        {"001_v1.1.0_audit_items.sql": AUDIT_TRIGGER},
    )
    line = refused(project, command, code=3)
    assert "001_v1.1.0_audit_items.sql" in line and "items (definition or triggers changed)" in line
    assert generation_files(project) == [] and rows(project.blue, INTERNAL) == []


def test_application_triggers_fire_once_through_cutover_and_revert(tmp_path):
    project = make_project(
        tmp_path, ITEMS_AND_AUDIT + AUDIT_TRIGGER + "INSERT INTO items(name) VALUES ('a'), ('b'), ('c');", ADD_NOTES
    )
    once = "SELECT item_id, count(*) FROM audit GROUP BY item_id HAVING count(*) <> 1"
    ok(project.cli("prepare", "--json"))
    for name in ("during prepare 1", "during prepare 2", "during prepare 3"):
        app(project, "INSERT INTO items(name) VALUES (?)", bindings=(name,))
    assert rows(project.blue, "SELECT count(*) FROM audit") == [(6,)]
    ok(project.cli("cutover", "--json"))
    green = project.gen(2)
    assert table(green, "audit") == table(project.blue, "audit")
    assert rows(green, "SELECT count(*) FROM audit") == [(6,)] and rows(green, once) == []
    assert [i for (i,) in rows(green, "SELECT item_id FROM audit ORDER BY item_id")] == [
        i for (i,) in rows(green, "SELECT id FROM items ORDER BY id")
    ]

    # on green the trigger is the application's again: one audit row per insert, carried back once
    app(project, "INSERT INTO items(name) VALUES ('on green 1'); INSERT INTO items(name) VALUES ('on green 2')", green)
    assert rows(green, "SELECT count(*) FROM audit") == [(8,)]
    ok(project.cli("revert", "--json"))
    assert table(project.blue, "audit") == table(green, "audit")
    assert table(project.blue, "items") == table(green, "items")
    assert rows(project.blue, once) == [] and rows(project.blue, "SELECT count(*) FROM audit") == [(8,)]


# ==================================================================================================
# Hazard 7: positions carry an epoch
# ==================================================================================================
def test_hazard7_capture_reinstalled_after_prepare_is_refused(toy_ready):
    project = toy_ready
    ok(project.cli("prepare", "--json"))
    green_seq = int(rows(project.gen(2), "SELECT value FROM _bluegreen_meta WHERE key = 'source_seq'")[0][0])
    app(
        project,
        "INSERT INTO items(id, name) VALUES (901, 'before reinstall'); "
        "INSERT INTO items(id, name) VALUES (902, 'before reinstall')",
    )
    conn = open_db(project.blue, triggers=False)
    conn.execute("BEGIN IMMEDIATE")
    capture.remove_capture(conn)
    capture.install_capture(conn)
    conn.execute("COMMIT")
    conn.close()
    app(project, "INSERT INTO items(id, name) VALUES (903, 'after reinstall')")

    # The hazard: the new capture starts its seq again and never saw 901/902, so a seq-only
    # position would replay 903 alone and lose two committed rows.
    after_position = {
        k for (k,) in rows(project.blue, "SELECT key FROM _bluegreen_capture WHERE seq > ?", (green_seq,))
    }
    assert after_position == {903}

    line = refused(project, "cutover", code=1)
    assert "reinstalled" in line and "bluegreen abort" in line
    assert pointer_of(project)["active"] == "app.db" and phase_of(project) == "prepared"
    assert rows(project.blue, FENCES) == [(0,)]

    # The way out the message names works, and nothing is lost.
    ok(project.cli("abort", "--json"))
    assert generation_files(project) == [] and rows(project.blue, INTERNAL) == []
    ok(project.cli("deploy", "--json"))
    assert pointer_of(project)["active"] == "app.gen3.db"
    assert rows(project.gen(3), "SELECT id, name FROM items WHERE id > 900 ORDER BY id") == [
        (901, "before reinstall"),
        (902, "before reinstall"),
        (903, "after reinstall"),
    ]
    assert rows(project.gen(3), "SELECT upper_name FROM names WHERE id = 903") == [("AFTER REINSTALL",)]


# ==================================================================================================
# Hazard 9: keys of any type; odd table names; shadowed rowids
# ==================================================================================================
ODD = 'my "odd" tåble, with spaces'
ODD_COLUMN = 'wéird "col"'


def _odd_setup(conn: apsw.Connection) -> None:
    odd, col = '"' + ODD.replace('"', '""') + '"', '"' + ODD_COLUMN.replace('"', '""') + '"'
    script(
        conn,
        f"""
        CREATE TABLE k(b BLOB, r REAL, t TEXT, v TEXT, PRIMARY KEY (b, r, t)) WITHOUT ROWID;
        CREATE TABLE {odd}(id INTEGER PRIMARY KEY, {col} TEXT);
        CREATE TABLE shadowed(rowid TEXT, oid TEXT, v TEXT);
    """,
    )
    conn.executemany(
        "INSERT INTO k VALUES (?, ?, ?, ?)",
        [
            (b"\x00\xff", 0.1, "a,b", "first"),
            (b"x'27", -2.5e-300, 'it\'s "quoted"', "second"),
            (b"", 1e300, "", "third"),
            (b",", 3.0, "',',", "fourth"),
        ],
    )
    conn.executemany(f"INSERT INTO {odd}(id, {col}) VALUES (?, ?)", [(i, f"odd {i}") for i in range(1, 6)])
    conn.executemany("INSERT INTO shadowed VALUES (?, ?, ?)", [(f"r{i}", f"o{i}", f"v{i}") for i in range(1, 6)])


def _odd_writes(conn: apsw.Connection) -> None:
    odd, col = '"' + ODD.replace('"', '""') + '"', '"' + ODD_COLUMN.replace('"', '""') + '"'
    conn.executemany(
        "INSERT INTO k VALUES (?, ?, ?, ?)",
        [
            (b"\x00\x00,'\"", 1 / 3, "a,'b',\"c\"", "new"),
            (b"\xde\xad", -0.0001, 'tåble, "x"', "new 2"),
        ],
    )
    conn.execute("UPDATE k SET v = 'updated' WHERE b = ? AND r = ? AND t = ?", (b"\x00\xff", 0.1, "a,b"))
    conn.execute("UPDATE k SET b = ?, t = ? WHERE b = ?", (b"\x01,\x02", "key, 'changed'", b"x'27"))  # key changes
    conn.execute("DELETE FROM k WHERE b = ?", (b"",))
    conn.execute(f"INSERT INTO {odd}(id, {col}) VALUES (100, 'new, \"odd\"')")
    conn.execute(f"UPDATE {odd} SET {col} = 'renamed' WHERE id = 1")
    conn.execute(f"UPDATE {odd} SET id = 200 WHERE id = 2")  # key changes
    conn.execute(f"DELETE FROM {odd} WHERE id = 3")
    conn.execute("INSERT INTO shadowed VALUES ('r new', 'o new', 'v new')")
    conn.execute("UPDATE shadowed SET v = 'updated' WHERE rowid = 'r1'")
    conn.execute("UPDATE shadowed SET _rowid_ = 50 WHERE rowid = 'r2'")  # the real rowid changes
    conn.execute("DELETE FROM shadowed WHERE oid = 'o3'")


def test_hazard9_keys_of_any_type_and_odd_names_survive_cutover(tmp_path):
    project = make_project(tmp_path, _odd_setup, ADD_NOTES)
    ok(project.cli("prepare", "--json"))
    conn = project.connect()
    with conn:
        _odd_writes(conn)
    conn.close()
    ok(project.cli("cutover", "--json"))
    green = project.gen(2)
    assert table(green, "k") == table(project.blue, "k")
    assert len(table(green, "k")) == 5
    assert (b"\x01,\x02", -2.5e-300, "key, 'changed'", "second") in table(green, "k")
    assert table(green, ODD) == table(project.blue, ODD)
    assert [r[0] for r in table(green, ODD)] == [1, 100, 200, 4, 5]  # sorted by repr
    assert table(green, "shadowed", with_rowid=True) == table(project.blue, "shadowed", with_rowid=True)
    assert (50, "r2", "o2", "v2") in table(green, "shadowed", with_rowid=True)


@pytest.mark.parametrize("command", ["prepare", "deploy"])
def test_hazard9_a_table_shadowing_every_rowid_name_is_refused(tmp_path, command):
    project = make_project(
        tmp_path,
        "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT);"
        "CREATE TABLE shadows(rowid TEXT, oid TEXT, _rowid_ TEXT);"
        "INSERT INTO shadows VALUES ('a', 'b', 'c');",
        ADD_NOTES,
    )
    line = refused(project, command, code=2)
    assert "'shadows'" in line and "rowid, oid and _rowid_" in line
    assert generation_files(project) == [] and rows(project.blue, INTERNAL) == []


# ==================================================================================================
# AUTOINCREMENT counters are carried
# ==================================================================================================
def test_autoincrement_counters_are_carried_both_ways(tmp_path):
    project = make_project(
        tmp_path,
        "CREATE TABLE events(id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT);"
        + "".join(f"INSERT INTO events(v) VALUES ('e{i}');" for i in range(5)),
        ADD_NOTES,
    )
    ok(project.cli("prepare", "--json"))
    for i in range(5):
        app(project, "INSERT INTO events(v) VALUES (?)", bindings=(f"during prepare {i}",))
    app(project, "DELETE FROM events WHERE id = 10")  # blue used 10 and deleted it: 10 is spent
    ok(project.cli("cutover", "--json"))
    green = project.gen(2)
    assert rows(green, "SELECT max(id) FROM events") == [(9,)]  # max + 1 would reuse 10
    assert table(green, "events") == table(project.blue, "events")
    conn = project.connect(green)
    conn.execute("INSERT INTO events(v) VALUES ('first on green')")
    assert conn.last_insert_rowid() == 11
    conn.execute("INSERT INTO events(v) VALUES ('second on green')")
    conn.execute("DELETE FROM events WHERE id = 12")  # green spends 12
    conn.close()

    ok(project.cli("revert", "--json"))
    assert rows(project.blue, "SELECT max(id) FROM events") == [(11,)]
    conn = project.connect()
    conn.execute("INSERT INTO events(v) VALUES ('back on blue')")
    assert conn.last_insert_rowid() == 13
    conn.close()


# ==================================================================================================
# Hazard 10: revert must not deadlock on a stale writer
# ==================================================================================================
STALE = r"""
import os, sys, time, apsw
conn = apsw.Connection(sys.argv[1], flags=apsw.SQLITE_OPEN_READWRITE)
conn.execute("BEGIN IMMEDIATE")  # succeeds on fenced blue: the fence refuses statements, not BEGIN
try:
    conn.execute("INSERT INTO items(name) VALUES ('stale')")
    print("WROTE", flush=True)
except apsw.Error as exc:
    print("REFUSED", exc, flush=True)
deadline = time.monotonic() + 60
while not os.path.exists(sys.argv[2]) and time.monotonic() < deadline:
    time.sleep(0.01)  # stuck in its transaction, holding blue's write lock
"""


def test_hazard10_revert_is_bounded_by_a_stale_writer_on_fenced_blue(toy_ready, tmp_path):
    project = toy_ready
    set_cutover(project, lock_timeout_ms=500)
    ok(project.cli("deploy", "--json"))
    stop = tmp_path / "stale.stop"
    stale = subprocess.Popen(
        [sys.executable, "-c", STALE, str(project.blue), str(stop)], stdout=subprocess.PIPE, text=True
    )
    try:
        first = stale.stdout.readline()
        assert first.startswith("REFUSED") and "bluegreen_fenced_use_generation_2" in first, first

        # The hazard: the stale process really holds blue's write lock despite the fence.
        probe = project.connect()
        probe.set_busy_timeout(200)
        with pytest.raises(apsw.BusyError):
            probe.execute("BEGIN IMMEDIATE")
        probe.close()

        before = disk_state(project.data)
        started = time.monotonic()
        revert = subprocess.Popen(
            [sys.executable, "-m", "bluegreen", "--config", str(project.config), "revert", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # While revert waits for blue, green's write lock stays free (no barrier held meanwhile).
        green_lock_waits = []
        while revert.poll() is None:
            conn = project.connect(project.gen(2))
            conn.set_busy_timeout(2000)
            clock = time.monotonic()
            conn.execute("BEGIN IMMEDIATE")
            green_lock_waits.append(time.monotonic() - clock)
            conn.execute("ROLLBACK")
            conn.close()
            time.sleep(0.02)
        out, err = revert.communicate(timeout=30)
        elapsed = time.monotonic() - started
        assert revert.returncode == 1, (out, err)
        assert elapsed < 15, elapsed  # bounded: lock_timeout_ms is 500
        assert max(green_lock_waits, default=0) < 0.4, green_lock_waits
        lines = [line for line in err.splitlines() if line.startswith("bluegreen: error:")]
        assert len(lines) == 1 and "Traceback" not in err, err
        assert str(project.blue) in lines[0] and "write lock" in lines[0] and "500 ms" in lines[0]
        assert json.loads(out)["exit_code"] == 1
        assert disk_state(project.data) == before
        assert pointer_of(project)["active"] == "app.gen2.db" and phase_of(project) == "cut_over"
        assert rows(project.gen(2), FENCES) == [(0,)]  # green not fenced...
        app(project, "INSERT INTO items(id, name) VALUES (777, 'on green while revert was refused')", project.gen(2))
    finally:
        stop.write_text("stop")
        stale.wait(timeout=30)

    # Once the stale process is gone, revert goes through and carries green's write back.
    reverted = ok(project.cli("revert", "--json"))
    assert reverted["carried_back"] == 1
    assert pointer_of(project)["active"] == "app.db"
    assert rows(project.blue, "SELECT name FROM items WHERE id = 777") == [("on green while revert was refused",)]
    assert rows(project.blue, "SELECT count(*) FROM items WHERE name = 'stale'") == [(0,)]


# ==================================================================================================
# Virtual tables are refused
# ==================================================================================================
@pytest.mark.parametrize("command", ["prepare", "deploy"])
def test_a_virtual_table_on_blue_is_refused(tmp_path, command):
    project = make_project(
        tmp_path,
        "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT);"
        "CREATE VIRTUAL TABLE docs USING fts5(body);"
        "INSERT INTO docs(body) VALUES ('hello world'), ('full text');",
        ADD_NOTES,
    )
    line = refused(project, command, code=2)
    assert "'docs'" in line and "virtual table" in line
    assert generation_files(project) == [] and rows(project.blue, INTERNAL) == []
    assert pointer_of(project)["active"] == "app.db" and phase_of(project) == "idle"


# ==================================================================================================
# Several writer processes through deploy and revert
# ==================================================================================================
def test_three_writers_through_deploy_and_revert_lose_nothing(toy_ready, spawn):
    project = toy_ready
    writers = [spawn(project, seed) for seed in (1, 2, 3)]
    for writer in writers:
        writer.wait_for(10)
    ok(project.cli("deploy", "--json"))
    for writer in writers:
        writer.wait_for(15, on="app.gen2.db")  # every writer followed the pointer and wrote on green
    ok(project.cli("revert", "--json"))
    for writer in writers:
        writer.wait_for(10, on="app.db")  # and came back
    expected = {writer.seed: writer.finish() for writer in writers}

    active = project.data / pointer_of(project)["active"]
    assert active == project.blue and phase_of(project) == "idle"
    assert read_rows(active, "PRAGMA integrity_check") == [("ok",)]
    for seed, writes in expected.items():
        assert len(writes) >= 35
        check_writes(active, seed, writes)
    # green kept every write too, up to its fence
    assert read_rows(project.gen(2), "PRAGMA integrity_check") == [("ok",)]


# ==================================================================================================
# The pause budget (invariant 3)
# ==================================================================================================
def test_a_tiny_pause_budget_cuts_over_or_gives_up_cleanly(toy, spawn):
    project = toy
    set_cutover(project, max_write_pause_ms=1, max_attempts=2)
    assert project.cli("init").code == 0
    writers = [spawn(project, seed) for seed in (1, 2)]
    for writer in writers:
        writer.wait_for(10)
    ok(project.cli("prepare", "--json"))
    for writer in writers:
        writer.wait_for(10)

    cut = project.cli("cutover", "--json")
    if cut.code == 0:
        report = cut.json
        assert isinstance(report["write_pause_ms"], (int, float)) and report["write_pause_ms"] >= 0
        assert 1 <= report["attempts"] <= 2
        assert pointer_of(project)["active"] == "app.gen2.db" and phase_of(project) == "cut_over"
        assert read_rows(project.blue, FENCES) != [(0,)]
        for writer in writers:
            writer.wait_for(5, on="app.gen2.db")
    else:
        assert cut.code == 1, (cut.out, cut.err)
        line = error_line(cut)
        # Either every try was over, or the measured fence and commit fsync alone exceed 1 ms.
        assert "1 ms write-pause budget" in line and ("2 tries" in line or "commit" in line) and "still active" in line
        assert pointer_of(project)["active"] == "app.db" and phase_of(project) == "prepared"
        assert project.gen(2).exists() and read_rows(project.blue, FENCES) == [(0,)]
        for writer in writers:
            writer.wait_for(5, on="app.db")  # blue still takes writes
        app(project, "INSERT INTO items(name) VALUES ('written after the budget gave up')")
        expected = {writer.seed: writer.finish() for writer in writers}
        set_cutover(project, max_write_pause_ms=1000, max_attempts=2)  # no writers, a budget a fsync fits in
        ok(project.cli("cutover", "--json"))
        assert pointer_of(project)["active"] == "app.gen2.db"
        assert read_rows(
            project.gen(2), "SELECT count(*) FROM items WHERE name = 'written after the budget gave up'"
        ) == [(1,)]
    expected = {
        writer.seed: (writer.finish() if writer.process.poll() is None else expected_rows(writer.log))
        for writer in writers
    }
    green = project.gen(2)
    assert read_rows(green, "PRAGMA integrity_check") == [("ok",)]
    for seed, writes in expected.items():
        check_writes(green, seed, writes)


HOLDER = r"""
import os, sys, time, apsw
conn = apsw.Connection(sys.argv[1], flags=apsw.SQLITE_OPEN_READWRITE)
conn.set_busy_timeout(10_000)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO items(id, name) VALUES (4242, 'committed after the refused cutover')")
print("HOLDING", flush=True)
deadline = time.monotonic() + 60
while not os.path.exists(sys.argv[2]) and time.monotonic() < deadline:
    time.sleep(0.01)
conn.execute("COMMIT")
print("COMMITTED", flush=True)
"""


def test_a_pause_budget_gives_up_while_an_application_holds_blues_lock(toy, tmp_path):
    """The give-up branch, every time: an application transaction holds blue's write lock for
    longer than the budget; cutover lets go, changes nothing, and blue keeps its writer. (The
    budget is one the measured fence and fsync fit in: a 1 ms one is refused before any try.)"""
    project = toy
    set_cutover(project, max_write_pause_ms=100, max_attempts=2)
    assert project.cli("init").code == 0
    ok(project.cli("prepare", "--json"))
    stop = tmp_path / "holder.stop"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(project.blue), str(stop)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "HOLDING"
        line = refused(project, "cutover", code=1)
        assert "100 ms write-pause budget" in line and "2 tries" in line
        assert "blue is still active and green stays prepared" in line
        assert pointer_of(project)["active"] == "app.db" and phase_of(project) == "prepared"
        assert project.gen(2).exists() and rows(project.blue, FENCES) == [(0,)]
    finally:
        stop.write_text("stop")
        out = holder.communicate(timeout=30)[0]
    assert holder.returncode == 0 and out.strip() == "COMMITTED"  # blue took the held write
    ok(project.cli("cutover", "--json"))
    assert rows(
        project.gen(2), "SELECT name, (SELECT upper_name FROM names WHERE id = 4242) FROM items WHERE id = 4242"
    ) == [("committed after the refused cutover", "COMMITTED AFTER THE REFUSED CUTOVER")]


# ==================================================================================================
# Idempotence: each command run twice
# ==================================================================================================
def twice(project: Project, *args: str):
    """Run a command, then again; the second run must change nothing on disk."""
    first = project.cli(*args, "--json")
    assert first.code == 0, (first.out, first.err)
    before = disk_state(project.data)
    second = project.cli(*args, "--json")
    assert disk_state(project.data) == before, args
    return first, second


def test_commands_run_twice_are_harmless(toy_ready):
    project = toy_ready
    ok(project.cli("prepare", "--json"))
    _, again = twice(project, "abort")
    assert again.code == 0 and again.json["message"].startswith("nothing to abort")

    ok(project.cli("prepare", "--json"))
    app(project, "INSERT INTO items(id, name) VALUES (500, 'during prepare')")
    _, again = twice(project, "cutover")
    assert again.code == 0 and "already cut over" in again.json["message"]
    assert rows(project.gen(3), "SELECT upper_name FROM names WHERE id = 500") == [("DURING PREPARE",)]

    app(project, "INSERT INTO items(id, name) VALUES (501, 'on green')", project.gen(3))
    _, again = twice(project, "revert")
    assert again.code == 2 and "nothing to revert" in error_line(again)
    assert rows(project.blue, "SELECT name FROM items WHERE id IN (500, 501) ORDER BY id") == [
        ("during prepare",),
        ("on green",),
    ]

    ok(project.cli("deploy", "--json"))
    assert pointer_of(project)["active"] == "app.gen4.db"
    _, again = twice(project, "finalize")
    assert again.code == 0 and again.json["message"].startswith("nothing to finalize")
    assert rows(project.gen(4), INTERNAL) == [("table", "_bluegreen_meta")]  # the generation stamp; no capture
    assert rows(project.gen(4), "SELECT count(*) FROM items WHERE id IN (500, 501)") == [(2,)]
