"""A test application: writes `items` rows through the pointer and follows it across swaps.

Run as a real process: `python pointer_writer.py POINTER LOG STOPFILE`. Each write is its own
transaction; after COMMIT returns, one JSON line goes straight to LOG (os.write, no buffering), so
LOG is exactly what the application was told is committed, even if it is killed. A write refused
by the bluegreen fence re-reads the pointer, reopens and retries: the refused write was never
committed, so retrying it is correct.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
import tomllib
from pathlib import Path

import apsw


def active(pointer: Path) -> Path:
    while True:
        try:
            return pointer.parent / tomllib.loads(pointer.read_text())["active"]
        except (OSError, ValueError, KeyError):
            time.sleep(0.001)


def main(pointer: Path, log: Path, stop: Path, seed: int = 1) -> None:
    rng = random.Random(seed)
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    path = active(pointer)
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READWRITE)
    conn.set_busy_timeout(60_000)
    mine: list[int] = []
    counter = 0
    parent = os.getppid()
    while not stop.exists() and os.getppid() == parent:  # never outlive the test that started it
        counter += 1
        roll = rng.random()
        if roll < 0.2 and mine:
            row, op, name = rng.choice(mine), "update", f"w{seed}-upd-{counter}"
            sql, args = "UPDATE items SET name = ? WHERE id = ?", (name, row)
        elif roll < 0.3 and mine:
            row, op, name = mine.pop(rng.randrange(len(mine))), "delete", None
            sql, args = "DELETE FROM items WHERE id = ?", (row,)
        else:
            row, op, name = None, "insert", f"w{seed}-ins-{counter}"
            sql, args = "INSERT INTO items(name) VALUES (?)", (name,)
        while True:
            started = time.perf_counter()
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(sql, args)
                if op == "insert":
                    row = conn.last_insert_rowid()
                conn.execute("COMMIT")
                break
            except apsw.Error as exc:
                if not conn.get_autocommit():
                    conn.execute("ROLLBACK")
                if "bluegreen_fenced" not in str(exc):
                    raise
                os.write(out, (json.dumps({"event": "fenced", "file": path.name}) + "\n").encode())
                if stop.exists():
                    os.close(out)
                    return
                # The pointer has moved, or is about to; or it names a file whose fence is being
                # lifted (a revert unfences right after its swap). Either way: pause, reopen, retry.
                time.sleep(0.005)
                conn.close()
                path = active(pointer)
                conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READWRITE)
                conn.set_busy_timeout(60_000)
        if op == "insert":
            mine.append(row)
        record = {"event": "committed", "op": op, "id": row, "name": name, "file": path.name,
                  "wait_ms": round((time.perf_counter() - started) * 1000, 2)}
        os.write(out, (json.dumps(record) + "\n").encode())
        time.sleep(0.001)
    os.close(out)


def expected_rows(log: Path) -> dict[int, str | None]:
    """id -> last committed name (None: deleted), from the writer's log."""
    state: dict[int, str | None] = {}
    for line in log.read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "committed":
            state[event["id"]] = event["name"]
    return state


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 1)
