"""After the swap (issue 16): the clients sample every statement per query shape and generation
into a bounded log beside the generations (never into a database); `bluegreen watch` compares the
active generation with the previous one and gives no verdict from too few samples; thresholds
come from [watch] and [environments.NAME.watch]; bad input is refused with nothing changed.

Real files, real client connections (apsw, sqlite3, the pool creator), real CLI runs. The
statistics tests write spans of known latencies into the log with its own writer, so the verdict
they expect does not depend on this machine's speed."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from conftest import disk_state, write_config
from helpers import assert_refused, events, pointer_of, refused, until

from bluegreen import client
from bluegreen.client import sampling
from bluegreen.files import samples

POINT = "SELECT name FROM items WHERE id = ?"


def spans_of(project) -> dict[int, dict[str, samples.ShapeStats]]:
    """Every sampled statement so far, per generation and shape (all processes, all spans)."""
    sampling.flush_all()
    found: dict[int, dict[str, samples.ShapeStats]] = {}
    for span in samples.read_spans(project.pointer):
        for generation, shapes in span.shapes.items():
            for shape, stats in shapes.items():
                found.setdefault(generation, {}).setdefault(shape, samples.ShapeStats()).add(stats)
    return found


def write_span(project, generation: int, shape: str, ms: float, count: int, errors: int = 0, t: float | None = None):
    """count statements of `ms` each (and `errors` failed ones) into a log of this test's own."""
    ns = int(ms * 1e6)
    stats = samples.ShapeStats(count + errors, errors, ns * count, ns, 0, 0, {samples.bucket(ns): count})
    stats.slow = count if ns >= samples.SLOW_NS else 0
    stats.very_slow = count if ns >= samples.VERY_SLOW_NS else 0
    now = t or time.time()
    span = samples.Span(now - 1, now, {generation: f"app.gen{generation}.db"}, {generation: {shape: stats}})
    samples.Log(samples.samples_dir(project.pointer) / f"test-{generation}.jsonl").append(span)


# -- shapes ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "sql, shape",
    [
        ("SELECT * FROM t WHERE id = 42", "SELECT * FROM t WHERE id = ?"),
        ("select *  from t\n where name = 'O''Brien' -- who\n", "select * from t where name = ?"),
        ("SELECT * FROM t WHERE id IN (1, 2,3)", "SELECT * FROM t WHERE id IN (?)"),
        ("SELECT * FROM t WHERE id IN (?, ?, ?, ?)", "SELECT * FROM t WHERE id IN (?)"),
        ("INSERT INTO t VALUES (1, 'a'), (2, 'b');", "INSERT INTO t VALUES (?, ?)"),
        ("INSERT INTO t(a, b, c) VALUES (?, ?, ?)", "INSERT INTO t(a, b, c) VALUES (?, ?, ?)"),
        ("INSERT INTO t VALUES (?), (?), (?)", "INSERT INTO t VALUES (?)"),
        (
            "UPDATE t SET a = :a, b = @b, c = $c, d = ?7 WHERE x = -1.5e3",
            "UPDATE t SET a = ?, b = ?, c = ?, d = ? WHERE x = -?",
        ),
        (
            'SELECT "col 1", t2.x FROM "t 2" AS t2 WHERE y = X\'ff\'',
            'SELECT "col 1", t2.x FROM "t 2" AS t2 WHERE y = ?',
        ),
        ("SELECT a /* note 1 */ FROM t1 WHERE c2 = 3", "SELECT a FROM t1 WHERE c2 = ?"),
    ],
)
def test_query_shapes_fold_literals_and_parameters_but_not_names(sql, shape):
    assert sampling.shape_of(sql) == shape


