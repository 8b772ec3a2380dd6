"""A blue write that green's new constraints reject (issue 10, item 8): a migration adds a UNIQUE
index, a NOT NULL or a CHECK, then blue keeps writing a row that breaks it. Cutover and prepare
refuse with exit 3 naming the table, the key, the constraint and the row's values; blue stays
active, nothing is lost; `status` says the same and clears once the row is fixed or on abort."""

from __future__ import annotations

from pathlib import Path

import apsw
import pytest
from conftest import Project, disk_state, rows
from helpers import error_line, pointer_active
from helpers import make_project as make_hazard_project  # this file's make_project adds USERS

from bluegreen import config
from bluegreen.errors import ReplayConflict
from bluegreen.lifecycle.controller import Controller

USERS = "CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT NOT NULL, name TEXT, age INT);\n" + "".join(
    f"INSERT INTO users VALUES ({i}, 'u{i}@example.com', 'user {i}', {20 + i});\n" for i in range(1, 9)
)
SYNC_USERS = """\
DELETE FROM users WHERE id IN (SELECT row_key FROM temp.bluegreen_changes WHERE table_name = 'users');
INSERT INTO users(id, email, name, age) SELECT id, email, name, age FROM source.users
WHERE id IN (SELECT row_key FROM temp.bluegreen_changes WHERE table_name = 'users' AND present = 1);
"""
REBUILD = """\
CREATE TABLE users_new(id INTEGER PRIMARY KEY, email TEXT NOT NULL, name TEXT {name}, age INT {age});
INSERT INTO users_new SELECT * FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;
"""
MIGRATIONS = {
    "unique email": {
        "001_v1.1.0_unique_email.sql": "CREATE UNIQUE INDEX users_email ON users(email);\n",
        "001_v1.1.0_unique_email_sync.sql": SYNC_USERS,
    },
    "NOT NULL name": {
        "001_v1.1.0_name_required.sql": REBUILD.format(name="NOT NULL", age=""),
        "001_v1.1.0_name_required_sync.sql": SYNC_USERS,
    },
    "CHECK age": {
        "001_v1.1.0_adults.sql": REBUILD.format(name="", age="CHECK (age >= 18)"),
        "001_v1.1.0_adults_sync.sql": SYNC_USERS,
    },
}
BAD_ROW = {
    "unique email": (
        "INSERT INTO users VALUES (100, 'u3@example.com', 'dup', 40)",
        "UNIQUE constraint failed: users.email",
    ),
    "NOT NULL name": (
        "INSERT INTO users VALUES (100, 'new@example.com', NULL, 40)",
        "NOT NULL constraint failed: users.name",
    ),
    "CHECK age": ("INSERT INTO users VALUES (100, 'new@example.com', 'kid', 7)", "CHECK constraint failed"),
}
FIX = "UPDATE users SET email = 'fixed@example.com', name = 'fixed', age = 40 WHERE id = 100"


def make_project(root: Path, migrations: dict[str, str]) -> Project:
    """A users table on blue (see USERS), these migrations, initialized."""
    return make_hazard_project(root, USERS, migrations)


def app(path: Path, sql: str) -> None:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READWRITE)
    conn.set_busy_timeout(10_000)
    try:
        for _ in conn.execute(sql):
            pass
    finally:
        conn.close()


