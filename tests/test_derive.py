"""Derived catch-up and carry-back (issue 13, engine/derive.py): a migration that changes a table
only by ADD COLUMN, DROP COLUMN or RENAME COLUMN deploys ONLINE and reverts with no companion
file. A writer process writes through the pointer the whole time (blue while green is built,
green after the cutover, blue again after the revert); after each step every write it was told
committed is in the active file, row by row, on tables keyed by rowid, INTEGER PRIMARY KEY,
TEXT PRIMARY KEY and WITHOUT ROWID. What is not derivable still needs its companion, named by
`plan` before anything is built."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from conftest import disk_state, rows
from helpers import DEPLOY_POINTS, REVERT_POINTS, assert_refused, bluegreen, make_project, state_of

# Each key kind: the table's columns before the migration, the key columns the writer addresses
# rows by (rowid: SQLite picks it), and how a new key is made from a counter.
KEYS = {
    "rowid": ("CREATE TABLE t(v TEXT, {p} TEXT)", ["rowid"]),
    "integer_pk": ("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, {p} TEXT)", ["id"]),
    "text_pk": ("CREATE TABLE t(k TEXT PRIMARY KEY, v TEXT, {p} TEXT)", ["k"]),
    "without_rowid": (
        "CREATE TABLE t(k TEXT, n INTEGER, v TEXT, {p} TEXT, PRIMARY KEY(k, n)) WITHOUT ROWID",
        ["k", "n"],
    ),
}

# Each change: the payload column blue has (None: none), the migration, the payload column green
# has, and the DEFAULT a new row gets in green.
CHANGES = {
    "add_column": (None, "ALTER TABLE t ADD COLUMN p TEXT NOT NULL DEFAULT 'fresh';\n", "p", "fresh"),
    "drop_column": ("p", "ALTER TABLE t DROP COLUMN p;\n", None, None),
    "rename_column": ("note", "ALTER TABLE t RENAME COLUMN note TO memo;\n", "memo", None),
    "rename_table": ("note", "ALTER TABLE t RENAME TO u;\n", "note", None),
    "rename_table_and_column": (
        "note",
        "ALTER TABLE t RENAME TO u;\nALTER TABLE u RENAME note TO memo;\n",
        "memo",
        None,
    ),
    # an index over the column the writer writes, UNIQUE (its values are unique), and one dropped
    "indexes": ("note", "CREATE UNIQUE INDEX t_note ON t(note);\nDROP INDEX t_v;\n", "note", None),
    # a backfill over the row: a row the writer never wrote p into holds 'b-' || v, its latest v
    "backfill": (None, "ALTER TABLE t ADD COLUMN p TEXT;\nUPDATE t SET p = 'b-' || v;\n", "p", lambda v: f"b-{v}"),
}
LOSES_ON_REVERT = ("add_column", "backfill")  # the writer writes p on green: blue has no column for it
GREEN_TABLE = {"rename_table": "u", "rename_table_and_column": "u"}
PAYLOADS = ["p", "note", "memo"]
SEEDED = 20

WRITER = r"""
import json, os, random, sys, time
from pathlib import Path
import apsw
from bluegreen.tools.writer import active_file, refused_by_fence

pointer, log, keys = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
stop, pause = Path(str(log) + ".stop"), Path(str(log) + ".pause")
fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
rng = random.Random(7)

def note(**fields):
    os.write(fd, (json.dumps(fields) + "\n").encode())

def connect():
    path = active_file(pointer)
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READWRITE)
    conn.set_busy_timeout(60_000)
    global table
    table = "u" if conn.execute("SELECT 1 FROM sqlite_schema WHERE name = 'u'").fetchall() else "t"
    cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
    return path, conn, next((c for c in ("p", "note", "memo") if c in cols), None)

table = "t"
path, conn, payload = connect()
mine = [list(k) for k in conn.execute(f"SELECT {', '.join(keys)} FROM {table}")]
counter, paused = 0, False
where = " AND ".join(f"{k} = ?" for k in keys)
while not stop.exists():
    if pause.exists():
        if not paused:
            note(event="paused")
            paused = True
        time.sleep(0.01)
        continue
    paused = False
    counter += 1
    roll, value, p = rng.random(), f"v{counter}", f"p{counter}"
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            if roll < 0.4 and mine:
                key, op = rng.choice(mine), "update"
                sets = "v = ?" + (f", {payload} = ?" if payload else "")
                conn.execute(f"UPDATE {table} SET {sets} WHERE {where}", (value, *([p] if payload else []), *key))
            elif roll < 0.5 and mine:
                key, op = rng.choice(mine), "delete"
                conn.execute(f"DELETE FROM {table} WHERE {where}", key)
            else:
                op = "insert"
                key = [] if keys == ["rowid"] or keys == ["id"] else [f"k{os.getpid()}-{counter}", counter % 7][: len(keys)]
                names = ([] if not key else keys) + ["v"] + ([payload] if payload else [])
                conn.execute(
                    f"INSERT INTO {table}({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                    (*key, value, *([p] if payload else [])),
                )
                key = key or [conn.last_insert_rowid()]
            conn.execute("COMMIT")
            break
        except apsw.Error as exc:
            if not refused_by_fence(conn, exc):
                raise
            time.sleep(0.005)
            conn.close()
            path, conn, payload = connect()
    if op == "insert":
        mine.append(key)
    elif op == "delete":
        mine.remove(key)
    note(event="committed", op=op, key=key, v=value, p=p if payload and op != "delete" else None, file=path.name)
    time.sleep(0.002)
