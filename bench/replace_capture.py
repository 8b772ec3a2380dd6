"""Per-write cost of capture on tables with uniqueness indexes (hazards 5, 13), against the same
writes without capture and with the capture of an earlier commit (which missed most REPLACE
deletes), in the same run, alternating.

    python bench/replace_capture.py [--rows 20000] [--writes 2000] [--runs 7] [--baseline deb0377]

Tables: settings(key TEXT PRIMARY KEY) — the rowid table whose PK is not the rowid alias —,
users(email UNIQUE COLLATE NOCASE), tags(lower(trim(label))) expression UNIQUE index, and
kv(k TEXT PRIMARY KEY) WITHOUT ROWID. The write mix: INSERT OR REPLACE of an existing key, UPSERT,
plain UPDATE of a non-key column, INSERT of a new key, DELETE; each its own transaction.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
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

import apsw

from bluegreen.engine import capture
from bluegreen.engine.db import open_db

SCHEMA = """
CREATE TABLE settings(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT UNIQUE COLLATE NOCASE, name TEXT);
CREATE TABLE tags(id INTEGER PRIMARY KEY, label TEXT, v TEXT);
CREATE UNIQUE INDEX tags_label ON tags(lower(trim(label)));
CREATE TABLE kv(k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;
"""


def build(path: Path, rows: int) -> None:
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA journal_mode=WAL").get
    with conn:
        for _ in conn.execute(SCHEMA):
            pass
        conn.executemany("INSERT INTO settings VALUES (?, ?)", [(f"key{i}", "v") for i in range(rows)])
        conn.executemany(
            "INSERT INTO users(email, name) VALUES (?, ?)", [(f"u{i}@example.com", "n") for i in range(rows)]
        )
        conn.executemany("INSERT INTO tags(label, v) VALUES (?, ?)", [(f"Label {i}", "v") for i in range(rows)])
        conn.executemany("INSERT INTO kv VALUES (?, ?)", [(f"key{i}", "v") for i in range(rows)])
    conn.close()


def write(conn: apsw.Connection, rng: random.Random, rows: int, counter: int) -> None:
    i, new = rng.randrange(rows), rows + counter
    table = rng.choice(["settings", "users", "tags", "kv"])
    roll = rng.random()
    if table == "settings":
        sql = (
            ("INSERT OR REPLACE INTO settings VALUES (?, ?)", (f"key{i}", "r"))
            if roll < 0.3
            else (
                "INSERT INTO settings VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (f"key{i}", "u"),
            )
            if roll < 0.5
            else ("UPDATE settings SET value = ? WHERE key = ?", ("w", f"key{i}"))
            if roll < 0.8
            else ("INSERT INTO settings VALUES (?, ?)", (f"new{new}", "n"))
            if roll < 0.95
            else ("DELETE FROM settings WHERE key = ?", (f"key{i}",))
        )
    elif table == "users":
        sql = (
            ("INSERT OR REPLACE INTO users(id, email, name) VALUES (?, ?, ?)", (i + 1, f"U{i}@example.com", "r"))
            if roll < 0.3
            else ("UPDATE users SET name = ? WHERE id = ?", ("w", i + 1))
            if roll < 0.8
            else ("INSERT INTO users(email, name) VALUES (?, ?)", (f"new{new}@example.com", "n"))
            if roll < 0.95
            else ("DELETE FROM users WHERE id = ?", (i + 1,))
        )
    elif table == "tags":
        sql = (
            ("INSERT OR REPLACE INTO tags(id, label, v) VALUES (?, ?, ?)", (i + 1, f" label {i}", "r"))
            if roll < 0.3
            else ("UPDATE tags SET v = ? WHERE id = ?", ("w", i + 1))
            if roll < 0.8
            else ("INSERT INTO tags(label, v) VALUES (?, ?)", (f"new {new}", "n"))
            if roll < 0.95
            else ("DELETE FROM tags WHERE id = ?", (i + 1,))
        )
    else:
        sql = (
            ("INSERT OR REPLACE INTO kv VALUES (?, ?)", (f"key{i}", "r"))
            if roll < 0.5
            else ("UPDATE kv SET v = ? WHERE k = ?", ("w", f"key{i}"))
            if roll < 0.8
            else ("INSERT INTO kv VALUES (?, ?)", (f"new{new}", "n"))
            if roll < 0.95
            else ("DELETE FROM kv WHERE k = ?", (f"key{i}",))
        )
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(*sql)
        conn.execute("COMMIT")
    except apsw.ConstraintError:
        conn.execute("ROLLBACK")


def load_capture_at(commit: str, work: Path):
    """bluegreen/capture.py as it was at `commit`, imported as its own module."""
    text = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{commit}:bluegreen/capture.py"], check=True, capture_output=True, text=True
    ).stdout
    path = work / f"capture_{commit}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(f"capture_{commit}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--writes", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--baseline", default="deb0377", help="commit whose capture to compare with")
    parser.add_argument("--synchronous", default="NORMAL")
    args = parser.parse_args()
    (HERE / "results").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="replace-bench-", dir=HERE / "results"))  # on the project's disk, not a tmpfs
    try:
        seed = work / "seed.db"
        build(seed, args.rows)
        variants = {"plain": None, "baseline": load_capture_at(args.baseline, work), "now": capture}
        conns = {}
        for name, module in variants.items():
            path = work / f"{name}.db"
            shutil.copyfile(seed, path)
            if module is not None:
                conn = open_db(path, triggers=False)
                conn.execute("BEGIN IMMEDIATE")
                module.install_capture(conn, guard=False)
                conn.execute("COMMIT")
                conn.close()
            conns[name] = open_db(path)
            conns[name].execute(f"PRAGMA synchronous = {args.synchronous}")
        per_write = {name: [] for name in variants}
        for run in range(args.runs):
            order = list(variants) if run % 2 == 0 else list(reversed(variants))
            for name in order:
                rng = random.Random(run)
                started = time.perf_counter()
                for i in range(args.writes):
                    write(conns[name], rng, args.rows, run * args.writes + i)
                per_write[name].append((time.perf_counter() - started) / args.writes)
        captured = {
            name: conns[name].execute("SELECT count(*) FROM _bluegreen_capture WHERE op = 'D'").get
            for name in ("baseline", "now")
        }
        for conn in conns.values():
            conn.close()
        med = {n: statistics.median(v) for n, v in per_write.items()}
        ratio_now = statistics.median(n / p for n, p in zip(per_write["now"], per_write["plain"]))
        ratio_base = statistics.median(b / p for b, p in zip(per_write["baseline"], per_write["plain"]))
        print(
            f"rows per table {args.rows:,}, {args.writes:,} writes x {args.runs} runs, synchronous={args.synchronous}"
        )
        for name in variants:
            print(
                f"  {name:<9} {med[name] * 1e6:8.1f} us/write (min {min(per_write[name]) * 1e6:.1f}, max {max(per_write[name]) * 1e6:.1f})"
            )
        print(f"  capture now / plain      {ratio_now:.3f} x (goal <= 1.1 x)")
        print(f"  capture {args.baseline} / plain {ratio_base:.3f} x")
        print(f"  REPLACE deletes recorded: now {captured['now']:,}, {args.baseline} {captured['baseline']:,}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
