"""The write-pause budget: everything done while writers wait must fit in it (invariant 3).

A pause is the time from taking a file's write lock to the commit that releases it. What runs in
it, and how each part is predicted from measurements of this run on this machine (hazard 18):

- replay of the last changes (sync scripts included): per-batch overhead and per-row cost, from
  the catch-up batches of this very run (none measured yet: no backlog is predicted to fit, so
  the first try catches up completely and measures);
- the fence and the capture change: timed on a file with the same schema (green, or the fenced
  old file on revert) in a transaction that is rolled back;
- the commit: one fsync, timed on the same kind of commit; two when rows are replayed (the
  target's durable batch, then the locked file's own commit).

Callers ask `predict(rows)` before and while they hold the lock and let go when it does not fit;
they `record()` every attempt's measured pause, so no overrun ever goes unreported. Cutover and
revert use the same object (see `Cutover.within_budget` and locked.py).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import apsw

from bluegreen.engine.replay import BatchResult
from bluegreen.errors import PauseBudgetExceeded
from bluegreen.results import Result

ASSUMED_ROWS_PER_SECOND = 20_000.0  # before enough rows were measured: deliberately modest
CATCH_UP_FRACTION = 0.5  # catch up until the backlog's replay fits in half of what is left
SAMPLES = 3  # the fixed costs are the median of this many timings


@dataclass(frozen=True)
class PauseCosts:
    """The predicted parts of one pause, in ms."""

    replay_ms: float
    fence_ms: float
    commit_ms: float

    @property
    def total_ms(self) -> float:
        return self.replay_ms + self.fence_ms + self.commit_ms

    def as_dict(self) -> dict:
        return {**{k: _finite(v) for k, v in asdict(self).items()}, "total_ms": _finite(self.total_ms)}


@dataclass(frozen=True)
class Attempt:
    """One time the lock was held: what was predicted, what was measured, how it ended."""

    attempt: int
    pause_ms: float
    predicted: PauseCosts | None
    outcome: str  # "committed" or why it was released
    rows: int

    def as_dict(self, budget_ms: int) -> dict:
        return {
            "attempt": self.attempt,
            "pause_ms": round(self.pause_ms, 2),
            "rows": self.rows,
            "outcome": self.outcome,
            "over_budget": self.pause_ms > budget_ms,
            "predicted": self.predicted.as_dict() if self.predicted else None,
        }


@dataclass
class PauseBudget:
    max_pause_ms: int
    changes: int = 0
    seconds: float = 0.0
    batch_ms: list[float] = field(default_factory=list)
    locked_batch_ms: list[float] = field(default_factory=list)  # replayed under the lock (durable)
    fence_ms: float | None = None  # measured by measure_fixed(); None means not measured
    fsync_ms: float | None = None
    attempts: list[Attempt] = field(default_factory=list)

    # -- measurements ----------------------------------------------------------------------------
    def observe(self, batches: list[BatchResult], locked: bool = False) -> None:
        """Learn from replayed batches; `locked` ones ran under the lock (durable, perhaps colder
        or slower scripts) and are what the next prediction must not undercut."""
        for batch in batches:
            self.changes += batch.changes
            self.seconds += batch.seconds
            (self.locked_batch_ms if locked else self.batch_ms).append(batch.seconds * 1000)

    def measure_fixed(self, conn: apsw.Connection, under_lock: Callable[[apsw.Connection], object]) -> None:
        """Time `under_lock(conn)` (the fence and capture change as the switch will run them) in a
        transaction that is rolled back, and a one-row durable commit, on `conn`: a file with the
        locked file's schema that nobody else writes (green before cutover; the fenced old file on
        revert). The median of SAMPLES timings, so one hiccup of a shared machine does not decide."""
        self.fence_ms = statistics.median(_timed_rollback(conn, under_lock) for _ in range(SAMPLES))
        self.fsync_ms = statistics.median(_timed_commit(conn) for _ in range(SAMPLES))

    # -- the model -------------------------------------------------------------------------------
    @property
    def rows_per_second(self) -> float:
        if self.changes < 100 or self.seconds <= 0:
            return ASSUMED_ROWS_PER_SECOND
        return self.changes / self.seconds

    @property
    def batch_overhead_ms(self) -> float:
        """What one batch costs whatever its size (its sync scripts, its per-table statements, its
        bookkeeping): the fastest batch seen bounds it from above; under the lock, the fastest
        batch seen there. Not measured yet: unknown, so no backlog is predicted to fit."""
        if not self.batch_ms and not self.locked_batch_ms:
            return math.inf
        overhead = min(self.batch_ms) if self.batch_ms else 0.0
        return max(overhead, min(self.locked_batch_ms)) if self.locked_batch_ms else overhead

    @property
    def replay_measured(self) -> bool:
        return bool(self.batch_ms or self.locked_batch_ms)

    def replay_ms(self, rows: int) -> float:
        return 0.0 if rows <= 0 else self.batch_overhead_ms + rows / self.rows_per_second * 1000

    def predict(self, rows: int) -> PauseCosts:
        fsyncs = 2 if rows > 0 else 1
        return PauseCosts(self.replay_ms(rows), self.fence_ms or 0.0, (self.fsync_ms or 0.0) * fsyncs)

    def fits(self, rows: int, elapsed_ms: float = 0.0) -> bool:
        return elapsed_ms + self.predict(rows).total_ms <= self.max_pause_ms

    def rows_within(self, fraction: float = CATCH_UP_FRACTION) -> int:
        """The backlog whose replay fits in `fraction` of what the fixed costs leave (0 when even
        one row does not fit: then catch up completely before trying)."""
        room_ms = (self.max_pause_ms - self.predict(1).fence_ms - self.predict(1).commit_ms) * fraction
        room_ms -= self.batch_overhead_ms
        return max(0, int(room_ms / 1000 * self.rows_per_second)) if math.isfinite(room_ms) else 0

    def replay_text(self) -> str:
        if not math.isfinite(self.batch_overhead_ms):
            return "no replay measured yet"
        return f"replay ran at {self.rows_per_second:,.0f} rows/s, {self.batch_overhead_ms:.1f} ms per batch"

    def unreachable(self) -> str:
        """Why no pause can fit, or '' if an empty backlog would: the fixed costs alone are over."""
        fixed = self.predict(0)
        if fixed.total_ms <= self.max_pause_ms:
            return ""
        return (
            f"fencing this schema takes {fixed.fence_ms:.1f} ms and the commit {fixed.commit_ms:.1f} ms "
            f"(measured on this machine), over the {self.max_pause_ms} ms write-pause budget"
        )

    # -- what happened ---------------------------------------------------------------------------
    def record(
        self,
        attempt: int,
        pause_ms: float,
        outcome: str,
        rows: int,
        predicted: PauseCosts | None,
        log: Callable[..., None],
    ) -> Attempt:
        """Keep every attempt; log an overrun as `pause_overrun` (never exceeded silently)."""
        entry = Attempt(attempt, pause_ms, predicted, outcome, rows)
        self.attempts.append(entry)
        if pause_ms > self.max_pause_ms:
            log("pause_overrun", **entry.as_dict(self.max_pause_ms), budget_ms=self.max_pause_ms)
        return entry

    @property
    def overruns(self) -> list[Attempt]:
        return [a for a in self.attempts if a.pause_ms > self.max_pause_ms]

    def as_dict(self) -> dict:
        return {
            "budget_ms": self.max_pause_ms,
            "rows_per_second": round(self.rows_per_second),
            "batch_overhead_ms": _finite(self.batch_overhead_ms),
            "fence_ms": None if self.fence_ms is None else round(self.fence_ms, 2),
            "fsync_ms": None if self.fsync_ms is None else round(self.fsync_ms, 2),
            "attempts": [a.as_dict(self.max_pause_ms) for a in self.attempts],
            "overruns": len(self.overruns),
        }

    def overrun_text(self) -> str:
        """'' or one clause for the human text: every overrun, with its pause."""
        if not self.overruns:
            return ""
        listing = ", ".join(f"attempt {a.attempt}: {a.pause_ms:.1f} ms ({a.outcome})" for a in self.overruns)
        return f"; OVER the {self.max_pause_ms} ms write-pause budget {len(self.overruns)} time(s): {listing}"

    def exceeded(self, what: str, reason: str, advice: str) -> PauseBudgetExceeded:
        """The error for giving up: blue (or green) still active, the reason, and the overruns."""
        last = next((a.predicted for a in reversed(self.attempts) if a.predicted), None)
        predicted = (
            "" if last is None or not math.isfinite(last.total_ms) else f"; last prediction {last.total_ms:.1f} ms"
        )
        return PauseBudgetExceeded(
            f"could not {what} within the {self.max_pause_ms} ms write-pause budget: {reason}{predicted}"
            f"{self.overrun_text()}; {advice}",
            details={"pause_budget": self.as_dict()},
        )


def _finite(ms: float) -> float | None:
    """JSON has no infinity: an unmeasured cost is null."""
    return round(ms, 2) if math.isfinite(ms) else None


def _timed_rollback(conn: apsw.Connection, under_lock: Callable[[apsw.Connection], object]) -> float:
    conn.execute("BEGIN IMMEDIATE")
    try:
        # The schema is parsed before the clock starts, as the barrier's connection does it before
        # its lock (barrier.load_schema); the previous sample's rollback made this one re-read it.
        conn.execute("SELECT 1 FROM main.sqlite_schema LIMIT 0").fetchall()
        started = time.perf_counter()
        under_lock(conn)
        return (time.perf_counter() - started) * 1000
    finally:
        conn.execute("ROLLBACK")


def _timed_commit(conn: apsw.Connection) -> float:
    """A durable commit of one page (the header, user_version rewritten unchanged: nothing moves)."""
    mode = conn.execute("PRAGMA synchronous").get
    conn.execute("PRAGMA synchronous = FULL")
    try:
        conn.execute("BEGIN IMMEDIATE")
        started = time.perf_counter()
        conn.execute(f"PRAGMA main.user_version = {int(conn.execute('PRAGMA main.user_version').get)}")
        conn.execute("COMMIT")
        return (time.perf_counter() - started) * 1000
    finally:
        if not conn.get_autocommit():
            conn.execute("ROLLBACK")
        conn.execute(f"PRAGMA synchronous = {int(mode)}")


@dataclass
class PauseReport:
    """How a locked moment went (cutover's or revert's): the pause writers saw, the tries it took,
    and the budget's account of every try (None offline, where writes are held on purpose)."""

    pause_ms: float
    attempts: int
    budget: PauseBudget | None = None

    def annotate(self, result: Result) -> Result:
        """Put the budget's account in the result: data (and so --json) and the human text."""
        result.data["attempts"] = self.attempts
        if self.budget is not None:
            result.data["pause_budget"] = self.budget.as_dict()
            result.data["pause_overruns"] = len(self.budget.overruns)
            result.message += self.budget.overrun_text()
        return result
