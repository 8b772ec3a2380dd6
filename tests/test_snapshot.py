"""The snapshot copies exactly one committed state of blue, while other processes write to it.

Every write transaction appends its effect to `history` (AUTOINCREMENT: commit order), so the
expected content of a copy is the state before the writers started plus the history rows the copy
holds. Progress callbacks wait for new commits, so writes, checkpoints and WAL restarts land in the
middle of every copy, whatever the machine's speed.
"""

from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path

import apsw
import pytest

from bluegreen.engine import snapshot
from bluegreen.engine.db import open_db
from bluegreen.tools.writer_process import WriterProcess, writer_command


def make_blue(path: Path, rows: int = 1500) -> dict[int, bytes]:
    """A WAL file with `rows` items of random sizes; returns them (the state before any writer)."""
    rng = random.Random(3)
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA journal_mode = WAL").get
    with conn:
        conn.execute(
            "CREATE TABLE items(id INTEGER PRIMARY KEY AUTOINCREMENT, payload BLOB);"
            "CREATE TABLE history(seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT, item_id INTEGER, payload BLOB)"
        )
        conn.executemany(
            "INSERT INTO items(payload) VALUES (?)", [(rng.randbytes(rng.randrange(100, 4000)),) for _ in range(rows)]
        )
    initial = dict(conn.execute("SELECT id, payload FROM items"))
    conn.close()
    return initial


def last_seq(path: Path) -> int:
    conn = open_db(path, query_only=True)
    try:
        return conn.execute("SELECT coalesce(max(seq), 0) FROM history").get
    finally:
        conn.close()


def wait_for_commits(path: Path, commits: int):
    """A progress callback that returns once `commits` more transactions committed on blue."""

    def progress(done: int, total: int) -> None:
        target = last_seq(path) + commits
        deadline = time.monotonic() + 60
        while last_seq(path) < target:
            assert time.monotonic() < deadline, "the writer processes stopped writing"
            time.sleep(0.001)

    return progress


def expected_at(initial: dict[int, bytes], blue: Path, seq: int) -> tuple[dict[int, bytes], list[tuple]]:
    """Blue's items and history as of history seq `seq`, rebuilt from the initial state."""
    conn = open_db(blue, query_only=True)
    history = conn.execute(
        "SELECT seq, op, item_id, payload FROM history WHERE seq <= ? ORDER BY seq", (seq,)
    ).fetchall()
    conn.close()
    items = dict(initial)
    for _, op, item_id, payload in history:
        if op == "delete":
            del items[item_id]
        else:
            items[item_id] = payload
    return items, history


def assert_exact_copy(copy: Path, blue: Path, initial: dict[int, bytes]) -> int:
    conn = open_db(copy, query_only=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        seq = conn.execute("SELECT coalesce(max(seq), 0) FROM history").get
        items = dict(conn.execute("SELECT id, payload FROM items"))
        history = conn.execute("SELECT seq, op, item_id, payload FROM history ORDER BY seq").fetchall()
        sequences = dict(conn.execute("SELECT name, seq FROM sqlite_sequence"))
    finally:
        conn.close()
    want_items, want_history = expected_at(initial, blue, seq)
    assert history == want_history
    assert items.keys() == want_items.keys()
    assert all(items[key] == want_items[key] for key in items)  # row by row
    assert sequences.get("history", 0) == seq
    return seq


def start_writers(blue: Path, stop: Path, count: int = 2) -> list[WriterProcess]:
    """The writer program in snapshot mode, `count` processes on blue until `stop` appears."""
    return [WriterProcess.start("snapshot", blue, seed=seed, stop=stop) for seed in range(count)]


def stop_writers(writers: list[WriterProcess], stop: Path) -> None:
    for writer in writers:
        assert writer.stop(timeout=60) == 0


def write(blue: Path, seed: int, count: int) -> None:
    """`count` snapshot-mode writes on blue, in a process of their own."""
    subprocess.run(writer_command("snapshot", blue, seed=seed, count=count), check=True)


@pytest.mark.parametrize("method", ["files", "backup"])
def test_copies_are_exact_while_processes_write_and_checkpoint(tmp_path, method):
    blue = tmp_path / "blue.db"
    initial = make_blue(blue)
    stop = tmp_path / "stop"
    writers = start_writers(blue, stop)
    try:
        wait_for_commits(blue, 5)(0, 0)
        positions, frames = [], 0
        for n in range(4):
            source = open_db(blue, query_only=True)
            try:
                result = snapshot.copy(
                    source,
                    tmp_path / f"copy{n}.db",
                    mode=0o600,
                    pages_per_step=64,
                    progress=wait_for_commits(blue, 3),
                    method=method,
                )
            finally:
                source.close()
            assert result.method == method
            frames += result.wal_frames
            assert result.pages * result.page_size == (tmp_path / f"copy{n}.db").stat().st_size
            positions.append(last_seq(blue))
    finally:
        stop_writers(writers, stop)
    for n in range(4):
        seq = assert_exact_copy(tmp_path / f"copy{n}.db", blue, initial)
        assert 0 < seq < positions[n]  # the copy is of a state in the middle of the writes
    assert (tmp_path / "copy0.db").stat().st_mode & 0o777 == 0o600
    assert method == "backup" or frames > 0  # copies laid WAL frames over the file


def test_a_snapshot_of_a_checkpointed_wal_stays_exact_when_writers_restart_it(tmp_path):
    """Everything in the WAL was checkpointed, so the reader reads the database file alone: the
    writes during the copy restart the WAL (new salts, frames from 1), which must not be used."""
    blue = tmp_path / "blue.db"
    initial = make_blue(blue)
    conn = apsw.Connection(str(blue))  # kept open: the last connection to close would delete the WAL
    conn.execute("SELECT 1").get
    write(blue, 7, 20)
    busy, frames, checkpointed = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert frames > 0 and checkpointed == frames

    def write_meanwhile(done: int, total: int) -> None:
        write(blue, done, 20)

    source = open_db(blue, query_only=True)
    result = snapshot.copy(source, tmp_path / "copy.db", mode=0o644, pages_per_step=128, progress=write_meanwhile)
    source.close()
    conn.close()
    assert result.method == "files" and result.file_only
    assert assert_exact_copy(tmp_path / "copy.db", blue, initial) == 20
    assert last_seq(blue) > 20