# -- sampling in the clients ----------------------------------------------------------------------
def test_every_client_path_samples_per_shape_and_generation_and_counts_errors(toy_ready):
    project = toy_ready
    apsw_conn = client.connect(project.pointer)
    for i in range(1, 31):
        assert apsw_conn.execute(POINT, (i,)).fetchall()
        apsw_conn.execute(f"SELECT name FROM items WHERE id = {i}").fetchall()  # a literal: the same shape
    with pytest.raises(Exception, match="no such column"):
        apsw_conn.execute("SELECT nope FROM items WHERE id = 1")
    lite = client.connect_sqlite3(project.pointer, sqlite3_kwargs={"isolation_level": None})
    lite.execute("UPDATE items SET name = 'x' WHERE id = 3")
    lite.cursor().execute("UPDATE items SET name = 'y' WHERE id = 4")  # cursors too (DB-API users)
    pooled = client.creator(project.pointer)()
    pooled.cursor().execute("SELECT count(*) FROM items WHERE name LIKE 'item 1%'").fetchall()
    with pytest.raises(sqlite3.OperationalError):
        pooled.execute("SELECT * FROM missing_table")
    found = spans_of(project)
    assert list(found) == [1]
    gen1 = found[1]
    assert gen1[POINT].count == 60 and gen1[POINT].errors == 0 and gen1[POINT].timed == 60
    assert gen1["SELECT nope FROM items WHERE id = ?"].errors == 1
    assert gen1["UPDATE items SET name = ? WHERE id = ?"].count == 2
    assert gen1["SELECT count(*) FROM items WHERE name LIKE ?"].count == 1
    assert gen1["SELECT * FROM missing_table"].errors == 1
    assert all(p.startswith(str(project.data / ".bluegreen" / "samples")) for p in _logs(project))
    # never the application's database: it holds only what it held
    assert [r[0] for r in project.connect().execute("SELECT name FROM sqlite_schema")] == ["items"]
    for conn in (apsw_conn, lite, pooled):
        conn.close()


def _logs(project) -> list[str]:
    folder = samples.samples_dir(project.pointer)
    return [str(folder / n) for n in os.listdir(folder)]


def test_a_connection_that_follows_a_swap_samples_the_new_generation(toy_ready):
    project = toy_ready
    conn = client.connect(project.pointer)
    conn.execute(POINT, (1,)).fetchall()
    assert project.cli("deploy").code == 0
    conn.execute(POINT, (1,)).fetchall()  # follows the pointer, then runs on generation 2
    found = spans_of(project)
    assert found[1][POINT].count == 1 and found[2][POINT].count == 1
    conn.close()


def test_sampling_off_by_option_or_environment_writes_no_log(toy_ready):
    project = toy_ready
    conn = client.connect(project.pointer, sampling=False)
    conn.execute(POINT, (1,)).fetchall()
    assert spans_of(project) == {}
    code = (
        "import sys; from bluegreen import client\n"
        "c = client.connect(sys.argv[1]); c.execute('SELECT 1').fetchall(); c.close()\n"
    )
    env = {**os.environ, sampling.ENV_VAR: "0"}
    subprocess.run([sys.executable, "-c", code, str(project.pointer)], check=True, env=env)
    assert not samples.samples_dir(project.pointer).exists()
    subprocess.run([sys.executable, "-c", code, str(project.pointer)], check=True)  # on: its log is there at exit
    assert spans_of(project)[1]["SELECT ?"].count == 1
    conn.close()


def test_the_log_stays_under_its_bound_and_compaction_keeps_every_count(tmp_path):
    """A month of flushes with many shapes: the file never passes max_bytes; merging spans is exact."""
    log = samples.Log(tmp_path / "p.jsonl", max_bytes=20_000)
    sizes, expected = [], 0
    for i in range(600):
        shapes = {
            f"SELECT * FROM t{j} WHERE id = ?": samples.ShapeStats(3, 1, 6000, 3000, 0, 0, {40: 1, 45: 1})
            for j in range(i % 7 + 1)
        }
        expected += 3 * len(shapes)
        log.append(samples.Span(i, i + 1, {2: "app.gen2.db"}, {2: shapes}))
        sizes.append(os.stat(log.path).st_size)
    assert max(sizes) <= 20_000
    kept = [samples.Span.decode(line) for line in log.path.read_text().splitlines()]
    counted = sum(st.count for s in kept for st in s.shapes[2].values())
    hist = sum(sum(st.hist.values()) for s in kept for st in s.shapes[2].values())
    assert kept[-1].t1 == 600  # the newest is kept
    assert counted == 3 * hist / 2  # counts and histograms were merged together, exactly
    assert counted <= expected and kept[0].t0 >= 0


