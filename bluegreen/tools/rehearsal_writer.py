"""A synthetic writer for rehearsals on any schema: same-value updates of existing rows.

Run as a separate process (`python -m bluegreen.tools.rehearsal_writer POINTER LOG`) against the
rehearsal's scratch copy. Each write is `UPDATE t SET c = c WHERE rowid = ?` in its own
`BEGIN IMMEDIATE` transaction on the largest table that has a rowid: it takes the write lock,
fires the capture triggers and feeds catch-up, replay and every sync script exactly like an
application's update, yet invents no data — inserting made-up rows into an unknown schema could
break its constraints, and the rehearsal's copy should stay the live data. It logs like
`demo_writer` (one JSON line per committed write, with how long it waited) and stops at the
fence, on `LOG.stop`, or after --seconds.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import apsw

from bluegreen.files import pointer
from bluegreen.engine.db import quote_ident, user_tables
from bluegreen.tools.demo_writer import FENCE_MARK, _record, patient, writer_main


def target(conn: apsw.Connection) -> tuple[str, str, str, list[int]] | None:
    """(table, column, rowid alias, some rowids) of the largest rowid table with rows, or None."""
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


def run(pointer_path: Path, log_path: Path, seconds: float, interval: float, seed: int) -> None:
    rng = random.Random(seed)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    stop_file = Path(f"{log_path}.stop")
    deadline = time.monotonic() + seconds
    path = pointer.read(pointer_path).active_path(pointer_path)
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READWRITE)
    patient(conn, 120.0)  # at least the longest barrier the controller may hold
    found = target(conn)
    if found is None:
        _record(fd, event="no_target", file=path.name)
        conn.close()
        os.close(fd)
        return
    table, column, alias, keys = found
    update = f"UPDATE {quote_ident(table)} SET {quote_ident(column)} = {quote_ident(column)} WHERE {alias} = ?"
    _record(fd, event="start", file=path.name, table=table)
    parent = os.getppid()
    while time.monotonic() < deadline and not stop_file.exists() and os.getppid() == parent:
        key = rng.choice(keys)
        started = time.perf_counter()
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(update, (key,))
            conn.execute("COMMIT")
        except apsw.Error as exc:
            if not conn.get_autocommit():
                conn.execute("ROLLBACK")
            if FENCE_MARK in str(exc):
                waited = round((time.perf_counter() - started) * 1000, 2)
                _record(fd, event="fenced", file=path.name, error=str(exc), wait_ms=waited, at=time.time())
                break
            raise
        _record(fd, event="committed", file=path.name, wait_ms=round((time.perf_counter() - started) * 1000, 2),
                at=time.time(), op="touch", table=table, id=key)
        time.sleep(interval)
    conn.close()
    _record(fd, event="stop")
    os.close(fd)


def main() -> None:
    writer_main(run, __doc__, 600.0)


if __name__ == "__main__":
    main()
