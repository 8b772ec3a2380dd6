"""The performance gate: named queries timed on blue and green; a regression refuses cutover.

Queries come from `[performance.queries]` in the config and from the `_benchmark.sql` companion
of every migration green has (so a later migration that drops an earlier one's index is caught).
A companion query may carry an `-- on blue:` form for a file without its migration; otherwise blue
runs the same text, and a query that does not compile on blue has no baseline (reported, not
judged). Each query runs once to warm the cache, then `runs` times on each file, interleaved so
a busy machine slows both alike; the median counts.

A query fails the gate when
  * it is slower: green's median > max_ratio × max(blue's median, min_ms) — the floor keeps
    timer noise on sub-millisecond queries from deciding; or
  * it turned into a full scan: green's EXPLAIN QUERY PLAN reads more tables in full than blue's
    (`SCAN t`, with or without an index that only orders the rows, or an automatic index, which
    SQLite builds by scanning t). Counted, not matched by name, so an `-- on blue:` form over other
    tables compares too; a full scan blue already had is the ratio's business, not this rule's; or
  * it fails on green, holds more than one statement, or tries to write.

Every result is stored in green's `migration_performance_tests`, on the caller's triggers-off
connection: capture never sees these rows, so they can never make a revert refuse. The table has
the SDM migration plan's columns (test_name, query_sql, execution_time_ms: green's median,
records_returned: rows green returned, test_timestamp) next to the gate's own; a table made by an
older bluegreen keeps its columns (never altered: that would change green's schema after the
migrations) and gets the gate's.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import apsw

from bluegreen.config import PerformanceConfig
from bluegreen.engine import migrations, namedsql
from bluegreen.engine.db import open_db
from bluegreen.engine.namedsql import NamedQuery
from bluegreen.files.pointer import now_iso
from bluegreen.gates.validate import Check

RESULTS_TABLE = "migration_performance_tests"
RESULTS_DDL = f"""
CREATE TABLE IF NOT EXISTS {RESULTS_TABLE} (
    id INTEGER PRIMARY KEY,
    generation INTEGER NOT NULL,
    source TEXT NOT NULL,
    name TEXT NOT NULL,
    blue_ms REAL,
    green_ms REAL,
    ratio REAL,
    blue_plan TEXT,
    green_plan TEXT,
    verdict TEXT NOT NULL,
    reason TEXT NOT NULL,
    measured_at TEXT NOT NULL,
    test_name TEXT,
    query_sql TEXT,
    execution_time_ms REAL,
    records_returned INTEGER,
    test_timestamp TEXT
)"""
PLAN_COLUMNS = ("test_name", "query_sql", "execution_time_ms", "records_returned", "test_timestamp")

PASS, SLOWER, FULL_SCAN, ERROR = "PASS", "SLOWER", "FULL_SCAN", "ERROR"


@dataclass(frozen=True)
class Measurement:
    source: str
    name: str
    blue_ms: float | None  # None: no baseline (the query does not run on blue)
    green_ms: float | None  # None: the query fails on green
    ratio: float | None  # green / blue
    blue_plan: str
    green_plan: str
    verdict: str  # PASS, SLOWER, FULL_SCAN or ERROR
    reason: str
    query_sql: str = ""  # the text timed on green
    records_returned: int | None = None  # rows green returned (None: it failed there)

    @property
    def passed(self) -> bool:
        return self.verdict == PASS

    def as_check(self, settings: PerformanceConfig) -> Check:
        """The gate's line in the validation report (and in a refusal's one-line message)."""
        expected = f"<= {settings.max_ratio:g} x blue (floor {settings.min_ms:g} ms), no new full scan"
        return Check("performance", self.name, expected, self.reason, "PASS" if self.passed else "FAIL")


def queries(
    settings: PerformanceConfig, migrations_dir: Path, green: apsw.Connection, pending: list
) -> list[NamedQuery]:
    """Config queries, then every benchmark companion of a migration green has applied. The
    `-- on blue:` form serves only while blue lacks that migration (it is in `pending`)."""
    found = namedsql.from_config("performance", settings.queries)
    applied = {a.file for a in migrations.history(green) if a.success}
    waiting = {m.file for m in pending}
    for migration in migrations.discover(migrations_dir):
        if migration.benchmark is None or migration.file not in applied:
            continue
        for query in namedsql.parse(migration.benchmark, "benchmark"):
            found.append(query if migration.file in waiting else NamedQuery(query.source, query.name, query.sql))
    return found


def run(
    green: apsw.Connection,
    blue_path: Path,
    found: list[NamedQuery],
    settings: PerformanceConfig,
    progress: Callable[[int, int], None] | None = None,
) -> list[Measurement]:
    """Time and explain each query on blue (its own read-only connection) and green (read-only
    for the duration); progress(done, total) after each query (total: len(found))."""
    if not found:
        return []
    blue = open_db(blue_path, query_only=True)
    green.execute("PRAGMA query_only = 1")
    try:
        measured = []
        for query in found:
            measured.append(_measure(blue, green, query, settings))
            if progress is not None:
                progress(len(measured), len(found))
        return measured
    finally:
        green.execute("PRAGMA query_only = 0")
        blue.close()


def record(green: apsw.Connection, generation: int, results: list[Measurement]) -> None:
    """Store the results in green. Only on a triggers-off connection: capture must not see them."""
    if not results:
        return
    if green.config(apsw.SQLITE_DBCONFIG_ENABLE_TRIGGER, -1) != 0:
        raise AssertionError("performance results must be written with triggers off (capture must not see them)")
    measured_at = now_iso()
    with green:
        green.execute(RESULTS_DDL)
        present = {row[1] for row in green.execute(f"PRAGMA main.table_info({RESULTS_TABLE})")}
        plan = [c for c in PLAN_COLUMNS if c in present]
        columns = ["generation", "source", "name", "blue_ms", "green_ms", "ratio", "blue_plan", "green_plan"]
        columns += ["verdict", "reason", "measured_at", *plan]
        green.executemany(
            f"INSERT INTO {RESULTS_TABLE}({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            [
                (
                    generation,
                    m.source,
                    m.name,
                    m.blue_ms,
                    m.green_ms,
                    m.ratio,
                    m.blue_plan,
                    m.green_plan,
                    m.verdict,
                    m.reason,
                    measured_at,
                    *(
                        {
                            "test_name": m.name,
                            "query_sql": m.query_sql,
                            "execution_time_ms": m.green_ms,
                            "records_returned": m.records_returned,
                            "test_timestamp": measured_at,
                        }[c]
                        for c in plan
                    ),
                )
                for m in results
            ],
        )


def as_dicts(results: list[Measurement]) -> list[dict]:
    return [asdict(m) for m in results]


# -- one query ------------------------------------------------------------------------------------
def _measure(
    blue: apsw.Connection, green: apsw.Connection, query: NamedQuery, settings: PerformanceConfig
) -> Measurement:
    returned: list[int] = []  # rows of green's last timed run

    def result(verdict: str, reason: str, blue_ms=None, green_ms=None, ratio=None, blue_plan="", green_plan=""):
        records = returned[-1] if returned and green_ms is not None else None
        return Measurement(
            query.source,
            query.name,
            blue_ms,
            green_ms,
            ratio,
            blue_plan,
            green_plan,
            verdict,
            reason,
            query.sql,
            records,
        )

    blue_sql = query.blue_sql or query.sql
    problem = namedsql.statement_problem(green, query.sql)
    if problem:
        return result(ERROR, f"fails on green: {problem}")
    green_plan = _plan(green, query.sql)
    try:
        blue_plan = _plan(blue, blue_sql)
    except apsw.Error as exc:
        blue_plan, baseline_error = [], f"{type(exc).__name__}: {exc}"
    else:
        baseline_error = namedsql.statement_problem(blue, blue_sql)
    try:
        blue_times, green_times = _time(
            None if baseline_error else (blue, blue_sql), (green, query.sql), settings.runs, returned
        )
    except _RunError as failed:
        if failed.side == "green":
            return result(ERROR, f"fails on green: {failed.error}", green_plan=_render(green_plan))
        baseline_error = failed.error  # fails on blue while it runs: no baseline, time green alone
        blue_times, green_times = _time(None, (green, query.sql), settings.runs, returned)
    green_ms = statistics.median(green_times)
    plan_text = _render(green_plan)
    if baseline_error:
        return result(
            PASS,
            f"green {green_ms:.2f} ms; no baseline: does not run on blue ({baseline_error})",
            green_ms=green_ms,
            green_plan=plan_text,
        )
    blue_ms = statistics.median(blue_times)
    ratio = green_ms / blue_ms if blue_ms > 0 else None
    times = f"blue {blue_ms:.2f} ms, green {green_ms:.2f} ms" + (f" ({ratio:.1f}x)" if ratio is not None else "")
    shown = dict(blue_ms=blue_ms, green_ms=green_ms, ratio=ratio, blue_plan=_render(blue_plan), green_plan=plan_text)
    green_scans, blue_scans = _full_scans(green_plan), _full_scans(blue_plan)
    if len(green_scans) > len(blue_scans):
        return result(
            FULL_SCAN,
            f"turned into a full scan: green plan {_brief(green_plan)} reads "
            f"{', '.join(green_scans)} in full, blue plan {_brief(blue_plan)}; {times}",
            **shown,
        )
    if green_ms > settings.max_ratio * max(blue_ms, settings.min_ms):
        return result(
            SLOWER,
            f"slower: {times}, over {settings.max_ratio:g}x; green plan {_brief(green_plan)}, "
            f"blue plan {_brief(blue_plan)}",
            **shown,
        )
    return result(PASS, times, **shown)


class _RunError(Exception):
    def __init__(self, side: str, exc: apsw.Error):
        super().__init__(side)
        self.side, self.error = side, f"{type(exc).__name__}: {exc}"


def _time(
    blue: tuple | None, green: tuple, runs: int, returned: list[int] | None = None
) -> tuple[list[float], list[float]]:
    """One warm-up run each, then `runs` timed runs, alternating files; the row count of each of
    green's runs is appended to `returned`."""
    sides = [("green", *green)] + ([("blue", *blue)] if blue else [])
    timings: list[list[float]] = [[] for _ in sides]
    for run_number in range(runs + 1):
        for index, (side, conn, sql) in enumerate(sides):
            count = 0
            started = time.perf_counter()
            try:
                for _ in conn.execute(sql):
                    count += 1
            except apsw.Error as exc:  # compiled, yet failed while running (e.g. malformed JSON)
                raise _RunError(side, exc) from None
            if run_number:
                timings[index].append((time.perf_counter() - started) * 1000)
            if side == "green" and returned is not None:
                returned.append(count)
    return (timings[1] if blue else []), timings[0]


