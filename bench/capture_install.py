"""Benchmark: how long writers wait while prepare installs capture on blue (hazard 18).

    python bench/capture_install.py               # 3 runs per figure, writes bench/results-capture-install.md
    python bench/capture_install.py --runs 1 --tables 10 100

For each table count (a UNIQUE column each, so 5 capture triggers and a BLOB-guard index per
table), blue in WAL with a writer process inserting into it (random gaps, 20 ms on average), and
capture installed on blue twice in the same run, each on a fresh copy of the project:

- statements: how it was done before, one transaction under blue's lock holding a CREATE TRIGGER
  per trigger and a CREATE INDEX per guard index, each rescanning sqlite_schema (O(tables²));
- schema edit: what prepare does now (lifecycle/guard.py: install_capture_on_blue): the guard indexes in
  slices of about 10 ms under the lock, each followed by as long without it, then the triggers,
  worked out before the lock, as one sqlite_schema edit.

Figures: the writer's longest wait (first try -> commit) during the install, as a ratio to its
ordinary write latency measured before the install in the same run; the install's total time;
the longest single transaction under blue's lock (statements: the whole install).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from pause import make_project, start_writer

from bluegreen.config import load as load_config
from bluegreen.engine import (
    barrier,
    capture,
)
from bluegreen.lifecycle import guard
from bluegreen.lifecycle.controller import Controller


def legacy_install(blue: Path, wait_ms: int) -> list[float]:
    """Capture as it was installed before: every statement in one transaction under the lock."""
    started = time.perf_counter()
    with barrier.holding(blue, wait_ms) as conn:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {capture.CAPTURE_TABLE}("
            "seq INTEGER PRIMARY KEY, tbl TEXT NOT NULL, key NOT NULL, op TEXT NOT NULL)"
        )
        capture.set_meta(conn, capture_epoch="bench")
        for sql in capture.capture_sql(conn):
            conn.execute(sql.replace("CREATE TRIGGER", "CREATE TRIGGER IF NOT EXISTS", 1))
        capture.install_blob_guard(conn, capture.capturable(conn))
    return [(time.perf_counter() - started) * 1000]


def timed_holding(locks: list[float]):
    """barrier.holding, timing each transaction from BEGIN IMMEDIATE to COMMIT."""
    original = barrier.holding

    def holding(path, wait_ms):
        context = original(path, wait_ms)

        class Timed:
            def __enter__(self):
                self.started = time.perf_counter()
                return context.__enter__()

            def __exit__(self, *exc):
                try:
                    return context.__exit__(*exc)
                finally:
                    locks.append((time.perf_counter() - self.started) * 1000)

        return Timed()

    return original, holding


def current_install(controller: Controller, blue: Path) -> list[float]:
    """The triggers' transaction timed here; the guard's slices as the controller logged them."""
    locks: list[float] = []
    original, holding = timed_holding(locks)
    barrier.holding = holding
    try:
        guard.install_capture_on_blue(controller.config, controller.store, blue)
    finally:
        barrier.holding = original
    events = [json.loads(line) for line in (blue.parent / ".bluegreen" / "events.jsonl").read_text().splitlines()]
    slices = [e for e in events if e["event"] == "blob_guard"]
    return locks + [slices[-1]["longest_lock_ms"]] * slices[-1]["transactions"] if slices else locks


def one_install(work: Path, tables: int, method: str) -> dict:
    folder = Path(tempfile.mkdtemp(dir=work))
    config = load_config(make_project(folder, tables, 100))
    controller = Controller(config)
    controller.init()
    blue = folder / "data" / "app.db"
    log, stop = folder / "writer.log", folder / "writer.stop"
    writer = start_writer(folder, log, stop)
    try:
        time.sleep(1.0)  # the ordinary latency baseline
        started = time.time()
        clock = time.perf_counter()
        locks = legacy_install(blue, 60_000) if method == "statements" else current_install(controller, blue)
        total_ms = (time.perf_counter() - clock) * 1000
        ended = time.time()
        time.sleep(0.3)
    finally:
        writer.stop(timeout=120)
    writes = writer.records()
    ordinary = statistics.median(w["wait_ms"] for w in writes if w["at"] < started)
    during = [w["wait_ms"] for w in writes if w["at"] >= started and w["at"] - w["wait_ms"] / 1000 <= ended]
    shutil.rmtree(folder)
    return {
        "wait_ms": max(during or [0.0]),
        "ordinary_ms": ordinary,
        "total_ms": total_ms,
        "longest_lock_ms": max(locks),
        "transactions": len(locks),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tables", type=int, nargs="*", default=[10, 100, 1000])
    parser.add_argument("--out", type=Path, default=HERE / "results-capture-install.md")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bluegreen-capture-"))
    lines = [
        f"# Writers' wait during prepare's capture install vs table count ({args.runs} run(s) each, median)",
        "",
        "| tables | installed by | writer's longest wait (ms) | / one write | longest lock held (ms) | "
        "transactions | install total (ms) | one write (ms) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    try:
        for tables in args.tables:
            for method in ("statements", "schema edit"):
                runs = [one_install(work, tables, method) for _ in range(args.runs)]
                med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                line = (
                    f"| {tables} | {method} | {med['wait_ms']:.1f} | {med['wait_ms'] / med['ordinary_ms']:.0f}x "
                    f"| {med['longest_lock_ms']:.1f} | {med['transactions']:.0f} | {med['total_ms']:.1f} "
                    f"| {med['ordinary_ms']:.2f} |"
                )
                print(line, flush=True)
                lines.append(line)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines += [
        "",
        "writer's longest wait: a write started during the install, first try -> commit (it also "
        "re-reads blue's schema after every committed change). longest lock held: BEGIN IMMEDIATE -> "
        "COMMIT of the longest transaction the install ran under blue's lock.",
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
