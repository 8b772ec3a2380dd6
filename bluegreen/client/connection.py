"""The following connection: an apsw or sqlite3 connection that reopens on the file the pointer
names, and retries a statement a fence refused. See bluegreen.client for the contract."""

from __future__ import annotations

import re
import sqlite3
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apsw

from bluegreen.client import routing, sampling
from bluegreen.client.opener import (
    DEFAULT_BUSY_TIMEOUT_MS,
    DEFAULT_FENCE_TIMEOUT_S,
    ApswDriver,
    ClientError,
    ClientOptions,
    GenerationUnavailable,
    IncompatibleGeneration,
    Opener,
    Sqlite3Driver,
    Target,
    active_target,
)
from bluegreen.client.watch import DEFAULT_POLL_INTERVAL_S, PointerWatch, watch_for
from bluegreen.errors import InputError
from bluegreen.files.contract import FENCE_MARK, fenced_generation

_FENCE_ERROR = re.compile(re.escape(FENCE_MARK) + r"(\d+)")
_FENCE_POLL_S = 0.002  # while waiting for a revert to lift the fence of the file it swapped to
_clock = sampling._clock


# -- errors of following --------------------------------------------------------------------------
class FencedInTransaction(ClientError):
    """A write met the fence where retrying it alone would be wrong (an open transaction, or a
    call that had already committed part of its work). Roll back and run the whole unit again."""


class FenceWaitTimeout(ClientError):
    """A write met the fence and the pointer did not name a writable file in time."""


@dataclass
class Stats:
    reopens: int = 0  # times the connection moved to another file
    fence_retries: int = 0  # writes refused by a fence, then run again on the new file


# -- the following connection ---------------------------------------------------------------------
@dataclass
class _Slot:
    """The open file; mutable so the garbage-collection finalizer closes whatever is current."""

    target: Target
    conn: Any
    closed: bool = False
    tally: sampling.Tally | None = None  # what its statements cost (client/sampling.py); None: not sampled


def _close_slot(opener: Opener, slot: _Slot) -> None:
    if not slot.closed:
        slot.closed = True
        if slot.tally is not None:
            slot.tally.retire()
        try:
            opener.close(slot.target, slot.conn)
        except Exception:
            pass


