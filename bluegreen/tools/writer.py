"""The one writer program: an application stand-in that writes from its own process, for the
demo, rehearsals, the tests and the benchmarks.

    python -m bluegreen.tools.writer MODE TARGET [LOG] [--stop FILE] [--seconds S] [--interval S]
                                     [--seed N] [--count N] [--kind writer|transaction|reader]

Every write is logged to LOG only after its COMMIT returned, one JSON line written straight to the
file (os.write, no buffer), so LOG is exactly the set of writes the application was told are
committed, even if the process is killed (the `steady` mode alone logs at the end: a benchmark's
writer must not add I/O to the waits it measures). It stops when STOP (default LOG.stop) appears,
after --seconds, after --count writes, when its parent is gone, or where the mode says at the fence.
bluegreen.tools.writer_process starts it and reads LOG.

Modes, and what each stays faithful to (apsw alone, or bluegreen.client alone; never two SQLite
libraries on one file in one process, hazard 8):
  demo       TARGET is the pointer: the shipped example's v1.2.1 mix (inserts, updates, deletes);
             stops at the fence (blue retired); with --follow N it then reopens the file the
             pointer names and makes N writes there in its schema (writer_green.py)
  rehearsal  TARGET is the pointer: same-value updates on the largest rowid table of any schema
             (takes the lock, fires capture, invents no data); stops at the fence, or follows
             the pointer as demo does with --follow N
  pointer    TARGET is the pointer: inserts, updates, deletes on `items`; a write the fence refuses
             re-reads the pointer, reopens and retries (it was never committed)
  pulse      TARGET is the pointer: one INSERT INTO t0 a transaction, gaps of --interval s on average
             (random); a write the fence refuses reopens and retries
  client     TARGET is the pointer: the same mix through bluegreen.client (--kind writer), whole
             transactions with retries (--kind transaction) or reads (--kind reader); logs failures
  snapshot   TARGET is the file: random writes on `items`, each also appended to `history`, with a
             small wal_autocheckpoint so the WAL restarts while copies run
  steady     TARGET is the file: demo_data.random_v1_write every --interval seconds
  zoo        TARGET is the file: random schema-zoo statements (zoo_data), autocommit; stops at the fence
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import apsw

from bluegreen.engine.db import quote_ident, user_tables
from bluegreen.files import pointer
from bluegreen.tools import demo_data
from bluegreen.tools.writer_green import follow, ms_since, patient

FENCE_MARK = "bluegreen_fenced"
READ_WRITE = apsw.SQLITE_OPEN_READWRITE


class Log:
    """The acknowledged-writes record: one JSON line per event, appended with os.write."""

    def __init__(self, path: Path | None):
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if path is not None else None

    def __call__(self, **fields: object) -> None:
        if self.fd is not None:
            os.write(self.fd, (json.dumps(fields) + "\n").encode("utf-8"))

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


@dataclass
class Run:
    """One writer's arguments and its reasons to stop."""

    target: Path
    log: Log
    stop: Path | None
    deadline: float
    interval: float
    seed: int
    count: int  # writes to make; -1: no limit
    kind: str
    parent: int
    follow: int = 0  # writes to make on the pointer's new file after the fence (demo, rehearsal)

    def going(self) -> bool:
        """Until STOP appears, the deadline passes or the parent is gone (never outlive the test)."""
        return (
            time.monotonic() < self.deadline
            and not (self.stop is not None and self.stop.exists())
            and os.getppid() == self.parent
        )


def refused_by_fence(conn: apsw.Connection, exc: apsw.Error) -> bool:
    """After a write failed: roll back what it left open; True when the fence refused it (so it
    was never committed), False for any other error (the caller raises it)."""
    if not conn.get_autocommit():
        conn.execute("ROLLBACK")
    return FENCE_MARK in str(exc)


