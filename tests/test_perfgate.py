"""The performance gate: benchmark queries timed on blue and green before cutover.

Real databases of 60,000 rows; a regression is made structural (a lost index), so the refusals
do not hang on timing luck: a lookup that loses its index reads every row instead of one.
"""

from __future__ import annotations

import apsw
import pytest
from conftest import BASE_CONFIG, Project, disk_state, rows
from helpers import assert_refused, json_error, pointer_of, state_of

ROWS = 60_000
ITEMS = "CREATE TABLE IF NOT EXISTS items(id INTEGER PRIMARY KEY, name TEXT, code TEXT, grp INTEGER);\n"
LOOKUP = "SELECT name FROM items WHERE code = 'c-31337'"


def make_items(path) -> None:
    """items with a unique-ish `code` (indexed) and one `grp` value shared by every row."""
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA journal_mode=WAL").get
    with conn:
        conn.execute(ITEMS)
        conn.execute("CREATE INDEX items_code ON items(code)")
        conn.executemany(
            "INSERT INTO items(name, code, grp) VALUES (?, ?, 1)", ((f"item {i}", f"c-{i}") for i in range(ROWS))
        )
    conn.close()


def project_with(tmp_path, migration: str, benchmark: str | None = None, config: str = "") -> Project:
    """An initialized project: 001 adopts items, 002 is `migration` (with `benchmark` companion)."""
    project = Project(tmp_path)
    project.config.write_text(BASE_CONFIG + config)
    project.schemas.mkdir()
    (project.schemas / "001_v1.0.0_items.sql").write_text(ITEMS)
    (project.schemas / "002_v2.0.0_change.sql").write_text(migration)
    if benchmark is not None:
        (project.schemas / "002_v2.0.0_change_benchmark.sql").write_text(benchmark)
    project.data.mkdir()
    make_items(project.blue)
    assert project.cli("init").code == 0
    return project


BENCHMARK = f"-- benchmark: lookup_by_code\n{LOOKUP};\n"
HARMLESS = "CREATE TABLE notes(id INTEGER PRIMARY KEY, item_id INTEGER, body TEXT);\nCREATE INDEX notes_item ON notes(item_id);\n"


def results_of(path) -> list[dict]:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_URI)
    conn.execute("PRAGMA query_only = 1")
    try:
        cursor = conn.execute("SELECT * FROM migration_performance_tests ORDER BY id")
        names = [d[0] for d in cursor.getdescription()]
        return [dict(zip(names, r)) for r in cursor]
    finally:
        conn.close()


# -- passing ---------------------------------------------------------------------------------------
def test_passing_queries_are_stored_in_green_with_times_and_plans(tmp_path):
    notes = "-- benchmark: notes_of_item\nSELECT body FROM notes WHERE item_id = 7;\n"
    project = project_with(
        tmp_path,
        HARMLESS,
        BENCHMARK + notes,
        config='[performance.queries]\ncount_items = "SELECT count(*) FROM items WHERE id < 100"\n',
    )
    prepared = project.cli("prepare", "--json")
    assert prepared.code == 0, prepared.err
    checks = [c for c in prepared.json["validation"] if c["source"] == "performance"]
    assert [c["name"] for c in checks] == ["count_items", "lookup_by_code", "notes_of_item"]
    assert all(c["status"] == "PASS" for c in checks)

    stored = results_of(project.gen(2))
    assert [(r["name"], r["verdict"], r["generation"]) for r in stored] == [
        ("count_items", "PASS", 2),
        ("lookup_by_code", "PASS", 2),
        ("notes_of_item", "PASS", 2),
    ]
    by_name = {r["name"]: r for r in stored}
    lookup = by_name["lookup_by_code"]
    assert lookup["source"] == "002_v2.0.0_change_benchmark.sql"
    assert (lookup["test_name"], lookup["query_sql"], lookup["records_returned"]) == ("lookup_by_code", LOOKUP + ";", 1)
    assert lookup["execution_time_ms"] == lookup["green_ms"] and lookup["test_timestamp"] == lookup["measured_at"]
    assert by_name["count_items"]["records_returned"] == 1
    assert lookup["blue_ms"] > 0 and lookup["green_ms"] > 0
    assert lookup["ratio"] == pytest.approx(lookup["green_ms"] / lookup["blue_ms"], rel=1e-9)
    assert "SEARCH items USING" in lookup["blue_plan"] and "SEARCH items USING" in lookup["green_plan"]
    assert by_name["count_items"]["source"] == "config [performance.queries]"
    # notes is new in green: no baseline on blue, said so, not judged
    notes_row = by_name["notes_of_item"]
    assert notes_row["blue_ms"] is None and notes_row["ratio"] is None and notes_row["green_ms"] > 0
    assert "no baseline" in notes_row["reason"] and "no such table: notes" in notes_row["reason"]
    assert "SEARCH notes USING INDEX notes_item" in notes_row["green_plan"]

    cut = project.cli("cutover")
    assert cut.code == 0, cut.err
    again = results_of(project.gen(2))
    assert len(again) == 6 and {r["verdict"] for r in again} == {"PASS"}  # cutover measured once more
    assert again[3]["measured_at"] >= again[0]["measured_at"]


