"""Replay rate by table shape and size (hazard 19): WITHOUT ROWID against rowid, 10k against 1M
rows, and 10 against 1,000 tables in the file, each with the same changes replayed; and the time
of a 10-row replay (what the final replay under blue's lock does) at both sizes.

    python bench/replay_keyed.py --quick     # a minute: 10k / 100k rows
    python bench/replay_keyed.py             # 10k / 1M rows, 10 / 1,000 tables
    python bench/replay_keyed.py --before deb0377   # also the replay.py of that commit, for reference

bench/run.py calls `measure` and puts `table_rows` into bench/results.md. Each figure is the
median of several runs (min, max); the sizes alternate run by run, so a busy machine moves both.
Goal: the rate does not depend on how many tables the file has (ratio ~1), and a WITHOUT ROWID
table's rate depends on its size no more than a rowid table's does (random writes to a bigger file
touch more distinct pages whatever the shape: that part is I/O, not lookups).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from bluegreen.engine import capture
from bluegreen.engine.db import open_db
from bluegreen.engine.replay import Replayer


@dataclass(frozen=True)
class Sizes:
    small_rows: int
    big_rows: int
    changes: int  # the same number of changed rows at every size
    few_tables: int
    many_tables: int
    table_changes: int  # changed rows in the many-tables case, all in one table
    batch: int  # batch size of the many-tables case: many batches, so per-batch work shows
    runs: int


QUICK = Sizes(
    small_rows=10_000,
    big_rows=100_000,
    changes=2_000,
    few_tables=10,
    many_tables=300,
    table_changes=1_000,
    batch=50,
    runs=2,
)
FULL = Sizes(
    small_rows=10_000,
    big_rows=1_000_000,
    changes=10_000,
    few_tables=10,
    many_tables=1_000,
    table_changes=2_000,
    batch=50,
    runs=3,
)

SHAPES = {
    # Composite key of mixed types, a NOCASE text column first: the shape hazard 19 is about.
    "without_rowid": "CREATE TABLE {name}(region TEXT COLLATE NOCASE, id INTEGER, tag BLOB, weight REAL, "
    "note TEXT, PRIMARY KEY(region, id, tag, weight)) WITHOUT ROWID",
    "rowid": "CREATE TABLE {name}(id INTEGER PRIMARY KEY, region TEXT, tag BLOB, weight REAL, note TEXT)",
}
FILL = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
    "INSERT INTO {name}(region, id, tag, weight, note) "
    "SELECT 'Region-' || (i % 7), i, unhex(printf('%016x', i * 2654435761)), i * 0.5, 'row ' || i FROM n"
)
FINAL_CHANGES = 10
WHERE_KEY = "region = ? AND id = ? AND tag = ? AND weight = ?"


def key_of(i: int) -> tuple:
    """Row i's full key as FILL made it, so the application's writes find it by primary key."""
    return (f"Region-{i % 7}", i, bytes.fromhex(f"{i * 2654435761:016x}"), i * 0.5)


# -- files -----------------------------------------------------------------------------------------
def make_pair(folder: Path, shape: str, rows: int, tables: int = 1) -> tuple[Path, Path]:
    """blue with capture installed and `tables` tables (t0 has `rows` rows, the others 100), and
    green a copy of it, positioned where blue's capture stands: nothing to replay yet."""
    folder.mkdir(parents=True)
    blue, green = folder / "blue.db", folder / "green.db"
    conn = open_db(blue, create=True)
    conn.execute("PRAGMA journal_mode = WAL").get
    with conn:
        for number in range(tables):
            name = f"t{number}"
            conn.execute(SHAPES[shape].format(name=name))
            conn.execute(FILL.format(name=name), (rows if number == 0 else 100,))
    conn.execute("BEGIN IMMEDIATE")
    capture.install_capture(conn)
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").get
    conn.close()
    shutil.copyfile(blue, green)
    g = open_db(green)
    position = capture.capture_position(g)
    g.execute("BEGIN IMMEDIATE")
    capture.remove_capture(g)
    capture.set_meta(g, source_epoch=position.epoch, source_seq=position.seq)
    g.execute("COMMIT")
    g.close()
    return blue, green


