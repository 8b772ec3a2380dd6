"""A fenced file Litestream has never seen (replication started during the revert window): Litestream
would create its two tables in it, moving the `PRAGMA schema_version` the journal recorded at the
fence, and revert and finalize would then refuse the file as changed by hand (hazard 29). So the
replicator creates those tables first, with Litestream's own DDL, under the controller's lock, and
moves the recorded schema_version along with them."""

from __future__ import annotations

from pathlib import Path

import apsw

from bluegreen.engine.db import open_db, schema_version
from bluegreen.errors import Busy
from bluegreen.files.journal import Store

# What Litestream 0.5 creates in every database it replicates (read back from one it made).
LITESTREAM_DDL = (
    "CREATE TABLE IF NOT EXISTS _litestream_seq (id INTEGER PRIMARY KEY, seq INTEGER)",
    "CREATE TABLE IF NOT EXISTS _litestream_lock (id INTEGER)",
)


def _has_litestream_tables(path: Path) -> bool:
    conn = open_db(path, query_only=True)
    try:
        found = conn.execute(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN ('_litestream_seq', '_litestream_lock')"
        ).fetchone()[0]
    finally:
        conn.close()
    return found == 2


def ready_for_litestream(store: Store, names: list[str]) -> list[str]:
    """The names Litestream may start on now: a fenced one lacking its tables gets them first; one
    skipped because a controller holds the lock is tried again at the next poll."""
    if not store.initialized():
        return names
    ready = []
    for name in names:
        path = store.folder / name
        try:
            if name not in store.load().fences or _has_litestream_tables(path):
                ready.append(name)
                continue
            with store.locked():
                state = store.load()
                conn = open_db(path, triggers=False)
                try:
                    if name in state.fences and schema_version(conn) == state.fences[name]:
                        with conn:
                            for sql in LITESTREAM_DDL:
                                conn.execute(sql)
                        state.fences[name] = schema_version(conn)
                        store.save(state)
                        store.log("replication_tables", file=name, schema_version=state.fences[name])
                finally:
                    conn.close()
            ready.append(name)
        except Busy:
            continue
        except apsw.Error:
            ready.append(name)  # Litestream will say what is wrong with it
    return ready
