"""Sampling: what each statement the application runs through a bluegreen connection costs, per
query shape and generation, for `bluegreen watch` and `cutover --watch` (files/samples.py: the log).

The hot path is small: a connection's `Tally` (one per open file) adds the statement's duration
under its SQL text, in memory, without a lock. A daemon thread folds each tally into
query shapes (normalized SQL: literals and parameters become `?`, `IN (?, ?, ?)` becomes
`IN (?)` and repeated rows `VALUES (?, ?), (?, ?)` one row, whitespace and comments go) about once a second and appends one line to this process's
log, beside the pointer. Nothing is written into a database.

The duration is the time of the call that runs the statement (`execute`, `executemany`): the
whole statement for writes and for queries whose rows come at once (a point read, an aggregate,
a sort); for a query that streams many rows, the time to its first row. Errors (a statement the
driver refused) are counted per shape; a write a fence refused and that ran again on the new file
counts once, on the file that ran it.

Every statement is counted; not every one is timed. Two clock reads and a histogram update cost
about 0.4 µs, 3-4 % of a point read from the page cache (bench/sampling.py). So once a SQL text
has TIMED_PER_SPAN timed statements in the current flush span, a statement that took less than
CHEAP_NS has the next STRIDE - 1 statements of its text counted without a clock. A statement
that took CHEAP_NS or more (where the clock costs under 2 %) has the next one timed again, so a
text that turns slow is timed in full from its first slow sample on. Averages and percentiles
come from the timed statements (`ShapeStats.timed`, the histogram's sum), an unbiased sample:
whether a statement is timed depends only on the ones before it. The slow and very slow counts
are those of timed statements.

Off: `connect(..., sampling=False)` for one connection, or `BLUEGREEN_SAMPLING=0` for the process.
"""

from __future__ import annotations

import atexit
import os
import re
import socket
import sqlite3
import threading
import time
import weakref
from pathlib import Path

from bluegreen.files import samples
from bluegreen.files.layout import file_mode

ENV_VAR = "BLUEGREEN_SAMPLING"  # 0, off, false or no: this process samples nothing
FLUSH_ENV_VAR = "BLUEGREEN_SAMPLING_FLUSH_S"
DEFAULT_FLUSH_S = 1.0
MAX_TEXTS = 512  # distinct SQL texts a tally keys by before it folds new ones into shapes at once
MAX_SHAPES = 200  # distinct shapes per generation per process; the rest count as OTHER_SHAPE
MAX_SHAPE_CHARS = 400
TIMED_PER_SPAN = 64  # timed statements per SQL text per flush before cheap ones are timed 1 in STRIDE
STRIDE = 16
CHEAP_NS = 25_000  # at 25 µs, timing every statement costs under 2 %
_SLOW_NS, _VERY_SLOW_NS = samples.SLOW_NS, samples.VERY_SLOW_NS
_NOTHING = (0, 0, 0, 0, 0, {})  # an entry that counted nothing yet
_clock = time.perf_counter_ns  # bound once: it runs twice per timed statement

_TOKENS = re.compile(
    r"""(?P<comment>--[^\n]*|/\*.*?(?:\*/|$))
      | (?P<string>'(?:[^']|'')*'?)
      | (?P<ident>"(?:[^"]|"")*"?|`[^`]*`?|\[[^\]]*\]?)
      | (?P<blob>[xX]'[0-9a-fA-F]*')
      | (?P<number>(?<![\w$])(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))
      | (?P<param>\?\d*|[:@$][A-Za-z_][\w$]*)
      | (?P<space>\s+)""",
    re.VERBOSE | re.DOTALL,
)
_LISTS = re.compile(r"\b(IN\s*)\(\s*\?(?:\s*,\s*\?)+\s*\)", re.IGNORECASE)  # IN (?, ?, ?) -> IN (?)
_ROWS = re.compile(r"(\(\?(?:, \?)*\))(?:\s*,\s*\1)+")  # VALUES (?, ?), (?, ?) -> VALUES (?, ?)


def disabled_by_environment() -> bool:
    return os.environ.get(ENV_VAR, "").strip().lower() in ("0", "off", "false", "no")


def shape_of(sql: str) -> str:
    """The query shape: the statement with every literal and parameter folded to `?`."""

    def fold(match: re.Match) -> str:
        kind = match.lastgroup
        if kind in ("string", "blob", "number", "param"):
            return "?"
        if kind in ("comment", "space"):
            return " "
        return match.group(0)

    text = " ".join(_TOKENS.sub(fold, sql).split()).rstrip(" ;")
    text = _ROWS.sub(r"\1", _LISTS.sub(r"\1(?)", text))
    return text[:MAX_SHAPE_CHARS] or "(empty)"