@pytest.mark.parametrize("kind", list(MIGRATIONS))
def test_cutover_names_the_row_green_rejects_then_status_then_fix(tmp_path, kind):
    project = make_project(tmp_path, MIGRATIONS[kind])
    assert project.cli("prepare").code == 0
    bad, constraint = BAD_ROW[kind]
    app(project.blue, bad)
    before = disk_state(project.data)
    refused = project.cli("cutover", "--json")
    assert refused.code == 3, (refused.out, refused.err)
    line = error_line(refused)
    for part in ("'users'", "key 100", constraint, "fix the row on app.db", "bluegreen abort"):
        assert part in line, (part, line)
    assert "u3@example.com" in line or "new@example.com" in line  # the offending values
    details = refused.json["details"]
    assert [(c["table"], c["key"]) for c in details["conflicts"]] == [("users", 100)]
    assert constraint in details["conflicts"][0]["constraint"]
    assert details["conflicts"][0]["values"]["id"] == "100"
    # Nothing changed but the journal's note of the conflict: blue active, green prepared.
    after = disk_state(project.data)
    state_before, state_after = before.pop(".bluegreen/state.json"), after.pop(".bluegreen/state.json")
    assert after == before
    assert state_after["phase"] == "prepared" and state_before["phase"] == "prepared"
    assert pointer_active(project) == "app.db"
    assert rows(project.blue, "SELECT count(*) FROM sqlite_schema WHERE name GLOB '_bluegreen_fence_*'") == [(0,)]
    # status says the same, and proposes the fix instead of a plain cutover
    status = project.cli("status", "--json").json
    assert status["phase"] == "prepared"
    assert "fix the conflicting row" in status["next"] and "abort" in status["next"]
    assert status["conflict"]["conflicts"][0]["key"] == 100
    text = project.cli("status").out
    assert "conflict    table 'users' key 100" in text and constraint in text
    # a second cutover refuses the same way (not a raw error), and after the fix it goes through
    assert project.cli("cutover").code == 3
    app(project.blue, FIX)
    done = project.cli("cutover", "--json")
    assert done.code == 0, done.err
    assert pointer_active(project) == "app.gen2.db"
    assert rows(project.gen(2), "SELECT * FROM users ORDER BY id") == rows(
        project.blue, "SELECT * FROM users ORDER BY id"
    )
    assert project.cli("status", "--json").json["conflict"] == {}


def test_abort_clears_the_conflict(tmp_path):
    project = make_project(tmp_path, MIGRATIONS["unique email"])
    assert project.cli("prepare").code == 0
    app(project.blue, BAD_ROW["unique email"][0])
    assert project.cli("cutover").code == 3
    assert project.cli("abort").code == 0
    status = project.cli("status", "--json").json
    assert status["phase"] == "idle" and status["conflict"] == {} and "fix" not in status["next"]
    assert rows(project.blue, "SELECT count(*) FROM users WHERE id = 100") == [(1,)]  # the row is blue's to keep


def test_two_new_rows_that_clash_with_each_other_name_the_second(tmp_path):
    """Neither row conflicts with green alone; together they break the new UNIQUE index."""
    project = make_project(tmp_path, MIGRATIONS["unique email"])
    assert project.cli("prepare").code == 0
    app(
        project.blue,
        "INSERT INTO users VALUES (100, 'same@example.com', 'a', 30);"
        "INSERT INTO users VALUES (101, 'same@example.com', 'b', 30)",
    )
    refused = project.cli("cutover", "--json")
    assert refused.code == 3
    assert [c["key"] for c in refused.json["details"]["conflicts"]] == [101]


def test_swapped_unique_values_are_no_conflict(tmp_path):
    """Two rows swap their emails on blue: each alone would clash with the other's old row; the
    batch does not, and cutover goes through."""
    project = make_project(tmp_path, MIGRATIONS["unique email"])
    assert project.cli("prepare").code == 0
    app(
        project.blue,
        "UPDATE users SET email = 'tmp' WHERE id = 1; UPDATE users SET email = 'u1@example.com' WHERE id = 2;"
        "UPDATE users SET email = 'u2@example.com' WHERE id = 1",
    )
    assert project.cli("cutover").code == 0
    assert rows(project.gen(2), "SELECT * FROM users ORDER BY id") == rows(
        project.blue, "SELECT * FROM users ORDER BY id"
    )


