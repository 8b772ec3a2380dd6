"""The BLOB guard is installed under blue's write lock without reading the table (issue 17): its
cost is O(schema), not O(rows). Shown without a clock: the SQLite VM instructions the install runs
(a progress handler called at every instruction) are the same for 10 rows and for 20,000, while
a CREATE INDEX on the table itself runs some per row. The guard stored is what CREATE INDEX on
the table stores, integrity_check holds, and BLOB writes are refused."""

from __future__ import annotations

import apsw
import pytest
from conftest import rows

from bluegreen.engine import blob_guard
from bluegreen.engine.db import open_db, user_tables


def _blue(path, count: int) -> None:
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA journal_mode=WAL").get
    with conn:
        conn.execute('CREATE TABLE "odd name"(id INTEGER PRIMARY KEY, body BLOB)')
        conn.execute("CREATE TABLE plain(id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany('INSERT INTO "odd name"(body) VALUES (zeroblob(300))', [()] * count)
        conn.executemany("INSERT INTO plain(v) VALUES ('x')", [()] * count)
    conn.close()


def _steps(path, install) -> int:
    conn = open_db(path, triggers=False)
    counted = [0]

    def count() -> bool:
        counted[0] += 1
        return False

    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.set_progress_handler(count, 1)
        install(conn, [t for t in user_tables(conn)])
        conn.set_progress_handler(None)
        conn.execute("COMMIT")
    finally:
        conn.close()
    return counted[0]


def _by_create_index(conn, tables) -> None:
    for table in tables:
        conn.execute(
            f"CREATE INDEX {blob_guard.guard_name(table)} ON {blob_guard.quote_ident(table.name)}((0) {blob_guard.GUARD_NOTE}) WHERE 0"
        )


def test_the_guard_costs_the_same_for_ten_rows_and_twenty_thousand(tmp_path):
    small, large = tmp_path / "small.db", tmp_path / "large.db"
    _blue(small, 10)
    _blue(large, 20_000)
    assert _steps(small, blob_guard.install_blob_guard) == _steps(large, blob_guard.install_blob_guard)
    scanned_small, scanned_large = tmp_path / "s2.db", tmp_path / "l2.db"
    _blue(scanned_small, 10)
    _blue(scanned_large, 20_000)
    # the old way reads every row: the reference shows the measure can see a scan
    assert _steps(scanned_large, _by_create_index) > _steps(scanned_small, _by_create_index) + 20_000


def test_the_guard_is_what_create_index_on_the_table_stores_and_refuses_blob_writes(tmp_path):
    made, reference = tmp_path / "made.db", tmp_path / "reference.db"
    for path in (made, reference):
        _blue(path, 50)
    _steps(made, blob_guard.install_blob_guard)
    _steps(reference, _by_create_index)
    schema = "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY name"
    assert rows(made, schema) == rows(reference, schema)
    assert rows(made, "SELECT count(*) FROM sqlite_schema WHERE name = ?", (blob_guard.SEED_TABLE,)) == [(0,)]
    assert rows(made, "PRAGMA integrity_check") == [("ok",)]
    conn = apsw.Connection(str(made))
    try:
        with pytest.raises(apsw.SQLError, match="cannot open indexed column for writing"):
            conn.blob_open("main", "odd name", "body", 1, True)
        conn.execute("INSERT INTO \"odd name\"(body) VALUES (x'01')")  # ordinary writes go on
        conn.execute("DROP INDEX " + blob_guard.guard_name(user_tables(conn)[0]))  # and it drops as an index
    finally:
        conn.close()
    assert rows(made, "PRAGMA integrity_check") == [("ok",)]