class Tally:
    """One open file's statements, keyed by SQL text (shapes are made at flush), without a lock:
    a connection is used by one thread at a time, and the flusher only reads. Entries count up
    for ever (bounded: MAX_TEXTS); each flush takes what changed since the last one, so a
    statement counted while a flush copies its entry shows up in the next span, never twice,
    never lost. Only the per-span maximum is reset, and can miss a value in that race.

    A client runs `started = tally.start(sql)` before the statement (it counts it), then
    `tally.add(sql, clock() - started)` after it if `started` is not 0 (0: counted, not timed),
    `tally.failed(sql)` if the driver refused it, `tally.refused(sql)` if a fence did."""

    __slots__ = ("generation", "file", "texts", "seen", "sampler", "__weakref__")

    def __init__(self, generation: int, file: str, sampler: Sampler):
        self.generation = generation
        self.file = file
        # sql -> [count, errors, total_ns, max_ns, slow, very_slow, hist, untimed_next, timed_in_span]
        self.texts: dict[str, list] = {}
        self.seen: dict[str, tuple] = {}  # the flusher's last copy of each entry
        self.sampler = sampler

    def retire(self) -> None:
        """Its connection left the file: its last statements go out with the next flush."""
        self.sampler.retire(self)

    def _entry(self, sql: str) -> list:
        if len(self.texts) >= MAX_TEXTS:  # literals in the SQL text itself: fold now, not per text
            sql = shape_of(sql)
            entry = self.texts.get(sql)
            if entry is not None:
                return entry
        entry = self.texts[sql] = [0, 0, 0, 0, 0, 0, {}, 0, 0]
        return entry

    def start(self, sql: str) -> int:
        """Count a statement about to run; the clock to time it from, or 0 if it is not timed."""
        entry = self.texts.get(sql) or self._entry(sql)
        entry[0] += 1
        if entry[7]:
            entry[7] -= 1
            return 0
        return _clock()

    def add(self, sql: str, ns: int) -> None:
        """A started statement's duration (the hot path: bench/sampling.py measures it)."""
        entry = self.texts.get(sql) or self._entry(sql)
        entry[2] += ns
        if ns > entry[3]:
            entry[3] = ns
        if ns >= _SLOW_NS:
            entry[4] += 1
            if ns >= _VERY_SLOW_NS:
                entry[5] += 1
        bits = ns.bit_length()  # samples.bucket(ns), inlined
        index = (bits - 1) * 4 + ((ns >> (bits - 3)) & 3) if bits > 3 else ns
        hist = entry[6]
        hist[index] = hist.get(index, 0) + 1
        entry[8] += 1
        if ns < CHEAP_NS and entry[8] >= TIMED_PER_SPAN:
            entry[7] = STRIDE - 1

    def failed(self, sql: str) -> None:
        """A started statement the driver refused: an error of this file."""
        entry = self.texts.get(sql) or self._entry(sql)
        entry[1] += 1

    def refused(self, sql: str) -> None:
        """A started statement a fence refused: it is not this file's (it runs again on the next)."""
        entry = self.texts.get(sql) or self._entry(sql)
        entry[0] -= 1

    def take(self) -> dict[str, samples.ShapeStats]:
        """What changed since the last take, by shape (only the flusher calls this)."""
        shapes: dict[str, samples.ShapeStats] = {}
        for sql, entry in list(self.texts.items()):
            entry[8] = 0  # a new span: its first TIMED_PER_SPAN statements are timed
            now = (entry[0], entry[1], entry[2], entry[4], entry[5], dict(entry[6]))
            was = self.seen.get(sql, _NOTHING)
            if now == was:  # also a text whose only statement a fence refused
                continue
            top, entry[3] = entry[3], 0
            self.seen[sql] = now
            hist = {k: n - was[5].get(k, 0) for k, n in now[5].items() if n != was[5].get(k, 0)}
            count, errors, total, slow, very_slow = (a - b for a, b in zip(now[:5], was[:5]))
            stats = samples.ShapeStats(count, errors, total, top, slow, very_slow, hist)
            shapes.setdefault(shape_of(sql), samples.ShapeStats()).add(stats)
        return shapes