def test_deploy_with_benchmarks_then_revert_carries_back_and_keeps_nothing_stuck(tmp_path):
    """The results table lives in green, which is captured for revert: its rows must never make a
    revert refuse, while a real write made on green after the cutover is still carried back."""
    project = project_with(tmp_path, HARMLESS, BENCHMARK)
    assert project.cli("deploy").code == 0
    assert len(results_of(project.gen(2))) == 2  # prepare and cutover
    conn = project.connect(project.gen(2))
    conn.execute("UPDATE items SET name = 'renamed on green' WHERE id = 5")
    conn.close()

    reverted = project.cli("revert", "--json")
    assert reverted.code == 0, reverted.err
    assert reverted.json["carried_back"] == 1 and reverted.json["lost"] == {}
    assert pointer_of(project)["active"] == "app.db"
    assert rows(project.blue, "SELECT name FROM items WHERE id = 5") == [("renamed on green",)]
    assert not rows(project.blue, "SELECT 1 FROM sqlite_schema WHERE name = 'migration_performance_tests'")
    # and the next deploy (generation 3) measures again, from scratch
    assert project.cli("deploy").code == 0
    assert [r["generation"] for r in results_of(project.gen(3))] == [3, 3]


def test_a_blue_form_that_fails_while_running_leaves_the_query_without_baseline(tmp_path):
    benchmark = (
        "-- benchmark: notes_of_item\nSELECT body FROM notes WHERE item_id = 7;\n"
        "-- on blue:\nSELECT json_extract(name, '$') FROM items WHERE id = 1;\n"
    )  # 'item 0' is no JSON
    project = project_with(tmp_path, HARMLESS, benchmark)
    assert project.cli("prepare").code == 0
    stored = results_of(project.gen(2))[0]
    assert (stored["verdict"], stored["blue_ms"], stored["ratio"]) == ("PASS", None, None)
    assert "no baseline" in stored["reason"] and "malformed JSON" in stored["reason"]


def test_an_earlier_migrations_benchmark_guards_later_deploys_with_its_main_form(tmp_path):
    """`-- on blue:` serves only while blue lacks the migration; afterwards both files run the main
    form, so a later migration that drops the index the query needs is refused."""
    benchmark = (
        "-- benchmark: notes_of_item\nSELECT body FROM notes WHERE item_id = 7;\n"
        "-- on blue:\nSELECT name FROM items WHERE id = 7;\n"
    )
    project = project_with(tmp_path, HARMLESS, benchmark)
    assert project.cli("deploy").code == 0 and project.cli("finalize").code == 0
    first = results_of(project.gen(2))[0]
    assert "SEARCH items USING INTEGER PRIMARY KEY" in first["blue_plan"]  # the old form, on app.db

    (project.schemas / "003_v3.0.0_more.sql").write_text("CREATE TABLE tags(id INTEGER PRIMARY KEY, name TEXT);\n")
    assert project.cli("deploy").code == 0 and project.cli("finalize").code == 0
    second = results_of(project.gen(3))[-1]
    assert (second["name"], second["generation"], second["verdict"]) == ("notes_of_item", 3, "PASS")
    assert "SEARCH notes USING INDEX notes_item" in second["blue_plan"]  # the main form, on app.gen2.db

    (project.schemas / "004_v4.0.0_drop.sql").write_text("DROP INDEX notes_item;\n")
    before = disk_state(project.data)
    assert_refused(project.cli("deploy"), 3, "performance: notes_of_item", "turned into a full scan", "SCAN notes")
    assert disk_state(project.data) == before
    assert pointer_of(project)["active"] == "app.gen3.db"