class FollowingConnection:
    """Shared machinery of the apsw and sqlite3 wrappers."""

    def __init__(self, driver: type, options: ClientOptions, extra: dict | None = None):
        self._opener = Opener(driver, options, extra)
        self._driver = driver
        self.options = options
        self.stats = Stats()
        self._sampler = (
            sampling.sampler_for(options.pointer)
            if options.sampling and not sampling.disabled_by_environment()
            else None
        )
        active_target(self._opener.pointer_path)  # a bad pointer fails here, before any thread starts
        self._watch: PointerWatch = watch_for(
            options.pointer, use_watchdog=options.watch, poll_interval=options.poll_interval
        )
        self._seen = self._watch.version  # before reading the pointer: a swap after this is noticed
        self._refused_target: tuple[Path, int] | None = None  # the incompatible target _follow refused, said once
        self._slot = self._open_first()
        self._finalizer = weakref.finalize(self, _close_slot, self._opener, self._slot)

    def _open_first(self) -> _Slot:
        for target in self._opener.candidates():
            try:
                return self._new_slot(target, self._opener.open(target))
            except ClientError:
                if not target.green:
                    raise
        raise AssertionError("unreachable: the active file is always a candidate")

    # -- what the application can ask ---------------------------------------------------------
    @property
    def target(self) -> Target:
        return self._slot.target

    @property
    def path(self) -> Path:
        return self._slot.target.path

    @property
    def generation(self) -> int:
        return self._slot.target.generation

    @property
    def schema_version(self) -> str:
        return self._slot.target.schema_version

    @property
    def reads_green(self) -> bool:
        """True while this read-only connection reads a prepared green (see bluegreen.client.routing)."""
        return self._slot.target.green

    @property
    def raw(self):
        """The underlying connection. It changes on every reopen: do not keep it."""
        return self._slot.conn

    @property
    def watch_mode(self) -> str:
        return self._watch.mode

    def in_transaction(self) -> bool:
        return self._driver.in_transaction(self._slot.conn)

    def refresh(self) -> bool:
        """Follow the pointer now (outside a transaction); True if the connection moved."""
        self._check_open()
        if self.in_transaction():
            return False
        return self._follow()

    def close(self) -> None:
        self._finalizer()

    @property
    def closed(self) -> bool:
        return self._slot.closed

    def transaction(self, fn: Callable[[FollowingConnection], Any], *, mode: str = "IMMEDIATE") -> Any:
        """Run fn(self) as one transaction and commit. If the file was retired under it, the whole
        transaction is rolled back, the connection follows the pointer and fn runs once more: fn
        must not have effects outside the database that it cannot repeat."""
        for attempt in (1, 2):
            self._ready()
            if self.in_transaction():
                raise ClientError("transaction() called inside an open transaction; commit or roll back first")
            conn = self._slot.conn
            conn.execute(f"BEGIN {mode}")
            try:
                result = fn(self)
                conn.execute("COMMIT")
                return result
            except FencedInTransaction as exc:
                _rollback(conn)
                if attempt == 2:
                    raise
                self._move_off(self._slot.target, exc.details.get("fenced_for") if exc.details else None)
                self.stats.fence_retries += 1
            except BaseException:
                _rollback(conn)
                raise

    # -- following ----------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._slot.closed:
            raise ClientError("this bluegreen connection is closed")

    def _ready(self) -> None:
        """Before every statement: follow the pointer if it moved and no transaction is open."""
        self._check_open()
        if self._watch.version != self._seen and not self._driver.in_transaction(self._slot.conn):
            self._follow()

    def _follow(self) -> bool:
        """Re-read the pointer (and journal); reopen if this connection belongs elsewhere. A target
        that cannot be used raises and leaves the connection where it is; one whose schema this
        application refuses raises once: the watch may see one deploy as several changes (the
        journal, then the pointer), and reads go on here until the pointer names another file.
        A missing file is tried again at each change (it may have been restored)."""
        self._seen = self._watch.version
        current = self._slot.target
        for target in self._opener.candidates():
            if (target.path, target.generation) == (current.path, current.generation):
                self._slot.target = target  # same file; a green read may have just become the active one
                self._refused_target = None
                return False
            if not target.green and (target.path, target.generation) == self._refused_target:
                return False  # said once already: this connection stays where it is
            try:
                conn = self._opener.open(target, staying=current)
            except ClientError as exc:
                if target.green:
                    continue  # routed reads fall back to the active file
                if isinstance(exc, IncompatibleGeneration):
                    self._refused_target = (target.path, target.generation)
                raise
            self._install(target, conn)
            self._refused_target = None
            return True
        return False

    def _new_slot(self, target: Target, conn) -> _Slot:
        tally = self._sampler.tally(target.generation, target.file) if self._sampler else None
        return _Slot(target, conn, tally=tally)

    def _install(self, target: Target, conn) -> None:
        old = self._slot
        self._slot = self._new_slot(target, conn)
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _close_slot, self._opener, self._slot)
        _close_slot(self._opener, old)
        self.stats.reopens += 1

    def _run(self, op: Callable[[Any], Any], sql: str = "") -> Any:
        """Run one call; if a retired file's fence refused it and nothing of it happened, move to
        the file the pointer names and run it once more. Sampled: its time (or its error) counts
        for the file that ran it."""
        self._ready()
        slot = self._slot
        conn = slot.conn
        outside = not self._driver.in_transaction(conn)
        changes = self._driver.total_changes(conn)
        tally = slot.tally
        started = tally.start(sql) if tally is not None else 0
        try:
            result = op(conn)
        except self._driver.Error as exc:
            fenced_for = _fence_generation(exc)
            if fenced_for is None:
                if tally is not None:
                    tally.failed(sql)
                raise
            if tally is not None:
                tally.refused(sql)
            refused = slot.target
            if not outside or self._driver.total_changes(conn) != changes:
                raise self._not_retried(refused, fenced_for, outside) from exc
            _rollback(conn)  # a transaction this very call opened (sqlite3's implicit BEGIN) holds nothing
            self._move_off(refused, fenced_for)
            self.stats.fence_retries += 1
            return self._run_again(op, sql)
        if started:
            tally.add(sql, _clock() - started)
        return result

    def _run_again(self, op: Callable[[Any], Any], sql: str) -> Any:
        """The call a fence refused, once more on the file the pointer names now."""
        tally = self._slot.tally
        started = tally.start(sql) if tally is not None else 0
        try:
            result = op(self._slot.conn)
        except self._driver.Error as again:
            if _fence_generation(again) is None:
                if tally is not None:
                    tally.failed(sql)
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

    def _not_retried(self, refused: Target, fenced_for: int, outside: bool) -> FencedInTransaction:
        if outside:
            why = "part of this call had already been committed before the fence, so it was not run again"
        else:
            why = (
                "this transaction was open when the file was retired; nothing of it is committed: roll it back "
                "and run it again (Connection.transaction(fn) does both)"
            )
        return FencedInTransaction(
            f"{refused.path}: retired (generation {refused.generation} is fenced; use generation {fenced_for}): {why}. "
            "The next statement outside a transaction uses the file the pointer names",
            details={"fenced_for": fenced_for, "file": refused.file},
        )

    def _move_off(self, refused: Target, fenced_for: int | None) -> None:
        """Wait, at most fence_timeout_s, until the pointer names a file that accepts writes, and
        reopen there. bluegreen never lifts a fence on the file the pointer names (a revert
        unfences blue before it swaps back, hazard 16), so on the same file this waits for the
        pointer; reading the fence state also reloads the schema, should a fence ever go."""
        deadline = time.monotonic() + self.options.fence_timeout_s
        problem = "the pointer still names it (an interrupted cutover? see `bluegreen status`)"
        while True:
            seen = self._watch.version
            try:
                target = active_target(self._opener.pointer_path)
                if target.path == refused.path:
                    if fenced_generation(self._slot.conn) is None:  # lifted: the pointer's file takes writes
                        self._seen = seen
                        return
                else:
                    conn = self._opener.open_raw(target, staying=refused)
                    if fenced_generation(conn) is None:
                        self._opener.setup(target, conn)
                        self._seen = seen
                        self._install(target, conn)
                        return
                    conn.close()
                    problem = f"{target.file} is still fenced"
            except IncompatibleGeneration:
                raise
            except (GenerationUnavailable, InputError) as exc:
                problem = exc.message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FenceWaitTimeout(
                    f"{refused.path}: writes refused by the bluegreen fence (use generation {fenced_for}), and after "
                    f"{self.options.fence_timeout_s:g} s {problem}; nothing was written",
                    details={"fenced_for": fenced_for, "file": refused.file},
                )
            self._watch.wait(seen, min(remaining, _FENCE_POLL_S))

    def __getattr__(self, name: str):
        """Anything else goes to the current underlying connection. Setup that must survive a
        reopen (functions, pragmas, row factories) belongs in on_connect."""
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._slot.conn, name)

    def __repr__(self) -> str:
        state = "closed" if self._slot.closed else self._slot.target.describe()
        return f"<{type(self).__name__} {self._opener.pointer_path} → {state}>"


