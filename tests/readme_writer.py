"""A writer that knows nothing of bluegreen but the README's rules for clients ("## The pointer"),
written with the standard library only (sqlite3, tomllib): the kind of application a user in
another stack would write from the README.

Run as a real process: `python readme_writer.py POINTER LOG STOPFILE [SEED]`. Each write is one
explicit transaction (BEGIN IMMEDIATE … COMMIT); after COMMIT returns, one JSON line goes straight
to LOG (os.write, unbuffered), so LOG is exactly what the application was told is committed.

The rules, as the README states them:
- read the TOML, open `<pointer folder>/<active>` read-write without create (`mode=rw`);
- check the generation stamp (generation N >= 2 has `_bluegreen_meta.generation` = N);
- a busy timeout of at least the pause budget (here 60 s: waits are bluegreen's to bound);
- on `no such function: bluegreen_fenced_use_generation_N`: roll back, re-read the pointer; if it
  names another file, or the same file with another `switched_at` than the pointer this
  connection was opened under, reopen there and retry; otherwise wait a few ms and retry on the
  same connection.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import sys
import time
import tomllib
from pathlib import Path
from urllib.parse import quote

FENCE_ERROR = "no such function: bluegreen_fenced_use_generation_"


def read_pointer(pointer: Path) -> dict:
    return tomllib.loads(pointer.read_text())


def open_active(pointer: Path) -> tuple[sqlite3.Connection, dict]:
    """Open the file the pointer names; wait while its generation stamp disagrees."""
    while True:
        current = read_pointer(pointer)
        path = pointer.parent / current["active"]
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=rw", uri=True, timeout=60, isolation_level=None)
        if current["generation"] < 2 or _stamp(conn) == current["generation"]:
            return conn, current
        conn.close()
        time.sleep(0.005)


def _stamp(conn: sqlite3.Connection) -> int | None:
    try:
        row = conn.execute("SELECT value FROM _bluegreen_meta WHERE key = 'generation'").fetchone()
    except sqlite3.OperationalError:
        return None
    return int(row[0]) if row else None


def main(pointer: Path, log: Path, stop: Path, seed: int = 1) -> None:
    rng = random.Random(seed)
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    conn, opened_under = open_active(pointer)
    mine: list[int] = []
    counter = 0
    parent = os.getppid()
    while not stop.exists() and os.getppid() == parent:  # never outlive the test that started it
        counter += 1
        roll = rng.random()
        if roll < 0.2 and mine:
            row, op, name = rng.choice(mine), "update", f"r{seed}-upd-{counter}"
            sql, args = "UPDATE items SET name = ? WHERE id = ?", (name, row)
        elif roll < 0.3 and mine:
            row, op, name = mine.pop(rng.randrange(len(mine))), "delete", None
            sql, args = "DELETE FROM items WHERE id = ?", (row,)
        else:
            row, op, name = None, "insert", f"r{seed}-ins-{counter}"
            sql, args = "INSERT INTO items(name) VALUES (?)", (name,)
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                cursor = conn.execute(sql, args)
                if op == "insert":
                    row = cursor.lastrowid
                conn.execute("COMMIT")
                break
            except sqlite3.OperationalError as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if FENCE_ERROR not in str(exc):
                    raise
                os.write(
                    out,
                    (
                        json.dumps({"event": "fenced", "file": opened_under["active"], "at": time.time()}) + "\n"
                    ).encode(),
                )
                if stop.exists():
                    os.close(out)
                    return
                now = read_pointer(pointer)
                if (now["active"], now["switched_at"]) != (opened_under["active"], opened_under["switched_at"]):
                    conn.close()
                    conn, opened_under = open_active(pointer)
                else:
                    time.sleep(0.005)  # the swap is coming (or an operator runs resume): same connection
        if op == "insert":
            mine.append(row)
        record = {
            "event": "committed",
            "op": op,
            "id": row,
            "name": name,
            "file": opened_under["active"],
            "at": time.time(),
        }
        os.write(out, (json.dumps(record) + "\n").encode())
        time.sleep(0.002)
    os.close(out)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 1)
