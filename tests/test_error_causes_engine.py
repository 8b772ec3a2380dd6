"""The engine's errors are typed by cause: each is provoked here on real temporary databases
(apsw, real files, a second connection holding a real lock), and the test asserts the type, the
exit code it had before it was typed (the parent class still decides it), and that the message
still names the file, table or object to fix.
"""

from __future__ import annotations

from pathlib import Path

import apsw
import pytest
from test_replay_keyed import app_write, make_blue, make_green

from bluegreen.engine import barrier, capture, migrations, namedsql, revert_ddl
from bluegreen.engine.db import check_database, open_db, readonly_uri
from bluegreen.engine.replay import Replayer
from bluegreen.errors import (
    EXIT_FAILED,
    EXIT_GATE,
    EXIT_USAGE,
    CaptureLost,
    ConfigInvalid,
    DatabaseInvalid,
    InputError,
    LockTimeout,
    MigrationFailed,
    MigrationInvalid,
    OperationFailed,
    ReplayConflict,
    SchemaDrift,
    SchemaUnsupported,
)

KEYED = "CREATE TABLE pairs(a TEXT, b INTEGER, v TEXT, PRIMARY KEY(a, b)) WITHOUT ROWID;"


def wal_file(path: Path, sql: str = "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);") -> Path:
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA journal_mode = WAL").get
    with conn:
        for _ in conn.execute(sql):
            pass
    conn.close()
    return path


def pair(tmp_path: Path, sql: str = KEYED) -> tuple[Path, Path]:
    """Blue with capture on, green a copy positioned at blue's capture (what prepare leaves)."""
    blue, green = tmp_path / "blue.db", tmp_path / "green.db"
    make_blue(blue, sql)
    make_green(blue, green)
    return blue, green


def on(path: Path, sql: str) -> None:
    """A write with triggers off, as bluegreen's own connections make it."""
    conn = open_db(path, triggers=False)
    try:
        conn.execute("BEGIN IMMEDIATE")
        for _ in conn.execute(sql):
            pass
        conn.execute("COMMIT")
    finally:
        conn.close()


# -- LockTimeout: a second connection holds the write lock -----------------------------------------
@pytest.fixture
def locked(tmp_path):
    path = wal_file(tmp_path / "blue.db")
    holder = apsw.Connection(str(path))
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t(v) VALUES ('held')")
    yield path
    holder.execute("ROLLBACK")
    holder.close()


def test_a_write_lock_held_past_the_wait_is_a_lock_timeout(locked):
    with pytest.raises(LockTimeout) as raised:
        barrier.take(locked, 50)
    assert raised.value.exit_code == EXIT_FAILED and isinstance(raised.value, OperationFailed)
    assert raised.value.message.startswith(f"{locked}: another connection held the write lock for over 50 ms")
    assert barrier.take(locked, 50, must=False) is None  # the caller that retries later gets no error
    with pytest.raises(LockTimeout, match="held the write lock"):
        with barrier.holding(locked, 50):
            pass


def test_lock_main_gives_up_with_a_lock_timeout(locked):
    conn = open_db(locked, triggers=False)
    try:
        with pytest.raises(LockTimeout) as raised:
            barrier.lock_main(conn, locked, 50)
        assert str(locked) in raised.value.message
        assert conn.get_autocommit()  # nothing left open
    finally:
        conn.close()
    assert isinstance(barrier.held_error(locked, 7), LockTimeout)


# -- CaptureLost: the capture a generation was built on is gone, reinstalled or tampered with ------
def test_a_removed_capture_is_capture_lost(tmp_path):
    blue, green = pair(tmp_path)
    conn = open_db(blue, triggers=False)
    conn.execute("BEGIN IMMEDIATE")
    capture.remove_capture(conn)  # the capture table dropped, with its epoch
    conn.execute("COMMIT")
    conn.close()
    replayer = Replayer(blue, green, [])
    try:
        with pytest.raises(CaptureLost) as raised:
            replayer.backlog()
        assert raised.value.exit_code == EXIT_FAILED
        assert raised.value.message.startswith(f"{blue}: change capture is not installed")
    finally:
        replayer.close()


def test_a_reinstalled_capture_is_capture_lost(tmp_path):
    blue, green = pair(tmp_path)
    conn = open_db(blue, triggers=False)
    conn.execute("BEGIN IMMEDIATE")
    capture.remove_capture(conn)
    capture.install_capture(conn)  # a new epoch: green's position means nothing in it (hazard 7)
    conn.execute("COMMIT")
    conn.close()
    replayer = Replayer(blue, green, [])
    try:
        with pytest.raises(CaptureLost) as raised:
            replayer.catch_up()
        assert raised.value.message.startswith(f"{green}: its position belongs to another capture of {blue.name}")
    finally:
        replayer.close()