def test_flushes_while_a_thread_runs_statements_lose_and_double_nothing():
    """The hot path takes no lock: a flush copies what changed, and what a statement counted
    during the copy is in the next flush."""
    tally = sampling.Tally(2, "app.gen2.db", sampling.sampler_for("/nonexistent/current.toml"))
    done = threading.Event()

    timed = []

    def statements() -> None:
        for i in range(60_000):
            sql = f"SELECT * FROM t WHERE id = {i % 700}"
            if tally.start(sql):
                tally.add(sql, 1000 + i)
                timed.append(1000 + i)
        done.set()

    taken = samples.ShapeStats()
    worker = threading.Thread(target=statements)
    worker.start()
    while not done.is_set():
        for stats in tally.take().values():
            taken.add(stats)
    worker.join()
    for stats in tally.take().values():
        taken.add(stats)
    assert taken.count == 60_000 and taken.timed == len(timed) > 0
    assert taken.total_ns == sum(timed)
    assert tally.take() == {}


def test_cheap_statements_are_all_counted_and_timed_one_in_stride_after_a_spans_first_ones():
    tally = sampling.Tally(1, "app.db", sampling.sampler_for("/nonexistent/current.toml"))
    cheap, slow = "SELECT a FROM t WHERE id = ?", "SELECT b FROM t WHERE id = ?"
    n = sampling.TIMED_PER_SPAN + 40 * sampling.STRIDE
    timed = sum(1 for _ in range(n) if tally.start(cheap) and tally.add(cheap, 2_000) is None)
    assert timed == sampling.TIMED_PER_SPAN + 40
    for _ in range(n):  # a statement at or over CHEAP_NS: the next one is timed too
        if tally.start(slow):
            tally.add(slow, sampling.CHEAP_NS)
    taken = tally.take()
    assert taken[cheap].count == n and taken[cheap].timed == timed and taken[cheap].total_ns == 2_000 * timed
    assert taken[slow].count == n and taken[slow].timed == n
    # a cheap text that turns slow is timed in full from its first slow sample on
    untimed = 0
    for _ in range(sampling.TIMED_PER_SPAN + 2 * sampling.STRIDE):
        started = tally.start(cheap)
        untimed += not started
        if started:
            tally.add(cheap, 2_000)
    assert untimed > 0  # the new span's first ones were timed, then 1 in STRIDE
    while not tally.start(cheap):
        pass
    tally.add(cheap, 200_000_000)  # the index it used is gone: 200 ms
    for _ in range(50):
        started = tally.start(cheap)
        assert started
        tally.add(cheap, 200_000_000)
    assert tally.take()[cheap].slow == 51


def test_histograms_merge_exactly_and_percentiles_stay_within_a_bucket():
    values = [5_000 + 37 * i for i in range(1000)]  # 5.0 .. 42 µs
    one, halves = samples.ShapeStats(), [samples.ShapeStats(), samples.ShapeStats()]
    for i, ns in enumerate(values):
        for stats in (one, halves[i % 2]):
            stats.count += 1
            stats.max_ns = max(stats.max_ns, ns)
            stats.hist[samples.bucket(ns)] = stats.hist.get(samples.bucket(ns), 0) + 1
    merged = samples.ShapeStats()
    for half in halves:
        merged.add(half)
    assert merged.hist == one.hist and merged.count == one.count
    exact = sorted(values)[int(0.95 * len(values)) - 1] / 1e6
    assert abs(merged.percentile(95) - exact) / exact < 0.13


# -- bluegreen watch ------------------------------------------------------------------------------
def test_watch_gives_no_verdict_from_too_few_samples_and_says_how_many(toy_ready):
    project = toy_ready
    write_span(project, 1, POINT, 0.05, 40)
    alone = project.cli("watch")
    assert alone.code == 0 and "no previous generation sampled" in alone.out, alone.err
    assert "not run on the previous generation" in alone.out
    write_span(project, 2, POINT, 30.0, 10)  # much slower, but 10 samples prove nothing
    result = project.cli("watch")
    assert result.code == 0, result.err
    assert "no verdict: too few samples" in result.out
    assert "too few samples: 40 new, 10 old (min_samples 100)" in result.out  # each side's count said
    found = project.cli("watch", "--json").json
    assert found["verdict"] == "no verdict" and found["previous"]["generation"] == 2
    row = found["post_migration_performance"][0]
    assert row["verdict"] == "no verdict" and row["new"]["queries"] == 40 and row["old"]["queries"] == 10
    assert found["error_rate"]["verdict"] == "no verdict" and "min_statements 200" in found["error_rate"]["why"]
    line = refused(project, "watch", "--previous", "1", code=2)
    assert "--previous 1 is the active generation" in line