class Sampler:
    """This process's sampling for one pointer: its tallies and the thread that flushes them."""

    def __init__(self, pointer_path: Path, flush_s: float | None = None):
        self.pointer_path = Path(pointer_path).resolve()
        self.flush_s = flush_s or _flush_interval()
        self.pid = os.getpid()
        host = "".join(c if c.isalnum() or c in "-_." else "_" for c in socket.gethostname()) or "host"
        self.log = samples.Log(
            samples.samples_dir(self.pointer_path) / f"{host}-{self.pid}.jsonl", mode=_mode(self.pointer_path)
        )
        self._tallies: weakref.WeakSet[Tally] = weakref.WeakSet()
        self._retired: list[Tally] = []  # closed files' tallies, flushed once more
        self._shapes: dict[int, set[str]] = {}
        self._lock = threading.Lock()
        self._since = time.time()
        self._thread: threading.Thread | None = None
        self._failed = False

    def tally(self, generation: int, file: str) -> Tally:
        tally = Tally(generation, file, self)
        with self._lock:
            self._tallies.add(tally)
            if self._thread is None:
                samples.expire(self.pointer_path)
                self._thread = threading.Thread(target=self._run, name="bluegreen-sampling", daemon=True)
                self._thread.start()
        return tally

    def retire(self, tally: Tally) -> None:
        with self._lock:
            self._retired.append(tally)

    def _run(self) -> None:
        while True:
            time.sleep(self.flush_s)
            self.flush()

    def flush(self) -> None:
        if os.getpid() != self.pid:
            return
        with self._lock:
            tallies, self._retired = [*self._tallies, *self._retired], []
            now, since, self._since = time.time(), self._since, time.time()
        span = samples.Span(since, now, {}, {})
        for tally in tallies:
            taken = tally.take()
            if not taken:
                continue
            span.files[tally.generation] = tally.file
            mine = span.shapes.setdefault(tally.generation, {})
            known = self._shapes.setdefault(tally.generation, set())
            for shape, stats in taken.items():
                if shape not in known and len(known) >= MAX_SHAPES:
                    shape = samples.OTHER_SHAPE
                known.add(shape)
                mine.setdefault(shape, samples.ShapeStats()).add(stats)
        if not span.shapes:
            return
        try:
            self.log.append(span)
        except OSError:  # a read-only folder must not break the application; say nothing more
            self._failed = True


_SAMPLERS: dict[Path, Sampler] = {}
_SAMPLERS_LOCK = threading.Lock()


def sampler_for(pointer_path: Path) -> Sampler:
    key = Path(pointer_path).resolve()
    with _SAMPLERS_LOCK:
        found = _SAMPLERS.get(key)
        if found is None:
            found = _SAMPLERS[key] = Sampler(key)
        return found


def flush_all() -> None:
    """Write every sampler's tallies now (also at exit)."""
    for found in list(_SAMPLERS.values()):
        found.flush()


atexit.register(flush_all)
os.register_at_fork(after_in_child=_SAMPLERS.clear)


def _flush_interval() -> float:
    try:
        value = float(os.environ.get(FLUSH_ENV_VAR, DEFAULT_FLUSH_S))
    except ValueError:
        return DEFAULT_FLUSH_S
    return value if 0.01 <= value <= 3600 else DEFAULT_FLUSH_S


def _mode(pointer_path: Path) -> int:
    try:
        return file_mode(pointer_path) & 0o666
    except OSError:
        return 0o600


# -- the stdlib cursor: statements run through cursor() are sampled too ---------------------------
class SampledCursor(sqlite3.Cursor):
    """A sqlite3 cursor that reports each execute to its connection's tally (SQLAlchemy, Django
    and other DB-API users run every statement through cursors)."""

    bluegreen_tally: Tally | None = None

    def execute(self, sql, parameters=(), /):
        tally = self.bluegreen_tally
        if tally is None:
            return super().execute(sql, parameters)
        started = tally.start(sql)
        try:
            result = super().execute(sql, parameters)
        except sqlite3.Error:
            tally.failed(sql)
            raise
        if started:
            tally.add(sql, _clock() - started)
        return result

    def executemany(self, sql, seq_of_parameters, /):
        tally = self.bluegreen_tally
        if tally is None:
            return super().executemany(sql, seq_of_parameters)
        started = tally.start(sql)
        try:
            result = super().executemany(sql, seq_of_parameters)
        except sqlite3.Error:
            tally.failed(sql)
            raise
        if started:
            tally.add(sql, _clock() - started)
        return result
