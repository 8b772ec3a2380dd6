"""A stand-in application for the demo and the tests: writes v1.2.1 rows through the pointer.

Run as a separate process (`python -m bluegreen.tools.demo_writer POINTER LOG`). Every committed write
is appended to LOG as one JSON line, written straight to the file after the commit returns, so the
log is exactly the set of writes the application was told are committed — even if it is killed.
It stops when it meets the bluegreen fence (blue retired), when STOP appears, or after --seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

import apsw

from bluegreen.files import pointer

FENCE_MARK = "bluegreen_fenced"


def _record(fd: int, **fields: object) -> None:
    os.write(fd, (json.dumps(fields) + "\n").encode("utf-8"))


def patient(conn: apsw.Connection, timeout_s: float) -> None:
    """Wait for a lock by polling every millisecond, up to timeout_s. SQLite's own busy timeout
    sleeps in growing steps of up to 100 ms, so a writer can oversleep a 50 ms pause by 50 ms."""
    started = [0.0]

    def handler(prior_calls: int) -> bool:
        now = time.monotonic()
        if prior_calls == 0:
            started[0] = now
        if now - started[0] > timeout_s:
            return False
        time.sleep(0.001)
        return True

    conn.set_busy_handler(handler)


def write_one(conn: apsw.Connection, rng: random.Random, own_ids: list[int]) -> dict:
    """One application write in its own transaction: mostly inserts, some updates and deletes."""
    roll = rng.random()
    conn.execute("BEGIN IMMEDIATE")
    try:
        if roll < 0.15 and own_ids:
            row_id = rng.choice(own_ids)
            title = f"edited {rng.randrange(10**9)}"
            conn.execute("UPDATE content_v1 SET title = ? WHERE id = ?", (title, row_id))
            change = {"op": "update", "id": row_id, "title": title}
        elif roll < 0.20 and own_ids:
            row_id = own_ids.pop(rng.randrange(len(own_ids)))
            conn.execute("DELETE FROM downloads_v1 WHERE content_id = ?", (row_id,))
            conn.execute("DELETE FROM content_v1 WHERE id = ?", (row_id,))
            change = {"op": "delete", "id": row_id}
        else:
            video = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(11))
            url = f"https://www.youtube.com/watch?v={video}"
            metadata = json.dumps({"id": video, "duration": rng.randrange(30, 3600), "view_count": rng.randrange(10**6),
                                   "description": "written during the deploy", "upload_date": "20261123"})
            conn.execute(
                "INSERT INTO content_v1(url, title, author, platform, metadata, download_info) VALUES (?, ?, ?, ?, ?, ?)",
                (url, f"live write {video}", "demo writer", "youtube", metadata, None),
            )
            row_id = conn.last_insert_rowid()
            own_ids.append(row_id)
            change = {"op": "insert", "id": row_id, "title": f"live write {video}", "url": url}
        conn.execute("COMMIT")
    except BaseException:
        if not conn.get_autocommit():
            conn.execute("ROLLBACK")
        raise
    return change


def run(pointer_path: Path, log_path: Path, seconds: float, interval: float, seed: int) -> None:
    rng = random.Random(seed)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    stop_file = Path(f"{log_path}.stop")
    deadline = time.monotonic() + seconds
    own_ids: list[int] = []
    current = pointer.read(pointer_path)
    path = current.active_path(pointer_path)
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READWRITE)
    patient(conn, 120.0)  # at least the longest barrier the controller may hold
    _record(fd, event="start", file=path.name)
    parent = os.getppid()
    while time.monotonic() < deadline and not stop_file.exists() and os.getppid() == parent:
        started = time.perf_counter()
        try:
            change = write_one(conn, rng, own_ids)
        except apsw.Error as exc:
            if FENCE_MARK in str(exc):
                waited = round((time.perf_counter() - started) * 1000, 2)
                _record(fd, event="fenced", file=path.name, error=str(exc), wait_ms=waited, at=time.time())
                break
            raise
        _record(fd, event="committed", file=path.name, wait_ms=round((time.perf_counter() - started) * 1000, 2),
                at=time.time(), **change)
        time.sleep(interval)
    conn.close()
    _record(fd, event="stop")
    os.close(fd)


def read_log(log_path: Path) -> list[dict]:
    try:
        lines = Path(log_path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.strip()]


def writer_main(writer_run, description: str, seconds: float) -> None:
    """The command line every writer process shares: POINTER LOG [--seconds] [--interval] [--seed]."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("pointer", type=Path)
    parser.add_argument("log", type=Path)
    parser.add_argument("--seconds", type=float, default=seconds)
    parser.add_argument("--interval", type=float, default=0.002, help="pause between writes, seconds")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    writer_run(args.pointer, args.log, args.seconds, args.interval, args.seed)


def main() -> None:
    writer_main(run, __doc__, 60.0)


if __name__ == "__main__":
    main()
