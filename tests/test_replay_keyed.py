"""Hazard 19: replay finds WITHOUT ROWID rows by key, never by scanning, and catch-up converges
under a steady writer.

Row-by-row checks compare every column's quote() (type and value: 1, 1.0, '1' and X'31' differ)
of blue and green. "Touches only changed rows" is shown with SQLite's own statement counters
(sqlite3_stmt_status VM steps and full-scan steps, through apsw's trace_v2): the same changes on
a table 20 times larger cost the same steps. Real files, a real writer process for convergence.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import time
import tomllib
from pathlib import Path

import apsw
import pytest
from conftest import Project, write_config

from bluegreen.engine import capture
from bluegreen.engine.db import open_db
from bluegreen.engine.lost_changes import export_changes
from bluegreen.engine.replay import Replayer
from bluegreen.errors import OperationFailed
from bluegreen.files.journal import Store
from bluegreen.lifecycle.builder import Builder
from bluegreen.reports.progress import ProgressReporter

ZOO = """
CREATE TABLE mixed(region TEXT COLLATE NOCASE, tag BLOB, weight REAL, n INTEGER, note TEXT,
                   PRIMARY KEY(region, tag, weight, n)) WITHOUT ROWID;
CREATE TABLE untyped(k, v, PRIMARY KEY(k)) WITHOUT ROWID;
CREATE TABLE trimmed(a INTEGER, b TEXT COLLATE RTRIM, v, PRIMARY KEY(a DESC, b)) WITHOUT ROWID;
CREATE TABLE plain(id INTEGER PRIMARY KEY, v);
"""
SEED_ROWS = """
WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i WHERE x < 300)
INSERT INTO mixed SELECT 'Region-' || (x % 5), CAST(printf('%04d', x) AS BLOB), x / 4.0, x - 150, 'note ' || x FROM i;
INSERT INTO untyped VALUES (1, 'int one'), ('1', 'text one'), (X'31', 'blob one'), (2.5, 'real'),
    (-9223372036854775808, 'min'), (9223372036854775807, 'max'), ('a,b', 'comma'), ('it''s', 'quote'),
    ('', 'empty text'), (X'', 'empty blob'), (X'00FF00', 'nul blob'), ('line' || char(10) || 'two', 'newline'),
    (CAST(X'FF27FE2C' AS TEXT), 'text that is not UTF-8, with a quote and a comma');
INSERT INTO mixed VALUES (CAST(X'C328' AS TEXT), X'01', 1.5, 1, 'region not UTF-8');
WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i WHERE x < 50)
INSERT INTO trimmed SELECT x, 'b' || x, x FROM i;
WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i WHERE x < 50)
INSERT INTO plain SELECT x, 'p' || x FROM i;
"""
# Every kind of write, key changes included, each a case where text or type decides the row.
ZOO_WRITES = """
UPDATE mixed SET note = note || '!' WHERE n % 7 = 0;
UPDATE mixed SET region = upper(region) WHERE n % 11 = 0;          -- same key under NOCASE, new bytes
UPDATE mixed SET n = n + 1000000000000 WHERE n % 13 = 0;            -- key change to a large int
UPDATE mixed SET weight = -weight - 0.1 WHERE n % 17 = 0;           -- key change to a negative real
DELETE FROM mixed WHERE n % 19 = 0;
INSERT INTO mixed VALUES ('it''s, odd', X'00', 1e300, -9223372036854775808, 'extreme'),
                         ('new' || char(10) || 'line', X'', -0.5, 9223372036854775807, 'extreme 2');
INSERT OR REPLACE INTO mixed VALUES ('Region-1', CAST('0001' AS BLOB), 0.25, -149, 'replaced');
INSERT INTO mixed VALUES ('Region-2', CAST('0002' AS BLOB), 0.5, -148, 'upserted')
    ON CONFLICT DO UPDATE SET note = excluded.note;