def test_watch_names_the_regressed_shape_and_by_how_much(toy_ready):
    project = toy_ready
    assert project.cli("deploy").code == 0  # generation 2 is active, generation 1 the previous one
    fine = "SELECT * FROM items ORDER BY id LIMIT ?"
    write_span(project, 1, POINT, 0.05, 400, t=time.time() - 10)
    write_span(project, 1, fine, 2.0, 300, t=time.time() - 10)
    write_span(project, 2, POINT, 12.0, 380, errors=1)
    write_span(project, 2, fine, 2.1, 290)
    result = project.cli("watch")
    assert_refused(result, 7, "regressed", POINT, "consider `bluegreen revert`")
    assert "post_migration_performance (generation 2 against 1" in result.out
    # 12 ms (its bucket's middle: 11.5) against the 1 ms floor, the old p95 being 0.05 ms; limit x2
    assert (
        "11.5x slower at p95 (p95 11.534 ms against 0.050 ms, 380 and 400 samples) (the old p95 taken as 1 ms)"
        in result.out
    )
    document = project.cli("watch", "--json").json
    assert document["verdict"] == "regressed" and document["ok"] is False and document["exit_code"] == 7
    shapes = {s["shape"]: s for s in document["post_migration_performance"]}
    assert shapes[POINT]["verdict"] == "regressed" and shapes[POINT]["new"]["queries"] == 381
    assert shapes[fine]["verdict"] == "healthy" and shapes[fine]["p95_ratio"] == pytest.approx(1.0, abs=0.2)
    assert document["error_rate"]["verdict"] == "healthy"  # 1 error in 671: under one point more
    assert document["previous"]["generation"] == 1 and document["previous"]["queries"] == 700


def test_watch_flags_a_rising_error_rate(toy_ready):
    project = toy_ready
    assert project.cli("deploy").code == 0
    write_span(project, 1, POINT, 0.05, 500, t=time.time() - 10)
    write_span(project, 2, POINT, 0.05, 450, errors=50)
    document = project.cli("watch", "--json").json
    assert document["verdict"] == "regressed"
    assert document["error_rate"]["verdict"] == "regressed" and "10.00% (50 of 500)" in document["error_rate"]["why"]


def test_watch_thresholds_per_environment_over_the_watch_section(toy_ready):
    project = toy_ready
    write_config(
        project.root,
        "[watch]\nmin_samples = 5\n[environments.dev]\n[environments.canary.watch]\nmax_p95_ratio = 50.0\n",
    )
    assert project.cli("--env", "dev", "deploy").code == 0
    write_span(project, 1, POINT, 0.05, 20, t=time.time() - 10)
    write_span(project, 2, POINT, 12.0, 20)
    assert project.cli("--env", "dev", "watch").code == 7  # [watch]: 5 samples are enough, x2
    calm = project.cli("--env", "canary", "watch", "--json").json  # canary: min_samples 5 from [watch], x50
    assert calm["verdict"] == "healthy" and calm["thresholds"]["min_samples"] == 5
    assert calm["thresholds"]["max_p95_ratio"] == 50.0


@pytest.mark.parametrize(
    "extra, words",
    [
        ("[watch]\nmax_p95_ratio = 1.0\n", ["watch.max_p95_ratio", "> 1"]),
        ("[watch]\nmin_samples = 0\n", ["watch.min_samples", "positive integer"]),
        ("[watch]\nmax_error_rate = nan\n", ["watch.max_error_rate"]),
        ("[watch]\nsoon = 1\n", ["unknown key watch.soon"]),
        ("[environments.canary.watch]\nmin_p95_ms = -1\n", ["environments.canary.watch.min_p95_ms"]),
        ("[environments.canary]\nwatch = 3\n", ["environments.canary.watch must be a table"]),
    ],
)
def test_bad_watch_settings_are_refused_naming_the_key(toy_ready, extra, words):
    write_config(toy_ready.root, extra)
    refused(toy_ready, "watch", code=2)
    assert_refused(toy_ready.cli("watch"), 2, *words)