def _plan(conn: apsw.Connection, sql: str) -> list[tuple[int, int, str]]:
    """EXPLAIN QUERY PLAN rows: (id, parent, detail)."""
    return [(i, parent, detail) for i, parent, _, detail in conn.execute("EXPLAIN QUERY PLAN " + sql)]


_SCAN = re.compile(r"^SCAN (\S+)")
_AUTOMATIC = re.compile(r"^SEARCH (\S+) USING AUTOMATIC")
_DERIVED = re.compile(r"^(?:MATERIALIZE|CO-ROUTINE) (\S+)")


def _full_scans(plan: list[tuple[int, int, str]]) -> list[str]:
    """Tables (or their aliases) the plan reads in full; CTEs and subqueries are results, not tables."""
    derived = {m.group(1) for _, _, d in plan if (m := _DERIVED.match(d))}
    scanned = []
    for _, _, detail in plan:
        match = _SCAN.match(detail) or _AUTOMATIC.match(detail)
        if (
            match
            and match.group(1) not in derived
            and match.group(1) != "CONSTANT"
            and not match.group(1).startswith("(")
        ):
            scanned.append(match.group(1))
    return scanned


def _render(plan: list[tuple[int, int, str]]) -> str:
    """The plan as the sqlite3 shell shows it: one line per step, indented under its parent."""
    depth: dict[int, int] = {0: -1}
    lines = []
    for node, parent, detail in plan:
        depth[node] = depth.get(parent, -1) + 1
        lines.append("  " * depth[node] + detail)
    return "\n".join(lines)


def _brief(plan: list[tuple[int, int, str]]) -> str:
    return "[" + "; ".join(detail for _, _, detail in plan) + "]" if plan else "[none]"
