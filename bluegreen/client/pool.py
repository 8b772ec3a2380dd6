"""Pools that hold plain sqlite3 connections (SQLAlchemy): each one stays on one generation, and
the pool replaces it at checkout once the pointer names another file.

    engine = create_engine("sqlite://", creator=client.creator("data/current.toml"))
    client.follow_engine(engine)

Superseded by `bluegreen.sqlalchemy` (`create_engine("bluegreen+sqlite:///data/current.toml")`),
which also retries what a fence refused; this recipe retries nothing and its `sqlite://` URL gets
a SingletonThreadPool. Kept working for applications that use it.
"""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Callable
from pathlib import Path

from bluegreen.client import sampling
from bluegreen.client.connection import _close_slot, _options, _Slot
from bluegreen.client.opener import Opener, Sqlite3Driver, Target
from bluegreen.client.watch import PointerWatch, watch_for
from bluegreen.errors import BluegreenError


class PinnedSqlite3(sqlite3.Connection):
    """A plain sqlite3 connection on one generation, for pools (SQLAlchemy): it never moves by
    itself; `bluegreen_stale()` says when the pool should replace it."""

    bluegreen_target: Target

    def bluegreen_stale(self) -> bool:
        """True once the pointer names another usable file. Cheap until the watch sees a change."""
        watch: PointerWatch = self._bluegreen_watch
        if watch.version == self._bluegreen_seen:
            return False
        self._bluegreen_seen = watch.version
        opener: Opener = self._bluegreen_opener
        try:
            target = opener.candidates()[-1]
            if target.path == self.bluegreen_target.path:
                return False
            opener.check(target, staying=self.bluegreen_target)
        except BluegreenError:
            return False  # keep this one rather than fail every checkout
        return True

    def cursor(self, factory=None):
        """Cursors report each statement's time to the sample log (client/sampling.py), unless
        sampling is off or a factory of one's own is given."""
        tally = getattr(self, "_bluegreen_tally", None)
        if factory is not None or tally is None:
            return super().cursor(factory) if factory is not None else super().cursor()
        cursor = super().cursor(sampling.SampledCursor)
        cursor.bluegreen_tally = tally
        return cursor

    def execute(self, sql, parameters=(), /):
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql, seq_of_parameters, /):
        return self.cursor().executemany(sql, seq_of_parameters)

    def close(self) -> None:
        finalizer = getattr(self, "_bluegreen_finalizer", None)
        if finalizer is not None:
            finalizer()
        else:
            super().close()


def creator(pointer_path: Path | str, *, sqlite3_kwargs: dict | None = None, **options) -> Callable[[], PinnedSqlite3]:
    """A zero-argument function for `create_engine("sqlite://", creator=...)`: each call opens the
    active generation (checked like connect_sqlite3). Pair it with follow_engine(engine) so pooled
    connections are replaced at checkout once the pointer moves."""
    opts = _options(pointer_path, **options)
    if opts.read_only or opts.routing:
        raise ValueError("creator() opens read-write connections on the active file")
    extra = dict(sqlite3_kwargs or {})
    extra.setdefault("check_same_thread", False)  # pools hand connections between threads
    extra["factory"] = PinnedSqlite3

    def make() -> PinnedSqlite3:
        opener = Opener(Sqlite3Driver, opts, extra)
        watch = watch_for(opts.pointer, use_watchdog=opts.watch, poll_interval=opts.poll_interval)
        seen = watch.version
        target = opener.candidates()[-1]
        conn: PinnedSqlite3 = opener.open(target)
        conn.bluegreen_target = target
        conn._bluegreen_opener = opener
        conn._bluegreen_watch = watch
        conn._bluegreen_seen = seen
        sampled = opts.sampling and not sampling.disabled_by_environment()
        tally = sampling.sampler_for(opts.pointer).tally(target.generation, target.file) if sampled else None
        conn._bluegreen_tally = tally
        slot = _Slot(target, _Unbound(conn), tally=tally)
        conn._bluegreen_finalizer = weakref.finalize(conn, _close_slot, opener, slot)
        return conn

    return make


class _Unbound:
    """Closes a PinnedSqlite3 through sqlite3's own close (its override routes here)."""

    def __init__(self, conn: PinnedSqlite3):
        self._ref = weakref.ref(conn)

    def close(self) -> None:
        conn = self._ref()
        if conn is not None:
            sqlite3.Connection.close(conn)


def follow_engine(engine) -> None:
    """Make an SQLAlchemy engine built on creator() replace pooled connections whose file is no
    longer active: at checkout, before any transaction starts (SQLAlchemy reconnects on
    DisconnectionError). A write that meets a fence mid-transaction still fails: retry the unit."""
    from sqlalchemy import event, exc

    def on_checkout(dbapi_connection, connection_record, connection_proxy) -> None:
        stale = getattr(dbapi_connection, "bluegreen_stale", None)
        if stale is not None and stale():
            raise exc.DisconnectionError("bluegreen: the pointer moved; reconnecting to the active generation")

    event.listen(engine, "checkout", on_checkout)
