"""Replication's state for `status`, for holders (Litestream's own open files are not a user's),
and the wait before a swap: cutover and revert wait until the generation about to become active
has been replicated, bounded by `[replication] wait_timeout_s`."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from bluegreen.config.sections import Config
from bluegreen.errors import ReplicationFailed
from bluegreen.files.journal import Store
from bluegreen.replication import litestream, project

HEARTBEAT_S = 5.0  # a status.json older than this, from a live pid, is still trusted (it beats each second)


def read_status(store: Store) -> dict | None:
    """`bluegreen replicate`'s status.json, if it runs now (its pid and Litestream's alive)."""
    try:
        status = json.loads((store.state_dir / "replication" / "status.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(status, dict) or not status.get("running") or not _alive(status.get("pid")):
        return None
    return status


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def litestream_pids(pointer_path: Path) -> set[int]:
    """Litestream's pid while `bluegreen replicate` runs: it holds the generations open to read their
    WAL, which is no application's use (finalize and prune do not wait for it)."""
    status = read_status(Store(pointer_path))
    pid = status.get("litestream_pid") if status else 0
    return {pid} if isinstance(pid, int) and pid > 0 else set()


def report(config: Config, store: Store) -> dict | None:
    """status's replication part: None without [replication]; positions read from the replica."""
    settings = config.replication
    if not settings.replica:
        return None
    status = read_status(store)
    out = {
        "replica": litestream.shown(settings.replica),
        "running": bool(status),
        "pid": 0,
        "litestream_pid": 0,
        "databases": [],
    }
    if not status:
        return out
    out |= {"pid": status["pid"], "litestream_pid": status.get("litestream_pid", 0)}
    try:
        exe = litestream.binary(settings)
    except ReplicationFailed:
        return out
    for db in status.get("databases", []):
        path = Path(db["path"])
        local = litestream.local_txid(path)
        remote = litestream.replica_position(exe, db["url"])
        entry = {"name": db["name"], "url": db["url"], "local_txid": local}
        if remote is not None:
            entry |= {"replica_txid": remote.txid, "lag_txids": max(0, local - remote.txid)}
            entry["replica_written_at"] = remote.written_at
        out["databases"].append(entry)
    return out


def describe(part: dict) -> str:
    if not part["running"]:
        return f"replication: to {part['replica']}, NOT running (start `bluegreen replicate`)"
    rows = [
        f"{d['name']} txid {d['local_txid']}, replica {d.get('replica_txid', '?')} (lag {d.get('lag_txids', '?')})"
        for d in part["databases"]
    ]
    return f"replication: to {part['replica']}, pid {part['pid']} (litestream {part['litestream_pid']}): " + "; ".join(
        rows
    )


def wait_replicated(config: Config, store: Store, database: Path, why: str) -> dict | None:
    """Before a swap makes `database` active: wait until its replica has every transaction
    Litestream saw on it (`litestream sync -wait`). None when there is nothing to wait for (no
    [replication], wait_timeout_s = 0, `bluegreen replicate` not running); ReplicationFailed after
    the timeout, nothing switched."""
    settings = config.replication
    if not settings.replica or settings.wait_timeout_s == 0 or read_status(store) is None:
        return None
    exe = litestream.binary(settings)
    started = time.monotonic()
    deadline = started + settings.wait_timeout_s
    while True:
        status = read_status(store)
        left = deadline - time.monotonic()
        if status and database.name in {d["name"] for d in status.get("databases", [])}:
            done = litestream.sync_wait(exe, Path(status["socket"]), database, max(1.0, left))
            if done and done.get("replica_txid", -1) >= done.get("txid", 0):
                waited = round((time.monotonic() - started) * 1000, 1)
                store.log("replication_waited", database=database.name, txid=done["txid"], waited_ms=waited, before=why)
                return {"database": database.name, "txid": done["txid"], "waited_ms": waited}
        if left <= 0:
            raise ReplicationFailed.with_hint(
                f"{database.name} was not replicated to {litestream.shown(settings.replica)} within [replication] wait_timeout_s "
                f"({settings.wait_timeout_s} s) before {why}; nothing was switched",
                "see `bluegreen replicate`'s lines, then run the command again (wait_timeout_s = 0 does not wait)",
            )
        time.sleep(0.1)


def wait_pointer_replicated(config: Config, store: Store, why: str) -> dict | None:
    """After a swap: wait until the replica's pointer.db names the new active generation (the
    replicator rewrites pointer.db within its poll, Litestream ships it). The swap is done by then,
    so running out of `wait_timeout_s` fails nothing: it is logged, and the lag stays as documented."""
    settings = config.replication
    status = read_status(store) if settings.replica and settings.wait_timeout_s else None
    if status is None:
        return None
    exe = litestream.binary(settings)
    pointer_db = store.state_dir / "replication" / litestream.POINTER_DB
    started = time.monotonic()
    deadline = started + settings.wait_timeout_s
    while time.monotonic() < deadline:
        recorded = project.read(pointer_db) if pointer_db.exists() else None
        current = store.pointer_path.read_text(encoding="utf-8")
        if recorded is not None and recorded.values.get("pointer") == current:
            done = litestream.sync_wait(exe, Path(status["socket"]), pointer_db, max(1.0, deadline - time.monotonic()))
            if done and done.get("replica_txid", -1) >= done.get("txid", 0):
                waited = round((time.monotonic() - started) * 1000, 1)
                store.log(
                    "replication_waited", database=pointer_db.name, txid=done["txid"], waited_ms=waited, before=why
                )
                return {"database": pointer_db.name, "waited_ms": waited}
        time.sleep(0.05)
    store.log("replication_lagging", database=pointer_db.name, after=why, timeout_s=settings.wait_timeout_s)
    return None
