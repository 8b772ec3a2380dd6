"""Benchmarks, each against its baseline in the same run; writes bench/results.md.

    python bench/run.py --quick      # a few minutes
    python bench/run.py              # the real figures (a several-hundred-MB blue)

Figures (median of --runs, with min and max):
  snapshot     bluegreen's backup-API copy of an idle blue   vs  cp + fsync, sqlite3 .backup, VACUUM INTO
  write pause  longest write wait during an online deploy,
               writer processes at a steady rate               vs  one ordinary write's latency before it
  replay       catch-up rate of changed rows                   (goal >= 50,000 rows/s)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from bluegreen import demo_data, demo_writer, snapshot  # noqa: E402
from machine import machine  # noqa: E402
from bluegreen.db import open_db  # noqa: E402

CONFIG = """\
[database]
pointer = "data/current.toml"
initial = "data/app.db"
[migrations]
dir = "{schemas}"
[capture]
guard_blob_writes = {guard}
[cutover]
max_write_pause_ms = {budget}
"""


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def fmt(stat: dict, unit: str, scale: float = 1.0) -> str:
    return f"{stat['median'] * scale:,.1f} {unit} (min {stat['min'] * scale:,.1f}, max {stat['max'] * scale:,.1f})"


def make_blue(folder: Path, rows: int) -> Path:
    (folder / "data").mkdir(parents=True)
    blue = folder / "data" / "app.db"
    demo_data.create_v1_database(str(blue), rows=rows)
    return blue


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def bench_snapshot(blue: Path, work: Path, runs: int) -> dict:
    results: dict[str, list[float]] = {"bluegreen snapshot": [], "cp + fsync": [], "sqlite3 .backup": [],
                                       "VACUUM INTO": []}
    for run in range(runs):
        target = work / f"copy{run}.db"

        def ours() -> None:
            source = open_db(blue, query_only=True)
            try:
                snapshot.copy(source, target, mode=0o644, pages_per_step=4096)
            finally:
                source.close()
            fsync_file(target)

        results["bluegreen snapshot"].append(timed(ours))
        _remove(target)
        results["cp + fsync"].append(timed(lambda: (shutil.copyfile(blue, target), fsync_file(target))))
        _remove(target)
        if shutil.which("sqlite3"):
            results["sqlite3 .backup"].append(timed(lambda: subprocess.run(
                ["sqlite3", str(blue), f".backup '{target}'"], check=True)))
            _remove(target)
        conn = open_db(blue, query_only=False)
        results["VACUUM INTO"].append(timed(lambda: conn.execute("VACUUM INTO ?", (str(target),))))
        conn.close()
        _remove(target)
    return {name: summary(values) for name, values in results.items() if values}


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        try:
            os.unlink(f"{path}{suffix}")
        except FileNotFoundError:
            pass


def bench_online_deploy(rows: int, writers: int, interval: float, budget: int, work: Path, guard: bool) -> dict:
    """One online deploy with writer processes running; every write's wait comes from their logs."""
    folder = work / f"deploy-guard-{guard}"
    make_blue(folder, rows)
    (folder / "config.toml").write_text(CONFIG.format(schemas=REPO / "schemas", budget=budget,
                                                      guard=str(guard).lower()))
    cli = [sys.executable, "-m", "bluegreen", "--config", str(folder / "config.toml")]
    subprocess.run(cli + ["init"], check=True, capture_output=True)
    logs = [folder / f"writer{i}.log" for i in range(writers)]
    procs = [subprocess.Popen([sys.executable, "-m", "bluegreen.demo_writer", str(folder / "data/current.toml"),
                               str(log), "--interval", str(interval), "--seed", str(i), "--seconds", "3600"])
             for i, log in enumerate(logs)]
    try:
        time.sleep(3)  # writes before the deploy: the ordinary latency baseline
        before = time.time()
        done = subprocess.run(cli + ["deploy", "--json"], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"deploy failed: {done.stderr}")
        for proc in procs:
            proc.wait(timeout=120)  # each stops at the fence
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    report = json.loads(done.stdout)
    barrier_from, barrier_to = cutover_window(folder / "data" / ".bluegreen" / "events.jsonl")
    waits, ordinary, committed, in_cutover = [], [], 0, [0.0]
    for log in logs:
        events = demo_writer.read_log(log)
        committed += sum(1 for e in events if e["event"] == "committed")
        waits += [e["wait_ms"] for e in events if e["event"] in ("committed", "fenced")]
        # writes that were waiting while the barrier was held (their wait overlaps the window)
        in_cutover += [e["wait_ms"] for e in events if e["event"] in ("committed", "fenced")
                       and e["at"] >= barrier_from and e["at"] - e["wait_ms"] / 1000 <= barrier_to]
        ordinary += [e["wait_ms"] for e in events if e["event"] == "committed"][:200]
        problems = demo.verify_writes(events, Path(report["active"]))
        if problems:
            raise SystemExit(f"lost writes: {problems[:3]}")
    replay = [p for p in report["phases"] if p["name"] in ("catch_up", "final_replay")]
    return {"size_mb": os.path.getsize(folder / "data" / "app.db") / 1e6, "committed": committed,
            "longest_wait_ms": max(waits), "longest_cutover_wait_ms": max(in_cutover), "p99_wait_ms": statistics.quantiles(waits, n=100)[98],
            "ordinary_write_ms": statistics.median(ordinary), "pause_ms": report["write_pause_ms"],
            "attempts": report.get("attempts", 1), "seconds": time.time() - before,
            "capture_ms": sum(p["duration_ms"] for p in report["phases"] if p["name"] == "capture"),
            "replay_ms": sum(p["duration_ms"] for p in replay)}


