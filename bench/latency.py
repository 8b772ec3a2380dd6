"""The application's write latency over a whole deploy, throttling on and off (issue 17).

    python bench/latency.py                      # the 100 MB blue (147,000 rows), throttling off and on
    python bench/latency.py --size 1gb           # the 1 GB blue (1,470,000 rows): run it on a quiet machine
    python bench/latency.py --shared-with 6      # say so in the table header when other jobs share the machine

Three writer processes (the writer program's demo mode: the shipped example's v1.2.1 mix, one
transaction a write, `synchronous=FULL`, SQLite's default) write about 100 times a second each
through the pointer, on a blue that has the index the mix's deletes need (`--demo-schema`: as the
example ships it, without; each delete then scans downloads_v1 under the write lock, and the
writers' idle tail passes 100 ms on its own). First IDLE_S seconds with nothing else running: the
writers' idle latency.
Then `bluegreen deploy` while they go on (they stop at the fence). Every write's wait comes from the
writers' own logs (the time from the write's start to its commit, lock and fsync waits included);
the distribution over the whole deploy (median, p99, p99.9, longest) is set beside the idle one
of the same run, and the deploy's total time beside the unthrottled deploy's. Writes `bench/results-latency.md`.

    python bench/latency.py --size 1gb --idle-only 400   # the same writers, no deploy, for 400 s

The idle window of a deploy run is 10 s (about 3,000 writes): its longest wait is not comparable
with the longest of a deploy's 100,000. `--idle-only S` runs the writers alone for as long as a
deploy takes, so the disk's own tail (fsync) over that many writes is known, and prints the
longest wait per 10 s window as well.
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
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import apsw
import datasets
from diskwatch import DiskWatch, described
from machine import machine

from bluegreen.tools.demo import verify_writes
from bluegreen.tools.writer_process import WriterProcess, read_log

IDLE_S = 10.0
WRITERS = 3
INTERVAL_S = 0.01  # ~100 writes/s per writer (less the write's own time)
THROTTLED = """\
[throttle]
max_write_wait_ms = {limit}
probe_interval_ms = 100
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def distribution(waits: list[float]) -> dict:
    return {
        "n": len(waits),
        "median": percentile(waits, 50),
        "p99": percentile(waits, 99),
        "p99.9": percentile(waits, 99.9),
        "longest": max(waits),
    }


APP_INDEX = "CREATE INDEX downloads_v1_content ON downloads_v1(content_id)"


def blue_for(rows: int, target: Path, indexed: bool) -> None:
    """The cached blue, copied; with `indexed`, the index the demo's delete needs. Without it each
    delete (5 % of the demo's writes) scans every downloads_v1 row under the write lock (47 ms at
    914k rows), and the writers' own tail, idle, is over 100 ms before any deploy runs."""
    datasets.fresh_blue(rows, target)
    if indexed:
        conn = apsw.Connection(str(target))
        conn.execute(APP_INDEX)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        os.sync()


def _project(folder: Path, rows: int, indexed: bool, extra_config: str = "") -> None:
    """A fresh demo project in `folder`: blue (see blue_for), the config, `bluegreen init`."""
    shutil.rmtree(folder, ignore_errors=True)
    blue_for(rows, folder / "data" / "app.db", indexed)
    (folder / "config.toml").write_text(datasets.DEMO_CONFIG.format(schemas=REPO / "schemas") + extra_config)
    subprocess.run(_cli(folder) + ["init"], check=True, capture_output=True)


def _cli(folder: Path) -> list[str]:
    return [sys.executable, "-m", "bluegreen", "--config", str(folder / "config.toml")]


def _writers(folder: Path, seconds: float) -> tuple[list[Path], list[WriterProcess]]:
    """WRITERS demo writers through the pointer, each logging its waits."""
    logs = [folder / f"writer{i}.log" for i in range(WRITERS)]
    procs = [
        WriterProcess.start(
            "demo", folder / "data" / "current.toml", log, interval=INTERVAL_S, seed=i + 1, seconds=seconds
        )
        for i, log in enumerate(logs)
    ]
    return logs, procs


