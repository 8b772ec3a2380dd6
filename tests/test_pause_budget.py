"""The write-pause budget covers everything done under blue's lock (hazard 18, invariant 3).

The fence is one edit of sqlite_schema instead of three CREATE TRIGGER per table, so it costs
O(schema), not O(tables x schema). Cutover predicts the pause from measurements of this run (fence
and commit timed on green, replay from its own batches), lets the barrier go when it will not fit,
gives up cleanly, and reports every try whose measured pause was over. No wall-clock asserts: the
tests check what the controller itself predicted, measured and reported, and the fence row by row.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import apsw
import pytest
from conftest import rows
from helpers import (
    ADD_TABLE,
    FENCES,
    ODD_TABLES,
    app,
    check_writes,
    error_line,
    events,
    make_project,
    many_tables,
    ok,
    phase_of,
    pointer_of,
    read_rows,
    refused,
    set_cutover,
)

from bluegreen.engine import capture
from bluegreen.engine.db import open_db
from bluegreen.files import contract


def fenced_tables(path: Path, generation: int) -> set[str]:
    """Tables with all three fence triggers, each calling the generation's function."""
    function = contract.FENCE_FUNCTION.format(generation=generation)
    found: dict[str, int] = {}
    for table, sql in rows(
        path,
        "SELECT tbl_name, sql FROM sqlite_schema WHERE type = 'trigger' "
        "AND name LIKE '\\_bluegreen\\_fence\\_%' ESCAPE '\\'",
    ):
        assert f"SELECT {function}()" in sql, sql
        found[table] = found.get(table, 0) + 1
    return {t for t, n in found.items() if n == 3}


# ==================================================================================================
# The fence is one schema edit, equal to what CREATE TRIGGER stores
# ==================================================================================================
def test_the_schema_edit_fence_is_what_create_trigger_would_store(tmp_path):
    made = tmp_path / "edit.db"
    reference = tmp_path / "create.db"
    for path in (made, reference):
        conn = apsw.Connection(str(path))
        conn.execute("PRAGMA journal_mode=WAL").get
        with conn:
            many_tables(20)(conn)
        conn.close()
    conn = open_db(made, triggers=False)
    conn.execute("BEGIN IMMEDIATE")
    before = conn.execute("PRAGMA schema_version").get
    version = capture.install_fence(conn, 7, guard=False)
    conn.execute("COMMIT")
    conn.close()
    conn = open_db(reference, triggers=False)
    with conn:
        for sql in capture.fence_sql(conn, 7):
            conn.execute(sql)
    conn.close()
    schema = "SELECT type, name, tbl_name, rootpage, sql FROM sqlite_schema ORDER BY type, name"
    assert rows(made, schema) == rows(reference, schema)
    assert len(fenced_tables(made, 7)) == 24
    assert version == before + 1 == rows(made, "PRAGMA schema_version")[0][0]
    assert rows(made, "PRAGMA integrity_check") == [("ok",)]
    conn = open_db(made, triggers=False)  # and it is removed the same way, leaving nothing
    conn.execute("BEGIN IMMEDIATE")
    capture.remove_fence(conn)
    conn.execute("COMMIT")
    conn.close()
    assert rows(made, FENCES) == [(0,)] and rows(made, "PRAGMA integrity_check") == [("ok",)]


OPEN_APPLICATION = r"""
import json, os, sys, time
library, path, go = sys.argv[1:4]
if library == "apsw":
    import apsw
    conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READWRITE)
    conn.set_busy_timeout(5000)
    Error = apsw.Error
else:
    import sqlite3
    conn = sqlite3.connect(path, timeout=5, isolation_level=None)
    Error = sqlite3.Error
conn.execute("INSERT INTO t0(a, b) VALUES ('before the fence', 2)")  # schema compiled, writes work
print("READY", flush=True)
deadline = time.monotonic() + 60
while not os.path.exists(go) and time.monotonic() < deadline:
    time.sleep(0.01)
outcome = {}
for name, sql in (("insert", "INSERT INTO t1(a, b) VALUES ('after the fence', 3)"),
                  ("update", "UPDATE t0 SET b = 9"),
                  ("zero-row update", "UPDATE t2 SET b = 9 WHERE 0"),
                  ("zero-row delete", "DELETE FROM t3 WHERE 0"),
                  ("replace", "INSERT OR REPLACE INTO t4(id, a, b) VALUES (1, 'row', 5)")):
    try:
        conn.execute(sql)
        outcome[name] = "ALLOWED"
    except Error as exc:
        outcome[name] = str(exc)
outcome["read"] = [list(r) for r in conn.execute("SELECT a, b FROM t0 ORDER BY id").fetchall()]
print(json.dumps(outcome), flush=True)
"""