def write_changes(blue: Path, rows: int, changes: int, table: str = "t0", seed: int = 0) -> None:
    """The application's writes on blue, captured: 80% updates, 10% deletes, 10% inserts of new
    keys, at random places across the whole table (one transaction; setup, not measured)."""
    rng = random.Random(seed)
    ids = rng.sample(range(1, rows + 1), changes)
    conn = open_db(blue)  # triggers on
    with conn:
        for n, i in enumerate(ids):
            kind = n % 10
            if kind == 8:
                conn.execute(f"DELETE FROM {table} WHERE {WHERE_KEY}", key_of(i))
            elif kind == 9:
                conn.execute(
                    f"INSERT INTO {table}(region, id, tag, weight, note) VALUES ('new', ?, randomblob(8), "
                    "-1.25, 'inserted')",
                    (rows + i,),
                )
            else:
                conn.execute(f"UPDATE {table} SET note = note || '!' WHERE {WHERE_KEY}", key_of(i))
    conn.close()


def replay_rate(replayer_class, blue: Path, green: Path, changes: int, batch: int) -> float:
    """Changed rows per second of one catch-up over everything blue captured."""
    replayer = replayer_class(blue, green, [])
    try:
        started = time.perf_counter()
        replayer.catch_up(limit=batch)
        seconds = time.perf_counter() - started
        if replayer.backlog():
            raise SystemExit("replay did not finish")
    finally:
        replayer.close()
    return changes / seconds


# -- figures ---------------------------------------------------------------------------------------
def size_case(work: Path, replayer_class, shape: str, rows: int, changes: int, run: int) -> float:
    folder = work / f"{shape}-{rows}-{run}"
    blue, green = make_pair(folder, shape, rows)
    write_changes(blue, rows, changes, seed=run)
    rate = replay_rate(replayer_class, blue, green, changes, 20_000)
    shutil.rmtree(folder)
    return rate


def final_case(work: Path, replayer_class, shape: str, rows: int, run: int) -> float:
    """Milliseconds to replay 10 changed rows: what the final replay under blue's lock does."""
    folder = work / f"final-{shape}-{rows}-{run}"
    blue, green = make_pair(folder, shape, rows)
    write_changes(blue, rows, FINAL_CHANGES, seed=run)
    milliseconds = FINAL_CHANGES / replay_rate(replayer_class, blue, green, FINAL_CHANGES, 20_000) * 1000
    shutil.rmtree(folder)
    return milliseconds


def tables_case(work: Path, replayer_class, tables: int, sizes: Sizes, run: int) -> float:
    folder = work / f"tables-{tables}-{run}"
    blue, green = make_pair(folder, "without_rowid", 10_000, tables)
    write_changes(blue, 10_000, sizes.table_changes, seed=run)
    rate = replay_rate(replayer_class, blue, green, sizes.table_changes, sizes.batch)
    shutil.rmtree(folder)
    return rate


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def measure(work: Path, sizes: Sizes, replayer_class=Replayer) -> dict:
    """Every figure of this benchmark with one replay implementation; runs interleave the cases."""
    rates: dict[str, list[float]] = {}
    for run in range(sizes.runs):
        for shape in ("without_rowid", "rowid"):
            for rows in (sizes.small_rows, sizes.big_rows):
                rates.setdefault(f"{shape}/{rows}", []).append(
                    size_case(work, replayer_class, shape, rows, sizes.changes, run)
                )
            for rows in (sizes.small_rows, sizes.big_rows):
                rates.setdefault(f"final/{shape}/{rows}", []).append(final_case(work, replayer_class, shape, rows, run))
        for tables in (sizes.few_tables, sizes.many_tables):
            rates.setdefault(f"tables/{tables}", []).append(tables_case(work, replayer_class, tables, sizes, run))
    return {key: summary(values) for key, values in rates.items()}


def fmt(stat: dict) -> str:
    return f"{stat['median']:,.0f} rows/s (min {stat['min']:,.0f}, max {stat['max']:,.0f})"


def fmt_ms(stat: dict) -> str:
    return f"{stat['median']:,.1f} ms (min {stat['min']:,.1f}, max {stat['max']:,.1f})"