def cutover_window(events_path: Path) -> tuple[float, float]:
    """(barrier taken, swap done) as epoch seconds, from the controller's event log."""
    from datetime import datetime

    def at(event: dict) -> float:
        return datetime.fromisoformat(event["at"].replace("Z", "+00:00")).timestamp()

    events = [json.loads(line) for line in events_path.read_text().splitlines()]
    taken = [at(e) for e in events if e["event"] == "barrier_taken"]
    swapped = [at(e) for e in events if e["event"] == "swap"]
    return (taken[-1] if taken else 0.0), (swapped[-1] if swapped else 0.0)


def bench_replay_rate(rows: int, changes: int, work: Path, runs: int) -> dict:
    """Changed rows replayed per second by last-state replay (sync scripts excluded: v1 → v1)."""
    from bluegreen import capture
    from bluegreen.replay import Replayer

    rates = []
    for run in range(runs):
        folder = work / f"replay{run}"
        blue = make_blue(folder, rows)
        conn = open_db(blue, triggers=False)
        conn.execute("BEGIN IMMEDIATE")
        capture.install_capture(conn)
        conn.execute("COMMIT")
        conn.close()
        green = folder / "data" / "green.db"
        source = open_db(blue, query_only=True)
        snapshot.copy(source, green, mode=0o644)
        source.close()
        g = open_db(green)
        position = capture.capture_position(g)
        g.execute("BEGIN")
        capture.remove_capture(g)
        capture.set_meta(g, source_epoch=position.epoch, source_seq=position.seq)
        g.execute("COMMIT")
        g.close()
        app = open_db(blue)  # triggers on: the application's writes are captured
        app.execute("BEGIN")
        app.execute("UPDATE content_v1 SET title = title || '!' WHERE id <= ?", (changes,))
        app.execute("COMMIT")
        app.close()
        replayer = Replayer(blue, green, [])
        started = time.perf_counter()
        replayer.catch_up()
        rates.append(changes / (time.perf_counter() - started))
        replayer.close()
    return summary(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, a few minutes")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--out", type=Path, default=HERE / "results.md")
    args = parser.parse_args()
    rows = 40_000 if args.quick else 500_000
    runs = args.runs or (3 if args.quick else 5)
    budget = 100
    with tempfile.TemporaryDirectory(prefix="bluegreen-bench-") as tmp:
        work = Path(tmp)
        blue = make_blue(work / "snap", rows)
        size = os.path.getsize(blue) / 1e6
        snap = bench_snapshot(blue, work, runs)
        deploys = {guard: bench_online_deploy(rows, writers=3, interval=0.005, budget=budget, work=work, guard=guard)
                   for guard in (True, False)}
        replay = bench_replay_rate(min(rows, 200_000), min(rows, 100_000), work, runs)
    base = snap["cp + fsync"]["median"]
    lines = [
        f"Machine: {machine()}. Mode: {'quick' if args.quick else 'full'}; blue: {size:,.0f} MB "
        f"({rows:,} content rows of the shipped example); medians of {runs} runs (min, max).",
        "",
        "| figure | bluegreen | baseline (same run) | ratio | goal | met |",
        "|---|---|---|---|---|---|",
    ]
    ours = snap["bluegreen snapshot"]["median"]
    lines.append(f"| snapshot of an idle blue | {fmt(snap['bluegreen snapshot'], 's')} | cp + fsync "
                 f"{fmt(snap['cp + fsync'], 's')} | {ours / base:.2f} × | ≤ 1.2 × cp + fsync | "
                 f"{'yes' if ours <= 1.2 * base else 'no'} |")
    for name in ("sqlite3 .backup", "VACUUM INTO"):
        if name in snap:
            lines.append(f"| (baseline) {name} | — | {fmt(snap[name], 's')} | "
                         f"{snap[name]['median'] / base:.2f} × cp | — | — |")
    for guard, deploy in deploys.items():
        label = "BLOB guard on (default)" if guard else "guard_blob_writes = false"
        lines.append(f"| longest write wait during the cutover, 3 writers, {label} | "
                     f"{deploy['longest_cutover_wait_ms']:.1f} ms (barrier held {deploy['pause_ms']:.1f} ms, "
                     f"{deploy['attempts']} attempt(s)) | one ordinary write {deploy['ordinary_write_ms']:.2f} ms | — | "
                     f"within {budget} ms budget | {'yes' if deploy['longest_cutover_wait_ms'] <= budget else 'no'} |")
        lines.append(f"| longest write wait over the whole deploy, {label} | {deploy['longest_wait_ms']:.1f} ms "
                     f"(p99 {deploy['p99_wait_ms']:.1f} ms; capture install at prepare {deploy['capture_ms']:.0f} ms; "
                     f"{deploy['committed']:,} writes, none lost) | one ordinary write {deploy['ordinary_write_ms']:.2f} ms "
                     f"| — | — | see below |")
    lines.append(f"| catch-up replay rate | {fmt(replay, 'rows/s')} | — | — | ≥ 50,000 rows/s | "
                 f"{'yes' if replay['median'] >= 50_000 else 'no'} |")
    text = "\n".join(lines) + "\n"
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    from bluegreen import demo  # noqa: E402  (verify_writes)

    main()