def test_a_captured_key_bluegreen_did_not_write_is_capture_lost(tmp_path):
    blue, green = pair(tmp_path)
    app_write(blue, "INSERT INTO pairs VALUES ('a', 1, 'x')")
    on(blue, f"INSERT INTO {capture.CAPTURE_TABLE}(tbl, key, op) VALUES ('pairs', '1); DROP TABLE pairs; --', 'I')")
    replayer = Replayer(blue, green, [])
    try:
        with pytest.raises(CaptureLost) as raised:
            replayer.catch_up()
        assert raised.value.exit_code == EXIT_FAILED
        assert raised.value.message.startswith("pairs: captured key b'1); DROP TABLE pairs; --' is not 2 quote()d")
    finally:
        replayer.close()
    conn = open_db(green, query_only=True)
    assert conn.execute("SELECT count(*) FROM pairs").get == 0  # the batch rolled back, the table is there
    conn.close()


# -- SchemaUnsupported: what capture cannot cover exactly is refused before anything changes -------
@pytest.mark.parametrize(
    "sql, named",
    [
        ("CREATE VIRTUAL TABLE docs USING fts5(body);", "table 'docs' is a virtual table"),
        ("CREATE TABLE odd(rowid, oid, _rowid_);", "table 'odd' has columns named rowid, oid and _rowid_"),
        (
            "CREATE TABLE t(id INTEGER PRIMARY KEY, label TEXT); CREATE UNIQUE INDEX t_label ON t(label COLLATE app_order);",
            "index 't_label' uses collation 'app_order'",
        ),
        (
            "CREATE TABLE t(id INTEGER PRIMARY KEY, label TEXT); CREATE UNIQUE INDEX t_label ON t(app_norm(label));",
            "index 't_label' computes 'app_norm(label)'",
        ),
    ],
    ids=["virtual table", "rowid shadowed", "application collation", "application function"],
)
def test_a_schema_capture_cannot_cover_is_schema_unsupported(tmp_path, sql, named):
    path = tmp_path / "blue.db"
    conn = apsw.Connection(str(path))
    conn.create_collation("app_order", lambda a, b: (a > b) - (a < b))
    conn.create_scalar_function("app_norm", lambda v: (v or "").lower(), 1, deterministic=True)
    conn.execute("PRAGMA journal_mode = WAL").get
    with conn:
        for _ in conn.execute(sql):
            pass
    conn.close()
    conn = open_db(path, triggers=False)  # bluegreen's connection: no application collation or function
    try:
        with pytest.raises(SchemaUnsupported) as raised:
            capture.plan_capture(conn)
        assert raised.value.exit_code == EXIT_USAGE and isinstance(raised.value, InputError)
        assert named in raised.value.message
        conn.execute("BEGIN IMMEDIATE")
        with pytest.raises(SchemaUnsupported):
            capture.install_capture(conn)
        conn.execute("ROLLBACK")
        assert capture.capture_position(conn) is None  # nothing was installed
    finally:
        conn.close()


# -- DatabaseInvalid: a file that is missing, not SQLite, or not in WAL mode -------------------------
def test_a_missing_file_is_database_invalid(tmp_path):
    with pytest.raises(DatabaseInvalid) as raised:
        check_database(tmp_path / "nowhere.db", "active database")
    assert raised.value.exit_code == EXIT_USAGE
    assert raised.value.message == f"{tmp_path / 'nowhere.db'}: active database file not found"
    assert not (tmp_path / "nowhere.db").exists()  # never created by looking


def test_a_file_that_is_not_sqlite_is_database_invalid(tmp_path):
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are not the pages you are looking for\n" * 200)
    with pytest.raises(DatabaseInvalid) as raised:
        check_database(path)
    assert raised.value.message == f"{path}: not a SQLite database (file is encrypted or is not a database)"


def test_a_rollback_journal_file_is_database_invalid(tmp_path):
    path = tmp_path / "old.db"
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE t(x)")
    conn.close()
    with pytest.raises(DatabaseInvalid) as raised:
        check_database(path, "database.initial")
    assert raised.value.message.startswith(f"{path}: database.initial is in 'delete' journal mode")


# -- ConfigInvalid, MigrationInvalid: the migrations folder and its files -------------------------
def test_a_missing_migrations_folder_is_config_invalid(tmp_path):
    with pytest.raises(ConfigInvalid) as raised:
        migrations.discover(tmp_path / "schemas")
    assert raised.value.exit_code == EXIT_USAGE
    assert raised.value.message.startswith(f"{tmp_path / 'schemas'}: migrations folder not found")