DELETE FROM mixed WHERE n = -147;
INSERT INTO mixed VALUES ('region-3', CAST('0003' AS BLOB), 0.75, -147, 'deleted, back in lower case');
UPDATE untyped SET k = 'one' WHERE k = 1;                           -- int 1 leaves, text '1' stays
UPDATE untyped SET v = 'changed' WHERE k = X'31';
DELETE FROM untyped WHERE k = 'a,b';
INSERT INTO untyped VALUES (1.0, 'real one'), ('x,y'',z', 'comma quote'), (X'2C27', 'blob comma quote');
UPDATE untyped SET k = -k WHERE k = 9223372036854775807;
UPDATE untyped SET v = 'changed' WHERE k = CAST(X'FF27FE2C' AS TEXT);
UPDATE mixed SET note = 'changed' WHERE region = CAST(X'C328' AS TEXT);
INSERT INTO untyped VALUES (CAST(X'80' AS TEXT), 'new, not UTF-8');
UPDATE trimmed SET b = b || '  ' WHERE a % 3 = 0;                   -- same key under RTRIM, new bytes
UPDATE trimmed SET a = a + 100 WHERE a % 4 = 0;
DELETE FROM trimmed WHERE a % 5 = 0;
UPDATE plain SET v = v || '!' WHERE id % 3 = 0;
DELETE FROM plain WHERE id % 4 = 0;
"""
SEEN = "CREATE TABLE seen(table_name, row_key, present)"
RECORD_BATCH = "INSERT INTO main.seen SELECT table_name, row_key, present FROM temp.bluegreen_changes;\n"


# -- helpers ---------------------------------------------------------------------------------------
def script(conn: apsw.Connection, sql: str) -> None:
    for _ in conn.execute(sql):
        pass


def make_blue(path: Path, sql: str) -> None:
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA journal_mode = WAL").get
    with conn:
        script(conn, sql)
    conn.close()


def make_green(blue: Path, green: Path, extra_sql: str = "") -> int:
    """What prepare does, by hand: capture on blue, a copy, the copy's capture dropped and its
    position kept. Returns blue's capture position."""
    source = open_db(blue, triggers=False)
    source.execute("BEGIN IMMEDIATE")
    position = capture.install_capture(source)
    source.execute("COMMIT")
    target = apsw.Connection(str(green))
    with target.backup("main", source, "main") as copy:
        copy.step(-1)
    source.close()
    target.execute("BEGIN IMMEDIATE")
    capture.remove_capture(target)
    capture.set_meta(target, source_epoch=position.epoch, source_seq=position.seq)
    script(target, extra_sql)
    target.execute("COMMIT")
    target.close()
    return position.seq


def app_write(path: Path, sql: str) -> None:
    """The application: triggers on, so capture records every change."""
    conn = apsw.Connection(str(path))
    conn.set_busy_timeout(10_000)
    with conn:
        script(conn, sql)
    conn.close()


def dump(path: Path, table: str) -> list[tuple]:
    """Every row, each column as the bytes of its quote() (type and value; text need not be
    UTF-8), sorted."""
    conn = open_db(path, query_only=True)
    try:
        columns = [c for (c,) in conn.execute(f"SELECT name FROM pragma_table_info('{table}')")]
        quoted = ", ".join(f"CAST(quote({c}) AS BLOB)" for c in columns)
        return sorted(conn.execute(f"SELECT {quoted} FROM {table}").fetchall())
    finally:
        conn.close()


def replay(blue: Path, green: Path, scripts: list[Path] = (), **options):
    replayer = Replayer(blue, green, list(scripts))
    try:
        replayer.catch_up(**options)
        return replayer.last_catch_up
    finally:
        replayer.close()


def counted_replay(blue: Path, green: Path, limit: int = 20_000) -> dict[str, int]:
    """Replay everything, adding up SQLite's own statement counters over every statement run;
    lookups in the files' sqlite_schema (bluegreen's bookkeeping, once per catch-up) are counted
    apart; temp's schema holds only replay's own few tables."""
    totals = {"statements": 0, "vm_steps": 0, "fullscan_steps": 0, "schema_lookups": 0}

    def profile(event: dict) -> None:
        status = event["stmt_status"]
        if "sqlite_schema" in event["sql"] and "temp.sqlite_schema" not in event["sql"]:
            totals["schema_lookups"] += 1
            return
        totals["statements"] += 1
        totals["vm_steps"] += status["SQLITE_STMTSTATUS_VM_STEP"]
        totals["fullscan_steps"] += status["SQLITE_STMTSTATUS_FULLSCAN_STEP"]

    replayer = Replayer(blue, green, [])
    try:
        replayer.conn.trace_v2(apsw.SQLITE_TRACE_PROFILE, profile)
        replayer.catch_up(limit=limit)
    finally:
        replayer.close()
    return totals