def one_deploy(rows: int, work: Path, limit: int | None, indexed: bool = True) -> dict:
    """Idle writers, then a deploy under them; limit: [throttle] max_write_wait_ms, None for off."""
    folder = work / f"deploy-{rows}-{'on' if limit else 'off'}"
    _project(folder, rows, indexed, THROTTLED.format(limit=limit) if limit else "")
    cli = _cli(folder)
    size_mb = os.path.getsize(folder / "data" / "app.db") / 1e6
    disk = DiskWatch(folder).start()
    logs, procs = _writers(folder, 36_000)  # each stops at the fence
    try:
        time.sleep(1.0)  # started
        idle_from = time.time()
        time.sleep(IDLE_S)
        idle_to = deploy_from = time.time()
        done = subprocess.run(cli + ["deploy", "--json"], capture_output=True, text=True)
        deploy_to = time.time()
        if done.returncode != 0:
            raise SystemExit(f"deploy failed (exit {done.returncode}): {done.stderr[-2000:]}")
        for proc in procs:
            proc.wait(timeout=120)  # each stops at the fence
    finally:
        disk.stop()
        for proc in procs:
            proc.kill()
    report = json.loads(done.stdout)
    idle, during, worst = [], [], []
    for log in logs:
        events = read_log(log)
        problems = verify_writes(events, Path(report["active"]))
        if problems:
            raise SystemExit(f"lost writes: {problems[:3]}")
        for e in events:
            if e["event"] not in ("committed", "fenced"):
                continue
            began = e["at"] - e["wait_ms"] / 1000
            if idle_from <= began and e["at"] <= idle_to:
                idle.append(e["wait_ms"])
            elif began >= deploy_from and began <= deploy_to:
                during.append(e["wait_ms"])
                worst.append((e["wait_ms"], began, e["event"]))
    events_log = [
        json.loads(line) for line in (folder / "data" / ".bluegreen" / "events.jsonl").read_text().splitlines()
    ]
    # a phase event is logged when its phase ends: the phase under a wait is the first to end after it began
    ends = [(_epoch(e["at"]), e["phase"]) for e in events_log if e["event"] == "phase"]
    longest = [
        {
            "wait_ms": wait,
            "at_s": round(began - deploy_from, 1),
            "phase": next((phase for end, phase in ends if end >= began), "after the swap"),
            "event": kind,
            "disk": disk.around(began, wait),
        }
        for wait, began, kind in sorted(worst, reverse=True)[:5]
    ]
    throttled = [e for e in events_log if e["event"] == "throttle" and e["throttle"] == "on"]
    # throttled_s is the command's running total when a pause ends: the deploy's is its last
    paused_s = max([e["throttled_s"] for e in events_log if e["event"] == "throttle" and e["throttle"] != "on"] or [0])
    locks = {
        e["event"]: e.get("lock_ms", e.get("longest_lock_ms"))
        for e in events_log
        if e["event"] in ("capture_installed", "blob_guard")
    }
    shutil.rmtree(folder)
    return {
        "size_mb": size_mb,
        "limit": limit,
        "idle": distribution(idle),
        "deploy": distribution(during),
        "deploy_s": deploy_to - deploy_from,
        "pause_ms": report.get("write_pause_ms"),
        "throttled": len(throttled),
        "paused_s": paused_s,
        "locks": locks,
        "longest": longest,
    }


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def idle_only(rows: int, work: Path, seconds: float, indexed: bool = True) -> dict:
    """The writers alone on blue for `seconds`: the machine's write latency with no deploy."""
    folder = work / f"idle-{rows}"
    _project(folder, rows, indexed)
    disk = DiskWatch(folder).start()
    logs, procs = _writers(folder, seconds + 1)
    try:
        time.sleep(1.0)
        began = time.time()
        for proc in procs:
            proc.wait(timeout=seconds + 120)
    finally:
        disk.stop()
        for proc in procs:
            proc.kill()
    waits, windows, worst = [], {}, []
    for log in logs:
        events = read_log(log)
        problems = verify_writes(events, folder / "data" / "app.db")
        if problems:
            raise SystemExit(f"lost writes: {problems[:3]}")
        for e in events:
            if e["event"] == "committed" and e["at"] - e["wait_ms"] / 1000 >= began:
                waits.append(e["wait_ms"])
                worst.append((e["wait_ms"], e["at"] - e["wait_ms"] / 1000))
                key = int((e["at"] - began) // 10)
                windows[key] = max(windows.get(key, 0.0), e["wait_ms"])
    shutil.rmtree(folder)
    longest_per_10s = sorted(windows.values())
    return {
        "seconds": seconds,
        "writes": distribution(waits),
        "longest_per_10s": {
            "median": statistics.median(longest_per_10s),
            "max": longest_per_10s[-1],
            "windows": len(longest_per_10s),
        },
        "longest": [
            {"wait_ms": wait, "at_s": round(at - began, 1), "disk": disk.around(at, wait)}
            for wait, at in sorted(worst, reverse=True)[:5]
        ],
    }


def ms(value: float) -> str:
    return f"{value:,.1f}"


def table(results: list[dict], header: str) -> str:
    lines = [
        header,
        "",
        "| blue | throttling | writes | median | p99 | p99.9 | longest | idle: median / p99 / longest | p99 ÷ idle p99 "
        "| deploy time | × unthrottled (median) | throttled (times, s) | blue's lock: capture install, guard slice |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    unthrottled = [r["deploy_s"] for r in results if r["limit"] is None]
    base = statistics.median(unthrottled) if unthrottled else 0.0  # the price of throttling: against this
    for r in results:
        d, i = r["deploy"], r["idle"]
        lines.append(
            f"| {r['size_mb']:,.0f} MB | {'on, max_write_wait_ms = ' + str(r['limit']) if r['limit'] else 'off'} "
            f"| {d['n']:,} | {ms(d['median'])} ms | {ms(d['p99'])} ms | {ms(d['p99.9'])} ms | {ms(d['longest'])} ms "
            f"| {ms(i['median'])} / {ms(i['p99'])} / {ms(i['longest'])} ms | {d['p99'] / i['p99']:.2f} × "
            f"| {r['deploy_s']:.1f} s | {r['deploy_s'] / (base or r['deploy_s']):.2f} × "
            f"| {r['throttled']}, {r['paused_s']:.1f} s "
            f"| {r['locks'].get('capture_installed', '—')} ms, {r['locks'].get('blob_guard', '—')} ms |"
        )
    lines += [
        "",
        "The five longest waits of each deploy: ms, when (s into the deploy), the phase, the write's outcome, and"
        " what the disk did (bench/diskwatch.py): a wait with next to nothing written and one request in flight"
        " is the device's own, as the idle writers see too.",
    ]
    for r in results:
        worst = ", ".join(
            f"{w['wait_ms']:,.0f} ms at {w['at_s']:.0f} s ({w['phase']}, {w['event']}{described(w.get('disk'))})"
            for w in r["longest"]
        )
        lines.append(f"- {r['size_mb']:,.0f} MB, throttling {'on' if r['limit'] else 'off'}: {worst}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(datasets.ROWS_FOR_SIZE), default="100mb")
    parser.add_argument("--runs", type=int, default=1, help="deploys per setting (default 1)")
    parser.add_argument("--max-write-wait-ms", type=int, default=25, help="the throttled runs' limit (default 25)")
    parser.add_argument("--shared-with", type=int, default=None, metavar="N", help="other jobs on the machine")
    parser.add_argument(
        "--demo-schema",
        action="store_true",
        help="blue as the example ships it, without the index on downloads_v1(content_id) its deletes need",
    )
    parser.add_argument("--idle-only", type=float, default=None, metavar="S", help="the writers alone for S seconds")
    parser.add_argument("--out", type=Path, default=HERE / "results-latency.md")
    args = parser.parse_args()
    rows = datasets.ROWS_FOR_SIZE[args.size]
    datasets.cached_blue(rows)  # generated before anything is timed
    if args.idle_only:
        with tempfile.TemporaryDirectory(prefix="bluegreen-latency-") as tmp:
            found = idle_only(rows, Path(tmp), args.idle_only, indexed=not args.demo_schema)
        w, per = found["writes"], found["longest_per_10s"]
        text = (
            f"Machine: {machine()}; load average {os.getloadavg()[0]:.1f} at the end. `python bench/latency.py --size "
            f"{args.size} --idle-only {args.idle_only:g}`: {WRITERS} writers at ~{1 / INTERVAL_S:.0f} writes/s each, "
            f"synchronous=FULL, no deploy, {args.idle_only:g} s"
            + (", blue as the example ships it.\n\n" if args.demo_schema else f", blue with `{APP_INDEX}`.\n\n")
            + "| writes | median | p99 | p99.9 | longest | longest per 10 s: median / max |\n|---|---|---|---|---|---|\n"
            f"| {w['n']:,} | {ms(w['median'])} ms | {ms(w['p99'])} ms | {ms(w['p99.9'])} ms | {ms(w['longest'])} ms "
            f"| {ms(per['median'])} / {ms(per['max'])} ms ({per['windows']} windows) |\n\n"
            "The five longest waits: "
            + ", ".join(
                f"{w['wait_ms']:,.0f} ms at {w['at_s']:.0f} s ({described(w['disk']).lstrip('; ')})"
                for w in found["longest"]
            )
            + "\n"
        )
        print(json.dumps(found))
        args.out.write_text(text)
        print(text)
        return
    results = []
    with tempfile.TemporaryDirectory(prefix="bluegreen-latency-") as tmp:
        for _ in range(args.runs):
            for limit in (None, args.max_write_wait_ms):
                results.append(one_deploy(rows, Path(tmp), limit, indexed=not args.demo_schema))
                print(json.dumps(results[-1]), flush=True)
    load = os.getloadavg()[0]
    shared = (
        f" **Measured on a shared machine** ({args.shared_with} other jobs running): read the ratios, not the times."
        if args.shared_with
        else ""
    )
    header = (
        f"Machine: {machine()}; load average {load:.1f} at the end.{shared} `python bench/latency.py --size "
        f"{args.size}`: {WRITERS} writers at ~{1 / INTERVAL_S:.0f} writes/s each, synchronous=FULL; idle = the "
        f"same writers for {IDLE_S:.0f} s before the deploy; "
        + ("blue as the example ships it (`--demo-schema`)." if args.demo_schema else f"blue with `{APP_INDEX}`.")
    )
    text = table(results, header)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