conn.close()
"""


class Writer:
    def __init__(self, project, folder: Path, keys: list[str]):
        self.log = folder / "writer.log"
        script = folder / "writer.py"
        script.write_text(WRITER)
        self.err = open(folder / "writer.err", "w")
        self.process = subprocess.Popen(
            [sys.executable, str(script), str(project.pointer), str(self.log), json.dumps(keys)], stderr=self.err
        )

    def records(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.endswith("}")]

    def committed(self, on: str | None = None) -> int:
        return sum(1 for r in self.records() if r["event"] == "committed" and (on is None or r["file"] == on))

    def wait_for(self, more: int, on: str | None = None, timeout: float = 30) -> None:
        goal, deadline = self.committed(on) + more, time.monotonic() + timeout
        while self.committed(on) < goal:
            assert self.process.poll() is None, Path(self.err.name).read_text()
            assert time.monotonic() < deadline, f"writer made no {more} writes on {on}"
            time.sleep(0.01)

    def pause(self) -> None:
        """Hold the writer between writes, so the log is exactly what the file holds."""
        seen = sum(1 for r in self.records() if r["event"] == "paused")  # counted first: no race
        Path(str(self.log) + ".pause").touch()
        deadline = time.monotonic() + 30
        while sum(1 for r in self.records() if r["event"] == "paused") <= seen:
            assert self.process.poll() is None, Path(self.err.name).read_text()
            assert time.monotonic() < deadline
            time.sleep(0.01)

    def resume(self) -> None:
        Path(str(self.log) + ".pause").unlink()

    def finish(self) -> None:
        Path(str(self.log) + ".stop").touch()
        assert self.process.wait(timeout=60) == 0, Path(self.err.name).read_text()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def writers():
    started: list[Writer] = []
    yield started
    for writer in started:
        writer.kill()


def setup_sql(key: str, change: str) -> str:
    create, _ = KEYS[key]
    blue_payload = CHANGES[change][0]
    columns = create.format(p=blue_payload or "x")
    sql = columns + (";CREATE INDEX t_v ON t(v);" if change == "indexes" else ";")
    for i in range(1, SEEDED + 1):
        names = {"rowid": [], "integer_pk": ["id"], "text_pk": ["k"], "without_rowid": ["k", "n"]}[key]
        values = {"id": str(i), "k": f"'seed{i}'", "n": str(i % 3)}
        cols = names + ["v"] + ([blue_payload] if blue_payload else [])
        vals = [values[c] for c in names] + [f"'seed-v{i}'"] + ([f"'seed-p{i}'"] if blue_payload else [])
        sql += f"INSERT INTO t({', '.join(cols)}) VALUES ({', '.join(vals)});"
    return sql


def expected(project_blue_seed: list[tuple], records: list[dict], seeded_payload: bool) -> dict:
    """key -> (v, payload or None when never written), from the seed rows and the writer's log."""
    state = {tuple(k): (v, p if seeded_payload else None) for *k, v, p in project_blue_seed}
    for r in records:
        if r["event"] != "committed":
            continue
        key = tuple(r["key"])
        if r["op"] == "delete":
            state.pop(key, None)
        else:
            old = state.get(key, (None, None))
            state[key] = (r["v"], r["p"] if r["p"] is not None else old[1])
    return state


def check(active: Path, keys: list[str], payload: str | None, default, want: dict, table: str = "t") -> None:
    """Row by row: the same keys, every v, and the payload column as last written (a row whose
    payload was never written in a schema that has it holds the column's DEFAULT)."""
    got = {
        tuple(row[: len(keys)]): row[len(keys) :]
        for row in rows(active, f"SELECT {', '.join(keys)}, v{', ' + payload if payload else ''} FROM {table}")
    }
    assert set(got) == set(want), (set(want) - set(got), set(got) - set(want))
    for key, (v, p) in want.items():
        assert got[key][0] == v, (key, got[key], v)
        if payload:
            fallback = default(v) if callable(default) else default
            assert got[key][1] == (p if p is not None else fallback), (key, got[key], p, fallback)
    assert rows(active, "PRAGMA integrity_check") == [("ok",)]


def active_of(project) -> Path:
    return project.data / tomllib.loads(project.pointer.read_text())["active"]