# -- correctness -----------------------------------------------------------------------------------
def test_without_rowid_keys_of_every_type_and_collation_replay_row_by_row(tmp_path):
    blue, green = tmp_path / "blue.db", tmp_path / "green.db"
    make_blue(blue, ZOO + SEED_ROWS)
    make_green(blue, green, SEEN)
    app_write(blue, ZOO_WRITES)
    record = tmp_path / "record_sync.sql"
    record.write_text(RECORD_BATCH)
    report = replay(blue, green, [record], limit=37)  # many batches: keys of one row meet across them
    for name in ("mixed", "untyped", "trimmed", "plain"):
        assert dump(green, name) == dump(blue, name), name
    assert report.reached == report.target and report.replayed > 100


def test_a_replace_by_an_equal_but_not_identical_key_replays(tmp_path):
    """INSERT OR REPLACE pushes out the row with an equal key without firing a delete trigger;
    when the keys differ in bytes or type ('abc' / 'ABC' under NOCASE, 'x' / 'x  ' under RTRIM,
    1 / 1.0 untyped) only the new key is captured. Replay must still clear the old row."""
    blue, green = tmp_path / "blue.db", tmp_path / "green.db"
    make_blue(blue, ZOO + SEED_ROWS)
    make_green(blue, green)
    app_write(
        blue,
        """
        INSERT OR REPLACE INTO mixed VALUES ('REGION-1', CAST('0001' AS BLOB), 0.25, -149, 'replaced by case');
        INSERT OR REPLACE INTO trimmed VALUES (7, 'b7  ', 'replaced by trailing spaces');
        INSERT OR REPLACE INTO untyped VALUES (1.0, 'replaced by a real');
    """,
    )
    replay(blue, green)
    for name in ("mixed", "untyped", "trimmed"):
        assert dump(green, name) == dump(blue, name), name


def test_scripts_see_each_changed_key_once_per_batch_with_present_exact(tmp_path):
    """temp.bluegreen_changes keeps its contract: row_key as capture wrote it, present = 1 exactly
    when blue has a row with that very key (NOCASE 'REGION-0' is not 'Region-0')."""
    blue, green = tmp_path / "blue.db", tmp_path / "green.db"
    make_blue(blue, ZOO + SEED_ROWS)
    make_green(blue, green, SEEN)
    app_write(blue, ZOO_WRITES)
    record = tmp_path / "record_sync.sql"
    record.write_text(RECORD_BATCH)
    replay(blue, green, [record])  # one batch
    conn = open_db(green, query_only=True)
    conn.execute("ATTACH ? AS blue", (f"file:{blue}?mode=ro",))
    try:
        seen = conn.execute("SELECT table_name, CAST(row_key AS BLOB), present FROM seen").fetchall()
        captured = conn.execute(f"SELECT DISTINCT tbl, CAST(key AS BLOB) FROM blue.{capture.CAPTURE_TABLE}").fetchall()
        assert sorted((t, k) for t, k, _ in seen) == sorted(captured)
        keys = {
            "mixed": "quote(region) || ',' || quote(tag) || ',' || quote(weight) || ',' || quote(n)",
            "untyped": "quote(k)",
            "trimmed": "quote(a) || ',' || quote(b)",
            "plain": "id",
        }
        for table_name, row_key, present in seen:
            exists = conn.execute(
                f"SELECT count(*) FROM blue.{table_name} WHERE CAST({keys[table_name]} AS BLOB) = ?", (row_key,)
            ).get
            assert present == exists, (table_name, row_key)
        upper = {k: p for t, k, p in seen if t == "mixed" and k.startswith(b"'REGION-")}
        flags = {k: p for t, k, p in seen if t == "mixed"}
        twins = {k: flags.get(k.replace(b"'REGION-", b"'Region-", 1)) for k in upper}
        # rows whose region only changed case: the new key is present, its NOCASE twin is not
        assert sum(1 for k, p in upper.items() if p == 1 and twins[k] == 0) >= 3, (upper, twins)
    finally:
        conn.close()


