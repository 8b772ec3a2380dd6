"""Cutover: the moment of the switch, under blue's write lock.

Take blue's barrier only when everything done under it (final replay, sync scripts, fence, capture
change, commit) is predicted to fit the write-pause budget (or, offline, wait for it), read blue's
position through the barrier itself, replay the rest into green, then fence blue and drop its
capture triggers in the barrier's own transaction (locked.py: the same locked moment revert
uses). That commit releases the writers; the controller swaps the pointer after it (fence first,
swap second). Every try's pause is measured against the budget and every overrun reported.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import apsw

from bluegreen.config import Config
from bluegreen.engine import barrier, capture, revert_ddl
from bluegreen.engine.db import open_db, schema_version
from bluegreen.engine.replay import Replayer
from bluegreen.errors import CaptureLost, OperationFailed, SchemaDrift
from bluegreen.files.journal import Phase, State, Step, Store
from bluegreen.lifecycle import locked
from bluegreen.lifecycle.budget import PauseReport
from bluegreen.lifecycle.run import Run
from bluegreen.results import Timed, Timer


class Cutover:
    def __init__(self, config: Config, store: Store):
        self.config = config
        self.store = store

    def within_budget(self, run: Run, replayer: Replayer, blue: Path) -> PauseReport:
        """Take the barrier only when everything it will hold writers for fits the pause budget;
        let go when the prediction, or the time already spent, says it will not; give up after
        max_attempts with blue active (invariant 3). Every try's pause is recorded."""
        with run.timed(Timed.FLUSH):
            replayer.flush()
        budget = locked.measure(self.config, run, replayer.conn, self._fence_rehearsal(run.state))
        with run.timed(Timed.MEASURE_PAUSE):
            budget.observe(locked.replay_rehearsal(replayer))
        if reason := budget.unreachable():
            raise budget.exceeded("cut over", reason, self._advice())
        for attempt in range(1, self.config.cutover.max_attempts + 1):
            with run.timed(Step.CATCH_UP):
                self._catch_up(replayer, budget)
            held = barrier.take(blue, self.config.cutover.max_write_pause_ms, must=False)
            if held is None:
                self.store.log("barrier_busy", attempt=attempt)
                continue
            pause_ms = self._attempt(run, replayer, held, budget, attempt)
            if pause_ms is not None:
                return PauseReport(pause_ms, attempt, budget)
        raise budget.exceeded(
            "cut over", f"{self.config.cutover.max_attempts} tries ({budget.replay_text()})", self._advice()
        )

    def _catch_up(self, replayer: Replayer, budget) -> None:
        """Replay up to blue's position now, unless the backlog already fits (and the replay cost
        is known). A position, not an empty backlog: under a steady writer the backlog never
        reaches zero, and a batch that replays every table costs tens of ms with 1,000 of them."""
        if replayer.backlog() <= budget.rows_within() and budget.replay_measured:
            return
        budget.observe(replayer.catch_up())  # aims at blue's position now; each batch exact to its snapshot

    def _attempt(self, run: Run, replayer: Replayer, held: apsw.Connection, budget, attempt: int) -> float | None:
        """One try under blue's barrier: the pause if blue was fenced, None if it was let go."""
        under_barrier: list[int] = []

        def backlog() -> int:
            under_barrier.append(self._source_position(held, replayer))
            return under_barrier[0] - replayer.position().seq

        def replay() -> list:
            with run.timed(Timed.FINAL_REPLAY):
                replayer.make_durable()
                return replayer.catch_up(upto=under_barrier[0])

        def release() -> None:
            barrier.rollback(held)
            held.close()

        return locked.hold(
            run, budget, attempt, backlog, replay, lambda clock: self._fence_blue(run, held, replayer, clock), release
        )

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
        return (
            "blue is still active and green stays prepared: try again when writes are lighter, raise "
            "[cutover] max_write_pause_ms, or run `bluegreen cutover --offline`"
        )

    def holding_writes(self, run: Run, replayer: Replayer, blue: Path) -> PauseReport:
        """--offline: wait for the barrier as long as lock_timeout_ms allows, then replay everything."""
        with run.timed(Timed.FLUSH):
            replayer.flush()
        held = barrier.take(blue, self.config.cutover.lock_timeout_ms)
        clock = Timer()
        try:
            under_barrier = self._source_position(held, replayer)
            with run.timed(Timed.FINAL_REPLAY):
                replayer.make_durable()
                replayer.catch_up(upto=under_barrier)
            pause_ms = self._fence_blue(run, held, replayer, clock)
        finally:
            barrier.rollback(held)
            held.close()
        return PauseReport(pause_ms, 1)

    def _source_position(self, held: apsw.Connection, replayer: Replayer) -> int:
        """Read through the barrier itself (hazard 6): blue's last change and schema cannot move now."""
        position = capture.capture_position(held)
        expected_schema = capture.get_meta(replayer.conn, "source_schema_version")
        if position is None or position.epoch != replayer.position().epoch:
            raise CaptureLost(
                "blue's change capture is missing or was reinstalled since prepare; run `bluegreen abort`, "
                "then `bluegreen deploy`"
            )
        if schema_version(held) != expected_schema:
            raise SchemaDrift(
                "blue's schema changed since prepare (DDL on the live file): green cannot follow it. "
                "Nothing was changed: run `bluegreen abort`, then `bluegreen deploy`"
            )
        return position.seq

    def _fence_blue(self, run: Run, held: apsw.Connection, replayer: Replayer, clock: Timer) -> float:
        """In the barrier's transaction: remember which of green's changes blue holds (none yet),
        fence blue and drop its capture triggers in one schema edit, commit. This commit releases
        the waiting writers. The capture rows stay for `tidy_blue`, after the swap: freeing their
        pages is work the writers need not wait for."""

        def fence(conn: apsw.Connection) -> int:
            green_position = capture.capture_position(replayer.conn)
            capture.set_meta(conn, source_epoch=green_position.epoch, source_seq=green_position.seq)
            return capture.fence_replacing_capture(
                conn, run.state.green_generation, guard=self.config.capture.guard_blob_writes
            )

        return locked.fence_in_barrier(run, held, run.state.blue, fence, clock)

    def fence_offline(self, run: Run, held: apsw.Connection, green: Path, clock: Timer) -> float:
        """deploy --offline, under the lock it held since the copy: fence blue and drop any capture
        it holds, the triggers in ONE schema edit (fence_replacing_capture, as _fence_blue; hazard
        18) and a BLOB guard blue already has kept rather than dropped index by index and built
        again. The capture table and epoch go as before. Journals the phase cutting_over."""
        guard = self.config.capture.guard_blob_writes
        epoch = _capture_epoch(green)

        def fence(conn: apsw.Connection) -> int:
            capture.set_meta(conn, source_epoch=epoch, source_seq=0)
            capture.clear_meta(conn, "capture_epoch")
            conn.execute(f"DROP TABLE IF EXISTS main.{capture.CAPTURE_TABLE}")
            if not guard:
                capture.remove_blob_guard(conn)
            return capture.fence_replacing_capture(conn, run.state.green_generation, guard=guard)

        return locked.fence_in_barrier(run, held, run.state.blue, fence, clock, phase=Phase.CUTTING_OVER)

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

    def record_green_schema(self, green: Path) -> list:
        """Green's schema as the swap will hand it over: a revert compares with it (hazard 14).
        Returns what was recorded before (a one-item list; None: nothing), for restore_green_schema."""
        with barrier.holding(green, self.config.cutover.lock_timeout_ms) as conn:
            previous = capture.get_meta(conn, revert_ddl.SCHEMA_KEY)
            revert_ddl.record(conn)
        return [previous]

    def restore_green_schema(self, green: Path, previous: list | None) -> None:
        """A cutover that gave up leaves green as it found it (the next one records again)."""
        if previous is None:  # it gave up before recording
            return
        try:
            with barrier.holding(green, self.config.cutover.lock_timeout_ms) as conn:
                if previous[0] is None:
                    capture.clear_meta(conn, revert_ddl.SCHEMA_KEY)
                else:
                    capture.set_meta(conn, **{revert_ddl.SCHEMA_KEY: previous[0]})
        except (apsw.Error, OperationFailed):
            pass  # best effort: a stale record is overwritten by the next cutover


def _capture_epoch(path: Path) -> str:
    conn = open_db(path, query_only=True)
    try:
        return capture.get_meta(conn, "capture_epoch") or ""
    finally:
        conn.close()