@pytest.mark.parametrize("key", list(KEYS))
@pytest.mark.parametrize("change", list(CHANGES))
def test_online_deploy_and_revert_with_writes_and_no_companion(tmp_path, writers, key, change):
    blue_payload, migration, green_payload, green_default = CHANGES[change]
    project = make_project(tmp_path, setup_sql(key, change), {"001_v1.1.0_change.sql": migration})
    keys = KEYS[key][1]
    seed = rows(project.blue, f"SELECT {', '.join(keys)}, v, {blue_payload or 'NULL'} FROM t")

    planned = project.cli("plan")
    assert planned.code == 0, planned.out + planned.err
    indexed = "t: replayed as it is, no companion needed (index t_note added, UNIQUE"
    assert "t: derived, no companion needed" in planned.out or (change == "indexes" and indexed in planned.out)
    assert not list(project.schemas.glob("*_sync.sql")) and not list(project.schemas.glob("*_rollback.sql"))

    writer = Writer(project, tmp_path, keys)
    writers.append(writer)
    writer.wait_for(20)
    deployed = project.cli_process("deploy")  # online: the writer writes blue while green is built
    assert deployed.code == 0, deployed.out + deployed.err
    assert active_of(project).name == "app.gen2.db"
    writer.wait_for(30, on="app.gen2.db")
    assert writer.committed("app.db") > 20
    writer.pause()
    want = expected(seed, writer.records(), blue_payload is not None)
    check(active_of(project), keys, green_payload, green_default, want, GREEN_TABLE.get(change, "t"))
    writer.resume()

    writer.wait_for(30, on="app.gen2.db")
    reverted = project.cli_process("revert")  # the writer writes green until the fence
    if change in LOSES_ON_REVERT:
        # The writer wrote p on green; blue has no column p: reverting would drop those values, so
        # it refuses (exit 5, the existing path) naming the table and the column, green still active;
        # --accept-loss saves them to a file first, then carries every other column back.
        assert reverted.code == 5, reverted.out + reverted.err
        assert "t: " in reverted.err and "column p" in reverted.err, reverted.err
        assert active_of(project).name == "app.gen2.db"
        reverted = project.cli_process("revert", "--accept-loss", "--json")
        assert reverted.code == 0, reverted.out + reverted.err
        exported = Path(reverted.json["exported"])
        saved = rows(exported, "SELECT DISTINCT table_name FROM bluegreen_lost_changes")
        assert saved == [("t",)] and reverted.json["lost"]["t"] > 0
    assert reverted.code == 0, reverted.out + reverted.err
    assert active_of(project).name == "app.db"
    writer.wait_for(20, on="app.db")
    writer.finish()
    # Back in blue's schema: a dropped column's value survived (rows green only updated keep it,
    # rows green inserted get its DEFAULT, NULL); an added column is gone; a renamed one is back.
    want = expected(seed, writer.records(), blue_payload is not None)
    check(project.blue, keys, blue_payload, None, want)


def test_plan_says_per_table_what_replay_does(tmp_path):
    project = make_project(
        tmp_path,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, note TEXT); CREATE TABLE same(id INTEGER PRIMARY KEY);"
        "CREATE TABLE o(id INTEGER PRIMARY KEY, total INT); CREATE INDEX o_total ON o(total);",
        {
            "001_v1.1.0_a.sql": "ALTER TABLE t ADD COLUMN status TEXT DEFAULT 'new';\nDROP INDEX o_total;\n"
            "CREATE INDEX o_id_total ON o(id, total);\n",
            "002_v1.2.0_b.sql": "ALTER TABLE t RENAME COLUMN note TO memo;\nALTER TABLE t DROP COLUMN v;\n",
        },
    )
    planned = project.cli("plan")
    assert planned.code == 0, planned.err
    line = next(x for x in planned.out.splitlines() if x.strip().startswith("t:"))
    assert "derived" in line and "column status added" in line and "column note renamed to memo" in line
    assert "column v dropped" in line
    assert any(x.strip() == "same: replayed as it is" for x in planned.out.splitlines()), planned.out
    indexed = "o: replayed as it is, no companion needed (index o_id_total added; index o_total dropped)"
    assert any(x.strip() == indexed for x in planned.out.splitlines()), planned.out
    document = project.cli("plan", "--json").json
    assert document["tables"]["same"] == "replayed as it is"
    assert document["tables"]["t"].startswith("derived, no companion needed (column status added")


