"""Replication lag during a deploy, and the cost of cutover's wait for green's replica (issue 18).

    python bench/replication.py                   # the 100 MB blue (147,000 rows)
    python bench/replication.py --size 1gb        # the 1 GB blue (1,470,000 rows): on a quiet machine
    python bench/replication.py --rows 20000      # a quick check
    python bench/replication.py --shared-with 6   # say so in the header when other jobs share the machine

Two deploys of the same blue, each under WRITERS demo writers (the shipped v1.2.1 mix, ~100
writes/s each, through the pointer):

- replicated: `bluegreen replicate` running ([replication] to a file:// replica in the work
  folder, sync_interval_ms SYNC_MS), so deploy waits until green's replica has caught up before
  its catch-up-and-fence; the replica's lag behind each replicated file is sampled every
  SAMPLE_S (transactions Litestream saw locally but the replica does not hold yet);
- baseline: the same deploy without replication.

Figures: each deploy's total time, the wait (the `replication_waited` event), the write pause,
the largest lag sampled (in Litestream transactions, and how long the replica stayed behind),
and `bluegreen restore` of the result: its time and that it restored the new generation with
every acknowledged write. Writes bench/results-replication.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import datasets
from machine import machine

from bluegreen.files.journal import Store
from bluegreen.replication import litestream, state
from bluegreen.tools.demo import verify_writes
from bluegreen.tools.writer_process import WriterProcess, read_log

WRITERS = 2
INTERVAL_S = 0.01
SYNC_MS = 100
SAMPLE_S = 0.25
REPLICATION = """
[replication]
replica = "file://{replica}"
sync_interval_ms = {sync_ms}
wait_timeout_s = 600
"""


class LagSampler(threading.Thread):
    """Every SAMPLE_S: for each file `bluegreen replicate` replicates, local txid - replica txid."""

    def __init__(self, pointer: Path):
        super().__init__(daemon=True)
        self.store = Store(pointer)
        self.samples: list[tuple[float, str, int]] = []
        self.done = threading.Event()

    def run(self) -> None:
        exe = str(Path(sys.executable).parent / "litestream")
        while not self.done.is_set():
            status = state.read_status(self.store)
            for db in (status or {}).get("databases", []):
                remote = litestream.replica_position(exe, db["url"])
                if remote is not None:
                    lag = max(0, litestream.local_txid(Path(db["path"])) - remote.txid)
                    self.samples.append((time.time(), db["name"], lag))
            self.done.wait(SAMPLE_S)

    def behind_s(self) -> float:
        """The longest stretch any one file's replica was behind, from the samples."""
        longest, since = 0.0, {}
        for at, name, lag in self.samples:
            if lag and name not in since:
                since[name] = at
            elif not lag and name in since:
                longest = max(longest, at - since.pop(name))
        return longest


