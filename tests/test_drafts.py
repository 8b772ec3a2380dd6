"""Companions drafted from the derivation (issue 13, item 3): `bluegreen new --for MIGRATION`
writes its _sync.sql and _rollback.sql with the SQL bluegreen derives, commented out. Used as
written (uncommented, the tripwire deleted), the drafts keep an online deploy and a revert exact:
a split that keeps ids, with a writer process on blue during the deploy and on green after the
swap, checked row by row; and a derived change on each key kind. Every refusal writes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import disk_state, rows
from helpers import app, assert_refused, make_project, pointer_active, state_of

SPLIT = {
    "001_v1.1.0_split.sql": "CREATE TABLE profiles(user_id INTEGER PRIMARY KEY, bio TEXT);\n"
    "INSERT INTO profiles SELECT id, bio FROM users;\n"
    "ALTER TABLE users DROP COLUMN bio;\n"
}
USERS = "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, bio TEXT);" + "".join(
    f"INSERT INTO users(name, bio) VALUES ('seed{i}', 'bio{i}');" for i in range(1, 21)
)


def use_drafts(folder: Path) -> None:
    """What a person does with a draft they agree with: uncomment it, delete the tripwire."""
    for path in list(folder.glob("*_sync.sql")) + list(folder.glob("*_rollback.sql")):
        out, inside = [], False
        for line in path.read_text().splitlines():
            if line in ("-- >>> draft", "-- <<< draft"):
                inside = line == "-- >>> draft"
                continue
            if line.startswith("SELECT replace_this_skeleton"):
                continue
            out.append((line[3:] if line.startswith("-- ") else "") if inside else line)
        path.write_text("\n".join(out) + "\n")


# The application: on the v1.0 file (users has bio) it writes users; on the v1.1 file it writes
# users and profiles in one transaction. It follows the pointer and retries what a fence refused.
WRITER = r"""
import json, os, random, sys, time
from pathlib import Path
import apsw
from bluegreen.tools.writer import active_file, refused_by_fence

pointer, log = Path(sys.argv[1]), Path(sys.argv[2])
stop, pause = Path(str(log) + ".stop"), Path(str(log) + ".pause")
fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
rng = random.Random(11)

def connect():
    path = active_file(pointer)
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READWRITE)
    conn.set_busy_timeout(60_000)
    split = bool(conn.execute("SELECT 1 FROM sqlite_schema WHERE name = 'profiles'").fetchall())
    return path, conn, split

path, conn, split = connect()
mine = [r[0] for r in conn.execute("SELECT id FROM users")]
n, paused = 0, False
while not stop.exists():
    if pause.exists():
        if not paused:
            os.write(fd, b'{"event": "paused"}\n')
            paused = True
        time.sleep(0.01)
        continue
    paused = False
    n += 1
    roll, bio = rng.random(), f"bio-{n}"
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            if roll < 0.4 and mine:
                key, op = rng.choice(mine), "update"
                if split:
                    conn.execute("UPDATE profiles SET bio = ? WHERE user_id = ?", (bio, key))
                else:
                    conn.execute("UPDATE users SET bio = ? WHERE id = ?", (bio, key))
            elif roll < 0.5 and mine:
                key, op = rng.choice(mine), "delete"
                if split:
                    conn.execute("DELETE FROM profiles WHERE user_id = ?", (key,))
                conn.execute("DELETE FROM users WHERE id = ?", (key,))
            else:
                op = "insert"
                if split:
                    conn.execute("INSERT INTO users(name) VALUES (?)", (f"u{n}",))
                    key = conn.last_insert_rowid()
                    conn.execute("INSERT INTO profiles(user_id, bio) VALUES (?, ?)", (key, bio))
                else:
                    conn.execute("INSERT INTO users(name, bio) VALUES (?, ?)", (f"u{n}", bio))
                    key = conn.last_insert_rowid()
            conn.execute("COMMIT")
            break
        except apsw.Error as exc:
            if not refused_by_fence(conn, exc):
                raise
            time.sleep(0.005)
            conn.close()
            path, conn, split = connect()
    if op == "insert":
        mine.append(key)
    elif op == "delete":
        mine.remove(key)
    os.write(fd, (json.dumps(dict(event="committed", op=op, key=key, name=f"u{n}", bio=bio, file=path.name)) + "\n").encode())
    time.sleep(0.002)
