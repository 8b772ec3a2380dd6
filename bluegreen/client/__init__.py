"""Application side: open the generation the pointer names, and follow the pointer when it moves.

    from bluegreen import client
    conn = client.connect("data/current.toml", compatible=["1.2.1", "2.*"], on_connect=setup)
    conn.execute("INSERT INTO ...")          # an apsw-style connection that follows the pointer

`connect` (apsw) and `connect_sqlite3` (the standard library) return a wrapper that:

- opens the active file without CREATE and checks its generation stamp, so a missing or wrong
  file is an error, never a new empty database (hazard 11); refuses a schema version the
  application does not accept (`compatible=`); runs `on_connect(raw)` on every (re)open;
- reopens on the first statement outside a transaction after the pointer moved (a watchdog
  observer sees the swap within a millisecond; a polling thread covers file systems it cannot
  watch);
- when a write meets the fence of a retired file, waits (bounded) for the pointer to name a
  writable file, reopens and runs the statement once more: the refused statement changed
  nothing, so running it again is exact. Inside an explicit transaction it raises
  FencedInTransaction instead: half a transaction cannot be retried; `transaction(fn)` retries
  a whole one;
- waits out the cutover's write pause (busy timeout of at least the pause budget, polled every
  millisecond so a short pause is not overslept);
- reports which file it has open in the heartbeat registry (`bluegreen status`, `finalize`).

A wrapper is used by one thread at a time, like the connection it wraps. Cursors from before a
reopen are closed with the old file: read results out before the next statement. A connection
moves between statements, so code that picks its queries by `schema_version` does so inside
`transaction(fn)` (it follows first, then holds one file to the end) or right after `refresh()`.
An idle connection moves only when used: pools should `refresh()` idle connections now and then.

Never open the same database with both apsw and the standard library's sqlite3 in one process:
they are two SQLite libraries that do not see each other's POSIX locks (hazard 20), so when one
closes its last connection it checkpoints and deletes the -wal the other is still using.
"""

from bluegreen.client.connection import (
    Connection,
    FencedInTransaction,
    FenceWaitTimeout,
    Sqlite3Connection,
    Stats,
    connect,
    connect_sqlite3,
)
from bluegreen.client.opener import (
    DEFAULT_BUSY_TIMEOUT_MS,
    DEFAULT_FENCE_TIMEOUT_S,
    MIN_BUSY_TIMEOUT_MS,
    ClientError,
    ClientOptions,
    Compatible,
    GenerationUnavailable,
    IncompatibleGeneration,
    Target,
    accepts,
    active_path,
)
from bluegreen.client.pool import PinnedSqlite3, creator, follow_engine

__all__ = [
    "connect",
    "connect_sqlite3",
    "creator",
    "follow_engine",
    "active_path",
    "accepts",
    "Connection",
    "Sqlite3Connection",
    "PinnedSqlite3",
    "Target",
    "ClientOptions",
    "Compatible",
    "Stats",
    "ClientError",
    "GenerationUnavailable",
    "IncompatibleGeneration",
    "FencedInTransaction",
    "FenceWaitTimeout",
    "DEFAULT_BUSY_TIMEOUT_MS",
    "MIN_BUSY_TIMEOUT_MS",
    "DEFAULT_FENCE_TIMEOUT_S",
]