def _fence_generation(exc: BaseException) -> int | None:
    """The generation a fence error tells us to use, or None if it is not a fence error."""
    match = _FENCE_ERROR.search(str(exc))
    return int(match.group(1)) if match else None


def _rollback(conn) -> None:
    try:
        conn.execute("ROLLBACK")
    except (apsw.Error, sqlite3.Error):
        pass  # nothing open


class Connection(FollowingConnection):
    """apsw flavour. `execute` / `executemany` return apsw cursors; `with conn:` is apsw's
    transaction (a savepoint), held on one file from start to end."""

    def __init__(self, options: ClientOptions):
        super().__init__(ApswDriver, options)
        self._entered: list[apsw.Connection] = []

    def execute(self, sql: str, bindings=None) -> apsw.Cursor:
        return self._run(lambda conn: conn.execute(sql, bindings), sql)

    def executemany(self, sql: str, sequenceofbindings) -> apsw.Cursor:
        rows = list(sequenceofbindings)  # a retry needs them again
        return self._run(lambda conn: conn.executemany(sql, rows), sql)

    def __enter__(self) -> Connection:
        self._ready()
        conn = self._slot.conn
        conn.__enter__()
        self._entered.append(conn)
        return self

    def __exit__(self, *exc_info) -> bool | None:
        return self._entered.pop().__exit__(*exc_info)