def one_deploy(rows: int, work: Path, replicated: bool) -> dict:
    folder = work / f"deploy-{rows}-{'replicated' if replicated else 'baseline'}"
    shutil.rmtree(folder, ignore_errors=True)
    datasets.fresh_blue(rows, folder / "data" / "app.db")
    replica = folder / "replica"
    config = datasets.DEMO_CONFIG.format(schemas=REPO / "schemas")
    if replicated:
        config += REPLICATION.format(replica=replica, sync_ms=SYNC_MS)
    (folder / "config.toml").write_text(config)
    cli = [sys.executable, "-m", "bluegreen", "--config", str(folder / "config.toml")]
    subprocess.run(cli + ["init"], check=True, capture_output=True)
    size_mb = os.path.getsize(folder / "data" / "app.db") / 1e6
    replicator = sampler = None
    if replicated:
        replicator = subprocess.Popen(
            cli + ["replicate"], stdout=open(folder / "replicate.log", "w"), stderr=subprocess.STDOUT
        )
        while not (state.read_status(Store(folder / "data" / "current.toml")) or {}).get("databases"):
            time.sleep(0.1)
        sampler = LagSampler(folder / "data" / "current.toml")
        sampler.start()
    logs = [folder / f"writer{i}.log" for i in range(WRITERS)]
    procs = [
        WriterProcess.start(
            "demo", folder / "data" / "current.toml", log, interval=INTERVAL_S, seed=i + 1, seconds=36_000
        )
        for i, log in enumerate(logs)
    ]
    try:
        time.sleep(2.0)
        started = time.time()
        done = subprocess.run(cli + ["deploy", "--json"], capture_output=True, text=True)
        deploy_s = time.time() - started
        if done.returncode != 0:
            raise SystemExit(f"deploy failed (exit {done.returncode}): {done.stderr[-2000:]}")
        for proc in procs:
            proc.wait(timeout=120)  # each stops at the fence
    finally:
        for proc in procs:
            proc.kill()
    report = json.loads(done.stdout)
    for log in logs:
        problems = verify_writes(read_log(log), Path(report["active"]))
        if problems:
            raise SystemExit(f"lost writes: {problems[:3]}")
    events = [json.loads(line) for line in (folder / "data" / ".bluegreen" / "events.jsonl").read_text().splitlines()]
    waited = [e["waited_ms"] for e in events if e["event"] == "replication_waited"]
    result = {
        "size_mb": size_mb,
        "replicated": replicated,
        "deploy_s": deploy_s,
        "pause_ms": report.get("write_pause_ms"),
    }
    if replicated:
        time.sleep(3 * SYNC_MS / 1000 + 1)  # the writers stopped: let the replica catch up
        sampler.done.set()
        sampler.join()
        replicator.send_signal(signal.SIGTERM)
        replicator.wait(60)
        restored = folder / "restored"
        began = time.time()
        back = subprocess.run(
            [
                sys.executable,
                "-m",
                "bluegreen",
                "restore",
                "--from",
                f"file://{replica}",
                "--into",
                str(restored),
                "--json",
            ],
            capture_output=True,
            text=True,
        )
        if back.returncode != 0:
            raise SystemExit(f"restore failed: {back.stderr[-2000:]}")
        restore_s = time.time() - began
        active = Path(json.loads(back.stdout)["active"])
        for log in logs:
            problems = verify_writes(read_log(log), active)
            if problems:
                raise SystemExit(f"the restore lost writes: {problems[:3]}")
        result |= {
            "wait_ms": waited[-1] if waited else None,
            "max_lag_txids": max((lag for _, _, lag in sampler.samples), default=0),
            "behind_s": sampler.behind_s(),
            "samples": len(sampler.samples),
            "restore_s": restore_s,
            "restored": active.name,
        }
    shutil.rmtree(folder)
    return result


def table(results: list[dict], header: str) -> str:
    lines = [
        header,
        "",
        "| blue | deploy | deploy time | write pause | wait for green's replica | largest lag | longest behind | restore |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        replicated = r["replicated"]
        lines.append(
            f"| {r['size_mb']:.0f} MB | {'replicated' if replicated else 'baseline'} | {r['deploy_s']:.1f} s | "
            f"{r['pause_ms']:.1f} ms | "
            + (
                f"{r['wait_ms']:.0f} ms | {r['max_lag_txids']} txids | {r['behind_s']:.2f} s | "
                f"{r['restore_s']:.1f} s ({r['restored']}, every write) |"
                if replicated
                else "- | - | - | - |"
            )
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(datasets.ROWS_FOR_SIZE), default="100mb")
    parser.add_argument("--rows", type=int, default=None, help="content rows instead of --size")
    parser.add_argument("--shared-with", type=int, default=0, help="other jobs on the machine, for the header")
    parser.add_argument("--out", default=str(HERE / "results-replication.md"))
    args = parser.parse_args()
    rows = args.rows or datasets.ROWS_FOR_SIZE[args.size]
    work = Path(tempfile.mkdtemp(prefix="bluegreen-bench-replication-"))
    try:
        results = [one_deploy(rows, work, replicated=False), one_deploy(rows, work, replicated=True)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    shared = f" (shared with {args.shared_with} other jobs: timings are rough)" if args.shared_with else ""
    header = (
        f"# Replication during a deploy\n\n`python bench/replication.py --rows {rows}` on {machine()}{shared}; "
        f"Litestream {litestream_version()}, sync_interval_ms {SYNC_MS}, {WRITERS} demo writers."
    )
    text = table(results, header)
    Path(args.out).write_text(text)
    print(text)


def litestream_version() -> str:
    exe = str(Path(sys.executable).parent / "litestream")
    return subprocess.run([exe, "version"], capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    main()