@pytest.mark.parametrize(
    "files, named, words",
    [
        ({"notes.sql": "SELECT 1;"}, "notes.sql", "file name does not fit"),
        ({"001_v1.0.0_a.sql": "SELECT 1;", "001_v1.0.1_b.sql": "SELECT 1;"}, "001_v1.0.1_b.sql", "sequence number 1"),
        ({"001_v1.0.0_a.sql": b"SELECT '\xff';"}, "001_v1.0.0_a.sql", "not UTF-8 text"),
    ],
    ids=["misnamed", "number used twice", "not UTF-8"],
)
def test_a_migration_file_that_cannot_be_read_is_migration_invalid(tmp_path, files, named, words):
    for name, text in files.items():
        (tmp_path / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(MigrationInvalid) as raised:
        migrations.discover(tmp_path)
    assert raised.value.exit_code == EXIT_USAGE
    assert raised.value.message.startswith(str(tmp_path / named)) and words in raised.value.message


def _one_migration(tmp_path: Path, sql: str) -> tuple[migrations.Migration, Path]:
    folder = tmp_path / "schemas"
    folder.mkdir()
    (folder / "001_v1.0.0_change.sql").write_text(sql)
    return migrations.discover(folder)[0], wal_file(tmp_path / "green.db")


@pytest.mark.parametrize(
    "sql, words",
    [
        ("VACUUM;", "VACUUM is not allowed"),
        ("BEGIN; CREATE TABLE u(x); COMMIT;", "contains BEGIN/COMMIT/ROLLBACK"),
        ("DELETE FROM _bluegreen_meta;", "refers to _bluegreen_meta"),
    ],
    ids=["vacuum", "transaction control", "bluegreen's own table"],
)
def test_a_migration_that_may_not_run_is_migration_invalid(tmp_path, sql, words):
    migration, green = _one_migration(tmp_path, sql)
    conn = open_db(green)
    try:
        with pytest.raises(MigrationInvalid) as raised:
            migrations.apply(conn, migration, None)
        assert raised.value.exit_code == EXIT_USAGE
        assert raised.value.message.startswith(str(migration.path)) and words in raised.value.message
        assert migrations.history(conn) == []  # nothing recorded, nothing left open
        assert conn.get_autocommit()
    finally:
        conn.close()


def test_an_applied_migration_edited_since_is_migration_invalid(tmp_path):
    migration, green = _one_migration(tmp_path, "CREATE TABLE u(x);")
    conn = open_db(green)
    try:
        migrations.apply(conn, migration, None)
        migration.path.write_text("CREATE TABLE u(x, y);")
        edited = migrations.discover(migration.path.parent)
        with pytest.raises(MigrationInvalid) as raised:
            migrations.pending(edited, conn)
        assert raised.value.message.startswith(f"{migration.path}: changed after it was applied")
        migration.path.unlink()
        with pytest.raises(MigrationInvalid, match="applied to the database but missing from the migrations folder"):
            migrations.pending([], conn)
    finally:
        conn.close()


def test_a_malformed_companion_is_migration_invalid(tmp_path):
    path = tmp_path / "001_v1.0.0_change_check.sql"
    path.write_text("SELECT count(*) FROM t;\n")
    with pytest.raises(MigrationInvalid) as raised:
        namedsql.parse(path, "check")
    assert raised.value.exit_code == EXIT_USAGE
    assert raised.value.message.startswith(f"{path}:1: SQL before the first `-- check: NAME` line")


# -- MigrationFailed: a migration's SQL (or a sync script's) fails on green -------------------------
def test_sql_that_fails_on_green_is_migration_failed(tmp_path):
    migration, green = _one_migration(tmp_path, "INSERT INTO missing_table VALUES (1);")
    conn = open_db(green)
    try:
        with pytest.raises(MigrationFailed) as raised:
            migrations.apply(conn, migration, None)
        assert raised.value.exit_code == EXIT_FAILED
        assert raised.value.message.startswith(f"{migration.path}:1: migration failed: ")  # file and line
        assert "missing_table" in raised.value.message
        assert raised.value.details == {"file": migration.file, "line": 1, "sqlite": "no such table: missing_table"}
    finally:
        conn.close()


def test_a_sync_script_that_fails_on_a_batch_is_migration_failed(tmp_path):
    blue, green = pair(tmp_path)
    app_write(blue, "INSERT INTO pairs VALUES ('a', 1, 'x')")
    sync = tmp_path / "001_v1.0.0_change_sync.sql"
    sync.write_text("INSERT INTO main.no_such_table SELECT row_key FROM temp.bluegreen_changes;\n")
    replayer = Replayer(blue, green, [sync])
    try:
        before = replayer.position()
        with pytest.raises(MigrationFailed) as raised:
            replayer.batch()
        assert raised.value.exit_code == EXIT_FAILED
        assert raised.value.message.startswith(f"{sync.name}: failed on a batch of changed keys: ")
        assert replayer.position() == before  # the batch rolled back whole
    finally:
        replayer.close()


# -- ReplayConflict: a changed row the target's constraints reject ----------------------------------
def test_a_row_the_target_rejects_is_a_replay_conflict(tmp_path):
    blue, green = pair(
        tmp_path, "CREATE TABLE items(id INTEGER PRIMARY KEY, a TEXT); CREATE TABLE seen(a TEXT UNIQUE);"
    )
    app_write(blue, "INSERT INTO items VALUES (1, 'a'), (2, 'a')")
    sync = tmp_path / "001_v1.0.0_change_sync.sql"
    # Every batch records each changed row's `a`: two rows that share one break seen's UNIQUE.
    sync.write_text(
        "INSERT INTO main.seen SELECT i.a FROM temp.bluegreen_changes AS c JOIN main.items AS i ON i.id = c.row_key;\n"
    )
    replayer = Replayer(blue, green, [sync])
    try:
        with pytest.raises(ReplayConflict) as raised:
            replayer.batch()
        assert raised.value.exit_code == EXIT_GATE
        assert raised.value.message.startswith(f"{green.name}: 1 row(s) written on {blue.name} break a constraint")
        assert [(c["table"], c["key"]) for c in raised.value.details["conflicts"]] == [("items", 2)]
        assert replayer.position().seq == 0  # nothing committed
    finally:
        replayer.close()


def test_a_without_rowid_row_a_sync_script_rejects_is_a_replay_conflict_too(tmp_path):
    """The keyed lookup tables (temp.bluegreen_keys_N) are loaded before the batch's savepoint, so
    the diagnosis that re-runs the script key by key still finds them after the rollback: once a
    raw `no such table: temp.bluegreen_keys_2` (exit 1) reached the user here instead."""
    blue, green = pair(
        tmp_path,
        "CREATE TABLE pairs(a TEXT, b INTEGER, PRIMARY KEY(a, b)) WITHOUT ROWID; CREATE TABLE seen(a TEXT UNIQUE);",
    )
    app_write(blue, "INSERT INTO pairs VALUES ('a', 1), ('a', 2)")
    sync = tmp_path / "001_v1.0.0_change_sync.sql"
    sync.write_text(
        "INSERT INTO main.seen SELECT p.a FROM temp.bluegreen_changes AS c JOIN main.pairs AS p "
        "ON c.row_key = quote(p.a) || ',' || quote(p.b);\n"
    )
    replayer = Replayer(blue, green, [sync])
    try:
        with pytest.raises(ReplayConflict) as raised:
            replayer.batch()
        assert raised.value.exit_code == EXIT_GATE
        assert [(c["table"], c["key"]) for c in raised.value.details["conflicts"]] == [("pairs", "'a',2")]
        assert replayer.position().seq == 0  # nothing committed
    finally:
        replayer.close()


# -- SchemaDrift: a table created on green after cutover that cannot go back into blue -------------
def test_a_new_table_that_cannot_be_carried_back_is_schema_drift(tmp_path):
    blue = wal_file(tmp_path / "blue.db", "CREATE TABLE t(id INTEGER PRIMARY KEY); CREATE TABLE late(x);")
    green = wal_file(tmp_path / "green.db", "CREATE TABLE t(id INTEGER PRIMARY KEY); CREATE TABLE late(x, y);")
    conn = open_db(blue, triggers=False)
    try:
        conn.execute("ATTACH ? AS source", (readonly_uri(green),))
        found = revert_ddl.Drift(new_tables=[revert_ddl.objects(conn, "source")[("table", "late")]])
        conn.execute("BEGIN IMMEDIATE")
        with pytest.raises(SchemaDrift) as raised:
            revert_ddl.carry_new_tables(conn, found)  # blue already has a `late`: no place for green's
        conn.execute("ROLLBACK")
        assert raised.value.exit_code == EXIT_FAILED
        assert raised.value.message.startswith(
            "could not carry table late, created on green after cutover, back into blue"
        )
    finally:
        conn.close()