conn.close()
"""


class SplitWriter:
    def __init__(self, project, folder: Path):
        self.log = folder / "writer.log"
        (folder / "writer.py").write_text(WRITER)
        self.err = open(folder / "writer.err", "w")
        self.process = subprocess.Popen(
            [sys.executable, str(folder / "writer.py"), str(project.pointer), str(self.log)], stderr=self.err
        )

    def records(self) -> list[dict]:
        text = self.log.read_text() if self.log.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.endswith("}")]

    def committed(self, on: str | None = None) -> int:
        return sum(1 for r in self.records() if r["event"] == "committed" and on in (None, r["file"]))

    def wait_for(self, more: int, on: str | None = None) -> None:
        goal, deadline = self.committed(on) + more, time.monotonic() + 60
        while self.committed(on) < goal:
            assert self.process.poll() is None, Path(self.err.name).read_text()
            assert time.monotonic() < deadline, f"no {more} writes on {on}"
            time.sleep(0.01)

    def pause(self) -> None:
        seen = sum(1 for r in self.records() if r["event"] == "paused")
        Path(str(self.log) + ".pause").touch()
        while sum(1 for r in self.records() if r["event"] == "paused") <= seen:
            assert self.process.poll() is None, Path(self.err.name).read_text()
            time.sleep(0.01)

    def resume(self) -> None:
        Path(str(self.log) + ".pause").unlink()

    def finish(self) -> None:
        Path(str(self.log) + ".stop").touch()
        assert self.process.wait(timeout=60) == 0, Path(self.err.name).read_text()

    def expected(self, seed: dict[int, tuple[str, str]]) -> dict[int, tuple[str, str]]:
        """id -> (name, bio): the seed rows with every committed write applied in order."""
        state = dict(seed)
        for r in self.records():
            if r["event"] != "committed":
                continue
            if r["op"] == "delete":
                state.pop(r["key"])
            elif r["op"] == "update":
                state[r["key"]] = (state[r["key"]][0], r["bio"])
            else:
                state[r["key"]] = (r["name"], r["bio"])
        return state


@pytest.fixture
def split_writer():
    started: list[SplitWriter] = []
    yield started
    for writer in started:
        if writer.process.poll() is None:
            writer.process.kill()
            writer.process.wait()


def test_a_split_with_its_drafted_companions_deploys_online_and_reverts_exactly(tmp_path, split_writer):
    project = make_project(tmp_path, USERS, SPLIT)
    seed = {i: (n, b) for i, n, b in rows(project.blue, "SELECT id, name, bio FROM users")}
    refused = assert_refused(
        project.cli("plan"), 3, "needs a sync companion", "bluegreen new --for 001_v1.1.0_split.sql"
    )
    assert "001_v1.1.0_split_sync.sql" in refused

    drafted = project.cli("new", "--for", "001_v1.1.0_split.sql")
    assert drafted.code == 0, drafted.err
    assert "users: derived (column bio dropped)" in drafted.out
    assert "profiles: filled from users (line 2)" in drafted.out
    sync = (project.schemas / "001_v1.1.0_split_sync.sql").read_text()
    assert '-- INSERT INTO main."profiles"' in sync and "SELECT replace_this_skeleton" in sync
    assert_refused(project.cli("plan"), 2, "replace_this_skeleton")  # still commented out: the tripwire
    use_drafts(project.schemas)
    planned = project.cli("plan")
    assert planned.code == 0, planned.out + planned.err

    writer = SplitWriter(project, tmp_path)
    split_writer.append(writer)
    writer.wait_for(20)
    deployed = project.cli_process("deploy")  # online: the writer writes users on blue meanwhile
    assert deployed.code == 0, deployed.out + deployed.err
    writer.wait_for(30, on="app.gen2.db")
    assert writer.committed("app.db") > 20
    writer.pause()
    want = writer.expected(seed)
    green = project.gen(2)
    assert dict((i, n) for i, n in rows(green, "SELECT id, name FROM users")) == {i: n for i, (n, _) in want.items()}
    assert dict(rows(green, "SELECT user_id, bio FROM profiles")) == {i: b for i, (_, b) in want.items()}
    writer.resume()

    writer.wait_for(30, on="app.gen2.db")
    reverted = project.cli_process("revert")  # the writer writes users and profiles on green until the fence
    assert reverted.code == 0, reverted.out + reverted.err
    assert pointer_active(project) == "app.db"
    writer.wait_for(10, on="app.db")
    writer.finish()
    want = writer.expected(seed)
    assert {i: (n, b) for i, n, b in rows(project.blue, "SELECT id, name, bio FROM users")} == want
    assert rows(project.blue, "PRAGMA integrity_check") == [("ok",)]


KEYED = {
    "rowid": "CREATE TABLE t(v TEXT, note TEXT)",
    "integer_pk": "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, note TEXT)",
    "text_pk": "CREATE TABLE t(k TEXT PRIMARY KEY, v TEXT, note TEXT)",
    "without_rowid": "CREATE TABLE t(k TEXT, n INTEGER, v TEXT, note TEXT, PRIMARY KEY(k, n)) WITHOUT ROWID",
}
CHANGE = (
    "ALTER TABLE t RENAME TO u;\nALTER TABLE u RENAME note TO memo;\nALTER TABLE u ADD COLUMN p TEXT DEFAULT 'fresh';\n"
)


@pytest.mark.parametrize("key", list(KEYED))
def test_a_drafted_derivation_used_as_the_companion_keeps_each_key_kind_exact(tmp_path, key):
    """The draft of a derived change, used as written: blue's writes during prepare reach green,
    green's writes carry back; a value in the added column other than its DEFAULT is refused."""
    keys = {"rowid": "rowid", "integer_pk": "id", "text_pk": "k", "without_rowid": "k, n"}[key]
    values = {
        "rowid": "(v, note) VALUES",
        "integer_pk": "(id, v, note) VALUES",
        "text_pk": "(k, v, note) VALUES",
        "without_rowid": "(k, n, v, note) VALUES",
    }[key]
    row = {"rowid": "", "integer_pk": "{i}, ", "text_pk": "'k{i}', ", "without_rowid": "'k{i}', {i}, "}[key]
    seed = "".join(f"INSERT INTO t{values} ({row.format(i=i)}'v{i}', 'n{i}');" for i in range(1, 6))
    project = make_project(tmp_path, KEYED[key] + ";" + seed, {"001_v1.1.0_move.sql": CHANGE})
    assert project.cli("new", "--for", "1").code == 0
    use_drafts(project.schemas)
    assert project.cli("plan").code == 0
    assert project.cli("prepare").code == 0
    app(
        project,
        f"UPDATE t SET note = 'blue' WHERE v = 'v1'; DELETE FROM t WHERE v = 'v2';"
        f"INSERT INTO t{values} ({row.format(i=9)}'v9', 'n9')",
    )
    assert project.cli("cutover").code == 0
    green = project.gen(2)
    assert rows(green, f"SELECT {keys}, v, memo, p FROM u ORDER BY v") == rows(
        project.blue, f"SELECT {keys}, v, note, 'fresh' FROM t ORDER BY v"
    )
    app(project, "UPDATE u SET memo = 'green' WHERE v = 'v3'; DELETE FROM u WHERE v = 'v4'", green)
    app(project, f"INSERT INTO u{values.replace('note', 'memo')} ({row.format(i=8)}'v8', 'n8')", green)
    reverted = project.cli("revert")
    assert reverted.code == 0, reverted.err
    assert rows(project.blue, f"SELECT {keys}, v, note FROM t ORDER BY v") == rows(
        green, f"SELECT {keys}, v, memo FROM u ORDER BY v"
    )
    project.cli("deploy")
    app(project, "UPDATE u SET p = 'written on green' WHERE v = 'v1'", project.gen(3))
    before = disk_state(project.data)
    assert_refused(project.cli("revert"), 5, "cannot be carried back")
    assert disk_state(project.data) == before


