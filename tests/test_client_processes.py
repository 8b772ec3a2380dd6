"""Client processes through a deploy and a revert, and the registry of who is on which file.

The workers are real processes, the writer program in client mode (bluegreen.tools.writer):
writers in autocommit, a writer using whole-transaction retries, a reader. Each logs every
commit after it returns (os.write, unbuffered) and every failure; the test then checks that none
failed, that each followed blue → green → blue, and that every committed write is in the file the
pointer names at the end. The holder, which keeps a file open, runs this file
(`python test_client_processes.py hold POINTER`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()


# -- the holder process ---------------------------------------------------------------------------------
def hold(pointer: Path) -> None:
    """Open, read once, then idle on that file until told to run a statement (a line on stdin)."""
    from bluegreen import client
    from bluegreen.files import pointer as pointer_file

    conn = client.connect(pointer)
    conn.execute("SELECT count(*) FROM items").fetchall()
    print("on", conn.generation, flush=True)
    for _ in sys.stdin:
        wanted = pointer_file.read(pointer).generation
        deadline = time.monotonic() + 10
        while conn.generation != wanted and time.monotonic() < deadline:
            conn.execute("SELECT 1").fetchall()
            time.sleep(0.005)
        print("on", conn.generation, flush=True)
    conn.close()


if __name__ == "__main__":
    hold(Path(sys.argv[2]))  # argv[1] is "hold"
    sys.exit(0)


# -- the tests --------------------------------------------------------------------------------------------
from conftest import rows  # noqa: E402  (the worker above needs none of this)
from helpers import Writer, expected_rows  # noqa: E402


def worker(project, tmp_path: Path, seed: int, kind: str) -> Writer:
    """The writer program in client mode: bluegreen.client, as a writer, a transaction or a reader."""
    return Writer(project, tmp_path, seed, "client", name=kind, kind=kind)


def test_clients_read_and_write_through_a_deploy_and_a_revert(toy_ready, tmp_path):
    project = toy_ready
    workers = [
        worker(project, tmp_path, 1, "writer"),
        worker(project, tmp_path, 2, "writer"),
        worker(project, tmp_path, 3, "transaction"),
        worker(project, tmp_path, 4, "reader"),
    ]
    try:
        for w in workers:
            w.wait_for(20, event=None)
        assert project.cli("deploy").code == 0
        for w in workers:
            w.wait_for(40, event=None)
        assert project.cli("revert").code == 0
        for w in workers:
            w.wait_for(40, event=None)
    finally:
        for w in workers:
            w.finish()
    logs = [w.records() for w in workers]

    failures = [e for log in logs for e in log if e["event"] == "failed"]
    assert failures == []
    for log in logs:
        files = [e["file"] for e in log if e["event"] in ("committed", "read")]
        # Each worker moved blue → green → blue, once each way, and never went back early.
        changes = [f for i, f in enumerate(files) if i == 0 or f != files[i - 1]]
        assert changes == ["app.db", "app.gen2.db", "app.db"], changes
    expected: dict[int, str | None] = {}
    for w in workers[:3]:
        expected.update(expected_rows(w.log))
    have = dict(rows(project.blue, "SELECT id, name FROM items"))
    for row_id, name in expected.items():
        assert have.get(row_id) == name, (row_id, name, have.get(row_id))
    # Writes that landed on green are in green too (it is fenced now: nothing changed it since).
    on_green = {e["id"] for log in logs[:3] for e in log if e["event"] == "committed" and e["file"] == "app.gen2.db"}
    assert on_green and on_green <= {r for (r,) in rows(project.gen(2), "SELECT id FROM items")} | {
        i for i, n in expected.items() if n is None
    }


def test_status_names_a_client_left_on_blue_and_finalize_waits_for_it(toy_ready):
    project = toy_ready
    holder = subprocess.Popen(
        [sys.executable, str(HERE), "hold", str(project.pointer)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().split() == ["on", "1"]
        assert project.cli("deploy").code == 0
        status = project.cli("status", "--json").json
        behind = [c for c in status["clients_behind"] if c["pid"] == holder.pid]
        assert [(f["file"], f["generation"]) for f in behind[0]["files"]] == [("app.db", 1)]
        assert f"-{holder.pid} on app.db (generation 1)" in project.cli("status").out

        refused = project.cli("finalize")
        assert refused.code == 1
        assert "finalize refused" in refused.err and f"-{holder.pid}" in refused.err
        assert project.cli("status", "--json").json["phase"] == "cut_over"  # nothing changed

        holder.stdin.write("move\n")
        holder.stdin.flush()
        assert holder.stdout.readline().split() == ["on", "2"]
        assert project.cli("status", "--json").json["clients_behind"] == []
        assert project.cli("finalize").code == 0
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def test_finalize_force_and_in_process_holder(toy_ready):
    from bluegreen import client

    conn = client.connect(toy_ready.pointer, watch=False, poll_interval=3600)
    assert toy_ready.cli("deploy").code == 0
    assert toy_ready.cli("finalize").code == 1  # this very process still has app.db open
    forced = toy_ready.cli("finalize", "--force", "--json")
    assert forced.code == 0 and forced.json["ok"]
    conn.close()


def test_a_killed_client_expires_from_the_registry(toy_ready):
    from bluegreen.files import registry

    holder = subprocess.Popen(
        [sys.executable, str(HERE), "hold", str(toy_ready.pointer)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().split() == ["on", "1"]
    assert [c.pid for c in registry.users_of(toy_ready.pointer, "app.db")] == [holder.pid]
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    holder.stdin.close()
    holder.stdout.close()
    assert registry.users_of(toy_ready.pointer, "app.db") == []  # its pid is gone: not live
    assert [name.rsplit("-", 1)[1] for name in registry.expire(toy_ready.pointer)] == [str(holder.pid)]
    assert not any(p.name.endswith(f"-{holder.pid}.json") for p in registry.clients_dir(toy_ready.pointer).iterdir())


def test_a_silent_record_is_stale_even_if_its_pid_lives(toy_ready):
    from bluegreen.files import registry

    folder = registry.clients_dir(toy_ready.pointer)
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "host": registry._HOST,
        "pid": os.getpid(),
        "program": "x",
        "started_at": "",
        "heartbeat_at": time.time() - 60,
        "expires_after_s": 10,
        "files": [{"file": "app.db", "generation": 1, "connections": 1}],
    }
    (folder / "elsewhere-1.json").write_text(json.dumps(dict(record, host="elsewhere", pid=1)))
    assert registry.users_of(toy_ready.pointer, "app.db") == []
    assert registry.expire(toy_ready.pointer) == ["elsewhere-1"]
    (folder / "elsewhere-1.json").write_text(
        json.dumps(dict(record, host="elsewhere", pid=1, heartbeat_at=time.time()))
    )
    assert [c.name for c in registry.users_of(toy_ready.pointer, "app.db")] == ["elsewhere-1"]