# -- demo: the shipped example's application ------------------------------------------------------
def demo(run: Run) -> None:
    rng = random.Random(run.seed)
    own_ids: list[int] = []
    path = pointer.read(run.target).active_path(run.target)
    conn = apsw.Connection(str(path), flags=READ_WRITE)
    patient(conn, 120.0)  # at least the longest barrier the controller may hold
    run.log(event="start", file=path.name)
    while run.going():
        started = time.perf_counter()
        try:
            change = demo_data.demo_write(conn, rng, own_ids)
        except apsw.Error as exc:
            if FENCE_MARK in str(exc):
                run.log(event="fenced", file=path.name, error=str(exc), wait_ms=ms_since(started), at=time.time())
                if not conn.get_autocommit():
                    conn.execute("ROLLBACK")
                if run.follow:
                    follow(run, conn, path, run.follow)
                break
            raise
        run.log(event="committed", file=path.name, wait_ms=ms_since(started), at=time.time(), **change)
        time.sleep(run.interval)
    conn.close()
    run.log(event="stop")


# -- rehearsal: any schema, no invented data ------------------------------------------------------
def largest_table(conn: apsw.Connection) -> tuple[str, str, str, list[int]] | None:
    """(table, column, rowid alias, some rowids) of the largest rowid table with rows, or None.
    Inserting made-up rows into an unknown schema could break its constraints, and the
    rehearsal's copy should stay the live data: so same-value updates of existing rows."""
    best = None
    for table in user_tables(conn):
        if table.virtual or table.without_rowid:
            continue
        name = quote_ident(table.name)
        count = conn.execute(f"SELECT count(*) FROM {name}").get
        column = conn.execute("SELECT name FROM pragma_table_info(?) ORDER BY cid LIMIT 1", (table.name,)).get
        if count and column and (best is None or count > best[0]):
            best = (count, table.name, column, table.rowid_alias)
    if best is None:
        return None
    _, table, column, alias = best
    keys = [r for (r,) in conn.execute(f"SELECT {alias} FROM {quote_ident(table)} LIMIT 1000")]
    return table, column, alias, keys


def rehearsal(run: Run) -> None:
    rng = random.Random(run.seed)
    path = pointer.read(run.target).active_path(run.target)
    conn = apsw.Connection(str(path), flags=READ_WRITE)
    patient(conn, 120.0)  # at least the longest barrier the controller may hold
    found = largest_table(conn)
    if found is None:
        run.log(event="no_target", file=path.name)
        conn.close()
        return
    table, column, alias, keys = found
    update = f"UPDATE {quote_ident(table)} SET {quote_ident(column)} = {quote_ident(column)} WHERE {alias} = ?"
    run.log(event="start", file=path.name, table=table)
    while run.going():
        key = rng.choice(keys)
        started = time.perf_counter()
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(update, (key,))
            conn.execute("COMMIT")
        except apsw.Error as exc:
            if not refused_by_fence(conn, exc):
                raise
            run.log(event="fenced", file=path.name, error=str(exc), wait_ms=ms_since(started), at=time.time())
            if run.follow:
                follow(run, conn, path, run.follow)
            break
        run.log(
            event="committed",
            file=path.name,
            wait_ms=ms_since(started),
            at=time.time(),
            op="touch",
            table=table,
            id=key,
        )
        time.sleep(run.interval)
    conn.close()
    run.log(event="stop")


# -- pointer: an application that follows the pointer across swaps -------------------------------
def active_file(pointer_path: Path) -> Path:
    """The pointer's active file, read as any application would (plain TOML)."""
    while True:
        try:
            return pointer_path.parent / tomllib.loads(pointer_path.read_text())["active"]
        except (OSError, ValueError, KeyError):
            time.sleep(0.001)


def follow_pointer(run: Run) -> None:
    rng, seed = random.Random(run.seed), run.seed
    path = active_file(run.target)
    conn = apsw.Connection(str(path), flags=READ_WRITE)
    conn.set_busy_timeout(60_000)
    mine: list[int] = []
    counter = 0
    while run.going():
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
                if not refused_by_fence(conn, exc):
                    raise
                run.log(event="fenced", file=path.name)
                if not run.going():
                    return
                # The pointer has moved, or is about to; or it names a file whose fence is being
                # lifted (a revert unfences right after its swap). Either way: pause, reopen, retry.
                time.sleep(0.005)
                conn.close()
                path = active_file(run.target)
                conn = apsw.Connection(str(path), flags=READ_WRITE)
                conn.set_busy_timeout(60_000)
        if op == "insert":
            mine.append(row)
        run.log(event="committed", op=op, id=row, name=name, file=path.name, wait_ms=ms_since(started))
        time.sleep(run.interval)


