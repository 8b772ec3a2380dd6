"""bluegreen.client on real files: opening checks, following the pointer, the fence retry, the
transaction case, compatibility, per-connection setup, and the SQLAlchemy creator.

The controller runs in this process (Project.cli) unless a crash is needed; a connection made
with watch=False and a long poll interval cannot notice a swap by itself, so its next write is
the one that meets the fence: that is how the fence path is reached deterministically.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import apsw
import pytest
from conftest import rows
from helpers import until

from bluegreen import client
from bluegreen.files import pointer

BLIND = dict(watch=False, poll_interval=3600)  # notices nothing until a fence says so


def names(path: Path) -> set[str]:
    return {n for (n,) in rows(path, "SELECT name FROM items")}


# -- opening ----------------------------------------------------------------------------------------
def test_active_path_matches_bluegreen_path(toy_ready):
    assert client.active_path(toy_ready.pointer) == Path(toy_ready.cli("path").out.strip())
    assert toy_ready.cli("deploy").code == 0
    assert client.active_path(toy_ready.pointer) == toy_ready.gen(2)


def test_missing_generation_is_an_error_never_a_new_database(toy_ready):
    pointer.write(toy_ready.pointer, pointer.Pointer("app.gen7.db", 7, "2.0.0"))
    with pytest.raises(client.GenerationUnavailable, match="app.gen7.db.*not found"):
        client.connect(toy_ready.pointer)
    with pytest.raises(client.GenerationUnavailable):
        client.connect_sqlite3(toy_ready.pointer)
    with pytest.raises(client.GenerationUnavailable):
        client.active_path(toy_ready.pointer)
    assert not toy_ready.gen(7).exists() and not Path(f"{toy_ready.gen(7)}-wal").exists()


def test_generation_stamp_is_checked(toy_ready):
    # The pointer claims app.db is generation 2: app.db carries no stamp, so it is not.
    pointer.write(toy_ready.pointer, pointer.Pointer("app.db", 2, "2.0.0"))
    with pytest.raises(client.GenerationUnavailable, match="generation stamp is missing"):
        client.connect(toy_ready.pointer)
    # An empty file (what a stray CREATE leaves) is not generation 1 either.
    empty = toy_ready.data / "empty.db"
    apsw.Connection(str(empty)).execute("PRAGMA user_version = 0")
    pointer.write(toy_ready.pointer, pointer.Pointer("empty.db", 1, ""))
    with pytest.raises(client.GenerationUnavailable, match="empty database"):
        client.connect(toy_ready.pointer)


def test_busy_timeout_below_the_pause_budget_is_refused(toy_ready):
    with pytest.raises(ValueError, match="pause budget"):
        client.connect(toy_ready.pointer, busy_timeout_ms=10)


# -- following --------------------------------------------------------------------------------------
def test_follows_a_deploy_and_a_revert_with_watchdog(toy_ready):
    conn = client.connect(toy_ready.pointer)
    assert conn.watch_mode == "watchdog"
    assert toy_ready.cli("deploy").code == 0
    until(lambda: conn.execute("SELECT 1").fetchall() and conn.generation == 2, what="the reopen on green")
    assert conn.execute("SELECT count(*) FROM names").get == 50  # v2 table: really on green
    assert toy_ready.cli("revert").code == 0
    until(lambda: conn.execute("SELECT 1").fetchall() and conn.generation == 1, what="the reopen on blue")
    conn.execute("INSERT INTO items(name) VALUES ('after revert')")
    assert "after revert" in names(toy_ready.blue)
    assert conn.stats.fence_retries == 0
    conn.close()


def test_polling_fallback_follows_without_watchdog(toy_ready):
    conn = client.connect(toy_ready.pointer, watch=False, poll_interval=0.05)
    assert conn.watch_mode == "polling"
    assert toy_ready.cli("deploy").code == 0
    until(lambda: conn.execute("SELECT 1").fetchall() and conn.generation == 2, what="the poll to notice")
    assert conn.stats.fence_retries == 0  # reads only: the poll moved it, not a fence
    conn.close()


def test_no_reopen_inside_a_transaction(toy_ready):
    conn = client.connect(toy_ready.pointer, watch=False, poll_interval=0.02)
    conn.execute("BEGIN")
    assert toy_ready.cli("deploy").code == 0
    time.sleep(0.1)  # several polls: the swap is known, but a transaction is open
    assert conn.execute("SELECT count(*) FROM items").get == 50 and conn.generation == 1
    conn.execute("COMMIT")
    until(lambda: conn.execute("SELECT 1").fetchall() and conn.generation == 2, what="the reopen after COMMIT")
    conn.close()


def test_write_refused_by_the_fence_is_retried_once_on_the_new_file(toy_ready):
    conn = client.connect(toy_ready.pointer, **BLIND)
    assert toy_ready.cli("deploy").code == 0
    conn.execute("INSERT INTO items(name) VALUES ('retried')")
    assert (conn.generation, conn.stats.fence_retries) == (2, 1)
    assert "retried" in names(toy_ready.gen(2)) and "retried" not in names(toy_ready.blue)
    # And back: revert fences green, swaps, then lifts blue's fence; the retry waits through it.
    assert toy_ready.cli("revert").code == 0
    conn.execute("UPDATE items SET name = 'back' WHERE name = 'retried'")
    assert (conn.generation, conn.stats.fence_retries) == (1, 2)
    assert "back" in names(toy_ready.blue)
    conn.close()


def test_sqlite3_write_refused_by_the_fence_is_retried(toy_ready):
    """The stdlib's sqlite3 is another SQLite library than apsw's: in one process they do not see
    each other's POSIX locks (closing one's last connection deletes the -wal the other uses), so
    the controller runs as its own process here and the results are read after closing."""
    conn = client.connect_sqlite3(toy_ready.pointer, **BLIND)
    assert toy_ready.cli_process("deploy").code == 0
    conn.execute("INSERT INTO items(name) VALUES ('retried')")  # implicit BEGIN: the fence comes first
    conn.commit()
    assert (conn.generation, conn.stats.fence_retries) == (2, 1)
    assert toy_ready.cli_process("revert").code == 0
    conn.execute("UPDATE items SET name = 'back' WHERE name = 'retried'")
    conn.commit()
    assert (conn.generation, conn.stats.fence_retries) == (1, 2)
    conn.close()
    assert "back" in names(toy_ready.blue) and "retried" in names(toy_ready.gen(2))


def test_executemany_is_retried_when_nothing_of_it_ran(toy_ready):
    conn = client.connect(toy_ready.pointer, **BLIND)
    assert toy_ready.cli("deploy").code == 0
    conn.executemany("INSERT INTO items(name) VALUES (?)", ((f"many {i}",) for i in range(3)))
    assert {"many 0", "many 1", "many 2"} <= names(toy_ready.gen(2))
    conn.close()


# -- the transaction case ---------------------------------------------------------------------------
def test_fence_inside_an_explicit_transaction_raises_instead_of_retrying(toy_ready):
    conn = client.connect(toy_ready.pointer, **BLIND)
    conn.execute("BEGIN")
    conn.execute("SELECT 1")
    assert toy_ready.cli("deploy").code == 0  # the deferred transaction holds no lock yet
    with pytest.raises(client.FencedInTransaction, match="roll it back and run it again"):
        conn.execute("INSERT INTO items(name) VALUES ('half')")
    assert conn.generation == 1 and conn.in_transaction()  # still in the caller's transaction
    conn.execute("ROLLBACK")
    conn.execute("INSERT INTO items(name) VALUES ('whole')")  # outside a transaction: retried
    assert conn.generation == 2
    assert "half" not in names(toy_ready.blue) | names(toy_ready.gen(2))
    assert "whole" in names(toy_ready.gen(2))
    conn.close()


def test_with_block_is_rolled_back_on_the_fence(toy_ready):
    conn = client.connect(toy_ready.pointer, **BLIND)
    with pytest.raises(client.FencedInTransaction):
        with conn:
            assert toy_ready.cli("deploy").code == 0
            conn.execute("INSERT INTO items(name) VALUES ('in with')")
    assert not conn.in_transaction()
    assert "in with" not in names(toy_ready.blue) | names(toy_ready.gen(2))
    conn.close()


def test_sqlite3_explicit_transaction_raises(toy_ready):
    conn = client.connect_sqlite3(toy_ready.pointer, sqlite3_kwargs={"isolation_level": None}, **BLIND)
    conn.execute("BEGIN")
    assert toy_ready.cli_process("deploy").code == 0
    with pytest.raises(client.FencedInTransaction):
        conn.execute("INSERT INTO items(name) VALUES ('half')")
    conn.rollback()
    conn.execute("INSERT INTO items(name) VALUES ('whole')")
    assert conn.generation == 2
    conn.close()
    assert "whole" in names(toy_ready.gen(2)) and "half" not in names(toy_ready.gen(2)) | names(toy_ready.blue)


def test_transaction_helper_reruns_the_whole_transaction(toy_ready):
    conn = client.connect(toy_ready.pointer, **BLIND)
    runs = []

    def work(c):
        runs.append(c.generation)
        if len(runs) == 1:
            assert toy_ready.cli("deploy").code == 0  # the file is retired mid-transaction
        c.execute("INSERT INTO items(name) VALUES (?)", (f"run {len(runs)}",))
        c.execute("UPDATE items SET name = 'first, edited' WHERE id = 1")
        return len(runs)

    assert conn.transaction(work, mode="DEFERRED") == 2
    assert runs == [1, 2]
    assert "run 1" not in names(toy_ready.gen(2)) and {"run 2", "first, edited"} <= names(toy_ready.gen(2))
    conn.close()


# -- a pointer the client cannot follow ------------------------------------------------------------
def test_pointer_naming_a_missing_file_keeps_the_current_file(toy_ready):
    conn = client.connect(toy_ready.pointer, watch=False, poll_interval=0.02)
    good = pointer.read(toy_ready.pointer)
    pointer.write(toy_ready.pointer, pointer.Pointer("app.gen9.db", 9, "9.0.0", "app.db"))
    with pytest.raises(client.GenerationUnavailable, match=r"app.gen9.db.*not found.*stays on app.db"):
        until(lambda: conn.execute("SELECT 1").fetchall() and False, what="the error")
    assert conn.path == toy_ready.blue
    assert conn.execute("SELECT count(*) FROM items").get == 50  # said once; it goes on reading
    conn.execute("INSERT INTO items(name) VALUES ('still blue')")  # blue is not fenced: fine
    assert "still blue" in names(toy_ready.blue) and not toy_ready.gen(9).exists()
    pointer.write(toy_ready.pointer, good)
    conn.close()


def test_fence_wait_is_bounded_then_resume_lets_the_write_through(toy_ready):
    """The controller dies between fencing blue and swapping the pointer: writes are refused, the
    client waits fence_timeout_s and says so; after `resume` the same write goes through."""
    conn = client.connect(toy_ready.pointer, fence_timeout_s=0.3, **BLIND)
    env = dict(os.environ, BLUEGREEN_CRASH_AT="deploy:fenced")
    died = subprocess.run(
        [sys.executable, "-m", "bluegreen", "--config", str(toy_ready.config), "deploy"],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert died.returncode == -9
    with pytest.raises(client.FenceWaitTimeout, match="pointer still names it"):
        conn.execute("INSERT INTO items(name) VALUES ('waited')")
    assert conn.generation == 1
    assert toy_ready.cli("resume").code == 0
    conn.execute("INSERT INTO items(name) VALUES ('waited')")
    assert conn.generation == 2 and "waited" in names(toy_ready.gen(2))
    conn.close()


def test_write_on_green_after_a_revert_killed_before_its_swap_waits_for_the_pointer(toy_ready):
    """A revert fences green, unfences blue, then swaps (hazard 16: never lift a fence on the file
    the pointer names). Killed right after blue's unfence, the pointer still names fenced green: a
    connection there waits for the pointer, and `resume` moves it to blue, whose fence is gone."""
    conn = client.connect(toy_ready.pointer, fence_timeout_s=0.3, **BLIND)
    assert toy_ready.cli("deploy").code == 0
    conn.execute("INSERT INTO items(name) VALUES ('on green')")  # meets blue's fence, moves to green
    assert conn.generation == 2
    env = dict(os.environ, BLUEGREEN_CRASH_AT="revert:unfenced")
    died = subprocess.run(
        [sys.executable, "-m", "bluegreen", "--config", str(toy_ready.config), "revert"],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert died.returncode == -9 and pointer.read(toy_ready.pointer).active == "app.gen2.db"
    with pytest.raises(client.FenceWaitTimeout, match="pointer still names it"):
        conn.execute("INSERT INTO items(name) VALUES ('waits')")

    done: list[object] = []
    slow = client.connect(toy_ready.pointer, fence_timeout_s=60, **BLIND)
    assert slow.generation == 2
    writer = threading.Thread(target=lambda: done.append(slow.execute("INSERT INTO items(name) VALUES ('waits')")))
    writer.start()
    assert toy_ready.cli("resume").code == 0  # swaps to blue (whether or not the write is waiting yet)
    writer.join(timeout=60)
    assert done and slow.generation == 1 and slow.stats.reopens == 1
    assert {"waits", "on green"} <= names(toy_ready.blue)
    slow.close()
    conn.close()


def test_compatible_refuses_a_generation_and_keeps_the_current_file(toy_ready):
    conn = client.connect(toy_ready.pointer, compatible=["unversioned", "1.*"], watch=False, poll_interval=0.02)
    assert toy_ready.cli("deploy").code == 0
    with pytest.raises(client.IncompatibleGeneration, match=r"schema '2.0.0'.*stays on app.db"):
        until(lambda: conn.execute("SELECT 1").fetchall() and False, what="the refusal")
    assert conn.generation == 1
    state = toy_ready.data / ".bluegreen" / "state.json"  # the watch sees another change: said once only
    state.with_suffix(".again").write_bytes(state.read_bytes())
    os.replace(state.with_suffix(".again"), state)
    conn._watch.check()
    assert conn.execute("SELECT count(*) FROM items").get == 50  # reads go on, on the old file
    with pytest.raises(client.IncompatibleGeneration):  # a write cannot go anywhere it may
        conn.execute("INSERT INTO items(name) VALUES ('nowhere')")
    with pytest.raises(client.IncompatibleGeneration):
        client.connect(toy_ready.pointer, compatible="1.*")
    assert client.connect(toy_ready.pointer, compatible=lambda v: v.startswith("2.")).generation == 2
    conn.close()


def test_on_connect_is_applied_on_every_reopen(toy_ready):
    opened = []

    def setup(raw: apsw.Connection) -> None:
        opened.append(raw.execute("PRAGMA database_list").fetchall()[0][2])
        raw.execute("PRAGMA cache_size = -4096")
        raw.create_scalar_function("shout", lambda s: s.upper() + "!", 1)

    conn = client.connect(toy_ready.pointer, on_connect=setup, **BLIND)
    assert conn.execute("SELECT shout('blue')").get == "BLUE!"
    assert toy_ready.cli("deploy").code == 0
    conn.execute("INSERT INTO items(name) VALUES (shout('green'))")  # fence, reopen, retry
    assert conn.execute(
        "SELECT shout('again'), (SELECT 1 FROM pragma_cache_size WHERE cache_size = -4096)"
    ).fetchall() == [("AGAIN!", 1)]
    assert [Path(p).name for p in opened] == ["app.db", "app.gen2.db"]
    assert "GREEN!" in names(toy_ready.gen(2))
    conn.close()


def test_sqlite3_on_connect_and_row_factory(toy_ready):
    def setup(raw: sqlite3.Connection) -> None:
        raw.row_factory = sqlite3.Row

    conn = client.connect_sqlite3(toy_ready.pointer, on_connect=setup, **BLIND)
    assert conn.execute("SELECT name FROM items WHERE id = 1").fetchone()["name"] == "item 0"
    assert toy_ready.cli_process("deploy").code == 0
    conn.execute("INSERT INTO items(name) VALUES ('x')")
    conn.commit()
    assert conn.execute("SELECT upper_name FROM names WHERE id = 1").fetchone()["upper_name"] == "ITEM 0"
    conn.close()


# -- SQLAlchemy ----------------------------------------------------------------------------------------
def test_sqlalchemy_creator_follows_at_checkout(toy_ready):
    sqlalchemy = pytest.importorskip("sqlalchemy")
    from sqlalchemy.pool import QueuePool

    engine = sqlalchemy.create_engine("sqlite://", creator=client.creator(toy_ready.pointer), poolclass=QueuePool)
    client.follow_engine(engine)
    with engine.begin() as db:
        db.execute(sqlalchemy.text("INSERT INTO items(name) VALUES ('orm blue')"))
    assert toy_ready.cli_process("deploy").code == 0  # another process: see the sqlite3 test above

    def on_green() -> bool:
        with engine.connect() as db:
            return db.execute(sqlalchemy.text("SELECT count(*) FROM sqlite_schema WHERE name = 'names'")).scalar() == 1

    until(on_green, what="the pool to reconnect to green")
    with engine.begin() as db:
        db.execute(sqlalchemy.text("INSERT INTO items(name) VALUES ('orm green')"))
    engine.dispose()
    assert {"orm blue", "orm green"} <= names(toy_ready.gen(2))