@pytest.mark.parametrize(
    "args, words",
    [
        (["deploy", "--auto-revert"], ["--auto-revert goes with --watch"]),
        (["cutover", "--watch", "soon"], ["expected a duration such as 90s"]),
        (["deploy", "--watch", "0s"], ["above 0"]),
        (["watch", "--window", "2d"], ["expected a duration"]),
    ],
)
def test_watch_options_are_checked_before_anything_runs(toy_ready, args, words):
    before = disk_state(toy_ready.data)
    result = toy_ready.cli(*args)
    assert result.code == 2
    assert all(w in result.err for w in words), result.err
    assert disk_state(toy_ready.data) == before


def test_watch_against_a_generation_never_sampled_is_refused(toy_ready):
    write_span(toy_ready, 1, POINT, 0.05, 5)
    line = refused(toy_ready, "watch", "--previous", "9", code=2)
    assert "no samples of generation 9" in line and "sampled: 1" in line


def test_cutover_watch_on_a_healthy_release_stays_and_runs_post_watch(toy_ready, tmp_path):
    """In-process traffic on both generations; the watch ends after its duration, nothing reverted."""
    project = toy_ready
    heard = tmp_path / "post-watch.txt"
    write_config(project.root, f'[hooks]\npost-watch = "echo $BLUEGREEN_WATCH $BLUEGREEN_EXIT_CODE > {heard}"\n')
    assert project.cli("prepare").code == 0
    write_span(project, 1, POINT, 0.05, 300, t=time.time() - 5)
    write_span(project, 2, POINT, 0.05, 300)  # as fast on green (routed reads, say)
    result = project.cli("cutover", "--watch", "1s", "--auto-revert", "--json")
    assert result.code == 0, result.err
    document = result.json
    assert document["reverted"] is False and document["watch"]["verdict"] == "healthy"
    assert pointer_of(project)["generation"] == 2
    assert heard.read_text().split() == ["healthy", "0"]


def test_cutover_watch_without_auto_revert_reports_recommends_and_stands(toy_ready):
    project = toy_ready
    assert project.cli("prepare").code == 0
    write_span(project, 1, POINT, 0.05, 300, t=time.time() - 5)
    write_span(project, 2, POINT, 25.0, 300)  # green already served reads (routed), 25 ms each
    result = project.cli("cutover", "--watch", "30s", "--json")
    line = assert_refused(result, 7, "generation 2 regressed", POINT, "it stands", "bluegreen revert")
    document = result.json
    assert document["reverted"] is False and document["watch"]["verdict"] == "regressed"
    assert document["watch"]["watched_s"] < 30 and "--auto-revert" in line
    assert pointer_of(project)["generation"] == 2
    assert events(project, "watch")[-1]["regressions"] == document["watch"]["regressions"]


def test_a_failing_post_watch_hook_exits_6_when_the_watch_went_well(toy_ready):
    project = toy_ready
    write_config(project.root, '[hooks]\npost-watch = "echo no pager; exit 3"\n')
    assert project.cli("prepare").code == 0
    write_span(project, 1, POINT, 0.05, 300, t=time.time() - 5)
    write_span(project, 2, POINT, 0.05, 300)
    assert_refused(project.cli("cutover", "--watch", "1s"), 6, "post-watch hook failed", "no pager", "stands")
    assert pointer_of(project)["generation"] == 2


def test_a_revert_by_hand_during_the_watch_ends_it(toy_ready, tmp_path):
    """The watch holds no lock: on call can revert at once, and the watch sees the pointer move."""
    project = toy_ready
    assert project.cli("prepare").code == 0
    watching = subprocess.Popen(
        [sys.executable, "-m", "bluegreen", "--config", str(project.config), "cutover", "--watch", "5m", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    until(lambda: events(project, "watch_started"), "the watch to start", timeout=60, interval=0.05)
    assert project.cli("revert").code == 0
    out, err = watching.communicate(timeout=60)
    assert watching.returncode == 0, err
    document = json.loads(out)
    assert "the pointer moved during the watch" in document["message"] and document["reverted"] is False
    assert pointer_of(project)["generation"] == 1