def table_rows(r: dict, sizes: Sizes, label: str = "") -> list[str]:
    """Rows for bench/results.md: | figure | bluegreen | baseline | ratio | goal | met |."""
    lines = []
    small, big = sizes.small_rows, sizes.big_rows
    scaling = {shape: r[f"{shape}/{big}"]["median"] / r[f"{shape}/{small}"]["median"] for shape in SHAPES}
    # Random writes to a bigger table touch more distinct pages for any shape (cache misses, WAL
    # frames); the rowid table's keyed replay is the in-run baseline for how much that costs.
    relative = scaling["without_rowid"] / scaling["rowid"]
    for shape, name in (
        ("without_rowid", "WITHOUT ROWID (composite NOCASE TEXT/INTEGER/BLOB/REAL key)"),
        ("rowid", "rowid"),
    ):
        lo, hi = r[f"{shape}/{small}"], r[f"{shape}/{big}"]
        lines.append(
            f"| {label}replay rate, {name} table, {sizes.changes:,} changed rows at {big:,} rows "
            f"(n={hi['n']}) | {fmt(hi)} | the same at {small:,} rows {fmt(lo)} | {scaling[shape]:.2f} × | "
            + (
                "scales as the rowid table does (≥ 0.8 × its ratio) | "
                f"{'yes' if relative >= 0.8 else '**no**'} ({relative:.2f} ×) |"
                if shape == "without_rowid"
                else "in-run baseline | — |"
            )
        )
    wr, rw = r[f"without_rowid/{big}"], r[f"rowid/{big}"]
    lines.append(
        f"| {label}(same runs) WITHOUT ROWID against rowid at {big:,} rows | {fmt(wr)} | rowid {fmt(rw)} "
        f"| {wr['median'] / rw['median']:.2f} × | — | — |"
    )
    for shape in SHAPES:
        lo, hi = r[f"final/{shape}/{small}"], r[f"final/{shape}/{big}"]
        lines.append(
            f"| {label}final replay of {FINAL_CHANGES} changed rows (what runs under blue's lock), {shape} "
            f"table of {big:,} rows (n={hi['n']}) | {fmt_ms(hi)} | the same at {small:,} rows {fmt_ms(lo)} "
            f"| {hi['median'] / lo['median']:.2f} × | independent of table size (≤ 1.5 ×) "
            f"| {'yes' if hi['median'] / lo['median'] <= 1.5 else '**no**'} |"
        )
    few, many = r[f"tables/{sizes.few_tables}"], r[f"tables/{sizes.many_tables}"]
    ratio = many["median"] / few["median"]
    lines.append(
        f"| {label}replay rate with {sizes.many_tables:,} tables in the file, {sizes.table_changes:,} changed "
        f"rows in one, batches of {sizes.batch} (n={many['n']}) | {fmt(many)} | the same with "
        f"{sizes.few_tables} tables {fmt(few)} | {ratio:.2f} × | independent of the table count (≥ 0.7 ×) "
        f"| {'yes' if ratio >= 0.7 else '**no**'} |"
    )
    return lines


def replayer_at(commit: str, work: Path):
    """The Replayer class of bluegreen/replay.py at `commit`, for a before/after figure."""
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{commit}:bluegreen/replay.py"], check=True, capture_output=True, text=True
    ).stdout
    path = work / f"replay_{commit}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"replay_{commit}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.Replayer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--before", help="also measure replay.py of this commit (reference only)")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    (HERE / "results").mkdir(exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bluegreen-replay-", dir=HERE / "results") as tmp:
        work = Path(tmp)
        results = {"now": measure(work, sizes)}
        lines = table_rows(results["now"], sizes)
        if args.before:
            results[args.before] = measure(work, sizes, replayer_at(args.before, work))
            lines += table_rows(results[args.before], sizes, label=f"(replay.py of {args.before}) ")
    raw = HERE / "results" / f"replay-keyed-{'quick' if args.quick else 'full'}.json"
    raw.write_text(json.dumps(results, indent=1))
    print(
        f"{'quick' if args.quick else 'full'} mode, {(time.perf_counter() - started) / 60:.1f} min; "
        f"`python bench/replay_keyed.py{' --quick' if args.quick else ''}`"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
