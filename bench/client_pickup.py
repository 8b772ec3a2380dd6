"""Pickup: time from the pointer swap to client processes using the new file.

    python bench/client_pickup.py               # 100 deploy + revert cycles, under a minute
    python bench/client_pickup.py --cycles 5    # a quick look
    python bench/client_pickup.py --kinds django    # one kind alone

Client processes follow the pointer through `bluegreen.client` while this process runs real
`deploy` and `revert` commands (the controller, in-process) on a small toy database:

  reader    a read every ~1 ms; follows through the watchdog observer
  writer    an INSERT every ~2 ms; meets the barrier and the fence, then follows
  polling   a read every ~1 ms with watchdog off (poll_interval 0.1 s): the fallback
  sqlalchemy  an INSERT every ~2 ms in `engine.begin()` on create_engine("bluegreen+sqlite:///...")
            (bluegreen.sqlalchemy: QueuePool, the standard library's sqlite3 under it)
  django    (when Django is installed) a Django process on `ENGINE: bluegreen.django` with a
            persistent connection: an INSERT every ~2 ms, each one a "request" (Django's
            close_old_connections before and after, as its request signals do)

The swap instant is taken right after `os.replace` puts the new pointer in place (the folder
fsync that follows is not counted). A client's pickup is its first statement that ran on the
new file, minus that instant, on the machine-wide monotonic clock. The statement interval (1 or
2 ms) is part of the figure: that is how soon an application that issues statements that often
can notice. Prints a Markdown table: one row per client kind, with the machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

import apsw
from machine import machine

from bluegreen.cli import main as bluegreen
from bluegreen.files import pointer

SCHEMAS = {
    "001_v1.0.0_items.sql": "CREATE TABLE IF NOT EXISTS items(id INTEGER PRIMARY KEY, name TEXT);\n",
    "002_v2.0.0_names.sql": "CREATE TABLE names(id INTEGER PRIMARY KEY, upper_name TEXT NOT NULL);\n"
    "INSERT INTO names SELECT id, upper(coalesce(name, '')) FROM items;\n",
    "002_v2.0.0_names_sync.sql": "DELETE FROM names WHERE id IN (SELECT row_key FROM temp.bluegreen_changes WHERE table_name = 'items');\n"
    "INSERT INTO names SELECT id, upper(coalesce(name, '')) FROM items WHERE id IN "
    "(SELECT row_key FROM temp.bluegreen_changes WHERE table_name = 'items' AND present = 1);\n",
}
CONFIG = """\
[database]
pointer = "data/current.toml"
initial = "data/app.db"
[migrations]
dir = "schemas"
"""
KINDS = {"reader": 0.001, "writer": 0.002, "polling": 0.001, "sqlalchemy": 0.002}  # statement interval, seconds
if importlib.util.find_spec("django"):
    KINDS["django"] = 0.002


# -- the client processes ---------------------------------------------------------------------------
def client_process(kind: str, pointer_path: str, log: str, stop: str) -> None:
    if kind == "sqlalchemy":
        return sqlalchemy_process(pointer_path, log, stop)
    if kind == "django":
        return django_process(pointer_path, log, stop)
    from bluegreen import client

    options = dict(watch=False, poll_interval=0.1) if kind == "polling" else {}
    conn = client.connect(pointer_path, **options)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    last = None
    interval = KINDS[kind]
    while not os.path.exists(stop):
        if kind == "writer":
            conn.execute("INSERT INTO items(name) VALUES ('pickup')")
        else:
            conn.execute("SELECT name FROM items WHERE id = 1").fetchall()
        if conn.path.name != last:  # the statement just run ran on this file
            last = conn.path.name
            os.write(fd, (json.dumps({"t": time.monotonic(), "file": last}) + "\n").encode())
        time.sleep(interval)
    conn.close()
    os.close(fd)


def sqlalchemy_process(pointer_path: str, log: str, stop: str) -> None:
    import sqlalchemy

    import bluegreen.sqlalchemy

    engine = bluegreen.sqlalchemy.create_engine(pointer_path)
    insert = sqlalchemy.text("INSERT INTO items(name) VALUES ('pickup')")
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    last = None
    while not os.path.exists(stop):
        with engine.begin() as db:
            db.execute(insert)
            file = db.connection.driver_connection.path.name
        if file != last:  # the statement just run ran on this file
            last = file
            os.write(fd, (json.dumps({"t": time.monotonic(), "file": last}) + "\n").encode())
        time.sleep(KINDS["sqlalchemy"])
    engine.dispose()


def django_process(pointer_path: str, log: str, stop: str) -> None:
    import django
    from django.conf import settings

    settings.configure(
        DATABASES={"default": {"ENGINE": "bluegreen.django", "NAME": pointer_path, "CONN_MAX_AGE": None}}
    )
    django.setup()
    from django.db import close_old_connections, connection

    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    last = None
    while not os.path.exists(stop):
        close_old_connections()  # request_started
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO items(name) VALUES ('pickup')")
        if connection.bluegreen_target.file != last:
            last = connection.bluegreen_target.file
            os.write(fd, (json.dumps({"t": time.monotonic(), "file": last}) + "\n").encode())
        close_old_connections()  # request_finished
        time.sleep(KINDS["django"])
    connection.close()
    os.close(fd)


# -- the controller side ----------------------------------------------------------------------------
class TimedOs:
    """The pointer module's `os`, noting when the pointer itself is replaced."""

    def __init__(self, target: Path, swaps: list[tuple[float, str]]):
        self._target, self._swaps = str(target), swaps

    def replace(self, src, dst) -> None:
        os.replace(src, dst)
        if str(dst) == self._target:
            self._swaps.append((time.monotonic(), pointer.read(Path(dst)).active))

    def __getattr__(self, name):
        return getattr(os, name)


