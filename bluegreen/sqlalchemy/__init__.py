"""SQLAlchemy on bluegreen: an engine on the pointer, not on a file.

    from sqlalchemy import create_engine
    engine = create_engine("bluegreen+sqlite:///data/current.toml")   # or bluegreen.sqlalchemy.create_engine(path)

The dialect is registered by entry point (`pip install 'bluegreen[sqlalchemy]'`); importing this
module registers it too. What the engine does, statement by statement (the details are in
`dbapi` and `replay`):

- every connection opens the generation the pointer names (no CREATE, the stamp checked, the
  schema version among `compatible`), and follows the pointer at its next statement outside a
  transaction (watchdog, a polling thread as fallback); QueuePool, check_same_thread off;
- a statement a retired file's fence refused is run again on the file the pointer names, once it
  names a writable one: with sqlite3's default transactions (what SQLAlchemy uses unless told
  otherwise) that is every refusal, since a transaction starts at its first write;
- with SQLAlchemy emitting BEGIN itself (isolation_level=None plus a "begin" listener), a
  transaction opened on a fenced file moves before it runs anything, and one the fence meets
  later is replayed on the new file and goes on if everything it read reads the same there;
  otherwise `sqlalchemy.exc.OperationalError` whose `orig` is `FencedInTransaction`, nothing of
  the transaction committed: the application's usual handling of a failed transaction applies;
  a deferred transaction that read and then met a held write lock (which SQLite refuses at once)
  is run again as BEGIN IMMEDIATE, which waits, if its reads are unchanged;
- every statement is sampled per query shape and generation for `bluegreen watch` (off:
  `?sampling=false`, `connect_args={"sampling": False}`, or BLUEGREEN_SAMPLING=0);
- a bad pointer, a missing or wrong file, a schema the application does not accept are
  `sqlalchemy.exc.OperationalError` whose `orig` is PointerInvalid, GenerationUnavailable or
  IncompatibleGeneration (each also the client's or errors' class of that name), at connect or
  at the statement that would have moved the connection (which then stays where it is).

`bluegreen.sqlalchemy.dbapi` is that driver alone, a DB-API 2.0 module that needs no SQLAlchemy:
other libraries (peewee, a plain pool) use it through `dbapi.connect(pointer)`.

Do not open the same database with apsw in the same process (hazard 20): this driver is the
standard library's sqlite3.
"""

from __future__ import annotations

from pathlib import Path

from bluegreen.sqlalchemy.dbapi import Connection, Stats
from bluegreen.sqlalchemy.failures import (
    ClientError,
    FencedInTransaction,
    FenceWaitTimeout,
    GenerationUnavailable,
    IncompatibleGeneration,
    PointerInvalid,
)

__all__: list[str] = []
try:
    from sqlalchemy.dialects import registry
except ImportError:  # the DB-API driver (`dbapi`) needs no SQLAlchemy: peewee and plain pools use it too
    pass
else:
    from bluegreen.sqlalchemy.dialect import BluegreenDialect as BluegreenDialect

    for _name in ("bluegreen", "bluegreen.sqlite", "sqlite.bluegreen"):
        registry.register(_name, "bluegreen.sqlalchemy.dialect", "BluegreenDialect")
    __all__.append("BluegreenDialect")


def url(pointer: Path | str) -> str:
    """The engine URL for a pointer file: bluegreen+sqlite:///<its absolute path>."""
    return "bluegreen+sqlite:///" + str(Path(pointer).resolve())


def create_engine(pointer: Path | str, **kwargs):
    """sqlalchemy.create_engine on the pointer file; client options go in connect_args
    (compatible=, on_connect=, fence_timeout_s=, ...), the rest to create_engine."""
    import sqlalchemy

    return sqlalchemy.create_engine(url(pointer), **kwargs)


def stats(connection) -> Stats:
    """What one pooled connection has done: reopens, fence retries, replays, conflicts. Takes an
    SQLAlchemy Connection (or the DB-API connection under it)."""
    raw = getattr(connection, "connection", connection)
    dbapi_connection = getattr(raw, "driver_connection", raw)
    return dbapi_connection.stats


__all__ += [
    "Connection",
    "Stats",
    "url",
    "create_engine",
    "stats",
    "ClientError",
    "FencedInTransaction",
    "FenceWaitTimeout",
    "GenerationUnavailable",
    "IncompatibleGeneration",
    "PointerInvalid",
]
