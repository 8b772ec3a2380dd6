"""Revert under the same write-pause budget as cutover (hazard 18, invariant 3).

Green's writers wait from green's barrier until the swap: the carry of green's last changes, green's
fence, blue's unfence. The fixed costs are measured before any lock (on fenced blue, which nobody
writes), most of the carry is done before green's barrier, a try that will not fit lets go, and
revert gives up cleanly (exit 1, green active, nothing lost) after [cutover] max_attempts. No
wall-clock asserts: the tests check what revert predicted, measured and reported, and the rows.
"""

from __future__ import annotations

import textwrap

from conftest import rows
from helpers import (
    ADD_TABLE,
    FENCES,
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

ITEMS = "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT);\nINSERT INTO items(name) VALUES ('seed');\n"
# A rollback companion slow only for a batch holding the row named 'slow': carry work the batches
# measured before the lock under-predict, as a cold cache would.
SLOW_FOR_ONE_ROW = """
SELECT count(*) FROM (WITH RECURSIVE n(x) AS (
    SELECT 1 WHERE EXISTS (SELECT 1 FROM source.items WHERE name = 'slow' AND id IN (
        SELECT row_key FROM temp.bluegreen_changes WHERE table_name = 'items'))
    UNION ALL SELECT x + 1 FROM n WHERE x < 1500000) SELECT x FROM n);
"""


def same_rows(blue, green, tables) -> None:
    for table in tables:
        query = f'SELECT * FROM "{table}" ORDER BY 1'
        assert read_rows(blue, query) == read_rows(green, query), table


def test_a_revert_with_300_tables_fits_the_budget_and_reports_its_pause(tmp_path):
    project = make_project(tmp_path, many_tables(300), ADD_TABLE)
    set_cutover(project, max_write_pause_ms=400)
    ok(project.cli("deploy", "--json"))
    for i in range(0, 300, 7):  # writes on green in many tables: carried back
        app(
            project,
            f"INSERT INTO t{i}(a, b) VALUES ('on green', {i}); UPDATE t{i} SET b = -1 WHERE a = 'row'",
            path=project.gen(2),
        )
    done = ok(project.cli("revert", "--json"))
    assert done["carried_back"] >= 2 * len(range(0, 300, 7))
    budget = done["pause_budget"]
    assert budget["budget_ms"] == 400 and budget["fence_ms"] > 0 and budget["fsync_ms"] >= 0
    assert budget["attempts"][-1]["outcome"] == "committed" and done["attempts"] == len(budget["attempts"])
    assert (
        done["write_pause_ms"] == budget["attempts"][-1]["pause_ms"]
        or abs(done["write_pause_ms"] - budget["attempts"][-1]["pause_ms"]) < 0.01
    )
    assert done["pause_overruns"] == len([a for a in budget["attempts"] if a["over_budget"]])
    human = project.cli("status")  # the revert is done: blue active, green fenced
    assert human.code == 0
    assert pointer_of(project)["active"] == "app.db"
    same_rows(project.blue, project.gen(2), [f"t{i}" for i in range(300)])
    ours = "SELECT count(*) FROM sqlite_schema WHERE name LIKE '\\_bluegreen\\_%' ESCAPE '\\'"
    assert read_rows(project.blue, ours) == [(0,)]  # the guard's indexes went after the swap, in slices
    assert events(project, "pause_budget") and events(project, "barrier_taken")


def test_revert_human_text_says_how_long_writes_paused(tmp_path):
    project = make_project(tmp_path, ITEMS, ADD_TABLE)
    ok(project.cli("deploy", "--json"))
    app(project, "INSERT INTO items(name) VALUES ('on green')", path=project.gen(2))
    result = project.cli("revert")
    assert result.code == 0, result.err
    assert "writes on generation 2 paused" in result.out and " ms" in result.out


def test_a_budget_the_fixed_costs_cannot_fit_is_refused_before_any_lock(tmp_path):
    project = make_project(tmp_path, many_tables(300), ADD_TABLE)
    ok(project.cli("deploy", "--json"))
    app(project, "INSERT INTO t5(a, b) VALUES ('on green', 5)", path=project.gen(2))
    set_cutover(project, max_write_pause_ms=1)
    line = refused(project, "revert", code=1)  # nothing changed on disk
    assert "could not revert within the 1 ms write-pause budget: fencing this schema takes" in line
    assert "the current generation stays active and nothing was lost" in line
    document = project.cli("revert", "--json").json
    assert document["details"]["pause_budget"]["attempts"] == []  # no lock was taken
    assert pointer_of(project)["active"] == "app.gen2.db" and phase_of(project) == "cut_over"
    assert read_rows(project.gen(2), FENCES) == [(0,)]
    app(project, "INSERT INTO t6(a, b) VALUES ('after the refusal', 6)", path=project.gen(2))  # green writable
    set_cutover(project, max_write_pause_ms=1000)
    ok(project.cli("revert", "--json"))
    assert pointer_of(project)["active"] == "app.db"
    same_rows(project.blue, project.gen(2), [f"t{i}" for i in range(300)])
    assert read_rows(project.blue, "SELECT b FROM t6 WHERE a = 'after the refusal'") == [(6,)]


def test_a_carry_over_the_budget_lets_go_gives_up_and_reports_the_overrun(tmp_path, monkeypatch):
    from bluegreen.lifecycle.revert import Revert

    migrations = {**ADD_TABLE, "001_v1.1.0_add_audit_rollback.sql": textwrap.dedent(SLOW_FOR_ONE_ROW)}
    project = make_project(tmp_path, ITEMS, migrations)
    ok(project.cli("deploy", "--json"))
    for i in range(30):
        app(project, f"INSERT INTO items(name) VALUES ('green {i}')", path=project.gen(2))
    pre_carry = Revert._pre_carry

    def then_a_write_lands(self, *args):  # what a writer on green does between the carry and the barrier
        carried = pre_carry(self, *args)
        if not read_rows(project.gen(2), "SELECT 1 FROM items WHERE name = 'slow'"):
            app(project, "INSERT INTO items(name) VALUES ('slow')", path=project.gen(2))
        return carried

    monkeypatch.setattr(Revert, "_pre_carry", then_a_write_lands)
    set_cutover(project, max_write_pause_ms=100, max_attempts=1)
    result = project.cli("revert", "--json")
    assert result.code == 1, (result.out, result.err)
    line = error_line(result)
    assert "could not revert within the 100 ms write-pause budget: 1 tries" in line
    assert "OVER the 100 ms write-pause budget 1 time(s): attempt 1:" in line
    assert "released: final replay over budget" in line
    (attempt,) = result.json["details"]["pause_budget"]["attempts"]
    assert attempt["over_budget"] and attempt["pause_ms"] > 100 and attempt["rows"] == 1
    (overrun,) = events(project, "pause_overrun")
    assert overrun["attempt"] == 1 and overrun["budget_ms"] == 100
    # Nothing switched: green active and unfenced, blue still fenced and without the late row.
    assert pointer_of(project)["active"] == "app.gen2.db" and phase_of(project) == "cut_over"
    assert read_rows(project.gen(2), FENCES) == [(0,)] and read_rows(project.blue, FENCES) != [(0,)]
    assert read_rows(project.blue, "SELECT 1 FROM items WHERE name = 'slow'") == []
    app(project, "INSERT INTO items(name) VALUES ('after giving up')", path=project.gen(2))  # green writable
    # Nothing lost: the next revert carries every row.
    monkeypatch.setattr(Revert, "_pre_carry", pre_carry)
    set_cutover(project, max_write_pause_ms=5000, max_attempts=3)
    ok(project.cli("revert", "--json"))
    assert pointer_of(project)["active"] == "app.db"
    same_rows(project.blue, project.gen(2), ["items"])
    assert read_rows(project.blue, "SELECT count(*) FROM items") == [(33,)]


def test_a_writer_on_green_through_a_budgeted_revert_loses_nothing(tmp_path, spawn):
    project = make_project(tmp_path, ITEMS, ADD_TABLE)
    ok(project.cli("deploy", "--json"))
    writer = spawn(project, 2)
    writer.wait_for(30, on="app.gen2.db")
    done = ok(project.cli("revert", "--json"))
    assert done["pause_budget"]["attempts"][-1]["outcome"] == "committed"
    writer.wait_for(30, on="app.db")  # it followed the pointer back
    expected = writer.finish()
    check_writes(project.blue, 2, expected)
    assert rows(project.blue, "SELECT count(*) FROM items")[0][0] >= len([n for n in expected.values() if n])
