"""`ENGINE: "bluegreen.django"`: Django's sqlite3 backend on the generation the pointer names.
See bluegreen.django for the contract; the errors are in bluegreen.django.errors."""

from __future__ import annotations

import queue
import re
import sqlite3
import threading
import time
import weakref
from functools import lru_cache
from pathlib import Path

from django.db.backends import utils as backend_utils
from django.db.backends.sqlite3 import base as sqlite3_base
from django.db.backends.sqlite3._functions import register as register_functions
from django.db.backends.sqlite3.client import DatabaseClient as Sqlite3Client
from django.db.utils import DatabaseError
from django.utils.asyncio import async_unsafe

from bluegreen.client import sampling
from bluegreen.client.opener import (
    DEFAULT_BUSY_TIMEOUT_MS,
    ClientError,
    ClientOptions,
    GenerationUnavailable,
    IncompatibleGeneration,
    Opener,
    Sqlite3Driver,
    Target,
    active_path,
    active_target,
)
from bluegreen.client.watch import DEFAULT_POLL_INTERVAL_S, watch_for
from bluegreen.django.errors import FencedInTransaction, GenerationUnusable
from bluegreen.errors import BluegreenError, InputError
from bluegreen.files.contract import FENCE_MARK, fenced_generation

_FENCE_ERROR = re.compile(re.escape(FENCE_MARK) + r"(\d+)")
_FENCE_POLL_S = 0.002
_clock = sampling._clock
# OPTIONS that are bluegreen's, not sqlite3.connect's
_OPTIONS = ("compatible", "fence_timeout_s", "watch", "poll_interval", "heartbeat", "sampling")
DEFAULT_TRANSACTION_MODE = "IMMEDIATE"  # a cutover's fence never lands inside an atomic() block


# Heartbeat claims of connections that were garbage-collected without close() (a thread that ended
# holding a persistent connection: runserver starts one per request). A weakref callback may run
# inside any code, even while the heartbeat holds its lock, so it only queues the release (a
# SimpleQueue is safe there) and one daemon thread gives the claims back.
_RELEASES: queue.SimpleQueue = queue.SimpleQueue()
_RELEASER: list[threading.Thread] = []
_RELEASER_LOCK = threading.Lock()


def _release_queued() -> None:
    while True:
        beat, file, generation = _RELEASES.get()
        beat.release(file, generation)


def _release_when_collected(conn, beat, target: Target) -> weakref.finalize:
    with _RELEASER_LOCK:
        if not _RELEASER:
            _RELEASER.append(threading.Thread(target=_release_queued, name="bluegreen-django-release", daemon=True))
            _RELEASER[0].start()
    return weakref.finalize(conn, _RELEASES.put, (beat, target.file, target.generation))


@lru_cache(maxsize=1024)
def _qmark(sql: str) -> str:
    """Django's "format" SQL (`%s`) as sqlite3 runs it (`?`), so its query shapes fold like the clients'."""
    return sqlite3_base.FORMAT_QMARK_REGEX.sub("?", sql).replace("%%", "%")


def _fence_generation(exc: BaseException) -> int | None:
    match = _FENCE_ERROR.search(str(exc))
    return int(match.group(1)) if match else None


class Connection(sqlite3.Connection):
    """The raw connection: sqlite3's, weakly referenceable (see _release_when_collected)."""


class DatabaseClient(Sqlite3Client):
    """`manage.py dbshell` opens the active file, not the pointer."""

    @classmethod
    def settings_to_cmd_args_env(cls, settings_dict, parameters):
        try:
            name = active_path(settings_dict["NAME"])
        except BluegreenError as exc:
            raise GenerationUnusable.of(exc) from None
        return [cls.executable_name, str(name), *parameters], None


class _Following:
    """Cursor wrapper part: a statement a fence refused outside a transaction runs again on the
    file the pointer names (through DatabaseWrapper.bluegreen_run)."""

    def _execute(self, sql, params, *ignored):
        run = super()._execute
        return self.db.bluegreen_run(self, lambda: run(sql, params, *ignored), sql if params is None else _qmark(sql))

    def _executemany(self, sql, param_list, *ignored):
        param_list = list(param_list)  # a retry needs them again
        run = super()._executemany
        return self.db.bluegreen_run(self, lambda: run(sql, param_list, *ignored), _qmark(sql))