def test_export_keeps_the_current_rows_of_changed_without_rowid_keys(tmp_path):
    blue, green = tmp_path / "blue.db", tmp_path / "green.db"
    make_blue(blue, ZOO + SEED_ROWS)
    start = make_green(blue, green)
    app_write(blue, ZOO_WRITES)
    end = capture.capture_position(open_db(blue, query_only=True)).seq
    out = tmp_path / "lost.db"
    export_changes(blue, out, ["mixed", "untyped"], start, end)
    conn = open_db(blue, query_only=True)
    try:
        for name, key in (
            ("mixed", "quote(region) || ',' || quote(tag) || ',' || quote(weight) || ',' || quote(n)"),
            ("untyped", "quote(k)"),
        ):
            columns = [c for (c,) in conn.execute(f"SELECT name FROM pragma_table_info('{name}')")]
            wanted = sorted(
                conn.execute(
                    f"SELECT {', '.join(f'CAST(quote({c}) AS BLOB)' for c in columns)} FROM {name} WHERE {key} IN "
                    f"(SELECT key FROM {capture.CAPTURE_TABLE} WHERE tbl = ? AND seq > ?)",
                    (name, start),
                ).fetchall()
            )
            assert wanted and dump(out, name) == wanted, name
    finally:
        conn.close()


def test_a_captured_key_that_is_not_quote_output_is_refused_and_nothing_changes(tmp_path):
    """The decoded keys reach SQL as literals: anything but quote() output is refused first."""
    blue, green = tmp_path / "blue.db", tmp_path / "green.db"
    make_blue(blue, ZOO + SEED_ROWS)
    make_green(blue, green)
    app_write(blue, "UPDATE untyped SET v = 'x' WHERE k = 2.5")
    conn = open_db(blue, triggers=False)
    conn.execute(
        f"INSERT INTO {capture.CAPTURE_TABLE}(tbl, key, op) VALUES (?, ?, 'U')", ("untyped", "1); DROP TABLE plain; --")
    )
    conn.close()
    before = {name: dump(green, name) for name in ("untyped", "plain")}
    with pytest.raises(OperationFailed, match=r"untyped: captured key .* is not 1 quote\(\)d value"):
        replay(blue, green)
    assert {name: dump(green, name) for name in ("untyped", "plain")} == before


# -- cost: only the changed rows -------------------------------------------------------------------
def keyed_pair(folder: Path, rows: int, tables: int = 1) -> tuple[Path, Path]:
    """blue with `tables` WITHOUT ROWID tables (t0 of `rows` rows, the others 100) and a green
    copy; then the same 60 changes to t0 whatever its size."""
    folder.mkdir()
    blue, green = folder / "blue.db", folder / "green.db"
    ddl = "".join(
        f"CREATE TABLE t{i}(name TEXT COLLATE NOCASE, tag BLOB, n INTEGER, v, PRIMARY KEY(name, tag, n)) WITHOUT ROWID;"
        f"WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i WHERE x < {rows if i == 0 else 100}) "
        f"INSERT INTO t{i} SELECT 'k' || (x % 10), CAST(x AS BLOB), x, 'v' FROM i;"
        for i in range(tables)
    )
    make_blue(blue, ddl)
    make_green(blue, green)
    writes = "".join(
        f"UPDATE t0 SET v = 'changed' WHERE name = 'k{x % 10}' AND tag = CAST({x} AS BLOB) AND n = {x};"
        f"DELETE FROM t0 WHERE name = 'k{(x + 1) % 10}' AND tag = CAST({x + 1} AS BLOB) AND n = {x + 1};"
        f"INSERT INTO t0 VALUES ('new', X'00', {-x}, 'inserted');"
        for x in range(7, 1000, 50)
    )
    app_write(blue, writes)
    return blue, green


