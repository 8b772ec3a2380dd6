"""Litestream's first contact with a file creates two tables in it (`_litestream_seq`,
`_litestream_lock`): DDL, which moves `PRAGMA schema_version`. On a fenced file the journal
recorded that version at the fence, and revert and finalize would refuse the file as changed by
hand; on blue while a green is built, prepare and cutover would refuse blue's schema as changed
under them (hazard 29). So the replicator makes the tables itself, with Litestream's own DDL,
before Litestream starts on a file, at a moment that is safe for it:

- a fenced file: under the controller's lock, moving the recorded schema_version along;
- the prepared green: at once (nothing has recorded its schema yet: cutover records it after its
  catch-up, which waits for green's replica first);
- blue while a green is built or prepared: not now; it is replicated once it is fenced;
- any other file (the active one between deploys, or in the revert window): under the lock.

A file skipped because a controller holds the lock is tried again at the next poll."""

from __future__ import annotations

from pathlib import Path

import apsw

from bluegreen.engine.db import open_db, schema_version
from bluegreen.errors import Busy
from bluegreen.files.journal import Phase, State, Store

# What Litestream 0.5 creates in every database it replicates (read back from one it made).
LITESTREAM_DDL = (
    "CREATE TABLE IF NOT EXISTS _litestream_seq (id INTEGER PRIMARY KEY, seq INTEGER)",
    "CREATE TABLE IF NOT EXISTS _litestream_lock (id INTEGER)",
)
_BUILDING = (Phase.PREPARING, Phase.PREPARED, Phase.CUTTING_OVER)


def _has_litestream_tables(path: Path) -> bool:
    conn = open_db(path, query_only=True)
    try:
        found = conn.execute(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN ('_litestream_seq', '_litestream_lock')"
        ).fetchone()[0]
    finally:
        conn.close()
    return found == 2


def _create(path: Path) -> int:
    conn = open_db(path, triggers=False)
    try:
        with conn:
            for sql in LITESTREAM_DDL:
                conn.execute(sql)
        return schema_version(conn)
    finally:
        conn.close()


def _under_lock(store: Store, name: str) -> None:
    with store.locked():
        state = store.load()
        path = store.folder / name
        if name in state.fences:
            conn = open_db(path, query_only=True)
            try:
                intact = schema_version(conn) == state.fences[name]
            finally:
                conn.close()
            if not intact:  # changed by hand already: leave it as found, revert and finalize say so
                return
            state.fences[name] = _create(path)
            store.save(state)
        else:
            _create(path)
        store.log("replication_tables", file=name)


def ready_for_litestream(store: Store, names: list[str], known: set[str]) -> tuple[list[str], list[str]]:
    """(the names Litestream may start on now, those held back until it is safe); `known`: the
    names already found with Litestream's tables, kept by the caller so a poll opens no file twice."""
    if all(n in known for n in names):
        return names, []
    state = store.load() if store.initialized() else State(base_name="")
    ready, held = [], []
    for name in names:
        path = store.folder / name
        try:
            if name in known or _has_litestream_tables(path):
                known.add(name)
                ready.append(name)
            elif state.phase in _BUILDING and name == state.blue and name not in state.fences:
                held.append(name)
            elif state.phase in _BUILDING and name == state.green:
                _create(path)
                ready.append(name)
            else:
                _under_lock(store, name)
                ready.append(name)
        except Busy:
            held.append(name)
        except apsw.Error:
            ready.append(name)  # Litestream will say what is wrong with it
    return ready, held