class SQLiteCursor(sqlite3_base.SQLiteCursorWrapper):
    """Django's sqlite3 cursor, noted while open: the connection does not move of its own accord
    while a cursor may still be read (`QuerySet.iterator()` reads in chunks), since moving closes it."""

    bg_open = None

    def close(self):
        if self.bg_open is not None:
            self.bg_open.discard(self)
        try:
            super().close()
        except sqlite3.ProgrammingError:
            pass  # its connection was closed first (a fence moved it): nothing left to close


class CursorWrapper(_Following, backend_utils.CursorWrapper):
    pass


class CursorDebugWrapper(_Following, backend_utils.CursorDebugWrapper):
    pass


class DatabaseWrapper(sqlite3_base.DatabaseWrapper):
    vendor = "sqlite"
    display_name = "SQLite (bluegreen)"
    client_class = DatabaseClient

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.bluegreen_target: Target | None = None  # the generation the open connection is on
        self._bg_opener: Opener | None = None
        self._bg_watch = None
        self._bg_seen = 0
        self._bg_pending = None  # (target, raw connection) opened by _bg_move_off, set up at connect
        self._bg_release = None  # gives the heartbeat's claim on the open file back, once
        self._bg_cursors: weakref.WeakSet = weakref.WeakSet()  # raw cursors not closed yet
        self._bg_sampler: sampling.Sampler | None = None  # client/sampling.py; None: not sampled
        self._bg_tally: sampling.Tally | None = None  # the open file's statements

    # -- opening ------------------------------------------------------------------------------
    def _bg_passthrough(self) -> bool:
        return self.is_in_memory_db()  # Django's test runner: its own in-memory database

    def get_connection_params(self):
        params = super().get_connection_params()
        for key in _OPTIONS:
            params.pop(key, None)
        mode = params.pop("transaction_mode", None) or getattr(self, "transaction_mode", None)  # Django < 5.1: ours
        mode = (mode or DEFAULT_TRANSACTION_MODE).upper()
        if mode not in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE"):
            from django.core.exceptions import ImproperlyConfigured

            raise ImproperlyConfigured(
                f"settings.DATABASES[{self.alias!r}]['OPTIONS']['transaction_mode'] is {mode!r}: use 'IMMEDIATE' "
                "(bluegreen's default), 'EXCLUSIVE' or 'DEFERRED'"
            )
        self.transaction_mode = mode
        return params

    def _bg_options(self, conn_params: dict) -> tuple[ClientOptions, dict]:
        options = self.settings_dict["OPTIONS"]
        extra = {k: v for k, v in conn_params.items() if k not in ("database", "uri", "timeout")}
        factory = extra.get("factory", Connection)
        if not hasattr(factory, "__weakref__"):  # sqlite3.Connection itself cannot be weakly referenced
            factory = type(factory.__name__, (factory,), {})
        extra["factory"] = factory
        timeout = conn_params.get("timeout")
        busy_ms = DEFAULT_BUSY_TIMEOUT_MS if timeout is None else int(float(timeout) * 1000)
        try:
            opts = ClientOptions(
                Path(self.settings_dict["NAME"]),
                compatible=options.get("compatible"),
                on_connect=self._bg_setup,
                busy_timeout_ms=busy_ms,
                fence_timeout_s=float(options.get("fence_timeout_s", 30.0)),
                watch=bool(options.get("watch", True)),
                poll_interval=float(options.get("poll_interval", DEFAULT_POLL_INTERVAL_S)),
                heartbeat=bool(options.get("heartbeat", True)),
                sampling=bool(options.get("sampling", True)),
            )
        except ValueError as exc:
            from django.core.exceptions import ImproperlyConfigured

            raise ImproperlyConfigured(f"settings.DATABASES[{self.alias!r}]['OPTIONS']: {exc}") from None
        return opts, extra

    def _bg_setup(self, conn) -> None:
        """What Django's sqlite3 backend does to every connection it opens (run on every reopen)."""
        register_functions(conn)
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA legacy_alter_table = OFF")
        for command in getattr(self, "init_commands", ()):
            if command := command.strip():
                conn.execute(command)

    @async_unsafe
    def get_new_connection(self, conn_params):
        if self._bg_passthrough():
            return super().get_new_connection(conn_params)
        if self._bg_opener is None:
            opts, extra = self._bg_options(conn_params)
            self._bg_opener = Opener(Sqlite3Driver, opts, extra)
            self._bg_watch = watch_for(opts.pointer, use_watchdog=opts.watch, poll_interval=opts.poll_interval)
            if opts.sampling and not sampling.disabled_by_environment():
                self._bg_sampler = sampling.sampler_for(opts.pointer)
        opener = self._bg_opener
        pending, self._bg_pending = self._bg_pending, None
        try:
            if pending is not None:
                target, conn = pending
                opener.setup(target, conn)
            else:
                seen = self._bg_watch.version  # before reading the pointer: a swap after this is noticed
                target = opener.candidates()[-1]
                conn = opener.open(target)
                self._bg_seen = seen
        except BluegreenError as exc:
            raise GenerationUnusable.of(exc) from None
        self.bluegreen_target = target
        self._bg_retire()
        self._bg_tally = self._bg_sampler.tally(target.generation, target.file) if self._bg_sampler else None
        # Released at close, or when the connection is garbage: a thread that ends with a persistent
        # connection (runserver starts one per request) must not leave its file claimed for ever.
        beat = opener.beat
        self._bg_release = _release_when_collected(conn, beat, target) if beat else None
        return conn

    def _close(self):
        if self.connection is not None and self.bluegreen_target is not None:
            target, self.bluegreen_target = self.bluegreen_target, None
            release, self._bg_release = self._bg_release, None
            self._bg_retire()
            with self.wrap_database_errors:
                try:
                    self.connection.close()
                finally:
                    if release is not None and release.detach() is not None:
                        self._bg_opener.beat.release(target.file, target.generation)
        else:
            super()._close()

    def _bg_retire(self) -> None:
        """The open file's tally goes out with the next flush (its connection leaves the file)."""
        tally, self._bg_tally = self._bg_tally, None
        if tally is not None:
            tally.retire()

    def create_cursor(self, name=None):
        if self.bluegreen_target is None:
            return super().create_cursor(name)
        cursor = self.connection.cursor(factory=SQLiteCursor)
        cursor.bg_open = self._bg_cursors
        self._bg_cursors.add(cursor)
        return cursor

    # -- following ----------------------------------------------------------------------------
    def _bg_outside(self) -> bool:
        """A connection on a bluegreen file with no transaction open."""
        return (
            self.connection is not None
            and self.bluegreen_target is not None
            and not self.in_atomic_block
            and self.autocommit
            and not self.connection.in_transaction
        )

    def _bg_idle(self) -> bool:
        """Outside a transaction and no cursor left open: free to move of its own accord."""
        return self._bg_outside() and not self._bg_cursors

    def _bg_moved(self) -> bool:
        """True once the pointer names another file this connection may use. An integer compare
        until the watch sees a change; a pointer or file that cannot be used keeps this one (its
        fence then tells the next write, which says why)."""
        version = self._bg_watch.version
        if version == self._bg_seen:
            return False
        self._bg_seen = version
        current = self.bluegreen_target
        try:
            target = self._bg_opener.candidates()[-1]
            if (target.path, target.generation) == (current.path, current.generation):
                return False
            self._bg_opener.check(target, staying=current)
        except BluegreenError:
            return False
        return True

    def ensure_connection(self):
        if self._bg_idle() and self._bg_moved():
            self.close()
        super().ensure_connection()

    def close_if_unusable_or_obsolete(self):
        """At request boundaries: a persistent connection whose file is no longer active closes."""
        super().close_if_unusable_or_obsolete()
        if self._bg_idle() and self._bg_moved():
            self.close()

    def _start_transaction_under_autocommit(self):
        """BEGIN (IMMEDIATE by default), then make sure the file is not fenced; if it is, leave it
        before the block runs anything."""
        if self.bluegreen_target is None:
            return super()._start_transaction_under_autocommit()
        for _attempt in (1, 2):
            self.cursor().execute(f"BEGIN {self.transaction_mode}")
            with self.wrap_database_errors:
                fenced_for = fenced_generation(self.connection)
                if fenced_for is None:
                    return
                self.connection.execute("ROLLBACK")
            self._bg_move_off(self.bluegreen_target, fenced_for)
        raise GenerationUnusable(
            f"{self.bluegreen_target.path}: fenced again right after following the pointer (another cutover or "
            "revert ran meanwhile); nothing was written: run it again"
        )

    def bluegreen_run(self, cursor, op, sql: str = ""):
        """Run one statement; if a retired file's fence refused it outside a transaction (so it
        changed nothing), move to the file the pointer names and run it once more. Sampled
        (client/sampling.py) on the file that ran it: a refused statement counts once, where it
        ran again; a fence's refusal is no error of either file."""
        outside = self._bg_outside()  # a fence leaves no choice: other open cursors close with the file
        raw = self.connection
        changes = raw.total_changes if raw is not None else 0
        tally = self._bg_tally
        started = tally.start(sql) if tally is not None else 0
        try:
            result = op()
        except DatabaseError as exc:
            fenced_for = _fence_generation(exc)
            if fenced_for is None or self.bluegreen_target is None:
                if tally is not None:
                    tally.failed(sql)
                raise
            if tally is not None:
                tally.refused(sql)
            refused = self.bluegreen_target
            if not outside or raw is not self.connection or raw.total_changes != changes:
                raise FencedInTransaction(
                    f"{refused.path}: retired (generation {refused.generation} is fenced; use generation {fenced_for}) "
                    "while this transaction was open; nothing of it is committed: roll it back and run it again. "
                    "The next transaction uses the file the pointer names"
                ) from None
            if raw.in_transaction:
                raw.execute("ROLLBACK")
        else:
            if started:
                tally.add(sql, _clock() - started)
            return result
        self._bg_move_off(refused, fenced_for)
        cursor.cursor = self.create_cursor()
        tally = self._bg_tally
        started = tally.start(sql) if tally is not None else 0
        try:
            result = op()
        except DatabaseError as again:
            if _fence_generation(again) is None:
                if tally is not None:
                    tally.failed(sql)
                raise
            if tally is not None:
                tally.refused(sql)
            raise GenerationUnusable(
                f"{self.bluegreen_target.path}: refused by a fence again right after following the pointer (another "
                "cutover or revert ran meanwhile); nothing was written: run it again"
            ) from None
        if started:
            tally.add(sql, _clock() - started)
        return result

    def _bg_move_off(self, refused: Target, fenced_for: int | None) -> None:
        """Wait, at most fence_timeout_s, until the pointer names a file that accepts writes, then
        reconnect there (Django's close + connect, outside any transaction)."""
        opener = self._bg_opener
        deadline = time.monotonic() + opener.options.fence_timeout_s
        problem = "the pointer still names it (an interrupted cutover? see `bluegreen status`)"
        while True:
            seen = self._bg_watch.version
            try:
                target = active_target(opener.pointer_path)
                if (target.path, target.generation) != (refused.path, refused.generation):
                    conn = opener.open_raw(target, staying=refused)
                    if fenced_generation(conn) is None:
                        self.close()
                        self._bg_pending = (target, conn)
                        self._bg_seen = seen
                        self.ensure_connection()
                        return
                    conn.close()
                    problem = f"{target.file} is still fenced"
            except IncompatibleGeneration as exc:
                raise GenerationUnusable.of(exc) from None
            except (GenerationUnavailable, InputError) as exc:
                problem = exc.message
            except ClientError as exc:
                raise GenerationUnusable.of(exc) from None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GenerationUnusable(
                    f"{refused.path}: writes refused by the bluegreen fence (use generation {fenced_for}), and after "
                    f"{opener.options.fence_timeout_s:g} s {problem}; nothing was written"
                )
            self._bg_watch.wait(seen, min(remaining, _FENCE_POLL_S))

    def make_cursor(self, cursor):
        return CursorWrapper(cursor, self)

    def make_debug_cursor(self, cursor):
        return CursorDebugWrapper(cursor, self)