@pytest.mark.parametrize("library", ["apsw", "sqlite3"])
def test_connections_open_before_the_fence_are_fenced_at_their_next_statement(tmp_path, library):
    """Hazard 1 with the schema-edit fence: a connection that compiled blue's schema before the
    fence sees schema_version move, re-reads it and refuses every write, zero-row ones included;
    reads go on. One library per process (hazard 20)."""
    project = make_project(tmp_path, many_tables(50), ADD_TABLE)
    go = tmp_path / "go"
    application = subprocess.Popen(
        [sys.executable, "-c", OPEN_APPLICATION, library, str(project.blue), str(go)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert application.stdout.readline().strip() == "READY", application.stderr.read()
        ok(project.cli("deploy", "--json"))
        go.write_text("go")
        out, err = application.communicate(timeout=60)
    finally:
        if application.poll() is None:
            application.kill()
    outcome = json.loads(out)
    refused_with = {k: v for k, v in outcome.items() if k != "read"}
    assert all("bluegreen_fenced_use_generation_2" in v for v in refused_with.values()), refused_with
    assert outcome["read"] == [["row", 1], ["before the fence", 2]]
    assert rows(project.blue, "SELECT count(*) FROM t1") == [(1,)]  # the refused insert left nothing
    assert rows(project.blue, "PRAGMA integrity_check") == [("ok",)]
    assert read_rows(project.gen(2), "SELECT a, b FROM t0 ORDER BY id") == [("row", 1), ("before the fence", 2)]


# ==================================================================================================
# Many tables deploy within the budget
# ==================================================================================================
def test_hazard18_three_hundred_tables_deploy_within_the_budget_and_every_table_is_fenced(tmp_path):
    project = make_project(tmp_path, many_tables(300), ADD_TABLE)
    done = ok(project.cli("deploy", "--json"))
    budget = done["pause_budget"]
    # The controller's own account: what it measured, predicted, and how each try ended.
    assert budget["budget_ms"] == 100 and budget["fence_ms"] > 0 and budget["fsync_ms"] >= 0
    last = budget["attempts"][-1]
    assert last["outcome"] == "committed" and len(budget["attempts"]) == done["attempts"]
    assert last["predicted"]["total_ms"] <= 100  # it only fenced because the prediction fit
    assert last["predicted"]["fence_ms"] == budget["fence_ms"]
    over = [a for a in budget["attempts"] if a["over_budget"]]
    assert done["pause_overruns"] == budget["overruns"] == len(over)
    assert ("OVER the 100 ms write-pause budget" in done["message"]) == bool(over)
    assert len(events(project, "pause_overrun")) == len(over)
    # The fence holds on every table, bluegreen's own included; capture's triggers are gone and,
    # after the swap, its rows and epoch (the inert table stays: no schema change after the fence).
    tables = {n for (n,) in rows(project.blue, "SELECT name FROM sqlite_schema WHERE type = 'table'")}
    assert fenced_tables(project.blue, 2) == tables and len(tables) == 300 + len(ODD_TABLES) + 2
    assert rows(
        project.blue, "SELECT count(*) FROM sqlite_schema WHERE name LIKE '\\_bluegreen\\_cap\\_%' ESCAPE '\\'"
    ) == [(0,)]
    assert rows(project.blue, f"SELECT count(*) FROM {capture.CAPTURE_TABLE}") == [(0,)]
    assert capture.capture_position(project.connect()) is None
    conn = project.connect()
    try:
        for name in sorted(tables - {contract.META_TABLE, capture.CAPTURE_TABLE}):
            quoted = '"' + name.replace('"', '""') + '"'
            with pytest.raises(apsw.SQLError, match="bluegreen_fenced_use_generation_2"):
                conn.execute(f"DELETE FROM {quoted} WHERE 0")
        assert conn.execute('SELECT count(*) FROM "t299"').get == 1  # reads go on
    finally:
        conn.close()
    assert rows(project.blue, "PRAGMA integrity_check") == [("ok",)]
    # The fence's recorded schema_version followed the capture table's later drop (hazard 1).
    ok(project.cli("finalize", "--json"))


# ==================================================================================================
# A budget that cannot be met: let go, give up cleanly, report
# ==================================================================================================
def test_a_budget_the_fence_alone_cannot_fit_is_refused_before_any_try(tmp_path):
    project = make_project(tmp_path, many_tables(300), ADD_TABLE)
    set_cutover(project, max_write_pause_ms=1)
    ok(project.cli("prepare", "--json"))
    line = refused(project, "cutover", code=1)  # nothing changed on disk
    assert "could not cut over within the 1 ms write-pause budget: fencing this schema takes" in line
    assert "blue is still active and green stays prepared" in line
    document = project.cli("cutover", "--json").json
    assert document["details"]["pause_budget"]["attempts"] == []  # the barrier was never taken
    assert document["details"]["pause_budget"]["fence_ms"] > 1
    assert not events(project, "barrier_taken") and not events(project, "pause_overrun")
    assert pointer_of(project)["active"] == "app.db" and phase_of(project) == "prepared"
    app(project, "INSERT INTO t5(a, b) VALUES ('written after the refusal', 4)")  # blue takes writes
    set_cutover(project, max_write_pause_ms=1000)
    ok(project.cli("cutover", "--json"))
    assert rows(project.gen(2), "SELECT b FROM t5 WHERE a = 'written after the refusal'") == [(4,)]


# Slow only on the durable final batch under the lock (synchronous=FULL there, NORMAL in catch-up):
# sync work that the catch-up batches under-predict, as a cold cache or a lock-time-only path would.
SLOW_UNDER_THE_LOCK = """
SELECT count(*) FROM (WITH RECURSIVE n(x) AS (
    SELECT 1 WHERE (SELECT synchronous FROM pragma_synchronous) = 2
    UNION ALL SELECT x + 1 FROM n WHERE x < 1500000) SELECT x FROM n);
"""


def test_a_final_replay_over_the_budget_lets_go_gives_up_and_reports_the_overrun(toy, spawn):
    project = toy
    sync = project.schemas / "002_v2.0.0_split_names_sync.sql"
    sync.write_text(sync.read_text() + textwrap.dedent(SLOW_UNDER_THE_LOCK))
    set_cutover(project, max_write_pause_ms=100, max_attempts=1)
    assert project.cli("init").code == 0
    ok(project.cli("prepare", "--json"))
    writer = spawn(project, 1)
    writer.wait_for(20)  # the writer keeps a backlog for the barrier's final replay
    cut = project.cli("cutover", "--json")
    assert cut.code == 1, (cut.out, cut.err)
    line = error_line(cut)
    assert "could not cut over within the 100 ms write-pause budget: 1 tries" in line
    assert "OVER the 100 ms write-pause budget 1 time(s): attempt 1:" in line
    assert "released: final replay over budget" in line and "blue is still active" in line
    (attempt,) = cut.json["details"]["pause_budget"]["attempts"]
    assert attempt["over_budget"] and attempt["pause_ms"] > 100 and attempt["rows"] > 0
    assert attempt["predicted"]["total_ms"] <= 100  # the try was let in by its prediction
    (overrun,) = events(project, "pause_overrun")
    assert overrun["attempt"] == 1 and overrun["budget_ms"] == 100
    # Nothing switched: blue active and unfenced, green prepared, the writer still on blue.
    assert pointer_of(project)["active"] == "app.db" and phase_of(project) == "prepared"
    assert read_rows(project.blue, FENCES) == [(0,)] and project.gen(2).exists()
    writer.wait_for(10, on="app.db")
    expected = writer.finish()
    check_writes(project.blue, 1, expected)
    # Nothing lost: the next cutover (no writer, no backlog under the lock) carries every write.
    set_cutover(project, max_write_pause_ms=1000, max_attempts=3)
    done = ok(project.cli("cutover", "--json"))
    assert done["pause_overruns"] == 0
    check_writes(project.gen(2), 1, expected)
    assert read_rows(project.gen(2), "SELECT count(*) FROM items") == read_rows(
        project.gen(2), "SELECT count(*) FROM names"
    )


# ==================================================================================================
# The same budget for revert: locked.measure + locked.hold on any lock
# ==================================================================================================
def test_the_budget_api_any_locked_step_can_use_records_and_reports_each_try(toy_ready):
    """What revert calls (on green's lock): the fixed costs measured on a rehearsal connection,
    a try let go on its prediction (no overrun), a try whose commit ran long (an overrun, logged),
    and the give-up error carrying both."""
    import time

    from bluegreen.config import load
    from bluegreen.engine import barrier
    from bluegreen.errors import PauseBudgetExceeded
    from bluegreen.files.journal import Store
    from bluegreen.lifecycle import locked
    from bluegreen.lifecycle.run import Run

    project = toy_ready
    config = load(project.config)
    run = Run(Store(config.database.pointer))
    rehearsal = open_db(project.blue, triggers=False)
    budget = locked.measure(config, run, rehearsal, lambda conn: capture.install_fence(conn, 9, guard=False))
    rehearsal.close()
    assert budget.fence_ms > 0 and budget.fsync_ms >= 0 and budget.unreachable() == ""
    assert rows(project.blue, FENCES) == [(0,)]  # the rehearsal was rolled back

    def one_try(attempt: int, backlog: int, commit_s: float) -> float | None:
        held = barrier.take(project.blue, 1000)
        budget.observe([])  # nothing replayed in this sketch
        return locked.hold(
            run,
            budget,
            attempt,
            lambda: backlog,
            lambda: [],
            lambda clock: (time.sleep(commit_s), clock.ms)[1],
            lambda: (barrier.rollback(held), held.close()),
        )

    assert one_try(1, backlog=1, commit_s=0) is None  # replay not measured yet: predicted not to fit
    assert one_try(2, backlog=0, commit_s=0.15) > 100  # it fit, then ran long
    first, second = budget.attempts
    assert (first.outcome, first.pause_ms <= 100) == ("released: predicted over budget", True)
    assert (second.outcome, second.pause_ms > 100) == ("committed", True)
    assert [e["attempt"] for e in events(project, "pause_overrun")] == [2]
    error = budget.exceeded("revert", "2 tries", "generation 2 stays active")
    assert isinstance(error, PauseBudgetExceeded) and error.exit_code == 1
    assert "OVER the 100 ms write-pause budget 1 time(s): attempt 2:" in error.message
    assert error.details["pause_budget"]["overruns"] == 1
