"""What the files themselves say about their fences: the files are trusted over the journal
(a crash can fall between a fence's commit and the journal's record of it)."""

from __future__ import annotations

from pathlib import Path

import apsw

from bluegreen.engine.db import open_db, schema_version
from bluegreen.errors import SchemaDrift
from bluegreen.files import contract
from bluegreen.files.journal import State, Store


def fenced_by(path: Path) -> int | None:
    """The generation a file's fence names, or None if it takes writes."""
    conn = open_db(path, query_only=True)
    try:
        return contract.fenced_generation(conn)
    finally:
        conn.close()


def blue_fenced(store: Store, state: State) -> bool:
    """Did blue's fence for green commit? The file says so even if we died before journaling it
    (then its schema_version is recorded in state.fences now, for hazard 1's check)."""
    conn = open_db(store.folder / state.blue, query_only=True)
    try:
        fenced = contract.fenced_generation(conn) == state.green_generation
        if fenced and state.blue not in state.fences:
            state.fences[state.blue] = schema_version(conn)
        return fenced
    finally:
        conn.close()


def check_intact(store: Store, command: str, name: str, conn: apsw.Connection | None = None) -> None:
    """A fenced file whose schema_version moved had DDL run on it after it was retired
    (hazard 1): refuse to touch it."""
    path = store.folder / name
    own = conn is None
    conn = conn or open_db(path, query_only=True)
    try:
        moved = schema_version(conn) != store.load().fences.get(name)
    finally:
        if own:
            conn.close()
    if moved:
        raise SchemaDrift(
            f"{path}: its schema changed after it was fenced (someone ran DDL on the retired file); "
            f"{command} refused: inspect the file before using it"
        )