def test_a_split_still_needs_its_companions_named_before_anything_is_built(tmp_path):
    """A split keeps ids but writes rows the migration derived from another table: not derivable;
    plan and deploy name the sync companion, and nothing on disk changes."""
    project = make_project(
        tmp_path,
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, bio TEXT);"
        "INSERT INTO users(name, bio) VALUES ('ann', 'a'), ('bob', 'b');",
        {
            "001_v1.1.0_split.sql": "CREATE TABLE profiles(user_id INTEGER PRIMARY KEY, bio TEXT);\n"
            "INSERT INTO profiles SELECT id, bio FROM users;\n"
            "ALTER TABLE users DROP COLUMN bio;\n"
        },
    )
    before = disk_state(project.data)
    for command in ("plan", "deploy"):
        line = assert_refused(project.cli(command), 3, "needs a sync companion", "001_v1.1.0_split_sync.sql")
        assert "derives rows from tables blue keeps writing (users)" in line
    assert disk_state(project.data) == before and state_of(project)["last_generation"] == 1


def test_a_companion_overrides_derivation(tmp_path):
    """With a sync companion for the migration that altered the table, replay leaves the table to
    it: here the companion also upper-cases the rows it carries, which derivation never would."""
    project = make_project(
        tmp_path,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t(v) VALUES ('a');",
        {
            "001_v1.1.0_add.sql": "ALTER TABLE t ADD COLUMN w TEXT;\n",
            "001_v1.1.0_add_sync.sql": "DELETE FROM t WHERE id IN (SELECT row_key FROM temp.bluegreen_changes "
            "WHERE table_name = 't');\nINSERT INTO t(id, v) SELECT id, upper(v) FROM source.t WHERE id IN "
            "(SELECT row_key FROM temp.bluegreen_changes WHERE table_name = 't' AND present = 1);\n",
        },
    )
    assert project.cli("prepare").code == 0
    conn = project.connect()
    conn.execute("INSERT INTO t(v) VALUES ('b')")
    conn.close()
    assert project.cli("cutover").code == 0
    assert rows(project.gen(2), "SELECT id, v, w FROM t ORDER BY id") == [(1, "a", None), (2, "B", None)]


def test_an_added_not_null_column_gives_blue_s_new_rows_its_default(tmp_path):
    """ADD COLUMN ... NOT NULL DEFAULT is derived: a row blue took during prepare reaches green
    with the DEFAULT, one blue updated keeps green's value of the new column."""
    project = make_project(
        tmp_path,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER); INSERT INTO t(v) VALUES (1), (5);",
        {"001_v1.1.0_add.sql": "ALTER TABLE t ADD COLUMN w INTEGER NOT NULL DEFAULT 0 CHECK (w >= 0);\n"},
    )
    assert project.cli("prepare").code == 0
    conn = project.connect(project.gen(2))
    conn.execute("UPDATE t SET w = 7 WHERE id = 2")  # as if the migration had set it
    conn.close()
    conn = project.connect()
    conn.execute("INSERT INTO t(v) VALUES (2)")
    conn.execute("UPDATE t SET v = 6 WHERE id = 2")
    conn.close()
    assert project.cli("cutover").code == 0
    assert rows(project.gen(2), "SELECT id, v, w FROM t ORDER BY id") == [(1, 1, 0), (2, 6, 7), (3, 2, 0)]


@pytest.mark.parametrize("index", ["email COLLATE NOCASE", "lower(email)"])
@pytest.mark.parametrize("key", ["integer_pk", "without_rowid"])
def test_a_blue_row_that_breaks_a_new_unique_index_is_named(tmp_path, key, index):
    """A new UNIQUE index is derived (the table keeps its rows); a duplicate blue took during
    prepare cannot go into green: cutover refuses (exit 3) naming the table, the key and the
    constraint, and blue stays active."""
    create = {
        "integer_pk": "CREATE TABLE t(id INTEGER PRIMARY KEY, email TEXT)",
        "without_rowid": "CREATE TABLE t(id INTEGER, email TEXT, PRIMARY KEY(id)) WITHOUT ROWID",
    }[key]
    project = make_project(
        tmp_path,
        create + "; INSERT INTO t VALUES (1, 'a@x'), (2, 'b@x');",
        {"001_v1.1.0_unique.sql": f"CREATE UNIQUE INDEX t_email ON t({index});\n"},
    )
    planned = project.cli("plan")
    # Only an index changed: replayed as it is or derived (an index on columns is compared as
    # part of the definition), never a companion.
    assert planned.code == 0, planned.out
    line = next(x.strip() for x in planned.out.splitlines() if x.strip().startswith("t: "))
    assert line.startswith(("t: derived, no companion needed", "t: replayed as it is, no companion needed")), line
    assert "index t_email added, UNIQUE: a blue row that breaks it is named at cutover" in line
    assert project.cli("prepare").code == 0
    conn = project.connect()
    conn.execute("INSERT INTO t VALUES (3, 'A@x')")
    conn.close()
    line = assert_refused(project.cli("cutover"), 3, "table 't' key", "UNIQUE constraint failed", "A@x")
    assert "stays active" in line
    assert active_of(project).name == "app.db"


