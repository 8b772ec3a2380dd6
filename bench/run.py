"""Benchmarks, each against its baseline in the same run; writes bench/results.md.

    python bench/run.py --quick      # a few minutes, small files
    python bench/run.py              # the real figures: a 1 GB blue, 1,000,000 rows migrated (< 30 min)
    python bench/run.py --shared-with 4   # say so in the table header when other jobs share the machine

Every figure is the median of several runs with min and max, measured next to its baseline in
the same run, so a busy machine moves both. Blue files come from the demo's generator at scale
(bluegreen/demo_data.py) and are cached in bench/results/ (bench/datasets.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import apsw
import client_pickup
import datasets
import replay_keyed
from machine import machine

from bluegreen.engine import (
    capture,
    snapshot,
)
from bluegreen.engine.db import open_db, run_script
from bluegreen.files import pointer
from bluegreen.tools import demo_data
from bluegreen.tools.demo import verify_writes
from bluegreen.tools.writer_process import WriterProcess, read_log

CONFIG = """\
[database]
pointer = "data/current.toml"
initial = "data/app.db"
[migrations]
dir = "{schemas}"
[cutover]
max_write_pause_ms = {budget}
"""
BUDGET_MS = 100
MIGRATION_FILES = sorted((REPO / "schemas").glob("00[123]_*[0-9a-z].sql"))
MIGRATION_FILES = [f for f in MIGRATION_FILES if not f.stem.endswith(("_sync", "_validate", "_rollback"))]


@dataclass(frozen=True)
class Sizes:
    small_rows: int  # the "100 MB" blue
    big_rows: int  # the "1 GB" blue
    migration_rows: int
    runs: int
    deploy_runs: int
    migration_runs: int
    pickup_cycles: int
    replay_changes: int


QUICK = Sizes(
    small_rows=15_000,
    big_rows=150_000,
    migration_rows=20_000,
    runs=3,
    deploy_runs=2,
    migration_runs=2,
    pickup_cycles=5,
    replay_changes=10_000,
)
FULL = Sizes(
    small_rows=147_000,
    big_rows=1_470_000,
    migration_rows=1_000_000,
    runs=5,
    deploy_runs=3,
    migration_runs=3,
    pickup_cycles=40,
    replay_changes=100_000,
)


# -- small helpers ---------------------------------------------------------------------------------
def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def fmt(stat: dict, unit: str, scale: float = 1.0, digits: int = 2) -> str:
    return (
        f"{stat['median'] * scale:,.{digits}f} {unit} (min {stat['min'] * scale:,.{digits}f}, "
        f"max {stat['max'] * scale:,.{digits}f})"
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def met(ok: bool) -> str:
    return "yes" if ok else "**no**"


class Writers:
    """Writer processes at a steady rate on one file (the writer program's steady mode), for as long
    as the `with` block lasts; `.waits` holds every write's wait (ms) once it ends."""

    def __init__(self, db: Path, work: Path, count: int = 2, interval: float = 0.005):
        self.db, self.work, self.count, self.interval = db, work, count, interval
        self.waits: list[float] = []

    def __enter__(self) -> Writers:
        self.stop = self.work / "writers.stop"
        self.stop.unlink(missing_ok=True)
        self.logs = [self.work / f"writer{i}.log" for i in range(self.count)]
        for log in self.logs:
            log.unlink(missing_ok=True)  # the writer appends: each block's waits are its own
        self.procs = [
            WriterProcess.start("steady", self.db, log, stop=self.stop, interval=self.interval) for log in self.logs
        ]
        time.sleep(1.0)  # running before the measurement starts
        return self

    def __exit__(self, *exc) -> None:
        for proc in self.procs:
            proc.stop(timeout=120)
        for proc in self.procs:
            self.waits += [e["wait_ms"] for e in proc.records() if e["event"] == "committed"]


# -- snapshot --------------------------------------------------------------------------------------
def ours(blue: Path, target: Path, method: str) -> snapshot.SnapshotResult:
    source = open_db(blue, query_only=True)
    try:
        return snapshot.copy(source, target, mode=0o644, method=method)
    finally:
        source.close()


def cli_backup(blue: Path, target: Path, timeout: float) -> float | None:
    """Seconds the sqlite3 CLI's .backup took, or None if it had not finished after `timeout`."""
    started = time.perf_counter()
    try:
        subprocess.run(["sqlite3", str(blue), f".backup '{target}'"], check=True, timeout=timeout, capture_output=True)
    except subprocess.TimeoutExpired:
        return None
    fsync_file(target)
    return time.perf_counter() - started


def bench_snapshot(blue: Path, work: Path, runs: int) -> dict:
    """Idle baselines (cp + fsync, sqlite3 .backup, VACUUM INTO) and bluegreen's copy idle, then
    each copy with writer processes running, in every run; each under-writes copy gets its own
    writers, so their longest wait belongs to that copy."""
    times: dict[str, list[float]] = {
        k: []
        for k in (
            "cp + fsync (idle)",
            "sqlite3 .backup (idle)",
            "VACUUM INTO (idle)",
            "bluegreen files (idle)",
            "bluegreen files (writes)",
            "bluegreen backup API (writes)",
            "sqlite3 .backup (writes)",
        )
    }
    waits: dict[str, list[float]] = {}
    unfinished = 0
    target = work / "copy.db"
    has_cli = shutil.which("sqlite3") is not None

    def cp() -> float:
        return timed(lambda: (shutil.copyfile(blue, target), fsync_file(target)))

    def vacuum_into() -> float:
        conn = open_db(blue)
        try:
            return timed(lambda: (conn.execute("VACUUM INTO ?", (str(target),)), fsync_file(target)))
        finally:
            conn.close()

    def under_writes(name: str, copy) -> float | None:
        with Writers(blue, work) as writers:
            took = copy()
        waits.setdefault(name, []).extend(writers.waits)
        return took

    measures = {
        "cp + fsync (idle)": cp,
        "sqlite3 .backup (idle)": (lambda: cli_backup(blue, target, 600)) if has_cli else None,
        "VACUUM INTO (idle)": vacuum_into,
        "bluegreen files (idle)": lambda: timed(lambda: ours(blue, target, "files")),
        "bluegreen files (writes)": lambda: under_writes(
            "bluegreen files (writes)", lambda: timed(lambda: ours(blue, target, "files"))
        ),
        "bluegreen backup API (writes)": lambda: under_writes(
            "bluegreen backup API (writes)", lambda: timed(lambda: ours(blue, target, "backup"))
        ),
    }
    names = [name for name, fn in measures.items() if fn]
    for run in range(runs):
        for name in names[run % len(names) :] + names[: run % len(names)]:  # rotated: no method always goes first
            remove_db(target)
            times[name].append(measures[name]())
        remove_db(target)
        if has_cli and run < 2:  # it may never finish: give it 10 x cp, twice
            timeout = max(10 * statistics.median(times["cp + fsync (idle)"]), 5.0)
            took = under_writes("sqlite3 .backup (writes)", lambda timeout=timeout: cli_backup(blue, target, timeout))
            if took is None:
                unfinished += 1
            else:
                times["sqlite3 .backup (writes)"].append(took)
            remove_db(target)
    results = {name: summary(values) for name, values in times.items() if values}
    results["cli_unfinished"] = unfinished
    results["cli_timeout_s"] = max(10 * statistics.median(times["cp + fsync (idle)"]), 5.0)
    results["write_waits"] = {
        name: {"median": statistics.median(w), "p99": percentile(w, 99), "max": max(w)}
        for name, w in waits.items()
        if w
    }
    return results


# -- capture cost ----------------------------------------------------------------------------------
def wal_frames_per_write(conn: apsw.Connection, writes: int) -> float:
    """WAL frames (pages) one write commits: what a write costs in I/O."""
    conn.execute("PRAGMA wal_autocheckpoint = 0").get
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").get
    rng = random.Random(-1)
    for _ in range(writes):
        demo_data.random_v1_write(conn, rng)
    frames = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
    conn.execute("PRAGMA wal_autocheckpoint = 1000").get
    return frames / writes


def bench_capture_cost(blue: Path, work: Path, runs: int, synchronous: str, batch: int) -> dict:
    """The demo application's writes (60% insert, 30% update, 10% delete, each its own
    transaction) on two copies of blue, one with capture installed; batches alternate and each
    pair replays the same random sequence."""
    plain, captured = work / "plain.db", work / "captured.db"
    for path in (plain, captured):
        remove_db(path)
        shutil.copyfile(blue, path)
    conn = open_db(captured, triggers=False)
    conn.execute("BEGIN IMMEDIATE")
    capture.install_capture(conn)
    conn.execute("COMMIT")
    conn.close()
    per_write = {"plain": [], "captured": []}
    conns = {"plain": open_db(plain), "captured": open_db(captured)}
    for conn in conns.values():
        conn.execute(f"PRAGMA synchronous = {synchronous}")
    try:
        frames = {name: wal_frames_per_write(conn, 200) for name, conn in conns.items()}
        for run in range(max(runs, 5) * 2):
            order = ("plain", "captured") if run % 2 == 0 else ("captured", "plain")
            for name in order:
                rng = random.Random(run)
                seconds = timed(
                    lambda name=name, rng=rng: [demo_data.random_v1_write(conns[name], rng) for _ in range(batch)]
                )
                per_write[name].append(seconds / batch)
    finally:
        for conn in conns.values():
            conn.close()
        remove_db(plain)
        remove_db(captured)
    ratios = [c / p for c, p in zip(per_write["captured"], per_write["plain"])]
    return {
        "plain": summary(per_write["plain"]),
        "captured": summary(per_write["captured"]),
        "ratio": summary(ratios),
        "frames": frames,
    }


# -- replay ----------------------------------------------------------------------------------------
def bench_replay_rate(rows: int, changes: int, work: Path, runs: int) -> dict:
    """Changed rows replayed per second by last-state replay (v1 → v1: no sync script)."""
    from bluegreen.engine.replay import Replayer

    rates = []
    for run in range(runs):
        folder = work / f"replay{run}"
        blue = datasets.fresh_blue(rows, folder / "blue.db")
        conn = open_db(blue, triggers=False)
        conn.execute("BEGIN IMMEDIATE")
        capture.install_capture(conn)
        conn.execute("COMMIT")
        conn.close()
        green = folder / "green.db"
        ours(blue, green, "files")
        g = open_db(green)
        position = capture.capture_position(g)
        g.execute("BEGIN")
        capture.remove_capture(g)
        capture.set_meta(g, source_epoch=position.epoch, source_seq=position.seq)
        g.execute("COMMIT")
        g.close()
        app = open_db(blue)  # triggers on: the application's writes are captured
        with app:
            app.execute("UPDATE content_v1 SET title = title || '!' WHERE id <= ?", (changes,))
        app.close()
        replayer = Replayer(blue, green, [])
        rates.append(changes / timed(replayer.catch_up))
        replayer.close()
        shutil.rmtree(folder)
    return summary(rates)


# -- online deploy ---------------------------------------------------------------------------------
def run_measured(cmd: list[str], out: Path) -> tuple[int, int]:
    """Run cmd with stdout to `out`; (exit code, peak resident memory in KB of it and its children)."""
    with open(out, "w") as stdout:
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss


def make_project(folder: Path, rows: int) -> list[str]:
    """A project folder with a fresh blue of `rows` rows, initialised; returns the CLI prefix."""
    datasets.fresh_blue(rows, folder / "data" / "app.db")
    (folder / "config.toml").write_text(CONFIG.format(schemas=REPO / "schemas", budget=BUDGET_MS))
    cli = [sys.executable, "-m", "bluegreen", "--config", str(folder / "config.toml")]
    subprocess.run(cli + ["init"], check=True, capture_output=True)
    return cli


def bench_online_deploy(rows: int, work: Path, writers: int = 3, interval: float = 0.005) -> dict:
    """One online deploy with demo writer processes at a steady rate; every write's wait comes
    from their logs, the barrier window from the controller's event log."""
    folder = work / f"deploy-{rows}"
    cli = make_project(folder, rows)
    size_mb = os.path.getsize(folder / "data" / "app.db") / 1e6
    logs = [folder / f"writer{i}.log" for i in range(writers)]
    procs = [
        WriterProcess.start("demo", folder / "data/current.toml", log, interval=interval, seed=i, seconds=3600)
        for i, log in enumerate(logs)
    ]
    try:
        time.sleep(3)  # writes before the deploy: the ordinary latency baseline
        code, peak_kb = run_measured(cli + ["deploy", "--json"], folder / "deploy.json")
        if code != 0:
            raise SystemExit(f"deploy failed with exit code {code}")
        for proc in procs:
            proc.wait(timeout=120)  # each stops at the fence
    finally:
        for proc in procs:
            proc.kill()
    report = json.loads((folder / "deploy.json").read_text())
    barrier_from, barrier_to = cutover_window(folder / "data" / ".bluegreen" / "events.jsonl")
    waits, ordinary, committed, in_cutover, longest = [], [], 0, [0.0], None
    for log in logs:
        events = read_log(log)
        writes = [e for e in events if e["event"] in ("committed", "fenced")]
        committed += sum(1 for e in events if e["event"] == "committed")
        waits += [e["wait_ms"] for e in writes]
        longest = max(writes + ([longest] if longest else []), key=lambda e: e["wait_ms"])
        # writes that waited while the barrier was held (their wait overlaps the window)
        in_cutover += [
            e["wait_ms"] for e in writes if e["at"] >= barrier_from and e["at"] - e["wait_ms"] / 1000 <= barrier_to
        ]
        ordinary += [e["wait_ms"] for e in events if e["event"] == "committed"][:200]
        problems = verify_writes(events, Path(report["active"]))
        if problems:
            raise SystemExit(f"lost writes: {problems[:3]}")
    phases = {p["name"]: p["duration_ms"] for p in report["phases"]}
    longest_phase = phase_of(
        folder / "data" / ".bluegreen" / "events.jsonl", longest["at"] - longest["wait_ms"] / 1000, longest["at"]
    )
    shutil.rmtree(folder)
    return {
        "size_mb": size_mb,
        "committed": committed,
        "longest_wait_ms": max(waits),
        "cutover_wait_ms": max(in_cutover),
        "ordinary_ms": statistics.median(ordinary),
        "pause_ms": report["write_pause_ms"],
        "attempts": report.get("attempts", 1),
        "peak_mb": peak_kb / 1024,
        "snapshot_ms": phases.get("snapshot", 0.0),
        "longest_phase": longest_phase,
    }


def event_time(event: dict) -> float:
    return datetime.fromisoformat(event["at"].replace("Z", "+00:00")).timestamp()


def phase_of(events_path: Path, start: float, end: float) -> str:
    """The deploy phases (from the controller's event log) that overlap [start, end]."""
    events = [json.loads(line) for line in events_path.read_text().splitlines()]
    names = [
        e["phase"]
        for e in events
        if e["event"] == "phase" and event_time(e) - e["duration_ms"] / 1000 <= end and event_time(e) >= start
    ]
    return "+".join(dict.fromkeys(names)) or "between phases"


def cutover_window(events_path: Path) -> tuple[float, float]:
    """(barrier taken, swap done) as epoch seconds, from the controller's event log."""
    events = [json.loads(line) for line in events_path.read_text().splitlines()]
    taken = [event_time(e) for e in events if e["event"] == "barrier_taken"]
    swapped = [event_time(e) for e in events if e["event"] == "swap"]
    return (taken[-1] if taken else 0.0), (swapped[-1] if swapped else 0.0)


# -- the shipped migration -------------------------------------------------------------------------
def migration_by_bluegreen(rows: int, work: Path) -> float:
    """Seconds of the migrate phase of `bluegreen prepare` (no writers)."""
    folder = work / "migration-bluegreen"
    cli = make_project(folder, rows)
    code, _ = run_measured(cli + ["prepare", "--json"], folder / "prepare.json")
    if code != 0:
        raise SystemExit(f"prepare failed with exit code {code}")
    phases = json.loads((folder / "prepare.json").read_text())["phases"]
    shutil.rmtree(folder)
    return sum(p["duration_ms"] for p in phases if p["name"] == "migrate") / 1000


def migration_by_cli(rows: int, work: Path) -> float:
    """The same files, each in its own transaction, through the sqlite3 CLI on a copy."""
    copy = datasets.fresh_blue(rows, work / "migration-cli" / "copy.db")
    script = ".bail on\n" + "".join(f"BEGIN;\n.read '{f}'\nCOMMIT;\n" for f in MIGRATION_FILES)
    seconds = timed(
        lambda: subprocess.run(["sqlite3", str(copy)], input=script, text=True, check=True, capture_output=True)
    )
    shutil.rmtree(copy.parent)
    return seconds


def migration_by_apsw(rows: int, work: Path) -> float:
    """The same files, each in its own transaction, through apsw (bluegreen's SQLite) on a copy."""
    copy = datasets.fresh_blue(rows, work / "migration-apsw" / "copy.db")
    conn = open_db(copy)

    def migrate() -> None:
        for path in MIGRATION_FILES:
            conn.execute("BEGIN IMMEDIATE")
            run_script(conn, path.read_text())
            conn.execute("COMMIT")

    seconds = timed(migrate)
    conn.close()
    shutil.rmtree(copy.parent)
    return seconds


def bench_migration(rows: int, work: Path, runs: int) -> dict:
    times: dict[str, list[float]] = {"bluegreen": [], "sqlite3 CLI": [], "apsw": []}
    for _ in range(runs):
        times["bluegreen"].append(migration_by_bluegreen(rows, work))
        if shutil.which("sqlite3"):
            times["sqlite3 CLI"].append(migration_by_cli(rows, work))
        times["apsw"].append(migration_by_apsw(rows, work))
    return {name: summary(values) for name, values in times.items() if values}


# -- revert, pointer swap, pickup ------------------------------------------------------------------
def bench_pointer_swap(work: Path, swaps: int = 200) -> dict:
    """The durable swap alone: write temp, fsync, os.replace, fsync the folder."""
    path = work / "current.toml"
    text = b'active = "app-g2.db"\ngeneration = 2\n'
    times = [timed(lambda: pointer.atomic_write(path, text)) * 1000 for _ in range(swaps)]
    return {"median": statistics.median(times), "p99": percentile(times, 99), "max": max(times), "n": len(times)}


def bench_pickup(cycles: int) -> dict:
    measured = client_pickup.measure(cycles, per_kind=2, rows=2000)
    rows = {
        kind: {"median": statistics.median(v), "p99": percentile(v, 99), "max": max(v), "n": len(v)}
        for kind, v in measured["picked"].items()
        if v
    }
    reverts = measured["reverts_ms"]
    rows["revert"] = {
        "median": statistics.median(reverts),
        "p99": percentile(reverts, 99),
        "max": max(reverts),
        "n": len(reverts),
    }
    rows["missed"] = measured["missed"]
    return rows


# -- the table -------------------------------------------------------------------------------------
def table(sizes: Sizes, quick: bool, r: dict, shared_with: int | None, seconds: float) -> str:
    snap, small, big = r["snapshot"], r["deploy_small"], r["deploy_big"]
    base = snap["cp + fsync (idle)"]["median"]
    snap_ratio = snap["bluegreen files (writes)"]["median"] / base
    shared = f"; machine shared with {shared_with} other jobs" if shared_with else ""
    lines = [
        f"Machine: {machine()}{shared}; load average {r['load'][0]:.1f} at the start, {r['load'][1]:.1f} at the end. "
        f"Mode: {'quick' if quick else 'full'} ({seconds / 60:.0f} min); medians of {sizes.runs} runs unless noted "
        f"(min, max). `python bench/run.py{' --quick' if quick else ''}`; sqlite3 CLI {r['cli_version']}.",
        "",
        "| figure | bluegreen | baseline in the same run | ratio | goal | met |",
        "|---|---|---|---|---|---|",
    ]
    add = lines.append
    add(
        f"| snapshot of a {r['big_mb']:,.0f} MB blue, 2 writer processes running | {fmt(snap['bluegreen files (writes)'], 's')} "
        f"| cp + fsync of the idle file {fmt(snap['cp + fsync (idle)'], 's')} | {snap_ratio:.2f} × "
        f"| ≤ 1.2 × cp + fsync, finishes under writes | {met(snap_ratio <= 1.2)} |"
    )
    for name in (
        "bluegreen files (idle)",
        "bluegreen backup API (writes)",
        "sqlite3 .backup (idle)",
        "VACUUM INTO (idle)",
        "sqlite3 .backup (writes)",
    ):
        if name in snap:
            add(
                f"| (same run) {name} | — | {fmt(snap[name], 's')} (n={snap[name]['n']}) "
                f"| {snap[name]['median'] / base:.2f} × | — | — |"
            )
    if snap["cli_unfinished"]:
        add(
            f"| (same run) sqlite3 .backup under the same writes | — | did not finish within "
            f"{snap['cli_timeout_s']:.0f} s in {snap['cli_unfinished']} of {min(2, sizes.runs)} tries | — | — | — |"
        )
    for name, w in snap["write_waits"].items():
        add(
            f"| (same run) the writers' write wait during {name} | median {w['median']:.2f} ms, p99 {w['p99']:.1f} ms, "
            f"longest {w['max']:.1f} ms | — | — | — | — |"
        )
    for sync, cost in r["capture"].items():
        add(
            f"| per-write cost with capture on (demo write mix, synchronous={sync}) | "
            f"{fmt(cost['captured'], 'ms', 1000, 3)} | the same writes without capture {fmt(cost['plain'], 'ms', 1000, 3)} "
            f"| {cost['ratio']['median']:.2f} × (min {cost['ratio']['min']:.2f}, max {cost['ratio']['max']:.2f}); "
            f"WAL pages per write {cost['frames']['captured']:.2f} vs {cost['frames']['plain']:.2f} "
            f"| ≤ 1.1 × | {met(cost['ratio']['median'] <= 1.1)} |"
        )
    add(
        f"| catch-up replay rate ({sizes.replay_changes:,} changed rows) | {fmt(r['replay'], 'rows/s', digits=0)} | — | — "
        f"| ≥ 50,000 rows/s | {met(r['replay']['median'] >= 50_000)} |"
    )
    if "replay_keyed" in r:
        lines.extend(replay_keyed.table_rows(r["replay_keyed"], replay_keyed.QUICK if quick else replay_keyed.FULL))
    size_ratio = big["cutover_wait_ms"]["median"] / max(small["cutover_wait_ms"]["median"], 1e-9)
    for label, d in ((f"{r['small_mb']:,.0f} MB", small), (f"{r['big_mb']:,.0f} MB", big)):
        ok = d["cutover_wait_ms"]["max"] <= BUDGET_MS
        add(
            f"| longest write wait during the online cutover, {label} blue, 3 writers every 5 ms "
            f"(n={d['n']}) | {fmt(d['cutover_wait_ms'], 'ms', digits=1)}; barrier held {fmt(d['pause_ms'], 'ms', digits=1)} "
            f"| one ordinary write {d['ordinary_ms']['median']:.2f} ms | — | within the {BUDGET_MS} ms pause budget "
            f"| {met(ok)} |"
        )
    add(
        f"| (ratio) {r['big_mb']:,.0f} MB / {r['small_mb']:,.0f} MB longest cutover wait | — | — | {size_ratio:.2f} × "
        f"| ≤ 1.5 × | {met(size_ratio <= 1.5)} |"
    )
    for label, d in ((f"{r['small_mb']:,.0f} MB", small), (f"{r['big_mb']:,.0f} MB", big)):
        add(
            f"| (same runs) longest write wait over the whole deploy, {label} | {fmt(d['longest_wait_ms'], 'ms', digits=1)}"
            f"; it fell in: {', '.join(d['longest_phases'])} | one ordinary write {d['ordinary_ms']['median']:.2f} ms "
            f"| — | — | — |"
        )
    mig = r["migration"]
    for name in ("sqlite3 CLI", "apsw"):
        if name in mig:
            ratio = mig["bluegreen"]["median"] / mig[name]["median"]
            label = (
                f"the same SQL through the sqlite3 CLI {r['cli_version']} on a copy"
                if name == "sqlite3 CLI"
                else f"the same SQL through apsw (SQLite {apsw.sqlite_lib_version()}) on a copy"
            )
            add(
                f"| shipped v2.0 migration, {sizes.migration_rows:,} content rows (n={mig['bluegreen']['n']}) "
                f"| {fmt(mig['bluegreen'], 's', digits=1)} | {label} {fmt(mig[name], 's', digits=1)} "
                f"| {ratio:.2f} × | ≤ 1.25 × | {met(ratio <= 1.25)} |"
            )
    pick = r["pickup"]
    add(
        f"| revert (toy database, clients following; n={pick['revert']['n']}) | median {pick['revert']['median']:.1f} ms, "
        f"p99 {pick['revert']['p99']:.1f} ms | — | — | median and p99 | yes |"
    )
    swap = r["swap"]
    add(
        f"| durable pointer swap (n={swap['n']}) | median {swap['median']:.2f} ms, p99 {swap['p99']:.2f} ms | — | — "
        f"| median and p99 | yes |"
    )
    for kind, label in client_pickup.LABELS.items():
        if kind in pick:
            add(
                f"| client pickup, {label} (n={pick[kind]['n']}) | median {pick[kind]['median']:.1f} ms, "
                f"p99 {pick[kind]['p99']:.1f} ms | — | — | median and p99 | yes |"
            )
    mem_ratio = big["peak_mb"]["median"] / small["peak_mb"]["median"]
    add(
        f"| peak memory of the controller (`deploy`, max RSS) on the {r['big_mb']:,.0f} MB blue "
        f"| {fmt(big['peak_mb'], 'MB', digits=0)} | the same on the {r['small_mb']:,.0f} MB blue "
        f"{fmt(small['peak_mb'], 'MB', digits=0)} | {mem_ratio:.2f} × | bounded, independent of table size "
        f"| {met(mem_ratio <= 1.5)} |"
    )
    return "\n".join(lines) + "\n"


def deploy_summary(runs: list[dict]) -> dict:
    keys = ("cutover_wait_ms", "pause_ms", "longest_wait_ms", "ordinary_ms", "peak_mb", "snapshot_ms")
    result = {key: summary([run[key] for run in runs]) for key in keys}
    result["n"] = len(runs)
    result["longest_phases"] = [run["longest_phase"] for run in runs]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, a few minutes")
    parser.add_argument("--out", type=Path, default=HERE / "results.md")
    parser.add_argument("--shared-with", type=int, default=None, help="other jobs on the machine, for the header")
    parser.add_argument("--only", nargs="*", default=None, help="debugging: run only these figures")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    started = time.perf_counter()
    r: dict = {"load": [os.getloadavg()[0]]}
    r["cli_version"] = (
        subprocess.run(["sqlite3", "--version"], capture_output=True, text=True).stdout.split()[0]
        if shutil.which("sqlite3")
        else "absent"
    )

    def step(name: str) -> bool:
        wanted = args.only is None or name in args.only
        if wanted:
            print(f"[{(time.perf_counter() - started) / 60:5.1f} min] {name}", flush=True)
        return wanted

    (HERE / "results").mkdir(exist_ok=True)  # gitignored: absent in a fresh clone
    with tempfile.TemporaryDirectory(prefix="bluegreen-bench-", dir=HERE / "results") as tmp:
        work = Path(tmp)
        big = datasets.fresh_blue(sizes.big_rows, work / "big" / "blue.db")
        small = datasets.cached_blue(sizes.small_rows)
        r["big_mb"], r["small_mb"] = os.path.getsize(big) / 1e6, os.path.getsize(small) / 1e6
        if step("snapshot"):
            r["snapshot"] = bench_snapshot(big, work, sizes.runs)
        remove_db(big)
        if step("capture"):
            r["capture"] = {
                sync: bench_capture_cost(small, work, sizes.runs, sync, batch)
                for sync, batch in (("FULL", 400), ("NORMAL", 2000))
            }
        if step("replay"):
            r["replay"] = bench_replay_rate(
                sizes.small_rows, min(sizes.replay_changes, sizes.small_rows), work, sizes.runs
            )
        if step("replay_keyed"):  # hazard 19: by table shape, size and count
            r["replay_keyed"] = replay_keyed.measure(work, replay_keyed.QUICK if args.quick else replay_keyed.FULL)
        if step("deploy"):
            small_runs, big_runs = [], []
            for _ in range(sizes.deploy_runs):  # interleaved, so both sizes see the same machine
                small_runs.append(bench_online_deploy(sizes.small_rows, work))
                big_runs.append(bench_online_deploy(sizes.big_rows, work))
            r["deploy_small"], r["deploy_big"] = deploy_summary(small_runs), deploy_summary(big_runs)
        if step("migration"):
            r["migration"] = bench_migration(sizes.migration_rows, work, sizes.migration_runs)
        if step("pickup"):
            r["swap"] = bench_pointer_swap(work)
            r["pickup"] = bench_pickup(sizes.pickup_cycles)
    r["load"].append(os.getloadavg()[0])
    (HERE / "results" / f"raw-{'quick' if args.quick else 'full'}.json").write_text(
        json.dumps(r, indent=1, default=str)
    )
    if args.only is None:
        text = table(sizes, args.quick, r, args.shared_with, time.perf_counter() - started)
        args.out.write_text(text)
        print(text)
    else:
        print(json.dumps(r, indent=1, default=str))


if __name__ == "__main__":
    main()