def test_prepare_meeting_the_row_in_its_own_catch_up_refuses_and_leaves_nothing(tmp_path):
    """The row lands on blue after the snapshot, while the migration runs: prepare's catch-up
    meets it, refuses with exit 3 (ReplayConflict) naming it, and no generation is left behind."""
    project = make_project(tmp_path, MIGRATIONS["unique email"])
    bad = BAD_ROW["unique email"][0]

    def progress(phase: str, done: int, total: int) -> None:
        if phase == "migrate" and done == 0:
            app(project.blue, bad)

    controller = Controller(config.load(project.config), progress=progress)
    with pytest.raises(ReplayConflict) as raised:
        controller.prepare()
    assert raised.value.exit_code == 3
    assert "'users' key 100" in raised.value.message and "u3@example.com" in raised.value.message
    assert not [p.name for p in project.data.iterdir() if p.name.startswith("app.gen")]
    assert rows(project.blue, "SELECT count(*) FROM sqlite_schema WHERE name LIKE '\\_bluegreen%' ESCAPE '\\'") == [
        (0,)
    ]
    status = project.cli("status", "--json").json
    assert status["phase"] == "idle" and status["conflict"] == {}
    assert rows(project.blue, "SELECT count(*) FROM users WHERE id = 100") == [(1,)]


def test_revert_names_a_green_row_blues_schema_rejects(tmp_path):
    """The mirror: a migration drops a NOT NULL; a row green writes with NULL cannot go back to
    blue's schema: revert refuses with exit 3 naming it, green stays active, nothing lost."""
    migrations = {
        "001_v1.1.0_name_optional.sql": REBUILD.format(name="", age="").replace("email TEXT NOT NULL", "email TEXT"),
        "001_v1.1.0_name_optional_sync.sql": SYNC_USERS,
        "001_v1.1.0_name_optional_rollback.sql": "-- bluegreen: carries users\n" + SYNC_USERS,
    }
    project = make_project(tmp_path, migrations)
    assert project.cli("deploy").code == 0, project.cli("status").out
    app(project.gen(2), "INSERT INTO users VALUES (100, NULL, 'no email', 30)")
    refused = project.cli("revert", "--json")
    assert refused.code == 3, (refused.out, refused.err)
    line = error_line(refused)
    assert "'users' key 100" in line and "NOT NULL constraint failed: users.email" in line
    assert pointer_active(project) == "app.gen2.db"
    app(project.gen(2), "UPDATE users SET email = 'given@example.com' WHERE id = 100")
    assert project.cli("revert").code == 0
    assert rows(project.blue, "SELECT email FROM users WHERE id = 100") == [("given@example.com",)]


def test_generic_replay_names_the_row_too(tmp_path):
    """Same-shape tables replay without a script: if green holds a row blue never had (someone
    wrote to the prepared file), the blue row that clashes with it is named the same way. A
    WITHOUT ROWID table's key is named as captured (its quote()d values)."""
    setup = (
        "CREATE TABLE accounts(id INTEGER PRIMARY KEY, email TEXT UNIQUE);"
        "CREATE TABLE codes(a TEXT, b REAL, code TEXT UNIQUE, PRIMARY KEY(a, b)) WITHOUT ROWID;"
        "INSERT INTO accounts VALUES (1, 'a@example.com'); INSERT INTO codes VALUES ('x', 1.5, 'c1');"
    )
    project = make_project(tmp_path, {"001_v1.1.0_notes.sql": "CREATE TABLE notes(id INTEGER PRIMARY KEY);\n"})
    app(project.blue, setup)
    assert project.cli("prepare").code == 0, project.cli("status").out
    app(project.gen(2), "INSERT INTO accounts VALUES (50, 'b@example.com'); INSERT INTO codes VALUES ('y', 2.0, 'c2')")
    app(
        project.blue, "INSERT INTO accounts VALUES (7, 'b@example.com'); INSERT INTO codes VALUES ('it''s', -2.5, 'c2')"
    )
    refused = project.cli("cutover", "--json")
    assert refused.code == 3, (refused.out, refused.err)
    conflicts = {(c["table"], c["key"]): c for c in refused.json["details"]["conflicts"]}
    assert set(conflicts) == {("accounts", 7), ("codes", "'it''s',-2.5")}, conflicts
    assert conflicts[("codes", "'it''s',-2.5")]["values"] == {"a": "'it''s'", "b": "-2.5", "code": "'c2'"}
    assert "UNIQUE constraint failed: accounts.email" in conflicts[("accounts", 7)]["constraint"]
    assert pointer_active(project) == "app.db"