def test_replay_costs_the_same_steps_on_a_table_twenty_times_larger(tmp_path):
    """The same 60 changes on 2,000 and on 40,000 rows: SQLite's VM steps over every statement of
    the replay are the same (a scan would cost 20 times more), and no statement steps through an
    application table in a full scan — full-scan steps stay those over the batch's own keys."""
    small = counted_replay(*keyed_pair(tmp_path / "small", 2_000))
    large = counted_replay(*keyed_pair(tmp_path / "large", 40_000))
    assert large["statements"] == small["statements"]
    assert large["vm_steps"] <= small["vm_steps"] * 1.05, (small, large)
    assert large["fullscan_steps"] == small["fullscan_steps"] and large["fullscan_steps"] < 2_000, (small, large)


def test_per_batch_work_follows_the_tables_in_the_batch_not_those_in_the_file(tmp_path):
    """Changes to one table of 3 and of 200: the same statements, the same steps (batches of 10,
    so the per-batch work is paid many times); the schema is looked up a few times per catch-up,
    never per batch."""
    few = counted_replay(*keyed_pair(tmp_path / "few", 500, tables=3), limit=10)
    many = counted_replay(*keyed_pair(tmp_path / "many", 500, tables=200), limit=10)
    assert many["statements"] == few["statements"] > 6 * 10, (few, many)
    assert many["vm_steps"] <= few["vm_steps"] * 1.05, (few, many)
    assert many["fullscan_steps"] == few["fullscan_steps"], (few, many)
    assert many["schema_lookups"] == few["schema_lookups"] <= 4, (few, many)


# -- convergence -----------------------------------------------------------------------------------
def test_catch_up_aims_at_the_position_it_started_from_and_says_writes_outpaced_it(tmp_path):
    """A writer adds 30 changes each time a batch of 10 is replayed: chasing an empty backlog
    would never end. Catch-up stops at the source's position when it began, and reports both rates."""
    blue, green = tmp_path / "blue.db", tmp_path / "green.db"
    make_blue(blue, ZOO + SEED_ROWS)
    make_green(blue, green)
    app_write(blue, "UPDATE mixed SET note = 'first' WHERE n < 0")  # 150 changes to catch up
    started = capture.capture_position(open_db(blue, query_only=True)).seq
    writer = apsw.Connection(str(blue))
    calls = []

    def write_more(done: int, total: int) -> None:
        calls.append((done, total))
        assert len(calls) < 100, "catch-up chased the writer instead of stopping at its position"
        with writer:
            writer.execute("UPDATE mixed SET note = ? WHERE n BETWEEN ? AND ?", (f"w{len(calls)}", 2, 31))

    replayer = Replayer(blue, green, [])
    try:
        replayer.catch_up(limit=10, progress=write_more)
        report = replayer.last_catch_up
        assert (report.started_at, report.target) == (0, started)
        # it may read a little past its aim (a batch reads to its snapshot's end, limit permitting)
        assert started <= report.reached < started + 10 and report.replayed == report.reached
        assert report.arrived == 30 * len(calls) and report.outpaced
        assert report.write_rate > report.replay_rate > 0
        assert "writes arrived faster than catch-up replayed them" in report.message()
        assert {total for _, total in calls} <= {started, report.reached}  # the total never chases the writer
        # what arrived is left for the next catch-up
        assert replayer.backlog() == report.arrived - (report.reached - report.target)
        # what prepare and cutover do with it: an event with both rates, and a note on stderr
        store, stream = Store(tmp_path / "current.toml"), io.StringIO()
        Builder(None, store, ProgressReporter("json", stream)).report_catch_up(replayer)
        [event] = [e for e in store.events() if e["event"] == "catch_up"]
        assert event["outpaced"] is True and event["write_rate"] > event["replay_rate"] > 0
        [note] = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert note["event"] == "note" and "writes arrived faster than catch-up replayed them" in note["message"]
    finally:
        replayer.close()
        writer.close()


