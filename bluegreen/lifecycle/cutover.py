"""The switch: the moment of cutover, under blue's write lock.

Take blue's barrier only when everything done under it (final replay, sync scripts, fence, capture
change, commit) is predicted to fit the write-pause budget (or, offline, wait for it), read blue's
position through the barrier itself, replay the rest into green, then fence blue and drop its
capture triggers in the barrier's own transaction. That commit releases the writers; the
controller swaps the pointer after it (fence first, swap second). Every try's pause is measured
against the budget and every overrun reported (budget.py).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import apsw

from bluegreen.engine import barrier
from bluegreen.engine import capture
from bluegreen.lifecycle.budget import PauseBudget
from bluegreen.config import Config
from bluegreen.engine.db import schema_version
from bluegreen.errors import OperationFailed
from bluegreen.engine.replay import Replayer
from bluegreen.results import Result
from bluegreen.files.journal import State, Store
from bluegreen.results import Timer


@dataclass
class SwitchReport:
    """How the switch went: the pause writers saw, the tries it took, and the budget's account
    of every try (None offline, where writes are held on purpose)."""

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


REHEARSED_ROWS = 200  # changes replayed again (and rolled back) to measure replay before the first try


class Switch:
    def __init__(self, config: Config, store: Store, phase: Callable[[str], AbstractContextManager],
                 journal: Callable[..., None]):
        self.config = config
        self.store = store
        self.phase = phase  # the controller's timed phases and journal: the switch is one of its steps
        self.journal = journal

    def budget(self, rehearse_on: apsw.Connection, under_lock: Callable[[apsw.Connection], object]) -> PauseBudget:
        """A pause budget whose fixed costs are measured now: `under_lock` (what will run under
        the lock besides replay) timed on `rehearse_on` in a rolled-back transaction. Refuses at
        once (PauseBudgetExceeded) when even an empty backlog cannot fit. Revert uses it too."""
        budget = PauseBudget(self.config.cutover.max_write_pause_ms)
        with self.phase("measure_pause"):
            budget.measure_fixed(rehearse_on, under_lock)
        self.store.log("pause_budget", budget_ms=budget.max_pause_ms, fence_ms=round(budget.fence_ms, 2),
                       fsync_ms=round(budget.fsync_ms, 2))
        return budget

    def within_budget(self, state: State, replayer: Replayer, blue: Path) -> SwitchReport:
        """Take the barrier only when everything it will hold writers for fits the pause budget;
        let go when the prediction, or the time already spent, says it will not; give up after
        max_attempts with blue active (invariant 3). Every try's pause is recorded."""
        with self.phase("flush"):
            replayer.flush()
        budget = self.budget(replayer.conn, self._fence_rehearsal(state))
        with self.phase("measure_pause"):
            budget.observe(self._replay_rehearsal(replayer))
        if reason := budget.unreachable():
            raise budget.exceeded("cut over", reason, self._advice())
        for attempt in range(1, self.config.cutover.max_attempts + 1):
            with self.phase("catch_up"):
                self._catch_up(replayer, budget)
            held = barrier.take(blue, self.config.cutover.max_write_pause_ms, must=False)
            if held is None:
                self.store.log("barrier_busy", attempt=attempt)
                continue
            pause_ms = self._attempt(state, replayer, held, budget, attempt)
            if pause_ms is not None:
                return SwitchReport(pause_ms, attempt, budget)
        raise budget.exceeded("cut over", f"{self.config.cutover.max_attempts} tries ({budget.replay_text()})",
                              self._advice())

    def _replay_rehearsal(self, replayer: Replayer, rows: int = REHEARSED_ROWS) -> list:
        """Replay green's last `rows` changes again (sync scripts included) in a transaction that
        is rolled back: replay is last-state by key, so it is idempotent, and this measures this
        schema's per-batch cost (every replayed table, every script) before the first try."""
        seq = replayer.position().seq
        if seq <= 0:
            return []
        replayer.conn.execute("BEGIN IMMEDIATE")
        try:
            capture.set_meta(replayer.conn, source_seq=max(0, seq - rows))
            # No `upto`: a batch cut short of its snapshot could meet a unique value a later
            # change moved (see Replayer.batch); this one reads as far as it must to be exact.
            return [replayer.batch(limit=rows, own_transaction=False)]
        finally:
            replayer.conn.execute("ROLLBACK")

    def _catch_up(self, replayer: Replayer, budget: PauseBudget) -> None:
        """Replay up to blue's position now, unless the backlog already fits (and the replay cost
        is known). A position, not an empty backlog: under a steady writer the backlog never
        reaches zero, and a batch that replays every table costs tens of ms with 1,000 of them."""
        if replayer.backlog() <= budget.rows_within() and budget.replay_measured:
            return
        budget.observe(replayer.catch_up())  # aims at blue's position now; each batch exact to its snapshot

    def _attempt(self, state: State, replayer: Replayer, held: apsw.Connection, budget: PauseBudget,
                 attempt: int) -> float | None:
        """One try under blue's barrier: the pause if blue was fenced, None if it was let go."""
        under_barrier: list[int] = []

        def backlog() -> int:
            under_barrier.append(self._source_position(held, replayer))
            return under_barrier[0] - replayer.position().seq

        def replay() -> list:
            with self.phase("final_replay"):
                replayer.make_durable()
                return replayer.catch_up(upto=under_barrier[0])

        def release() -> None:
            barrier.rollback(held)
            held.close()

        return self.hold(budget, attempt, backlog, replay,
                         lambda clock: self._fence_blue(state, held, replayer, clock), release)

    def hold(self, budget: PauseBudget, attempt: int, backlog: Callable[[], int], replay: Callable[[], list],
             commit: Callable[[Timer], float], release: Callable[[], None]) -> float | None:
        """One try with the lock just taken (cutover's on blue, revert's on green): predict the
        backlog's replay plus the fixed costs and let go if they do not fit; replay; let go if the
        time spent leaves no room for the fence; else `commit(clock)`, which fences, commits and
        returns the pause. Returns that pause, or None when it let go. `release` ends the locks
        (rollback, close) and always runs; the try's measured pause is recorded either way, so an
        overrun is logged (`pause_overrun`) whatever the outcome."""
        clock = Timer()  # writers wait from here: the lock is ours
        self.store.log("barrier_taken", attempt=attempt)
        outcome, rows, predicted, pause_ms = "released: failed", 0, None, None
        try:
            rows = backlog()
            predicted = budget.predict(rows)
            if not budget.fits(rows, clock.ms):
                outcome = "released: predicted over budget"
                self.store.log("barrier_released", attempt=attempt, backlog=rows, predicted=predicted.as_dict(),
                               fits=budget.rows_within(1.0))
                return None
            budget.observe(replay(), locked=True)
            if not budget.fits(0, clock.ms):  # the replay ran longer than predicted: the fence would not fit
                outcome = "released: final replay over budget"
                self.store.log("barrier_released", attempt=attempt, backlog=rows, replay_ms=round(clock.ms, 2))
                return None
            pause_ms = commit(clock)
            outcome = "committed"
            return pause_ms
        finally:
            release()
            budget.record(attempt, pause_ms if pause_ms is not None else clock.ms, outcome, rows, predicted,
                          self.store.log)

    def _fence_rehearsal(self, state: State) -> Callable[[apsw.Connection], object]:
        """What the barrier's transaction runs besides replay (_source_position, _fence_blue), to
        be timed on green: same tables, same capture triggers."""
        def rehearse(conn: apsw.Connection) -> None:
            capture.capture_position(conn)
            schema_version(conn)
            capture.set_meta(conn, source_epoch="rehearsal", source_seq=0)
            capture.fence_replacing_capture(conn, state.green_generation, guard=self.config.capture.guard_blob_writes)
        return rehearse

    def _advice(self) -> str:
        return ("blue is still active and green stays prepared: try again when writes are lighter, raise "
                "[cutover] max_write_pause_ms, or run `bluegreen cutover --offline`")

    def holding_writes(self, state: State, replayer: Replayer, blue: Path) -> SwitchReport:
        """--offline: wait for the barrier as long as lock_timeout_ms allows, then replay everything."""
        with self.phase("flush"):
            replayer.flush()
        held = barrier.take(blue, self.config.cutover.lock_timeout_ms)
        clock = Timer()
        try:
            under_barrier = self._source_position(held, replayer)
            with self.phase("final_replay"):
                replayer.make_durable()
                replayer.catch_up(upto=under_barrier)
            pause_ms = self._fence_blue(state, held, replayer, clock)
        finally:
            barrier.rollback(held)
            held.close()
        return SwitchReport(pause_ms, 1)

    def _source_position(self, held: apsw.Connection, replayer: Replayer) -> int:
        """Read through the barrier itself (hazard 6): blue's last change and schema cannot move now."""
        position = capture.capture_position(held)
        expected_schema = capture.get_meta(replayer.conn, "source_schema_version")
        if position is None or position.epoch != replayer.position().epoch:
            raise OperationFailed(
                "blue's change capture is missing or was reinstalled since prepare; run `bluegreen abort`, "
                "then `bluegreen deploy`"
            )
        if schema_version(held) != expected_schema:
            raise OperationFailed(
                "blue's schema changed since prepare (DDL on the live file): green cannot follow it. "
                "Nothing was changed: run `bluegreen abort`, then `bluegreen deploy`"
            )
        return position.seq

    def _fence_blue(self, state: State, held: apsw.Connection, replayer: Replayer, clock: Timer) -> float:
        """In the barrier's transaction: remember which of green's changes blue holds (none yet),
        fence blue and drop its capture triggers in one schema edit, commit. This commit releases
        the waiting writers. The capture rows stay for `tidy_blue`, after the swap: freeing their
        pages is work the writers need not wait for."""
        with self.phase("fence"):
            green_position = capture.capture_position(replayer.conn)
            capture.set_meta(held, source_epoch=green_position.epoch, source_seq=green_position.seq)
            # DDL on blue after this means tampering (hazard 1)
            state.fences[state.blue] = capture.fence_replacing_capture(
                held, state.green_generation, guard=self.config.capture.guard_blob_writes)
            held.execute("COMMIT")
            pause_ms = clock.ms  # the writers go on from here
        self.journal(state, step="fenced")
        return pause_ms

    def tidy_blue(self, state: State, blue: Path) -> None:
        """After the swap (writers are on green): blue's captured changes go, in their own short
        transaction, with no schema change, so the fence's recorded schema_version stays right
        (hazard 1) and a crash anywhere leaves only inert rows. A lock we cannot get leaves them
        (harmless on a fenced file) and says so; it never fails the cutover."""
        try:
            with barrier.holding(blue, self.config.cutover.lock_timeout_ms) as conn:
                capture.empty_capture(conn)
        except (OperationFailed, apsw.Error) as exc:
            self.store.log("capture_left", file=state.blue, reason=str(exc))