def test_parse_alter_reads_names_not_strings():
    from bluegreen.engine.alters import parse_alter

    assert parse_alter('ALTER TABLE "my t" RENAME COLUMN [a b] TO `c``d`;') == ("my t", "rename_column", ("a b", "c`d"))
    assert parse_alter("ALTER TABLE main.t RENAME TO u") == ("t", "rename_table", ("u",))
    assert parse_alter("ALTER TABLE t ADD COLUMN c TEXT DEFAULT 'RENAME x TO y'") == ("t", "add", ())
    assert parse_alter("ALTER TABLE t DROP c") == ("t", "drop", ("c",))
    assert parse_alter("ALTER TABLE other.t DROP c") is None

    from bluegreen.engine.alters import parse_update

    assert parse_update("UPDATE t SET a = 'x WHERE y' WHERE b IS NOT NULL;") == (
        "t",
        "a = 'x WHERE y'",
        "b IS NOT NULL",
    )
    assert parse_update('UPDATE main."my t" SET a = CAST(b AS TEXT)') == ("my t", "a = CAST(b AS TEXT)", "")
    assert parse_update("UPDATE t SET a = (SELECT max(b) FROM t)") is None  # values across rows
    assert parse_update("UPDATE OR REPLACE t SET a = 1") is None
    assert parse_update("UPDATE t SET a = 1 FROM o WHERE o.id = t.id") is None


# -- the crash tests of the online lifecycle, on a derived migration ------------------------------
CRASH_MIGRATION = (
    "ALTER TABLE t ADD COLUMN status TEXT NOT NULL DEFAULT 'new';\n"
    "ALTER TABLE t RENAME COLUMN note TO memo;\nALTER TABLE t DROP COLUMN x;\n"
)


@pytest.mark.parametrize("point", DEPLOY_POINTS + REVERT_POINTS)
def test_killed_at_each_step_of_a_derived_deploy_and_revert_then_resumed(tmp_path, writers, point):
    setup = "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, note TEXT, x TEXT);" + "".join(
        f"INSERT INTO t VALUES ({i}, 'seed-v{i}', 'seed-p{i}', 'x');" for i in range(1, SEEDED + 1)
    )
    project = make_project(tmp_path, setup, {"001_v1.1.0_change.sql": CRASH_MIGRATION})
    seed = rows(project.blue, "SELECT id, v, note FROM t")
    writer = Writer(project, tmp_path, ["id"])
    writers.append(writer)
    writer.wait_for(10)
    if point.startswith("deploy"):
        crashed = bluegreen(project, "deploy", crash_at=point)
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr
        time.sleep(0.2)
        resumed = bluegreen(project, "resume")
        assert resumed.returncode == 0, resumed.stderr
        if active_of(project).name == "app.db":  # resume may abort a deploy not yet validated
            assert bluegreen(project, "deploy").returncode == 0
    else:
        assert bluegreen(project, "deploy").returncode == 0
        writer.wait_for(20, on=active_of(project).name)
        crashed = bluegreen(project, "revert", crash_at=point)
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr
        time.sleep(0.2)
        resumed = bluegreen(project, "resume")
        assert resumed.returncode == 0, resumed.stderr
    writer.wait_for(20, on=active_of(project).name, timeout=60)
    writer.finish()
    want = expected(seed, writer.records(), True)
    active = active_of(project)
    payload = "memo" if active.name != "app.db" else "note"
    check(active, ["id"], payload, None, want)
    if active.name != "app.db":
        assert rows(active, "SELECT count(*) FROM t WHERE status <> 'new'") == [(0,)]


# -- a backfill the migration wrote: re-applied to each changed row --------------------------------
BACKFILL = (
    "ALTER TABLE t ADD COLUMN status TEXT NOT NULL DEFAULT 'new';\n"
    "UPDATE t SET status = CASE WHEN v LIKE 'big%' THEN 'large' ELSE 'small' END WHERE v IS NOT NULL;\n"
)