def test_catch_up_to_a_position_under_a_barrier_still_replays_exactly_to_it(tmp_path):
    blue, green = tmp_path / "blue.db", tmp_path / "green.db"
    make_blue(blue, ZOO + SEED_ROWS)
    make_green(blue, green)
    app_write(blue, "UPDATE mixed SET note = 'a' WHERE n < 0")
    upto = capture.capture_position(open_db(blue, query_only=True)).seq
    app_write(blue, "UPDATE mixed SET note = 'b' WHERE n >= 0")
    replayer = Replayer(blue, green, [])
    try:
        replayer.catch_up(upto=upto, limit=7)
        assert replayer.position().seq == upto and replayer.last_catch_up.arrived == 0
        with pytest.raises(OperationFailed, match="were expected but the snapshot ends at"):
            replayer.catch_up(upto=upto + replayer.backlog() + 5)
    finally:
        replayer.close()


def test_progress_never_promises_an_end_while_the_work_left_grows():
    stream = io.StringIO()
    report = ProgressReporter("tty", stream)
    for done in range(0, 5000, 1000):  # the old catch-up's total: done + a backlog that never shrinks
        report.last = 0
        report("catch_up", done, done + 400 + done // 100)
    text = stream.getvalue()
    assert "ETA" not in text and "falling behind" in text
    stream.seek(0), stream.truncate()
    report = ProgressReporter("json", stream)
    for done in (0, 100, 200):
        report.last = 0
        report("catch_up", done, 300)
    etas = [json.loads(line)["eta_s"] for line in stream.getvalue().splitlines()]
    assert etas[0] is None and etas[1] is not None and etas[2] is not None


WRITER = textwrap.dedent(
    """\
    # A WITHOUT ROWID application: writes as fast as it can, follows the pointer when fenced,
    # logs each write after COMMIT returns (what it was told is committed).
    import json, os, random, sys, time, tomllib
    from pathlib import Path
    import apsw
    pointer, log, stop = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    rng = random.Random(7)
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    def connect():
        path = pointer.parent / tomllib.loads(pointer.read_text())["active"]
        conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READWRITE)
        conn.set_busy_timeout(60_000)
        return path, conn
    path, conn = connect()
    parent, counter = os.getppid(), 0
    while not stop.exists() and os.getppid() == parent:
        counter += 1
        key = (rng.choice(["Zone-a", "zone-B", "ZONE-c"]), rng.randrange(-50_000, 50_000),
               rng.randrange(256).to_bytes(1, "big"))
        kind = rng.random()
        value = None if kind < 0.2 else f"v{counter}"
        sql = ("DELETE FROM kv WHERE zone = ? AND n = ? AND tag = ?" if value is None
               else "INSERT INTO kv VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET val = excluded.val")
        args = key if value is None else (*key, value)
        while True:
            try:
                conn.execute(sql, args)
                break
            except apsw.Error as exc:
                if "bluegreen_fenced" not in str(exc):
                    raise
                time.sleep(0.005)
                conn.close()
                path, conn = connect()
        stored = conn.execute("SELECT zone FROM kv WHERE zone = ? AND n = ? AND tag = ?", key).fetchall()
        record = {"zone": stored[0][0] if stored else key[0], "n": key[1], "tag": key[2].hex(), "val": value,
                  "file": path.name}
        os.write(out, (json.dumps(record) + "\\n").encode())
        time.sleep(0.002)
    os.close(out)
    """
)


def test_prepare_finishes_under_a_steady_writer_and_every_write_reaches_green(tmp_path):
    """A WITHOUT ROWID table of 150,000 rows and a writer that never pauses: prepare ends (its
    catch-up aims at a position), cutover carries everything, green matches every write."""
    project = Project(tmp_path)
    write_config(tmp_path)
    project.schemas.mkdir()
    project.data.mkdir()
    (project.schemas / "001_v1.1.0_notes.sql").write_text("CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);\n")
    make_blue(
        project.blue,
        """
        CREATE TABLE kv(zone TEXT COLLATE NOCASE, n INTEGER, tag BLOB, val TEXT,
                        PRIMARY KEY(zone, n, tag)) WITHOUT ROWID;
        WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i WHERE x < 150000)
        INSERT INTO kv SELECT 'seed-' || (x % 3), x, CAST(x AS BLOB), 'seed' FROM i;
    """,
    )
    assert project.cli("init").code == 0
    writer_py, log, stop = tmp_path / "writer.py", tmp_path / "writer.log", tmp_path / "writer.stop"
    writer_py.write_text(WRITER)
    writer = subprocess.Popen(
        [sys.executable, str(writer_py), str(project.pointer), str(log), str(stop)], stderr=subprocess.PIPE, text=True
    )
    try:
        while not log.exists() or len(log.read_text().splitlines()) < 50:
            assert writer.poll() is None, writer.stderr.read()
            time.sleep(0.01)
        before = len(log.read_text().splitlines())
        prepared = project.cli_process("prepare", "--json", timeout=240)
        assert prepared.code == 0, prepared.err
        during = len(log.read_text().splitlines()) - before
        cut = project.cli_process("cutover", "--json", timeout=300)
        assert cut.code == 0, cut.err
        green = project.data / tomllib.loads(project.pointer.read_text())["active"]
        while not any(json.loads(line)["file"] == green.name for line in log.read_text().splitlines()):
            assert writer.poll() is None, writer.stderr.read()  # the writer follows the pointer to green
            time.sleep(0.01)
        stop.write_text("stop")
        writer.wait(timeout=60)
        assert writer.returncode == 0, writer.stderr.read()
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    expected = {}
    for line in log.read_text().splitlines():
        write = json.loads(line)
        expected[(write["zone"].lower(), write["n"], write["tag"])] = (write["zone"], write["val"])
    assert len(expected) > 100 and during > 20  # the writer kept writing while prepare ran
    conn = open_db(green, query_only=True)
    try:
        have = {(z.lower(), n, t.hex()): (z, v) for z, n, t, v in conn.execute("SELECT zone, n, tag, val FROM kv")}
    finally:
        conn.close()
    wrong = {
        k: (want, have.get(k))
        for k, want in expected.items()
        if (want[1] is None and k in have) or (want[1] is not None and have.get(k) != want)
    }
    assert not wrong, list(wrong.items())[:5]
    events = [json.loads(line) for line in (project.data / ".bluegreen" / "events.jsonl").read_text().splitlines()]
    catch_ups = [e for e in events if e["event"] == "catch_up"]
    # Each catch-up got to the position it aimed at: a batch reads to its snapshot's end, so it may
    # end past the target when the writer wrote meanwhile (Replayer.catch_up), never short of it.
    assert catch_ups and all(e["reached"] >= e["target"] and "write_rate" in e for e in catch_ups)


def test_a_batch_cut_short_by_its_limit_never_trips_on_a_unique_value_that_moved(tmp_path):
    """Last-state replay copies each changed row as it is now. A batch cut short of its snapshot
    (by its limit, or aiming at a position a writer has passed) would copy row 2's current value
    'a' while row 1, whose change to 'c' lies beyond the batch, still holds 'a' in green: a
    UNIQUE conflict that is no conflict at all. A batch reads to its snapshot's end instead."""
    blue, green = tmp_path / "blue.db", tmp_path / "green.db"
    make_blue(blue, "CREATE TABLE u(id INTEGER PRIMARY KEY, v TEXT UNIQUE); INSERT INTO u VALUES (1, 'a'), (2, 'b');")
    make_green(blue, green)
    app_write(blue, "UPDATE u SET v = 'q' WHERE id = 2;")  # seq 1: key 2
    app_write(blue, "UPDATE u SET v = 'c' WHERE id = 1;")  # seq 2: key 1
    app_write(blue, "UPDATE u SET v = 'a' WHERE id = 2;")  # seq 3: key 2 takes row 1's old value
    for limit in (1, 2):
        copy = tmp_path / f"green{limit}.db"
        copy.write_bytes(green.read_bytes())
        report = replay(blue, copy, limit=limit)
        assert report.reached == report.target
        assert dump(copy, "u") == dump(blue, "u")
    replayer = Replayer(blue, green, [])
    try:  # aiming at a position short of the snapshot's end: still exact, and never stops short
        replayer.batch(limit=1)
        assert replayer.position().seq == 3
    finally:
        replayer.close()
    assert dump(green, "u") == dump(blue, "u")
