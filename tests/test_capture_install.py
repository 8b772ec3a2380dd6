"""Capture is installed as one sqlite_schema edit (hazard 18): one CREATE TRIGGER per trigger
rescans the schema each time, O(tables²) while blue's writers wait at prepare. The edit must store
exactly what CREATE TRIGGER would, for every shape of the schema zoo, and stay idempotent."""

from __future__ import annotations

import apsw
from conftest import rows
from helpers import many_tables

from bluegreen.engine import capture
from bluegreen.engine.db import open_db
from bluegreen.tools.zoo_data import ZOO_SCHEMA, ZOO_SEED

SCHEMA = "SELECT type, name, tbl_name, rootpage, sql FROM sqlite_schema ORDER BY type, name"
META = "SELECT key FROM _bluegreen_meta ORDER BY key"


def _file(path, setup) -> None:
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA journal_mode=WAL").get
    with conn:
        setup(conn)
    conn.close()


def _zoo(conn: apsw.Connection) -> None:
    for _ in conn.execute(ZOO_SCHEMA + ZOO_SEED):
        pass


def _install(path) -> int:
    conn = open_db(path, triggers=False)
    try:
        conn.execute("BEGIN IMMEDIATE")
        capture.install_capture(conn, guard=True)
        conn.execute("COMMIT")
        return conn.execute("PRAGMA schema_version").get
    finally:
        conn.close()


def _by_create_trigger(path) -> None:
    """The reference: the same table, epoch and guard, then one CREATE TRIGGER per trigger."""
    conn = open_db(path, triggers=False)
    with conn:
        conn.execute(
            f"CREATE TABLE {capture.CAPTURE_TABLE}("
            "seq INTEGER PRIMARY KEY, tbl TEXT NOT NULL, key NOT NULL, op TEXT NOT NULL)"
        )
        capture.set_meta(conn, capture_epoch="x")
        tables = capture.capturable(conn)
        capture.install_blob_guard(conn, tables)
        for sql in capture.capture_sql(conn):
            conn.execute(sql)
    conn.close()


def test_capture_by_schema_edit_is_what_create_trigger_would_store_for_every_zoo_shape(tmp_path):
    for setup in (_zoo, many_tables(20)):
        made, reference = tmp_path / f"edit-{id(setup)}.db", tmp_path / f"create-{id(setup)}.db"
        _file(made, setup)
        _file(reference, setup)
        _install(made)
        _by_create_trigger(reference)
        assert rows(made, SCHEMA) == rows(reference, SCHEMA)
        triggers = rows(made, "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'")[0][0]
        assert triggers >= 3 * len(capture.capturable(open_db(made, query_only=True)))
        assert rows(made, "PRAGMA integrity_check") == [("ok",)]


def test_capture_install_is_idempotent_and_a_second_install_changes_nothing(tmp_path):
    path = tmp_path / "zoo.db"
    _file(path, _zoo)
    version = _install(path)
    before = rows(path, SCHEMA), rows(path, "SELECT value FROM _bluegreen_meta WHERE key = 'capture_epoch'")
    assert _install(path) == version  # nothing to add: the schema does not move
    assert (rows(path, SCHEMA), rows(path, "SELECT value FROM _bluegreen_meta WHERE key = 'capture_epoch'")) == before


def test_the_installed_triggers_capture_writes_on_other_connections(tmp_path):
    path = tmp_path / "zoo.db"
    _file(path, _zoo)
    app = apsw.Connection(str(path))  # compiled its schema before the edit: must reload at its next write
    app.execute("SELECT * FROM settings").fetchall()
    _install(path)
    app.execute("INSERT OR REPLACE INTO settings VALUES ('a', 'changed')")
    app.execute("DELETE FROM rowid_alias WHERE id = 2")
    app.close()
    captured = rows(path, "SELECT tbl, key, op FROM _bluegreen_capture ORDER BY seq")
    assert ("settings", "'a'", "D") in captured or ("settings", 1, "D") in captured
    assert ("rowid_alias", 2, "D") in captured


def test_a_trigger_sqlite_cannot_parse_rolls_the_install_back(tmp_path, monkeypatch):
    path = tmp_path / "zoo.db"
    _file(path, _zoo)
    before = rows(path, SCHEMA)
    broken = capture.capture_triggers
    monkeypatch.setattr(
        capture,
        "capture_triggers",
        lambda conn, table: [(n, t, s.replace(" END", "")) for n, t, s in broken(conn, table)],
    )
    conn = open_db(path, triggers=False)
    conn.execute("BEGIN IMMEDIATE")
    try:
        capture.install_capture(conn)
        raised = False
    except apsw.Error:
        raised = True
    finally:
        if not conn.get_autocommit():
            conn.execute("ROLLBACK")
        conn.close()
    assert raised
    assert rows(path, SCHEMA) == before and rows(path, "PRAGMA integrity_check") == [("ok",)]


def test_a_plan_made_before_the_lock_is_redone_when_the_schema_moved_meanwhile(tmp_path):
    path = tmp_path / "zoo.db"
    _file(path, _zoo)
    reader = open_db(path, query_only=True)
    plan = capture.plan_capture(reader)
    reader.close()
    _file(path, lambda conn: conn.execute("CREATE TABLE late(id INTEGER PRIMARY KEY, v TEXT UNIQUE)"))
    conn = open_db(path, triggers=False)
    conn.execute("BEGIN IMMEDIATE")
    capture.install_capture(conn, plan=plan)
    conn.execute("COMMIT")
    conn.close()
    late = rows(path, "SELECT name FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = 'late' ORDER BY name")
    assert len(late) == 5  # i, u, d and the two REPLACE triggers
    assert rows(
        path,
        "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'late' "
        "AND name LIKE '\\_bluegreen\\_guard\\_%' ESCAPE '\\'",
    ) == [(1,)]
    app = apsw.Connection(str(path))
    app.execute("INSERT INTO late(v) VALUES ('x')")
    app.close()
    assert rows(path, "SELECT tbl, op FROM _bluegreen_capture") == [("late", "I")]