def test_new_for_replaces_only_an_untouched_skeleton(tmp_path):
    project = make_project(tmp_path, USERS, {})
    made = project.cli("new", "split", "--with", "sync,rollback")
    assert made.code == 0, made.err
    migration = Path(made.out.splitlines()[-1])
    migration.write_text(SPLIT["001_v1.1.0_split.sql"].replace("001_v1.1.0", "x"))
    assert "bluegreen new --for" in (project.schemas / f"{migration.stem}_sync.sql").read_text()
    drafted = project.cli("new", "--for", migration.name)
    assert drafted.code == 0, drafted.err
    assert "-- >>> draft" in (project.schemas / f"{migration.stem}_rollback.sql").read_text()
    rollback = project.schemas / f"{migration.stem}_rollback.sql"
    rollback.write_text(rollback.read_text() + "-- my own edit\n")
    before = disk_state(project.schemas)
    assert_refused(project.cli("new", "--for", migration.name), 2, "was edited", "never overwrites")
    assert disk_state(project.schemas) == before


@pytest.mark.parametrize(
    "args, code, words",
    [
        (("new", "--for", "007_v9.sql"), 2, ("no such migration", "001_v1.1.0_split.sql")),
        (("new", "split", "--for", "001_v1.1.0_split.sql"), 2, ("DESCRIPTION", "not both")),
        (("new",), 2, ("DESCRIPTION", "--for")),
        (("new", "--for", "1", "--version", "2.0.0"), 2, ("--version goes with a new migration",)),
    ],
)
def test_new_for_refuses_bad_input_and_writes_nothing(tmp_path, args, code, words):
    project = make_project(tmp_path, USERS, SPLIT)
    before = disk_state(tmp_path)
    result = project.cli(*args)
    assert result.code == code, result.out + result.err
    for word in words:
        assert word in result.err, result.err
    assert disk_state(tmp_path) == before


