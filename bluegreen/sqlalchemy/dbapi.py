"""A DB-API 2.0 driver over the following sqlite3 connection, for SQLAlchemy's pool.

`connect(pointer, **options)` returns a connection SQLAlchemy uses like a sqlite3 one. Under it,
the client's machinery (`bluegreen.client.connection`) opens the generation the pointer names
and follows the pointer; this module adds what an ORM needs on top:

- a statement outside a transaction follows the pointer first, and one a retired file's fence
  refused is run again on the file the pointer names (the refused one changed nothing);
- a statement that opens a transaction (BEGIN, SAVEPOINT) on a file that turns out to be fenced
  is taken, before anything runs in it, to the file the pointer names;
- a transaction that meets a fence later (it only read: see `replay`) is replayed on the new
  file and goes on if every read returns what it returned, else FencedInTransaction;
- the settings SQLAlchemy and the application made on the connection follow it (`settings`);
- a result not read to its end when the connection moves is read into memory first;
- every statement the application runs is sampled for `bluegreen watch` (client/sampling.py),
  on the file that ran it: a statement a fence refused counts once, where it ran again; a
  replayed transaction's statements count once, where they first ran (the replay is bluegreen's
  work, not the application's traffic); bluegreen's own checks (the fence, schema_version) are
  not sampled. Off: `sampling=False` (URL `?sampling=false`, or connect_args) or BLUEGREEN_SAMPLING=0.

A connection is used by one thread at a time (SQLAlchemy's pool hands it out that way).
"""

from __future__ import annotations

import re
import sqlite3
import weakref
from dataclasses import dataclass
from sqlite3 import (  # noqa: F401  the module face SQLAlchemy expects of a DB-API driver
    Binary,
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Warning,
    sqlite_version,
    sqlite_version_info,
)

from bluegreen.client import Stats as ClientStats
from bluegreen.client.connection import FollowingConnection, _clock, _fence_generation, _options, _rollback
from bluegreen.client.opener import Sqlite3Driver, Target
from bluegreen.errors import BluegreenError
from bluegreen.files.contract import fenced_generation
from bluegreen.sqlalchemy.cursor import Cursor
from bluegreen.sqlalchemy.failures import FencedInTransaction, FenceWaitTimeout, as_dbapi
from bluegreen.sqlalchemy.replay import Entry, Log, columns_of, error_of, replay
from bluegreen.sqlalchemy.settings import ATTRIBUTES, METHODS, Settings

apilevel = "2.0"
threadsafety = 1
paramstyle = "qmark"
_BUSY = {5, 517}  # SQLITE_BUSY, SQLITE_BUSY_SNAPSHOT: a deferred transaction could not start writing
_OPENERS = ("BEGIN", "SAVEPOINT")
_LOCKING = re.compile(r"\b(IMMEDIATE|EXCLUSIVE)\b", re.IGNORECASE)
_DEFERRED = re.compile(r"^\s*BEGIN(\s+DEFERRED)?(\s+TRANSACTION)?\s*;?\s*$", re.IGNORECASE)


@dataclass
class Stats(ClientStats):
    replayed: int = 0  # open transactions moved to the new file, their reads shown unchanged
    conflicts: int = 0  # open transactions refused because a read differed there (FencedInTransaction)
    moved_at_begin: int = 0  # transactions opened on a fenced file and taken to the active one first
    relocked: int = 0  # deferred transactions that met a lock after reading, re-run as BEGIN IMMEDIATE, reads unchanged


CLIENT_OPTIONS = ("compatible", "on_connect", "read_only", "busy_timeout_ms", "fence_timeout_s", "watch")
CLIENT_OPTIONS += ("poll_interval", "heartbeat", "read_percentage_new", "route_key", "force_new", "force_old")
CLIENT_OPTIONS += ("sampling",)
SQLITE3_ARGUMENTS = ("detect_types", "isolation_level", "check_same_thread", "cached_statements")