class Sqlite3Connection(FollowingConnection):
    """Standard-library flavour. Works in sqlite3's default (implicit transactions) and
    autocommit (`isolation_level=None`) modes; `commit()` ends a transaction, after which the
    connection may follow the pointer."""

    def __init__(self, options: ClientOptions, extra: dict):
        if extra.get("autocommit") is False:
            raise ValueError(
                "autocommit=False keeps a transaction open at all times, so the connection could "
                "never follow the pointer; use the default or isolation_level=None"
            )
        super().__init__(Sqlite3Driver, options, extra)

    def execute(self, sql: str, parameters=()) -> sqlite3.Cursor:
        return self._run(lambda conn: conn.execute(sql, parameters), sql)

    def executemany(self, sql: str, seq_of_parameters) -> sqlite3.Cursor:
        rows = list(seq_of_parameters)
        return self._run(lambda conn: conn.executemany(sql, rows), sql)

    def cursor(self, *args) -> sqlite3.Cursor:
        """A cursor on the current file, after following the pointer. Statements run through it
        are not retried on a fence: use execute() for that. They are sampled (client/sampling.py)
        unless a cursor factory is given."""
        self._ready()
        if args or self._slot.tally is None:
            return self._slot.conn.cursor(*args)
        cursor = self._slot.conn.cursor(sampling.SampledCursor)
        cursor.bluegreen_tally = self._slot.tally
        return cursor

    def commit(self) -> None:
        self._slot.conn.commit()

    def rollback(self) -> None:
        self._slot.conn.rollback()

    def __enter__(self) -> Sqlite3Connection:
        self._ready()
        self._entered = self._slot.conn
        self._entered.__enter__()
        return self

    def __exit__(self, *exc_info) -> bool | None:
        return self._entered.__exit__(*exc_info)


# -- entry points ---------------------------------------------------------------------------------
def _options(
    pointer_path,
    *,
    compatible=None,
    on_connect=None,
    read_only=False,
    read_percentage_new=0.0,
    route_key=None,
    force_new=False,
    force_old=False,
    busy_timeout_ms=DEFAULT_BUSY_TIMEOUT_MS,
    fence_timeout_s=DEFAULT_FENCE_TIMEOUT_S,
    watch=True,
    poll_interval=DEFAULT_POLL_INTERVAL_S,
    heartbeat=True,
    sampling=True,
) -> ClientOptions:
    routed = None
    if read_percentage_new or force_new or force_old:
        routed = routing.ReadRouting(read_percentage_new, route_key, force_new, force_old)
    return ClientOptions(
        Path(pointer_path),
        compatible,
        on_connect,
        read_only,
        routed,
        busy_timeout_ms,
        fence_timeout_s,
        watch,
        poll_interval,
        heartbeat,
        sampling,
    )


def connect(pointer_path: Path | str, **options) -> Connection:
    """Open the active generation with apsw and follow the pointer.

    compatible: schema versions this application handles: "2.0.0", "2.*", a list, or a predicate.
    on_connect(apsw.Connection): per-connection setup (pragmas, functions), run on every reopen.
    read_only: reads only (PRAGMA query_only). With read_percentage_new (0-100) and route_key, or
      force_new / force_old, it may read a prepared green: see bluegreen.client.routing.
    busy_timeout_ms: how long to wait for a lock; at least the cutover pause budget.
    fence_timeout_s: how long a write refused by a fence waits for the pointer to move.
    watch: use watchdog (else only the polling thread, every poll_interval seconds).
    heartbeat: report the open file in the client registry (bluegreen status / finalize).
    sampling: record each statement's time per query shape for `bluegreen watch` (client/sampling.py;
      off for the whole process with BLUEGREEN_SAMPLING=0).
    """
    return Connection(_options(pointer_path, **options))


def connect_sqlite3(pointer_path: Path | str, *, sqlite3_kwargs: dict | None = None, **options) -> Sqlite3Connection:
    """The same for the standard library's sqlite3; sqlite3_kwargs go to sqlite3.connect
    (isolation_level, detect_types, check_same_thread, ...). on_connect gets a sqlite3.Connection."""
    return Sqlite3Connection(_options(pointer_path, **options), dict(sqlite3_kwargs or {}))
