"""The switch: the moment of cutover, under blue's write lock.

Take blue's barrier only when the change backlog fits the write-pause budget (or, offline, wait
for it), read blue's position through the barrier itself, replay the rest into green, then fence
blue and drop its capture in the barrier's own transaction. That commit releases the writers; the
controller swaps the pointer after it (fence first, swap second).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Callable

import apsw

from bluegreen import barrier, capture
from bluegreen.budget import PauseBudget
from bluegreen.config import Config
from bluegreen.db import schema_version
from bluegreen.errors import OperationFailed
from bluegreen.replay import Replayer
from bluegreen.store import State, Store, Timer


class Switch:
    def __init__(self, config: Config, store: Store, phase: Callable[[str], AbstractContextManager],
                 journal: Callable[..., None]):
        self.config = config
        self.store = store
        self.phase = phase  # the controller's timed phases and journal: the switch is one of its steps
        self.journal = journal

    def within_budget(self, state: State, replayer: Replayer, blue: Path) -> tuple[float, int]:
        """Take the barrier only when the backlog fits the pause budget; otherwise let go and retry."""
        budget = PauseBudget(self.config.cutover.max_write_pause_ms)
        with self.phase("flush"):
            replayer.flush()
        for attempt in range(1, self.config.cutover.max_attempts + 1):
            with self.phase("catch_up"):
                budget.observe(replayer.catch_up(until=budget.rows_within(0.5)))
            held = barrier.take(blue, self.config.cutover.max_write_pause_ms, must=False)
            if held is None:
                self.store.log("barrier_busy", attempt=attempt)
                continue
            clock = Timer()  # writers wait from here: the lock is ours
            self.store.log("barrier_taken", attempt=attempt)
            try:
                under_barrier = self._source_position(held, replayer)
                backlog = under_barrier - replayer.position().seq
                if backlog > budget.rows_within():
                    self.store.log("barrier_released", attempt=attempt, backlog=backlog, fits=budget.rows_within())
                    continue
                with self.phase("final_replay"):
                    replayer.make_durable()
                    budget.observe(replayer.catch_up(upto=under_barrier))
                self._fence_blue(state, held, replayer)
                return clock.ms, attempt
            finally:
                barrier.rollback(held)
                held.close()
        raise OperationFailed(
            f"could not cut over within the {self.config.cutover.max_write_pause_ms} ms write-pause budget in "
            f"{self.config.cutover.max_attempts} tries (replay ran at {budget.rows_per_second:,.0f} rows/s); blue is "
            "still active and green stays prepared: try again when writes are lighter, raise "
            "[cutover] max_write_pause_ms, or run `bluegreen cutover --offline`"
        )

    def holding_writes(self, state: State, replayer: Replayer, blue: Path) -> float:
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
            self._fence_blue(state, held, replayer)
            return clock.ms
        finally:
            barrier.rollback(held)
            held.close()

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

    def _fence_blue(self, state: State, held: apsw.Connection, replayer: Replayer) -> None:
        """In the barrier's transaction: fence blue, drop its capture, remember which of green's
        changes blue holds (none yet), commit. This commit releases the waiting writers."""
        with self.phase("fence"):
            green_position = capture.capture_position(replayer.conn)
            capture.remove_capture(held, keep_guard=True)
            capture.install_fence(held, state.green_generation, guard=self.config.capture.guard_blob_writes)
            capture.set_meta(held, source_epoch=green_position.epoch, source_seq=green_position.seq)
            state.fences[state.blue] = schema_version(held)  # DDL on blue after this means tampering
            held.execute("COMMIT")
        self.journal(state, step="fenced")