def connect(pointer, *, sqlite3_kwargs: dict | None = None, **options) -> Connection:
    """Open the generation the pointer names. options: the client's (see
    bluegreen.client.connect_sqlite3); sqlite3.connect's own arguments may be given here too
    (`timeout` in seconds becomes busy_timeout_ms), or in sqlite3_kwargs."""
    sqlite3_kwargs = dict(sqlite3_kwargs or {})
    for key in [k for k in options if k not in CLIENT_OPTIONS]:
        if key == "timeout":
            options["busy_timeout_ms"] = round(float(options.pop(key)) * 1000)
        elif key in SQLITE3_ARGUMENTS:
            sqlite3_kwargs[key] = options.pop(key)
        else:
            known = ", ".join(CLIENT_OPTIONS + SQLITE3_ARGUMENTS + ("timeout", "sqlite3_kwargs"))
            raise TypeError(f"bluegreen.sqlalchemy.dbapi.connect: unknown option {key!r}; the options are {known}")
    try:
        return Connection(pointer, sqlite3_kwargs, options)
    except BluegreenError as exc:
        raise as_dbapi(exc) from None


class Connection(FollowingConnection):
    def __init__(self, pointer, sqlite3_kwargs: dict, options: dict):
        if sqlite3_kwargs.get("autocommit") is False:
            raise ValueError(
                "autocommit=False keeps a transaction open at all times, so the connection could never follow "
                "the pointer; leave sqlite3's default, or set isolation_level=None and emit BEGIN"
            )
        sqlite3_kwargs.setdefault("check_same_thread", False)  # the pool hands connections between threads
        self._settings = Settings(options.pop("on_connect", None))
        self._log = Log()
        self._cursors: weakref.WeakSet = weakref.WeakSet()
        self._checked: tuple = (None, None)  # (raw connection, schema_version) seen unfenced
        super().__init__(Sqlite3Driver, _options(pointer, on_connect=self._settings.apply, **options), sqlite3_kwargs)
        self.stats = Stats()

    # -- DB-API ---------------------------------------------------------------------------------
    def cursor(self) -> Cursor:
        return Cursor(self)

    def execute(self, sql: str, parameters=()) -> Cursor:
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters) -> Cursor:
        return self.cursor().executemany(sql, seq_of_parameters)

    def commit(self) -> None:
        self._slot.conn.commit()
        self._log.clear()

    def rollback(self) -> None:
        """Also what the pool calls when a connection comes back: it follows the pointer then, so
        a connection resting in the pool is not left on a retired file (status, finalize)."""
        self._slot.conn.rollback()
        self._log.clear()
        seen = self._seen
        try:
            self._ready()
        except BluegreenError:
            self._seen = seen  # the next statement raises it, where the application sees it

    @property
    def in_transaction(self) -> bool:
        return self._slot.conn.in_transaction

    def refresh(self) -> bool:
        """Follow the pointer now, outside a transaction; True if the connection moved."""
        self._check_open()
        if self._slot.conn.in_transaction:
            return False
        try:
            return self._follow()
        except BluegreenError as exc:
            raise as_dbapi(exc) from None

    def transaction(self, fn, *, mode: str = "IMMEDIATE"):
        """Not here: this connection carries the library's own transactions across a swap (BEGIN
        through execute(), or sqlite3's implicit one); `bluegreen.client`'s connections have it."""
        raise NotImplementedError(
            "bluegreen.sqlalchemy connections carry the library's own transactions (engine.begin(), Session, "
            "BEGIN through execute()) across a swap; transaction(fn) belongs to bluegreen.client.connect*"
        )

    # -- running a statement ----------------------------------------------------------------------
    def _statement(self, cursor: Cursor, sql: str, params, many: bool) -> None:
        try:
            self._ready()  # outside a transaction: follow the pointer if it moved
        except BluegreenError as exc:
            raise as_dbapi(exc) from None
        raw = self._slot.conn
        outside = not raw.in_transaction
        opens = outside and sql.lstrip().upper().startswith(_OPENERS)
        if outside:
            self._log.clear()
            if opens:
                raw = self._begin_where_active(raw)  # before BEGIN: no snapshot held after the check
        changes = raw.total_changes
        tally = self._slot.tally
        started = tally.start(sql) if tally is not None else 0
        try:
            result, changed = self._execute_raw(raw, sql, params, many)
        except sqlite3.Error as exc:
            result, changed = self._refused(exc, sql, params, many, outside, changes, tally)
        else:
            elapsed = _clock() - started if started else 0
            if opens and raw.in_transaction and _LOCKING.search(sql) and self._begin_where_active(raw) is not raw:
                # BEGIN IMMEDIATE may have waited out the barrier and the fence: look again (the
                # lock is held already, so the read cannot turn a later write into a lock error)
                if tally is not None:
                    tally.refused(sql)
                result, changed = self._again(sql, params, many)  # sampled there, on the new file
            elif started:
                tally.add(sql, elapsed)
        raw = self._slot.conn
        entry = None
        if raw.in_transaction:
            entry = self._log.add(Entry(sql, params, many, cursor, columns_of(result), changed=changed))
        elif outside:
            self._settings.statement(sql)
        self._cursors.add(cursor)
        cursor._bind(result, entry)

    @staticmethod
    def _execute_raw(raw: sqlite3.Connection, sql: str, params, many: bool) -> tuple[sqlite3.Cursor, bool]:
        """One statement on the raw connection, not sampled (the callers sample what the application ran)."""
        before = raw.total_changes
        cursor = raw.cursor()
        if many:
            cursor.executemany(sql, params)
        else:
            cursor.execute(sql, params)
        return cursor, raw.total_changes != before

    def _begin_where_active(self, raw: sqlite3.Connection) -> sqlite3.Connection:
        """A transaction is about to open: if this file is fenced, go to the active one first.
        One `PRAGMA schema_version` per transaction; the fence is looked for only when it moved.
        Outside a transaction the check holds no snapshot after it, so a deferred BEGIN's first
        write still waits on the busy timeout instead of failing at once (hazard 22)."""
        version = raw.execute("PRAGMA schema_version").fetchone()[0]
        if self._checked[0] is raw and self._checked[1] == version:
            return raw
        fenced_for = fenced_generation(raw)
        if fenced_for is None:
            self._checked = (raw, version)
            return raw
        _rollback(raw)  # nothing, or the BEGIN IMMEDIATE that was just taken on the fenced file
        self._move(self._slot.target, fenced_for)
        self.stats.moved_at_begin += 1
        return self._slot.conn

    def _refused(self, exc: sqlite3.Error, sql, params, many, outside: bool, changes: int, tally):
        """A statement the driver refused: an error of this file, or (a fence, a lock a replay
        waits out) not this file's: uncounted from its tally, and run again or refused."""
        raw = self._slot.conn
        fenced_for = _fence_generation(exc)
        locked = not outside and getattr(exc, "sqlite_errorcode", None) in _BUSY
        if fenced_for is None and locked:
            fenced_for = self._fence_seen_now()  # a transaction that read, then wrote past the fence?
        if fenced_for is None and not (locked and self._log.entries and _DEFERRED.match(self._log.entries[0].sql)):
            if raw.in_transaction:
                self._log.add(Entry(sql, params, many, None, error=error_of(exc)))
            self._failed(sql)
            raise exc
        if tally is not None:
            tally.refused(sql)  # before a move: this file's tally
        refused = self._slot.target
        if raw.total_changes != changes:
            raise FencedInTransaction(
                f"{refused.path}: retired (generation {refused.generation} is fenced; use generation {fenced_for}) "
                "after part of this executemany() had been committed, so it was not run again; run the rest again",
                details={"fenced_for": fenced_for, "file": refused.file},
            ) from exc
        if outside:
            _rollback(raw)  # sqlite3's implicit BEGIN, which holds nothing
            self._move(refused, fenced_for)
            self.stats.fence_retries += 1
        else:
            try:
                self._carry(exc, fenced_for)
            except BluegreenError:
                raise  # a fence's refusal, not an error of either file: not sampled
            except sqlite3.Error:
                self._failed(sql, started=False)  # SQLite's own lock error, as without bluegreen
                raise
        return self._again(sql, params, many)

    def _carry(self, exc: sqlite3.Error, fenced_for: int | None) -> None:
        """Run the open transaction again, on the file the pointer names if this one is fenced,
        or raise. A deferred one (plain BEGIN) that had read could not wait for the write lock
        (hazard 22): it is run again as BEGIN IMMEDIATE, which waits, and whose file is looked at
        once the lock is held (the fence may have been what it waited for)."""
        log = self._log
        self._log = Log()
        _rollback(self._slot.conn)
        refused = self._slot.target
        opener = log.entries[0].sql if log.entries else ""
        first = "BEGIN IMMEDIATE" if _DEFERRED.match(opener) else None
        locks = first is not None or bool(_LOCKING.search(opener))
        retired = fenced_for is not None
        told = fenced_for  # the generation the first fence named
        why = log.why_not()
        if not opener.lstrip().upper().startswith(_OPENERS):
            why = (
                why
                or "it was not begun through this connection's execute() (executescript?), so it cannot be run again"
            )
        for _attempt in range(3):
            if why is not None:
                break
            if fenced_for is not None:
                self._move(self._slot.target, fenced_for)
            why = replay(log, self._slot.conn, lambda raw, *a: self._execute_raw(raw, *a)[0], first)
            if why is not None:
                break
            fenced_for = fenced_generation(self._slot.conn) if locks else None  # under the lock: final
            if fenced_for is None:
                self._log = log
                if retired:
                    self.stats.replayed += 1
                    self.stats.fence_retries += 1
                else:
                    self.stats.relocked += 1
                return
            retired = True
            told = told if told is not None else fenced_for
            _rollback(self._slot.conn)
        else:
            why = "the file was retired again while it moved"
        _rollback(self._slot.conn)
        if not retired:
            raise exc  # SQLite's own lock error, as without bluegreen: what it had read changed meanwhile
        self.stats.conflicts += 1
        raise FencedInTransaction(
            f"{refused.path}: retired under an open transaction (generation {refused.generation} is fenced; use "
            f"generation {told}), and {why} on {self._slot.target.file}: nothing of it was committed; run the "
            "transaction again",
            details={"fenced_for": told, "file": refused.file},
        ) from exc

    def _again(self, sql, params, many):
        """The statement once more, after the connection moved (or its transaction was carried): sampled here."""
        tally = self._slot.tally
        started = tally.start(sql) if tally is not None else 0
        try:
            result = self._execute_raw(self._slot.conn, sql, params, many)
        except sqlite3.Error as again:
            if _fence_generation(again) is None:
                self._failed(sql)
                raise
            if tally is not None:
                tally.refused(sql)
            raise FenceWaitTimeout(
                f"{self._slot.target.path}: refused by a fence again right after following the pointer (another "
                "cutover or revert ran meanwhile); nothing was written: run it again",
                details={"fenced_for": _fence_generation(again)},
            ) from again
        if started:
            tally.add(sql, _clock() - started)
        return result

    def _failed(self, sql: str, started: bool = True) -> None:
        """A statement the driver refused (not a fence): an error of the file it ran on (counted
        there first unless its tally started it)."""
        tally = self._slot.tally
        if tally is not None:
            if not started:
                tally.start(sql)
            tally.failed(sql)

    def _fence_seen_now(self) -> int | None:
        """The current file's fence as a new reader sees it (this connection's snapshot is older)."""
        try:
            side = Sqlite3Driver.open(self._slot.target.path, self.options, {})  # one library: hazard 20 holds
        except sqlite3.Error:
            return None
        try:
            return fenced_generation(side)
        except sqlite3.Error:
            return None
        finally:
            side.close()

    def _move(self, refused: Target, fenced_for: int) -> None:
        try:
            self._move_off(refused, fenced_for)
        except BluegreenError as exc:
            raise as_dbapi(exc) from None

    def _install(self, target: Target, conn) -> None:
        for cursor in list(self._cursors):
            cursor._keep_rows()  # the old connection closes: what was not read yet is read now
        self._cursors = weakref.WeakSet()
        self._checked = (None, None)
        super()._install(target, conn)


def _recorded(name: str):
    def call(self: Connection, *args, **kwargs):
        result = getattr(self._slot.conn, name)(*args, **kwargs)
        self._settings.method(name, args, kwargs)
        return result

    call.__name__ = name
    call.__doc__ = f"sqlite3.Connection.{name}, made again on every file the connection moves to."
    return call


def _attribute(name: str) -> property:
    def get(self: Connection):
        return getattr(self._slot.conn, name)

    def set_(self: Connection, value) -> None:
        setattr(self._slot.conn, name, value)
        self._settings.attribute(name, value)

    return property(get, set_, doc=f"sqlite3.Connection.{name}, kept on every file the connection moves to.")


for _name in METHODS:
    setattr(Connection, _name, _recorded(_name))
for _name in ATTRIBUTES:
    setattr(Connection, _name, _attribute(_name))