def test_new_for_a_migration_that_does_not_run_names_its_line_and_writes_nothing(tmp_path):
    project = make_project(
        tmp_path, USERS, {"001_v1.1.0_bad.sql": "ALTER TABLE users ADD COLUMN x TEXT;\nSELECT * FROM nowhere;\n"}
    )
    before = disk_state(tmp_path)
    assert_refused(project.cli("new", "--for", "001_v1.1.0_bad.sql"), 2, "001_v1.1.0_bad.sql:2", "no such table")
    assert disk_state(tmp_path) == before


def test_new_for_a_deployed_migration_drafts_against_the_file_a_revert_goes_back_to(tmp_path):
    """At 3 a.m. revert refuses for want of a _rollback.sql: it can still be drafted while the
    revert window is open; once it is closed there is nothing to draft against."""
    migration = {"001_v1.1.0_rename.sql": "ALTER TABLE users RENAME COLUMN bio TO about;\n"}
    project = make_project(tmp_path, USERS, migration)
    assert project.cli("deploy").code == 0
    drafted = project.cli("new", "--for", "001_v1.1.0_rename.sql", "--with", "rollback")
    assert drafted.code == 0, drafted.err
    assert "users: derived (column bio renamed to about)" in drafted.out
    assert state_of(project)["phase"] == "cut_over"
    (project.schemas / "001_v1.1.0_rename_rollback.sql").unlink()
    assert project.cli("finalize").code == 0
    before = disk_state(tmp_path)
    assert_refused(project.cli("new", "--for", "001_v1.1.0_rename.sql"), 2, "already has it", "no revert window")
    assert disk_state(tmp_path) == before
