"""Which file a client connection should have open, and opening it safely.

The pointer (and, for routed reads, the controller journal) says which generation to use; the
application says which schema versions it accepts. A file is opened read-write without CREATE
and checked for the generation stamp the pointer promises, so a missing or wrong file is an
error, never a new empty database (hazard 11). It is only ever touched through SQLite: a stat,
never a plain open() (hazard 8). Used by `bluegreen.client` for its wrappers and its creator.
"""

from __future__ import annotations

import fnmatch
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote as url_quote

import apsw

from bluegreen.client import routing
from bluegreen.client.watch import DEFAULT_POLL_INTERVAL_S
from bluegreen.errors import BluegreenError
from bluegreen.files import pointer, registry
from bluegreen.files.contract import DEFAULT_MAX_WRITE_PAUSE_MS, META_TABLE

DEFAULT_BUSY_TIMEOUT_MS = 10_000
MIN_BUSY_TIMEOUT_MS = DEFAULT_MAX_WRITE_PAUSE_MS  # the default cutover pause budget
DEFAULT_FENCE_TIMEOUT_S = 30.0

Compatible = str | Iterable[str] | Callable[[str], bool] | None


# -- errors ---------------------------------------------------------------------------------------
class ClientError(BluegreenError):
    """Something the application should know about; its current file (if any) is kept.

    Beside the exit-code classes, not under them: an application catches ClientError, and no
    operator command catches or raises one (exit 1 if a program lets one through). A bad pointer
    reaches the application as errors.PointerInvalid, as it reaches the operator."""


class GenerationUnavailable(ClientError):
    """The pointer names a file that is missing, or is not the generation the pointer says."""


class IncompatibleGeneration(ClientError):
    """The pointer names a schema version this application said it cannot handle."""


# -- what the edges exchange ----------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """A generation to open: the file, its number, its schema, and whether it is a prepared green."""

    path: Path
    generation: int
    schema_version: str
    green: bool = False

    @property
    def file(self) -> str:
        return self.path.name

    def describe(self) -> str:
        return f"{self.file} (generation {self.generation}, schema {self.schema_version or '?'})"


@dataclass(frozen=True)
class ClientOptions:
    pointer: Path
    compatible: Compatible = None
    on_connect: Callable[[Any], None] | None = None
    read_only: bool = False
    routing: routing.ReadRouting | None = None
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS
    fence_timeout_s: float = DEFAULT_FENCE_TIMEOUT_S
    watch: bool = True
    poll_interval: float = DEFAULT_POLL_INTERVAL_S
    heartbeat: bool = True
    sampling: bool = True  # per-shape statement times for `bluegreen watch` (client/sampling.py)

    def __post_init__(self) -> None:
        if self.busy_timeout_ms < MIN_BUSY_TIMEOUT_MS:
            raise ValueError(
                f"busy_timeout_ms={self.busy_timeout_ms} is below the cutover pause budget ({MIN_BUSY_TIMEOUT_MS} ms "
                "by default, [cutover] max_write_pause_ms): writes would fail at every cutover instead of waiting"
            )
        if self.routing is not None and self.routing.wanted and not self.read_only:
            raise ValueError(
                "read routing (read_percentage_new, force_new) is for read_only connections: "
                "writes always go to the active file"
            )


def active_path(pointer_path: Path | str) -> Path:
    """The active file's absolute path (what `bluegreen path` prints); missing is an error."""
    target = active_target(Path(pointer_path))
    if not target.path.is_file():
        raise GenerationUnavailable(
            f"{target.path}: generation {target.generation} named by {pointer_path} not found; "
            "restore the file, or point `active` at an existing generation"
        )
    return target.path


def accepts(compatible: Compatible, schema_version: str) -> bool:
    """None accepts anything; a string or strings are exact versions or globs ("2.*"); or a predicate."""
    if compatible is None:
        return True
    if callable(compatible):
        return bool(compatible(schema_version))
    patterns = [compatible] if isinstance(compatible, str) else list(compatible)
    return any(fnmatch.fnmatchcase(schema_version, p) for p in patterns)


def active_target(pointer_path: Path) -> Target:
    """The generation the pointer names (read now; a bad pointer is an InputError naming it)."""
    current = pointer.read(pointer_path)
    return Target(current.active_path(pointer_path), current.generation, current.schema_version)


# -- drivers: the little that differs between apsw and sqlite3 -----------------------------------
class ApswDriver:
    """apsw, with a busy handler that retries every millisecond."""

    Error = apsw.Error

    @staticmethod
    def open(path: Path, options: ClientOptions, extra: dict) -> apsw.Connection:
        # No CREATE: a missing file is an error. URI support: ATTACH 'file:...?mode=ro' means what it says (hazard 12).
        conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_URI)
        conn.set_busy_handler(_polling_busy_handler(options.busy_timeout_ms / 1000))
        return conn

    @staticmethod
    def in_transaction(conn: apsw.Connection) -> bool:
        return not conn.get_autocommit()

    @staticmethod
    def total_changes(conn: apsw.Connection) -> int:
        return conn.total_changes()