def test_shipped_benchmarks_pass_and_compare_against_the_v1_forms(shipped):
    result = shipped.cli("prepare", "--json")
    assert result.code == 0, result.err
    stored = {r["name"]: r for r in results_of(shipped.gen(2))}
    assert set(stored) == {
        "content_listing_by_platform",
        "metadata_lookup",
        "content_by_url",
        "latest_content_page",
        "downloads_of_content",
        "failed_downloads",
        "content_detail",
    }
    assert {r["verdict"] for r in stored.values()} == {"PASS"}
    # the SDM plan's columns, filled with the real timing of green's run and its row count
    listing = stored["content_listing_by_platform"]
    assert listing["test_name"] == "content_listing_by_platform" and "FROM content AS c" in listing["query_sql"]
    assert (
        listing["execution_time_ms"] == listing["green_ms"] > 0 and listing["test_timestamp"] == listing["measured_at"]
    )
    assert listing["records_returned"] == 50
    assert stored["metadata_lookup"]["records_returned"] == 0  # no video has the id 'bluegreen'
    assert "SEARCH m USING COVERING INDEX content_metadata_lookup" in stored["metadata_lookup"]["green_plan"]
    assert "SEARCH c USING INDEX content_platform_created" in listing["green_plan"]
    # blue ran the `-- on blue:` form over content_v1, green the v2 query over its new index
    assert "content_v1" in stored["content_by_url"]["blue_plan"]
    assert "SEARCH content USING INDEX content_url" in stored["content_by_url"]["green_plan"]
    assert all(r["blue_ms"] is not None for r in stored.values())


# -- refusals --------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [("deploy",), ("prepare",), ("deploy", "--offline")])
def test_a_query_that_turned_into_a_full_scan_refuses_deploy(tmp_path, argv):
    project = project_with(tmp_path, "DROP INDEX items_code;\n", BENCHMARK)
    before = disk_state(project.data)

    result = project.cli(*argv)

    line = assert_refused(
        result,
        3,
        "validation refused generation 2",
        "performance: lookup_by_code",
        "turned into a full scan",
        "SCAN items",
        "SEARCH items USING",
    )
    assert "blue" in line and "green" in line and " ms" in line
    assert disk_state(project.data) == before
    assert pointer_of(project)["active"] == "app.db"
    document = json_error(project.cli(*argv, "--json"), 3)
    failed = [p for p in document["details"]["performance"] if p["verdict"] != "PASS"]
    assert [(p["name"], p["verdict"]) for p in failed] == [("lookup_by_code", "FULL_SCAN")]
    assert failed[0]["blue_ms"] > 0 and failed[0]["green_ms"] > 0 and failed[0]["ratio"] > 0
    assert disk_state(project.data) == before


def test_a_query_much_slower_on_green_refuses_deploy(tmp_path):
    """Still an index search, so no new full scan: the ratio must catch it. The code index is
    replaced by one on grp, which every row shares: the lookup now walks all 60,000 entries."""
    migration = "DROP INDEX items_code;\nCREATE INDEX items_grp ON items(grp);\n"
    benchmark = "-- benchmark: lookup_in_group\nSELECT name FROM items WHERE grp = 1 AND code = 'c-31337';\n"
    # a floor of 0.25 ms: blue's indexed lookup takes ~0.02 ms, green's walk ~4 ms, 8x over the bar
    project = project_with(tmp_path, migration, benchmark, config="[performance]\nmin_ms = 0.25\n")
    before = disk_state(project.data)

    result = project.cli("deploy", "--json")

    document = json_error(result, 3)
    assert "performance: lookup_in_group" in document["error"] and "slower" in document["error"]
    measured = document["details"]["performance"][0]
    assert measured["verdict"] == "SLOWER"
    assert measured["green_ms"] > 2 * max(measured["blue_ms"], 0.25)
    assert "SEARCH items USING INDEX items_grp" in measured["green_plan"]
    assert "SEARCH items USING INDEX items_code" in measured["blue_plan"]
    assert disk_state(project.data) == before