# -- pulse: one insert at random gaps, for the pause benchmarks ----------------------------------
def pulse(run: Run) -> None:
    """Random gaps (a steady writer with fixed gaps shorter than a catch-up batch keeps a catch-up
    aiming at an empty backlog from ever converging); each write's wait is first try -> commit."""
    rng = random.Random(run.seed)

    def connect() -> apsw.Connection:
        conn = apsw.Connection(str(active_file(run.target)), flags=READ_WRITE)
        conn.set_busy_timeout(30_000)
        return conn

    conn = connect()
    while run.going():
        started = time.perf_counter()
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE; INSERT INTO t0(a, b) VALUES (NULL, 1); COMMIT")
                break
            except apsw.Error as exc:
                if not refused_by_fence(conn, exc):
                    raise
                conn.close()
                conn = connect()
        run.log(event="committed", at=time.time(), wait_ms=(time.perf_counter() - started) * 1000)
        time.sleep(rng.expovariate(1 / run.interval))
    conn.close()


# -- client: the application library --------------------------------------------------------------
def through_client(run: Run) -> None:
    from bluegreen import client

    rng, seed = random.Random(run.seed), run.seed
    conn = client.connect(run.target)
    mine: list[int] = []
    counter = 0
    while run.going():
        counter += 1
        try:
            if run.kind == "reader":
                conn.execute("SELECT count(*), max(id) FROM items").fetchall()
                run.log(event="read", file=conn.path.name)
            elif run.kind == "transaction":

                def unit(c, n=counter):
                    c.execute("INSERT INTO items(name) VALUES (?)", (f"t{seed}-{n}",))
                    row = c.last_insert_rowid()
                    c.execute("UPDATE items SET name = ? WHERE id = ?", (f"t{seed}-{n}-edited", row))
                    return row

                row = conn.transaction(unit)
                run.log(event="committed", op="insert", id=row, name=f"t{seed}-{counter}-edited", file=conn.path.name)
            else:
                roll = rng.random()
                if roll < 0.2 and mine:
                    row, name = rng.choice(mine), f"w{seed}-upd-{counter}"
                    conn.execute("UPDATE items SET name = ? WHERE id = ?", (name, row))
                elif roll < 0.3 and mine:
                    row, name = mine.pop(rng.randrange(len(mine))), None
                    conn.execute("DELETE FROM items WHERE id = ?", (row,))
                else:
                    name = f"w{seed}-ins-{counter}"
                    conn.execute("INSERT INTO items(name) VALUES (?)", (name,))
                    row = conn.last_insert_rowid()
                    mine.append(row)
                run.log(event="committed", id=row, name=name, file=conn.path.name)
        except Exception as exc:  # every failure is logged: the tests want none
            run.log(event="failed", error=f"{type(exc).__name__}: {exc}", file=conn.path.name)
        time.sleep(run.interval)
    conn.close()
    run.log(event="stopped", retries=conn.stats.fence_retries, reopens=conn.stats.reopens)


# -- snapshot: writes whose every state can be rebuilt from `history` -----------------------------
def snapshot_write(conn: apsw.Connection, rng: random.Random) -> None:
    conn.execute("BEGIN IMMEDIATE")
    top = conn.execute("SELECT max(id) FROM items").get or 1
    target = conn.execute("SELECT id FROM items WHERE id >= ? ORDER BY id LIMIT 1", (rng.randint(1, top),)).get
    roll = rng.random()
    payload = rng.randbytes(rng.randrange(10, 3000))
    if roll < 0.5 or target is None:
        conn.execute("INSERT INTO items(payload) VALUES (?)", (payload,))
        conn.execute("INSERT INTO history(op, item_id, payload) VALUES ('insert', last_insert_rowid(), ?)", (payload,))
    elif roll < 0.85:
        conn.execute("UPDATE items SET payload = ? WHERE id = ?", (payload, target))
        conn.execute("INSERT INTO history(op, item_id, payload) VALUES ('update', ?, ?)", (target, payload))
    else:
        conn.execute("DELETE FROM items WHERE id = ?", (target,))
        conn.execute("INSERT INTO history(op, item_id, payload) VALUES ('delete', ?, NULL)", (target,))
    conn.execute("COMMIT")