class Sqlite3Driver:
    Error = sqlite3.Error

    @staticmethod
    def open(path: Path, options: ClientOptions, extra: dict) -> sqlite3.Connection:
        uri = "file:" + url_quote(str(path)) + "?mode=rw"  # rw, not rwc: never create
        return sqlite3.connect(uri, uri=True, timeout=options.busy_timeout_ms / 1000, **extra)

    @staticmethod
    def in_transaction(conn: sqlite3.Connection) -> bool:
        return conn.in_transaction

    @staticmethod
    def total_changes(conn: sqlite3.Connection) -> int:
        return conn.total_changes


def _polling_busy_handler(timeout_s: float) -> Callable[[int], bool]:
    """Retry a lock every millisecond up to timeout_s. SQLite's own busy timeout sleeps in steps
    of up to 100 ms, so it would oversleep a 5 ms cutover pause by tens of milliseconds."""
    started = [0.0]

    def handler(prior_calls: int) -> bool:
        now = time.monotonic()
        if prior_calls == 0:
            started[0] = now
        if now - started[0] >= timeout_s:
            return False
        time.sleep(0.001)
        return True

    return handler


# -- opening one generation -----------------------------------------------------------------------
class Opener:
    """Chooses the file to open and opens it safely; shared by the wrappers and the creator."""

    def __init__(self, driver: type, options: ClientOptions, extra: dict | None = None):
        self.driver = driver
        self.options = options
        self.extra = extra or {}
        self.pointer_path = Path(options.pointer).resolve()
        self.beat = registry.heartbeat_for(self.pointer_path) if options.heartbeat else None
        wanted = options.routing is not None and options.read_only
        self.wants_green = wanted and routing.wants_green(options.routing)  # drawn once per connection

    def candidates(self) -> list[Target]:
        """Where this connection should be, best first: a prepared green (routed reads), then active."""
        active = active_target(self.pointer_path)
        if self.wants_green:
            green = routing.prepared_green(self.pointer_path)
            if green and accepts(self.options.compatible, green.schema_version):
                return [
                    Target(self.pointer_path.parent / green.file, green.generation, green.schema_version, True),
                    active,
                ]
        return [active]

    def check(self, target: Target, staying: Target | None) -> None:
        """Refuse, before opening anything, a file that is gone or a schema the application cannot handle."""
        keep = f"; this connection stays on {staying.describe()}" if staying else ""
        if not accepts(self.options.compatible, target.schema_version):
            raise IncompatibleGeneration(
                f"{self.pointer_path}: generation {target.generation} ({target.file}) has schema "
                f"{target.schema_version!r}, which this application does not accept{keep}; deploy an application "
                f"that accepts it, or `bluegreen revert`"
            )
        if not target.path.is_file():  # a stat, never an open(): hazard 8
            raise GenerationUnavailable(
                f"{target.path}: generation {target.generation} named by {self.pointer_path} not found{keep}; "
                "restore the file, or point `active` at an existing generation"
            )

    def open_raw(self, target: Target, staying: Target | None = None):
        """Open without CREATE and check the stamp; no setup yet."""
        self.check(target, staying)
        keep = f"; this connection stays on {staying.describe()}" if staying else ""
        try:
            conn = self.driver.open(target.path, self.options, self.extra)
        except self.driver.Error as exc:
            raise GenerationUnavailable(
                f"{target.path}: cannot open generation {target.generation} ({exc}){keep}"
            ) from None
        try:
            problem = _stamp_problem(conn, target)
        except self.driver.Error as exc:
            problem = f"cannot read it ({exc})"
        if problem:
            conn.close()
            raise GenerationUnavailable(
                f"{target.path}: {problem}; it is not generation {target.generation} as {self.pointer_path} says{keep}"
            )
        return conn

    def setup(self, target: Target, conn) -> None:
        """Per-connection setup, on every open: query_only for reads, then the application's own."""
        try:
            if self.options.read_only:
                conn.execute("PRAGMA query_only = 1")
            if self.options.on_connect is not None:
                self.options.on_connect(conn)
        except BaseException:
            conn.close()
            raise
        if self.beat is not None:
            self.beat.acquire(target.file, target.generation)

    def open(self, target: Target, staying: Target | None = None):
        conn = self.open_raw(target, staying)
        self.setup(target, conn)
        return conn

    def close(self, target: Target, conn) -> None:
        try:
            conn.close()
        finally:
            if self.beat is not None:
                self.beat.release(target.file, target.generation)


def _stamp_problem(conn, target: Target) -> str | None:
    """Generation N >= 2 carries `generation = N` in _bluegreen_meta; the adopted file (1) carries
    none, and must at least not be empty (an empty file is what a stray CREATE leaves behind)."""
    conn.execute("BEGIN")  # one snapshot: a revert drops the meta table of the file it unfences
    try:
        objects, has_meta = conn.execute(
            "SELECT count(*), coalesce(sum(name = ?), 0) FROM sqlite_schema", (META_TABLE,)
        ).fetchall()[0]
        stamp = None
        if has_meta:
            rows = conn.execute(f"SELECT value FROM {META_TABLE} WHERE key = 'generation'").fetchall()
            stamp = rows[0][0] if rows else None
    finally:
        conn.execute("COMMIT")
    expected = None if target.generation == 1 else target.generation
    if (None if stamp is None else str(stamp)) != (None if expected is None else str(expected)):
        return f"its generation stamp is {stamp if stamp is not None else 'missing'}"
    if target.generation == 1 and objects == 0:
        return "it is an empty database"
    return None
