"""The rehearsal writer's second act: after blue's fence, writes on the file the pointer names.

A revert carries back what the application wrote on green after the cutover, and refuses (exit 5)
what blue's schema has no place for. A rehearsal whose writer stopped at the fence gave its revert
nothing to carry, so it passed where the real revert would refuse. With `--follow N` the demo and
rehearsal modes meet the fence, wait for the pointer to name the new file, reopen it as an
application would, and make N writes there in green's schema before they stop.

What they write, on any schema and without inventing data: one rowid table green has, with rows;
first a table blue has too whose definition a migration changed (what only a `_rollback.sql` can
carry back), then a table of the same shape in both, then any other (a table blue does not have).
Each write sets a column (one both files have, where there is one) of one row to the value the same
column holds in another row, in green's shape by construction; a write green's constraints refuse
(a UNIQUE column) is rolled back and made a same-value update instead, which capture records all
the same. Each is logged as `green_write` (table, key) once committed, so the rehearsal can check
after its revert that blue holds each such row as green has it.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

import apsw

from bluegreen.engine.db import quote_ident, user_tables
from bluegreen.engine.migrations import HISTORY_TABLE
from bluegreen.errors import BluegreenError
from bluegreen.files import pointer
from bluegreen.files.contract import FENCE_MARK
from bluegreen.gates.perfgate import RESULTS_TABLE

READ_WRITE = apsw.SQLITE_OPEN_READWRITE
SWAP_WAIT_S = 60.0  # the swap follows the fence's commit at once; a deploy that fenced and died leaves it
RANKS = ("reshaped in green", "same shape in both", "not in blue")
BLUEGREENS = {HISTORY_TABLE, RESULTS_TABLE}  # tables bluegreen itself writes: no application's


@dataclass(frozen=True)
class GreenTarget:
    table: str
    column: str
    alias: str  # the rowid alias the keys are read through
    keys: list[int]
    rank: str  # one of RANKS


def ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


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


def follow(run, blue: apsw.Connection, blue_path: Path, writes: int) -> None:
    """After the fence on blue_path: wait for the swap, reopen the pointer's file, write there.
    `blue` (still open, fenced, readable) is the schema green's tables are compared with."""
    green_path = _wait_for_swap(run, blue_path)
    if green_path is None:
        run.log(event="no_swap", file=blue_path.name)
        return
    conn = apsw.Connection(str(green_path), flags=READ_WRITE)
    try:
        patient(conn, 120.0)
        target = green_target(conn, blue)
        if target is None:
            run.log(event="no_green_target", file=green_path.name)
            return
        run.log(event="reopened", file=green_path.name, table=target.table, column=target.column, rank=target.rank)
        _write(run, conn, green_path, target, writes)
    finally:
        conn.close()


def _wait_for_swap(run, blue_path: Path) -> Path | None:
    deadline = time.monotonic() + SWAP_WAIT_S
    while run.going() and time.monotonic() < deadline:
        try:
            active = pointer.read(run.target).active_path(run.target)
        except BluegreenError:
            active = blue_path  # unreadable for a moment: read it again
        if active != blue_path:
            return active
        time.sleep(0.005)
    return None


def green_target(green: apsw.Connection, blue: apsw.Connection) -> GreenTarget | None:
    """The table (and column) green's writes go to; see the module's docstring for the order."""
    found = []
    for table in user_tables(green):
        if table.virtual or table.without_rowid or table.name in BLUEGREENS:
            continue
        name = quote_ident(table.name)
        count = green.execute(f"SELECT count(*) FROM {name}").get
        if not count:
            continue
        columns = [c for c, pk in green.execute("SELECT name, pk FROM pragma_table_info(?)", (table.name,)) if not pk]
        if not columns:
            continue
        definition = "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?"
        in_blue = blue.execute(definition, (table.name,)).get
        shared = {c for (c,) in blue.execute("SELECT name FROM pragma_table_info(?)", (table.name,))}
        column = next((c for c in columns if c in shared), columns[0])
        if in_blue is None:
            rank = 2
        else:
            rank = 0 if in_blue != green.execute(definition, (table.name,)).get else 1
        found.append((rank, -count, table.name, column, table.rowid_alias))
    if not found:
        return None
    rank, _, table, column, alias = min(found)
    keys = [k for (k,) in green.execute(f"SELECT {alias} FROM {quote_ident(table)} ORDER BY {alias} LIMIT 1000")]
    return GreenTarget(table, column, alias, keys, RANKS[rank])


def _write(run, conn: apsw.Connection, path: Path, target: GreenTarget, writes: int) -> None:
    rng = random.Random(run.seed + 1)
    table, column = quote_ident(target.table), quote_ident(target.column)
    moved = f"UPDATE {table} SET {column} = (SELECT {column} FROM {table} WHERE {target.alias} = ?) WHERE {target.alias} = ?"
    same = f"UPDATE {table} SET {column} = {column} WHERE {target.alias} = ?"
    done = 0
    while done < writes and run.going():
        key, other = rng.choice(target.keys), rng.choice(target.keys)
        started = time.perf_counter()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("SAVEPOINT moved")
                conn.execute(moved, (other, key))
                conn.execute("RELEASE moved")
                kind = "moved"
            except apsw.ConstraintError:  # green's constraints refuse the value: touch the row instead
                conn.execute("ROLLBACK TO moved")
                conn.execute("RELEASE moved")
                conn.execute(same, (key,))
                kind = "touched"
            conn.execute("COMMIT")
        except apsw.Error as exc:
            if not conn.get_autocommit():
                conn.execute("ROLLBACK")
            if FENCE_MARK in str(exc):  # a revert fenced green: this write was never committed
                run.log(event="fenced", file=path.name, error=str(exc), wait_ms=ms_since(started), at=time.time())
            else:  # green's own rules (a trigger's RAISE, a lock held too long) refused even a same-value update
                run.log(event="green_refused", file=path.name, table=target.table, id=key, error=str(exc))
            return
        done += 1
        run.log(
            event="green_write",
            file=path.name,
            table=target.table,
            id=key,
            kind=kind,
            wait_ms=ms_since(started),
            at=time.time(),
        )
        time.sleep(run.interval)
