"""`bluegreen replicate`: Litestream for every generation that may be active, following the pointer.

What is replicated, read from the pointer and the journal every `POLL_S`:
- the active generation;
- while a green is prepared (or being cut over to): green too, so it has a replica before its
  first moment as active, and cutover can wait for it (replication/wait.py);
- during the revert window: the revert target too (the retired blue), until finalize;
- always: `.bluegreen/replication/pointer.db` (replication/project.py), the pointer, journal,
  config and migrations, rewritten whenever one changes.

When that set changes, the Litestream config is rewritten and Litestream restarted (a swap itself
changes nothing: green was already in the set). SIGTERM or SIGINT stops Litestream (which syncs
what it has) and exits 0, for systemd. Lines go to stdout, Litestream's with them."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sys
import time
from pathlib import Path

from bluegreen.config.sections import Config
from bluegreen.errors import Busy, ConfigInvalid, JournalInvalid, PointerInvalid, ReplicationFailed
from bluegreen.files import pointer as pointer_file
from bluegreen.files.journal import Phase, Store
from bluegreen.files.layout import write_file
from bluegreen.replication import first_contact, litestream, project

POLL_S = 0.1  # how often the pointer and the journal are looked at
RESTART_LIMIT = 5  # Litestream exiting by itself this many times in a row ends the command


def folder(store: Store) -> Path:
    return store.state_dir / "replication"


def status_path(store: Store) -> Path:
    return folder(store) / "status.json"


def require(config: Config) -> None:
    if not config.replication.replica:
        raise ConfigInvalid.with_hint(
            f"{config.path}: no [replication] section, so nothing says where to replicate",
            'add [replication] with replica = "file:///srv/replicas/app" (or s3://bucket/app)',
        )


def wanted(store: Store) -> list[str]:
    """The generation files to replicate now (names in the pointer's folder), active first."""
    current = pointer_file.read(store.pointer_path)
    names = [current.active]
    if store.initialized():
        state = store.load()
        if state.phase in (Phase.PREPARED, Phase.CUTTING_OVER, Phase.CUT_OVER, Phase.REVERTING):
            names += [n for n in (state.green, state.blue) if n and n not in names]
    return [n for n in names if (store.folder / n).is_file()]


def _say(text: str) -> None:
    print(f"bluegreen replicate: {text}", flush=True)


def _write_status(store: Store, status: dict) -> None:
    status["updated_at"] = pointer_file.now_iso()
    write_file(status_path(store), json.dumps(status, indent=1).encode(), 0o644, "status.json")


class _Stop:
    def __init__(self):
        self.signal = 0

    def __call__(self, signum, frame):
        self.signal = signum


def run(config: Config) -> dict:
    """Replicate until SIGTERM/SIGINT; returns what it did (the command's result)."""
    require(config)
    settings = config.replication
    exe = litestream.binary(settings)
    store = Store(config.database.pointer)
    pointer_file.read(store.pointer_path)  # a broken pointer: refuse before anything starts
    here = folder(store)
    here.mkdir(parents=True, exist_ok=True)
    lock = os.open(here / "replicate.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock)
        raise Busy.with_hint(
            f"{here}: another `bluegreen replicate` is running for this project", "stop it first, or leave it running"
        ) from None
    try:
        stale = json.loads(status_path(store).read_text()).get("litestream_pid")
    except (OSError, ValueError, AttributeError):
        stale = None
    if litestream.stop_stale(stale):
        _say(f"stopped litestream pid {stale}, left running by a replicate that was killed")
    stop = _Stop()
    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    pointer_db = here / litestream.POINTER_DB
    yaml = here / "litestream.yml"
    sock = litestream.socket_path(here)
    status = {
        "pid": os.getpid(),
        "litestream_pid": 0,
        "socket": str(sock),
        "replica": litestream.shown(settings.replica),
    }
    status |= {"started_at": pointer_file.now_iso(), "databases": [], "restarts": 0, "running": True}
    process = None
    current: list[str] | None = None
    last_snapshot = None
    last_held: list[str] = []
    known: set[str] = set()  # files found with Litestream's tables
    failures = 0
    beat = started_at = 0.0
    try:
        _say(
            f"replicating to {litestream.shown(settings.replica)} (sync interval {settings.sync_interval_ms} ms), pid {os.getpid()}"
        )
        while not stop.signal:
            try:
                snapshot = project.gather(config)
                names, held = first_contact.ready_for_litestream(store, wanted(store), known)
            except (PointerInvalid, JournalInvalid, OSError) as exc:  # mid-rename, or broken: keep going
                _say(f"cannot read the project now ({exc}); keeping the current set")
                time.sleep(POLL_S * 5)
                continue
            if snapshot != last_snapshot:
                project.write(pointer_db, snapshot)
                last_snapshot = snapshot
                _say(f"pointer.db updated: active {pointer_file.read(store.pointer_path).active}")
            died = process is not None and process.poll() is not None
            if died:
                failures += 1
                _say(f"litestream exited with {process.returncode}; restarting ({failures}/{RESTART_LIMIT})")
                if failures >= RESTART_LIMIT:
                    raise ReplicationFailed(f"litestream exited {failures} times in a row; see its lines above")
            if held != last_held:
                if held:
                    _say(
                        f"not yet replicating {', '.join(held)}: Litestream's first contact would change its schema now"
                    )
                last_held = held
            if names != current or died:
                if process is not None and not died:
                    litestream.stop(process)
                    status["restarts"] += 1
                dbs = [(store.folder / n, litestream.generation_url(settings, n)) for n in names]
                dbs.append((pointer_db, litestream.pointer_url(settings)))
                yaml.write_text(litestream.config_text(settings, dbs, sock))
                process = litestream.start(exe, yaml, None)
                started_at = time.monotonic()
                current = names
                status["litestream_pid"] = process.pid
                status["databases"] = [{"name": p.name, "path": str(p), "url": u} for p, u in dbs]
                _write_status(store, status)
                _say(f"litestream pid {process.pid}: {', '.join(names)} and pointer.db")
            elif process is not None and time.monotonic() - started_at > 10:
                failures = 0  # it has run a while: a later exit starts the count again
            if time.monotonic() - beat > 1.0:
                _write_status(store, status)  # the heartbeat cutover's wait trusts
                beat = time.monotonic()
            time.sleep(POLL_S)
    finally:
        code = litestream.stop(process) if process is not None else 0
        status |= {"running": False, "litestream_pid": 0, "stopped_at": pointer_file.now_iso()}
        _write_status(store, status)
        for s, handler in old.items():
            signal.signal(s, handler)
        os.close(lock)
        _say(f"stopped (litestream exited {code})")
    sys.stdout.flush()
    return {"signal": stop.signal, "replica": litestream.shown(settings.replica), "databases": status["databases"]}