def test_cutover_measures_again_and_refuses_leaving_blue_active(tmp_path):
    """Prepared under a lenient gate; a stricter one at cutover refuses: blue stays active and
    unchanged, green stays prepared, and green keeps the failing measurement."""
    project = project_with(tmp_path, HARMLESS, BENCHMARK)
    assert project.cli("prepare").code == 0
    project.config.write_text(BASE_CONFIG + "[performance]\nmax_ratio = 0.001\nmin_ms = 0\n")
    blue_before = disk_state(project.data)["app.db"]

    result = project.cli("cutover")

    assert_refused(result, 3, "performance: lookup_by_code", "slower", "over 0.001x")
    assert pointer_of(project)["active"] == "app.db"
    assert disk_state(project.data)["app.db"] == blue_before
    assert state_of(project)["phase"] == "prepared"
    assert [r["verdict"] for r in results_of(project.gen(2))] == ["PASS", "SLOWER"]


@pytest.mark.parametrize(
    "query, code, words",
    [
        # plan's preflight compiles each query on a schema-only copy: refused up front, file and line (exit 2)
        ("DELETE FROM items WHERE id = 1", 2, ["_benchmark.sql:1:", "'bad_one'", "not a read-only query"]),
        ("SELECT 1; SELECT 2", 2, ["_benchmark.sql:1:", "'bad_one'", "more than one statement"]),
        ("SELECT nope FROM items", 2, ["_benchmark.sql:1:", "'bad_one'", "no such column: nope"]),
        (
            "SELECT json_extract(body, '$.x') FROM notes UNION ALL SELECT json_extract('{', '$')",
            3,
            ["performance: bad_one", "fails on green", "malformed JSON"],
        ),  # compiles, fails while it runs: the performance gate refuses it
    ],
)
def test_a_bad_benchmark_query_refuses_with_its_error(tmp_path, query, code, words):
    project = project_with(tmp_path, HARMLESS, f"-- benchmark: bad_one\n{query};\n")
    before = disk_state(project.data)
    assert_refused(project.cli("deploy"), code, *words)
    assert disk_state(project.data) == before
    assert rows(project.blue, "SELECT count(*) FROM items") == [(ROWS,)]


@pytest.mark.parametrize(
    "text, words",
    [
        (
            "SELECT 1;\n-- benchmark: late\nSELECT 2;\n",
            ["_benchmark.sql:1", "SQL before the first", "-- benchmark: NAME"],
        ),
        ("-- only a comment\n", ["no queries", "-- benchmark: NAME"]),
        ("-- benchmark:\nSELECT 1;\n", ["_benchmark.sql:1", "needs a name"]),
        ("-- benchmark: twice\nSELECT 1;\n-- benchmark: twice\nSELECT 2;\n", ["'twice' is used twice"]),
        ("-- benchmark: empty\n-- nothing here\n", ["'empty' is empty"]),
        ("-- benchmark: x\nSELECT 1;\n-- on blue:\n\n", ["`-- on blue:` form of 'x' is empty"]),
    ],
)
def test_a_malformed_benchmark_file_is_an_input_error(tmp_path, text, words):
    project = project_with(tmp_path, HARMLESS, text)
    before = disk_state(project.data)
    assert_refused(project.cli("deploy"), 2, "002_v2.0.0_change_benchmark.sql", *words)
    assert disk_state(project.data) == before


@pytest.mark.parametrize(
    "setting, words",
    [
        ("max_ratio = 0", ["performance.max_ratio", "must be a number > 0"]),
        ("min_ms = -1", ["performance.min_ms", "must be a number >= 0"]),
        ("runs = 0", ["performance.runs", "positive integer"]),
        ('queries = "SELECT 1"', ["performance.queries", "must be a table"]),
        ("queries = { empty = '' }", ["performance.queries.empty", "non-empty SQL string"]),
    ],
)
def test_bad_performance_config(tmp_path, setting, words):
    project = project_with(tmp_path, HARMLESS, BENCHMARK)
    project.config.write_text(BASE_CONFIG + f"[performance]\n{setting}\n")
    before = disk_state(project.data)
    assert_refused(project.cli("deploy"), 2, str(project.config), *words)
    assert disk_state(project.data) == before