@pytest.mark.parametrize("key", list(KEYS))
def test_a_backfill_is_re_applied_to_each_row_blue_changed(tmp_path, key):
    """ADD COLUMN + `UPDATE t SET status = <expression over the row> WHERE ...`: derived (the UPDATE
    reads only t), no companion; a row blue inserted or updated during prepare gets the backfill's
    value in green; a row blue left alone keeps the one the migration wrote; revert carries back."""
    create, keys = KEYS[key]
    names = {"rowid": "rowid", "integer_pk": "id", "text_pk": "k", "without_rowid": "k"}[key]
    extra = ", n" if key == "without_rowid" else ""
    project = make_project(
        tmp_path,
        create.format(p="x")
        + ";"
        + "".join(
            f"INSERT INTO t({'' if key == 'rowid' else names + extra + ', '}v) VALUES "
            f"({'' if key == 'rowid' else repr(f'{i}') + (', 0' if extra else '') + ', '}'{v}');"
            for i, v in [(1, "big one"), (2, "tiny"), (3, "tiny")]
        ),
        {"001_v1.1.0_status.sql": BACKFILL},
    )
    planned = project.cli("plan")
    assert planned.code == 0, planned.out + planned.err
    assert "t: derived, no companion needed (column status added; backfilled (SET status = CASE" in planned.out
    assert project.cli("prepare").code == 0
    app = project.connect()
    where = f"{keys[0]} = ?"
    first, second, _ = [r[0] for r in app.execute(f"SELECT {keys[0]} FROM t ORDER BY v, {keys[0]}")]
    app.execute(f"UPDATE t SET v = 'big now' WHERE {where}", (second,))  # tiny -> big
    app.execute(
        f"INSERT INTO t({'' if key == 'rowid' else names + extra + ', '}v) VALUES "
        f"({'' if key == 'rowid' else repr('9') + (', 0' if extra else '') + ', '}'big new')"
    )
    app.execute(f"DELETE FROM t WHERE {where}", (first,))
    app.close()
    assert project.cli("cutover").code == 0
    green = dict(rows(project.gen(2), "SELECT v, status FROM t"))
    assert green == {"big now": "large", "tiny": "small", "big new": "large"}, green
    # Values in status that the backfill gives the row anyway (a deploy re-derives them) carry back.
    app = project.connect(project.gen(2))
    app.execute("UPDATE t SET v = 'big on green', status = 'large' WHERE v = 'big new'")
    app.close()
    assert project.cli("revert").code == 0
    assert sorted(v for (v,) in rows(project.blue, "SELECT v FROM t")) == ["big now", "big on green", "tiny"]
    assert project.cli("deploy").code == 0
    app = project.connect(project.gen(3))
    app.execute("UPDATE t SET v = 'edited on green', status = 'kept' WHERE v = 'tiny'")
    app.close()
    # 'kept' is a value green wrote into status, a column blue does not have: reverting would drop
    # it, so revert refuses (exit 5) naming the column; --accept-loss saves it, then carries v back.
    refused = project.cli("revert")
    assert refused.code == 5 and "column status" in refused.err, refused.err
    assert project.cli("revert", "--accept-loss").code == 0
    assert sorted(v for (v,) in rows(project.blue, "SELECT v FROM t")) == ["big now", "big on green", "edited on green"]


@pytest.mark.parametrize(
    "backfill",
    [
        "UPDATE t SET w = (SELECT w FROM o WHERE o.id = t.id);",  # another table
        "UPDATE t SET w = (SELECT max(v) FROM t);",  # values across rows
        "UPDATE t SET w = coalesce(w, '') || v;",  # reads the column it added: would compound
    ],
)
def test_a_backfill_derivation_cannot_re_apply_still_needs_its_companion(tmp_path, backfill):
    project = make_project(
        tmp_path,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE o(id INTEGER PRIMARY KEY, w TEXT);",
        {"001_v1.1.0_status.sql": "ALTER TABLE t ADD COLUMN w TEXT;\n" + backfill + "\n"},
    )
    before = disk_state(project.data)
    assert_refused(project.cli("plan"), 3, "needs a sync companion", "001_v1.1.0_status_sync.sql")
    assert disk_state(project.data) == before


# -- the 12-step rebuild: a new table, the copy of every row by key, DROP, RENAME TO ---------------
REBUILD = {
    "integer_pk": "CREATE TABLE new_t(id INTEGER PRIMARY KEY, v TEXT NOT NULL DEFAULT '', note TEXT, "
    "extra INTEGER DEFAULT 5);\n"
    "INSERT INTO new_t(id, v, note, extra) SELECT id, v, note, 5 FROM t;\n",
    "without_rowid": "CREATE TABLE new_t(k TEXT, n INTEGER, v TEXT NOT NULL, note TEXT, extra INTEGER DEFAULT 5, "
    "PRIMARY KEY(k, n)) WITHOUT ROWID;\n"
    'INSERT INTO "new_t" ("k", "n", "v", "note") SELECT "k", "n", "v", "note" FROM "t";\n',
    "rowid": "CREATE TABLE new_t(v TEXT NOT NULL, note TEXT);\nINSERT INTO new_t(v, note) SELECT v, note FROM t;\n",
    "text_pk": "CREATE TABLE new_t(k TEXT PRIMARY KEY, v TEXT NOT NULL, note TEXT);\n"
    "INSERT INTO new_t(k, v, note) SELECT k, v, note FROM t;\n",
}
REBUILD_END = "DROP TABLE t;\nALTER TABLE new_t RENAME TO t;\nCREATE INDEX t_v ON t(v);\n"
# Rebuilds that keep each row's key: sqlite-utils' transform copies the rowid itself; Django's
# fills a new field with its default as a constant in the copy (no DEFAULT in the table).
KEPT_REBUILD = {
    "integer_pk": REBUILD["integer_pk"],
    "without_rowid": REBUILD["without_rowid"],
    "rowid": 'CREATE TABLE "new_t" ("v" TEXT NOT NULL, "note" TEXT);\n'
    'INSERT INTO "new_t" ("rowid", "v", "note") SELECT "rowid", "v", "note" FROM "t";\n',
    "text_pk": 'CREATE TABLE "new_t" ("k" TEXT PRIMARY KEY, "v" TEXT NOT NULL, "note" TEXT);\n'
    'INSERT INTO "new_t" ("rowid", "k", "v", "note") SELECT "rowid", "k", "v", "note" FROM "t";\n',
    "text_pk_by_key": REBUILD["text_pk"],  # Django's copy of a CharField primary key: new rowids
    "integer_pk_django": 'CREATE TABLE "new_t" ("id" integer NOT NULL PRIMARY KEY, "v" text NOT NULL, '
    '"note" text NULL, "status" varchar(10) NULL);\n'
    'INSERT INTO "new_t" ("id", "v", "note", "status") SELECT "id", "v", "note", \'new\' FROM "t";\n',
}