def make_project(root: Path, rows: int) -> Path:
    (root / "schemas").mkdir()
    for name, text in SCHEMAS.items():
        (root / "schemas" / name).write_text(text)
    (root / "data").mkdir()
    (root / "config.toml").write_text(CONFIG)
    conn = apsw.Connection(str(root / "data" / "app.db"))
    conn.execute("PRAGMA journal_mode = WAL").fetchall()
    with conn:
        conn.execute("CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO items(name) VALUES (?)", [(f"item {i}",) for i in range(rows)])
    conn.close()
    run(root, "init")
    return root / "data" / "current.toml"


def run(root: Path, *args: str) -> None:
    with open(os.devnull, "w") as quiet:
        stdout = sys.stdout
        sys.stdout = quiet
        try:
            code = bluegreen(["--config", str(root / "config.toml"), *args])
        finally:
            sys.stdout = stdout
    if code != 0:
        raise SystemExit(f"bluegreen {' '.join(args)} failed with exit code {code}")


def first_on(log: Path, file: str, after: float) -> float | None:
    for line in log.read_text().splitlines() if log.exists() else []:
        event = json.loads(line)
        if event["file"] == file and event["t"] >= after:
            return event["t"]
    return None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def measure(cycles: int, per_kind: int, rows: int) -> dict:
    """Deploy + revert `cycles` times with client processes following; returns each kind's pickups
    (ms), each revert's duration (ms), and how many pickups were not seen within 10 s."""
    with tempfile.TemporaryDirectory(prefix="bluegreen-pickup-") as tmp:
        root = Path(tmp)
        pointer_path = make_project(root, rows)
        swaps: list[tuple[float, str]] = []
        pointer.os = TimedOs(pointer_path.resolve(), swaps)
        stop = root / "stop"
        clients = []
        for kind in KINDS:
            for n in range(per_kind):
                log = root / f"{kind}{n}.log"
                proc = subprocess.Popen(
                    [sys.executable, __file__, "--client", kind, str(pointer_path), str(log), str(stop)]
                )
                clients.append((kind, log, proc))
        picked: dict[str, list[float]] = {kind: [] for kind in KINDS}
        reverts: list[float] = []
        missed = 0
        try:
            for _kind, log, _ in clients:
                wait_until(lambda log=log: first_on(log, "app.db", 0) is not None, 30)
            for _ in range(cycles):
                for command in ("deploy", "revert"):
                    started = time.perf_counter()
                    run(root, command)
                    if command == "revert":
                        reverts.append((time.perf_counter() - started) * 1000)
                    at, file = swaps[-1]
                    for kind, log, _ in clients:
                        if wait_until(lambda log=log, file=file, at=at: first_on(log, file, at) is not None, 10):
                            picked[kind].append((first_on(log, file, at) - at) * 1000)
                        else:
                            missed += 1
        finally:
            pointer.os = os
            stop.write_text("stop")
            died = [f"{kind} (exit {proc.wait(timeout=60)})" for kind, _, proc in clients if proc.wait(timeout=60) != 0]
        if died:
            raise SystemExit(f"client processes failed: {', '.join(died)}")
    return {"picked": picked, "reverts_ms": reverts, "missed": missed}


LABELS = {
    "reader": "reader, watchdog (read every 1 ms)",
    "writer": "writer, fence (insert every 2 ms)",
    "polling": "reader, polling only (every 0.1 s)",
    "sqlalchemy": "SQLAlchemy, `engine.begin()` insert every 2 ms",
    "django": "Django, bluegreen.django (insert every 2 ms, persistent connection)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=100, help="deploy + revert cycles (two swaps each)")
    parser.add_argument("--per-kind", type=int, default=2, help="client processes of each kind")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--kinds", default=",".join(KINDS), help="client kinds to run, comma-separated")
    args = parser.parse_args()
    for kind in [k for k in KINDS if k not in args.kinds.split(",")]:
        del KINDS[kind]
    measured = measure(args.cycles, args.per_kind, args.rows)
    missed = measured["missed"]
    print(
        f"{args.cycles * 2} swaps (deploy + revert), {args.per_kind} client processes of each kind"
        + (f"; {missed} pickups not seen within 10 s" if missed else "")
    )
    print()
    print("| machine | client | pickups | median | p99 | max |")
    print("|---|---|---:|---:|---:|---:|")
    for kind, values in measured["picked"].items():
        if values:
            print(
                f"| {machine()} | {LABELS[kind]} | {len(values)} | {statistics.median(values):.2f} ms "
                f"| {percentile(values, 99):.2f} ms | {max(values):.2f} ms |"
            )


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client_process(*sys.argv[2:6])
    else:
        main()