def snapshot(run: Run) -> None:
    conn = apsw.Connection(str(run.target))
    conn.set_busy_timeout(30_000)
    conn.execute("PRAGMA wal_autocheckpoint = 16").get
    rng = random.Random(run.seed)
    done = 0
    while run.going() and done != run.count:
        snapshot_write(conn, rng)
        done += 1
    conn.close()
    run.log(event="stop", written=done)


# -- steady: the demo application's mix at a steady rate, for the benchmarks ----------------------
def steady(run: Run) -> None:
    conn = apsw.Connection(str(run.target), flags=READ_WRITE)
    conn.set_busy_timeout(60_000)
    rng = random.Random(os.getpid())
    waits = []
    while run.going():
        started = time.perf_counter()
        demo_data.random_v1_write(conn, rng)
        waits.append((time.perf_counter() - started) * 1000)
        time.sleep(run.interval)
    conn.close()
    for wait in waits:  # at the end: I/O between writes would be part of what the benchmark measures
        run.log(event="committed", wait_ms=round(wait, 3))


# -- zoo: every shape a REPLACE deletes a row through ---------------------------------------------
def zoo(run: Run) -> None:
    from bluegreen.tools.zoo_data import apply, random_operation

    rng = random.Random(run.seed)
    conn = apsw.Connection(str(run.target), flags=READ_WRITE)
    conn.set_busy_timeout(60_000)
    written = 0
    while run.going():
        sql, args = random_operation(rng, written)
        try:
            apply(conn, sql, args)  # a statement a constraint refuses is part of the mix
        except apsw.SQLError as exc:
            if FENCE_MARK in str(exc):
                run.log(event="fenced", written=written)
                break  # fenced: this write was refused, never committed
            raise
        written += 1
        if written % 10 == 0:
            run.log(event="progress", written=written)
    conn.close()
    run.log(event="stop", written=written)


@dataclass(frozen=True)
class Mode:
    write: Callable[[Run], None]
    seconds: float = math.inf
    interval: float = 0.0
    seed: int = 0


MODES = {
    "demo": Mode(demo, seconds=60.0, interval=0.002, seed=7),
    "rehearsal": Mode(rehearsal, seconds=600.0, interval=0.002, seed=7),
    "pointer": Mode(follow_pointer, interval=0.001, seed=1),
    "pulse": Mode(pulse, interval=0.02),
    "client": Mode(through_client, interval=0.002, seed=1),
    "snapshot": Mode(snapshot),
    "steady": Mode(steady, interval=0.005),
    "zoo": Mode(zoo),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("target", type=Path, help="the pointer file, or the database file (see the modes)")
    parser.add_argument("log", type=Path, nargs="?", help="where each acknowledged write is logged")
    parser.add_argument("--stop", type=Path, help="stop once this file exists (default: LOG.stop)")
    parser.add_argument("--seconds", type=float, help="stop after this long")
    parser.add_argument("--interval", type=float, help="pause between writes, seconds")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--count", type=int, default=-1, help="stop after this many writes (snapshot)")
    parser.add_argument("--kind", choices=("writer", "transaction", "reader"), default="writer", help="(client)")
    parser.add_argument(
        "--follow", type=int, default=0, help="(demo, rehearsal) after the fence, this many writes on the new file"
    )
    args = parser.parse_args(argv)
    mode = MODES[args.mode]
    stop = args.stop or (Path(f"{args.log}.stop") if args.log is not None else None)
    log = Log(args.log)
    seconds = mode.seconds if args.seconds is None else args.seconds
    try:
        mode.write(
            Run(
                target=args.target,
                log=log,
                stop=stop,
                deadline=time.monotonic() + seconds,
                interval=mode.interval if args.interval is None else args.interval,
                seed=mode.seed if args.seed is None else args.seed,
                count=args.count,
                kind=args.kind,
                parent=os.getppid(),
                follow=args.follow,
            )
        )
    finally:
        log.close()


if __name__ == "__main__":
    main()