@pytest.mark.parametrize("case", list(KEPT_REBUILD))
def test_a_rebuilt_table_that_keeps_its_keys_deploys_online_and_reverts(tmp_path, writers, case):
    """The 12-step recreate (Django's and sqlite-utils' way of changing a column on SQLite), its
    copy by key (an INTEGER PRIMARY KEY, a WITHOUT ROWID key, or the rowid itself) and by column
    name: derived, no companion; the writer's every write present after deploy and revert. A
    constant the copy put in a new column is what blue's new rows get, and a row green changed
    that still holds it carries back (a deploy gives it that value again)."""
    key = case.removesuffix("_django").removesuffix("_by_key")
    project = make_project(
        tmp_path, setup_sql(key, "rename_column"), {"001_v1.1.0_rebuild.sql": KEPT_REBUILD[case] + REBUILD_END}
    )
    keys = KEYS[key][1]
    seed = rows(project.blue, f"SELECT {', '.join(keys)}, v, note FROM t")
    planned = project.cli("plan")
    assert planned.code == 0, planned.out + planned.err
    by = "primary key (rowids kept)" if case.endswith("_by_key") else "key"
    assert f"t: derived, no companion needed (rebuilt as new_t, rows copied by {by}, columns by name" in planned.out
    assert "index t_v added)" in planned.out
    writer = Writer(project, tmp_path, keys)
    writers.append(writer)
    writer.wait_for(20)
    deployed = project.cli_process("deploy")
    assert deployed.code == 0, deployed.out + deployed.err
    writer.wait_for(30, on="app.gen2.db")
    assert writer.committed("app.db") > 20
    writer.pause()
    check(active_of(project), keys, "note", None, expected(seed, writer.records(), True))
    if "extra" in KEPT_REBUILD[case]:
        assert rows(active_of(project), "SELECT count(*) FROM t WHERE extra IS NOT 5") == [(0,)]  # new rows: DEFAULT
    if "status" in KEPT_REBUILD[case]:  # every row from blue got the copy's constant, its new ones too
        on_green = {r["key"][0] for r in writer.records() if r.get("op") == "insert" and r["file"] == "app.gen2.db"}
        on_blue = {r["key"][0] for r in writer.records() if r.get("op") == "insert" and r["file"] == "app.db"}
        unset = {k for (k,) in rows(active_of(project), "SELECT id FROM t WHERE status IS NOT 'new'")}
        assert (
            unset <= on_green
            and on_blue - unset
            and on_blue & {k for (k,) in rows(active_of(project), "SELECT id FROM t")}
        )
    writer.resume()
    writer.wait_for(30, on="app.gen2.db")
    if "status" in KEPT_REBUILD[case]:
        # A row green changed that holds the copy's 'new' carries back (a deploy gives it 'new'
        # again); one the writer inserted on green holds NULL, which a deploy would turn into
        # 'new': those alone are refused, named by the column, and --accept-loss saves them.
        writer.pause()
        unset = rows(active_of(project), "SELECT count(*) FROM t WHERE status IS NULL")[0][0]
        refused = project.cli_process("revert")
        assert refused.code == 5 and f"t: {unset} row(s)" in refused.err and "column status" in refused.err
        assert unset < writer.committed("app.gen2.db")
        accepted = project.cli_process("revert", "--accept-loss", "--json")
        assert accepted.code == 0 and accepted.json["lost"]["t"] == unset, accepted.out + accepted.err
        writer.resume()
    else:
        reverted = project.cli_process("revert")
        assert reverted.code == 0, reverted.out + reverted.err
    writer.wait_for(20, on="app.db")
    writer.finish()
    check(project.blue, keys, "note", None, expected(seed, writer.records(), True))


