"""Benchmark: revert's write pause (green's barrier -> blue's unfence committed) vs table count.

    python bench/revert_pause.py --runs 1 --tables 10 100 1000

Deploy (budget 2,000 ms so cutover fits at any size here), 200 rows written on green, then revert
with the 100 ms budget: the pause revert measured, its prediction, the fixed costs it measured on
blue before any lock, and the tries. The baseline is one ordinary durable write on the same file.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import apsw
from pause import make_project

from bluegreen.config import load as load_config
from bluegreen.lifecycle.controller import Controller


def one_write_ms(path: Path) -> float:
    conn = apsw.Connection(str(path))
    times = []
    for _ in range(20):
        started = time.perf_counter()
        conn.execute("INSERT INTO t0(a, b) VALUES (NULL, 1)")
        times.append((time.perf_counter() - started) * 1000)
    conn.close()
    return statistics.median(times)


def one_revert(work: Path, tables: int) -> dict:
    folder = Path(tempfile.mkdtemp(dir=work))
    config_path = make_project(folder, tables, 2000)
    Controller(load_config(config_path)).init()
    Controller(load_config(config_path)).deploy()
    green = folder / "data" / "app.gen2.db"
    ordinary = one_write_ms(green)
    conn = apsw.Connection(str(green))
    with conn:
        for i in range(200):
            conn.execute(f"INSERT INTO t{i % tables}(a, b) VALUES (NULL, {i})")
    conn.close()
    config_path.write_text(config_path.read_text().replace("max_write_pause_ms = 2000", "max_write_pause_ms = 100"))
    result = Controller(load_config(config_path)).revert()
    budget = result.data["pause_budget"]
    shutil.rmtree(folder)
    return {
        "pause_ms": result.data["write_pause_ms"],
        "predicted_ms": budget["attempts"][-1]["predicted"]["total_ms"],
        "fence_ms": budget["fence_ms"],
        "fsync_ms": budget["fsync_ms"],
        "attempts": result.data["attempts"],
        "ordinary_ms": ordinary,
        "carried": result.data["carried_back"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tables", type=int, nargs="*", default=[10, 100, 1000])
    parser.add_argument("--out", type=Path, default=HERE / "results-revert-pause.md")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bluegreen-revert-"))
    lines = [
        f"# Revert's write pause vs table count ({args.runs} run(s) each, median; budget 100 ms)",
        "",
        "| tables | pause (ms) | predicted (ms) | fence+unfence measured (ms) | fsync (ms) | tries | "
        "pause / one write | one write (ms) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    try:
        for tables in args.tables:
            runs = [one_revert(work, tables) for _ in range(args.runs)]
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            line = (
                f"| {tables} | {med['pause_ms']:.1f} | {med['predicted_ms']:.1f} | {med['fence_ms']:.1f} "
                f"| {med['fsync_ms']:.1f} | {med['attempts']:.0f} | {med['pause_ms'] / med['ordinary_ms']:.0f}x "
                f"| {med['ordinary_ms']:.2f} |"
            )
            print(line, flush=True)
            lines.append(line)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