@pytest.mark.parametrize("key", ["rowid"])
def test_a_rebuild_that_renumbers_rowids_still_needs_its_companion(tmp_path, key):
    """A rowid table with no PRIMARY KEY, copied without its rowid: the copy gives its rows new
    rowids and nothing else identifies them, so rows cannot be matched: plan names the sync
    companion, nothing built. (With a PRIMARY KEY, bluegreen keeps the rowids: derived.)"""
    project = make_project(
        tmp_path, setup_sql(key, "rename_column"), {"001_v1.1.0_rebuild.sql": REBUILD[key] + REBUILD_END}
    )
    before = disk_state(project.data)
    line = assert_refused(project.cli("plan"), 3, "needs a sync companion", "001_v1.1.0_rebuild_sync.sql")
    assert "t (definition or triggers changed)" in line
    assert disk_state(project.data) == before


def test_parse_copy_reads_only_a_whole_copy():
    from bluegreen.engine.alters import parse_copy

    assert parse_copy('INSERT INTO "new t" ("a", b) SELECT a, 0 FROM main.t;') == (
        "t",
        "copy",
        ("new t", (("a", ("column", "a")), ("b", ("literal", "0")))),
    )
    assert parse_copy("INSERT INTO _alembic_tmp_t (a, b) SELECT t.a, t.b FROM t") == (
        "t",
        "copy",
        ("_alembic_tmp_t", (("a", ("column", "a")), ("b", ("column", "b")))),
    )  # Alembic's batch mode names the table copied from
    assert parse_copy("INSERT INTO n(a, b) SELECT o.a, t.b FROM t") is None  # another table's column
    assert parse_copy("INSERT INTO n(a) SELECT a FROM t WHERE a > 1") is None
    assert parse_copy("INSERT INTO n(a) SELECT a + 1 FROM t") is None
    assert parse_copy("INSERT INTO n SELECT a FROM t") is None
    assert parse_copy("INSERT INTO n(a) VALUES (1)") is None


@pytest.mark.parametrize(
    "writes",
    [
        "CREATE TABLE seed(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO seed VALUES (100, 'x');\n"
        "INSERT INTO t(id, v) SELECT id, v FROM seed;",  # rows into t from a table blue has not
        "INSERT INTO t(id, v) VALUES (100, 'x');",
        "DELETE FROM t WHERE id = 1;",
    ],
    ids=["copy-into-t", "insert", "delete"],
)
def test_a_migration_that_writes_rows_of_an_altered_table_still_needs_its_companion(tmp_path, writes):
    """Hazard 3 stays closed: rows the migration itself wrote into the table would be overwritten
    by blue's, so the table is not derived, whatever else is."""
    project = make_project(
        tmp_path,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a');",
        {"001_v1.1.0_add.sql": "ALTER TABLE t ADD COLUMN w TEXT;\n" + writes + "\n"},
    )
    before = disk_state(project.data)
    line = assert_refused(project.cli("plan"), 3, "needs a sync companion", "001_v1.1.0_add_sync.sql")
    assert "t (definition or triggers changed)" in line
    assert disk_state(project.data) == before


def test_a_rebuild_by_primary_key_gives_the_rows_their_own_rowids_back(tmp_path):
    """engine/rowids.py: negative, sparse and large rowids all come back, by primary key, and the
    saved keys leave no table behind; a rebuild that also changes the key is not derived."""
    setup = (
        "CREATE TABLE t(k TEXT PRIMARY KEY, v TEXT, note TEXT); CREATE TABLE touched(k TEXT);"
        "INSERT INTO t(rowid, k, v, note) VALUES (-5, 'a', 'x', 'n'), (3, 'b', 'y', 'n'), (4611686018427387000, 'c', 'z', 'n');"
    )
    trigger = "CREATE TRIGGER t_touched AFTER UPDATE ON t BEGIN INSERT INTO touched VALUES (new.k); END;\n"
    project = make_project(tmp_path, setup, {"001_v1.1.0_rebuild.sql": REBUILD["text_pk"] + REBUILD_END + trigger})
    assert project.cli("deploy", "--offline").code == 0
    assert rows(project.gen(2), "SELECT count(*) FROM touched") == [(0,)]  # moving rowids fires no trigger
    assert rows(project.gen(2), "SELECT rowid, k, v FROM t ORDER BY k") == rows(
        project.blue, "SELECT rowid, k, v FROM t ORDER BY k"
    )
    assert rows(project.gen(2), "SELECT name FROM sqlite_schema WHERE name LIKE '%rowids%'") == []
    changed_key = REBUILD["text_pk"].replace(
        "k TEXT PRIMARY KEY, v TEXT NOT NULL", "k TEXT, v TEXT NOT NULL PRIMARY KEY"
    )
    (tmp_path / "other").mkdir()
    other = make_project(tmp_path / "other", setup, {"001_v1.1.0_rebuild.sql": changed_key + REBUILD_END})
    assert_refused(other.cli("plan"), 3, "needs a sync companion")
