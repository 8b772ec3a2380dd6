"""The locked moment cutover and revert share: writers of the active file wait from the lock to
the fence's commit, so what runs there is measured against the write-pause budget before the first
try (budget.py), each try lets go when it would not fit, and the fence commits in the barrier's own
transaction (hazards 6, 18; invariant 3).

Cutover holds blue's barrier and fences blue; revert holds green's and fences green. Both use
`measure`, `hold` and `fence_in_barrier` below: one shape for the one dangerous moment.
"""

from __future__ import annotations

from collections.abc import Callable

import apsw

from bluegreen.config import Config
from bluegreen.engine import capture
from bluegreen.engine.replay import Replayer
from bluegreen.files.journal import Step
from bluegreen.lifecycle.budget import PauseBudget
from bluegreen.lifecycle.run import Run
from bluegreen.results import Timed, Timer

REHEARSED_ROWS = 200  # changes replayed again (and rolled back) to measure replay before the first try


def measure(
    config: Config, run: Run, rehearse_on: apsw.Connection, under_lock: Callable[[apsw.Connection], object]
) -> PauseBudget:
    """A pause budget whose fixed costs are measured now: `under_lock` (what will run under
    the lock besides replay) timed on `rehearse_on` in a rolled-back transaction. Refuses at
    once (PauseBudgetExceeded) when even an empty backlog cannot fit."""
    budget = PauseBudget(config.cutover.max_write_pause_ms)
    with run.timed(Timed.MEASURE_PAUSE):
        budget.measure_fixed(rehearse_on, under_lock)
    run.store.log(
        "pause_budget",
        budget_ms=budget.max_pause_ms,
        fence_ms=round(budget.fence_ms, 2),
        fsync_ms=round(budget.fsync_ms, 2),
    )
    return budget


def replay_rehearsal(replayer: Replayer, rows: int = REHEARSED_ROWS) -> list:
    """Replay the target's last `rows` changes again (sync scripts included) in a transaction that
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


def hold(
    run: Run,
    budget: PauseBudget,
    attempt: int,
    backlog: Callable[[], int],
    replay: Callable[[], list],
    commit: Callable[[Timer], float],
    release: Callable[[], None],
) -> float | None:
    """One try with the lock just taken (cutover's on blue, revert's on green): predict the
    backlog's replay plus the fixed costs and let go if they do not fit; replay; let go if the
    time spent leaves no room for the fence; else `commit(clock)`, which fences, commits and
    returns the pause. Returns that pause, or None when it let go. `release` ends the locks
    (rollback, close) and always runs; the try's measured pause is recorded either way, so an
    overrun is logged (`pause_overrun`) whatever the outcome."""
    log = run.store.log
    clock = Timer()  # writers wait from here: the lock is ours
    log("barrier_taken", attempt=attempt)
    outcome, rows, predicted, pause_ms = "released: failed", 0, None, None
    try:
        rows = backlog()
        predicted = budget.predict(rows)
        if not budget.fits(rows, clock.ms):
            outcome = "released: predicted over budget"
            log(
                "barrier_released",
                attempt=attempt,
                backlog=rows,
                predicted=predicted.as_dict(),
                fits=budget.rows_within(1.0),
            )
            return None
        budget.observe(replay(), locked=True)
        if not budget.fits(0, clock.ms):  # the replay ran longer than predicted: the fence would not fit
            outcome = "released: final replay over budget"
            log("barrier_released", attempt=attempt, backlog=rows, replay_ms=round(clock.ms, 2))
            return None
        pause_ms = commit(clock)
        outcome = "committed"
        return pause_ms
    finally:
        release()
        budget.record(attempt, pause_ms if pause_ms is not None else clock.ms, outcome, rows, predicted, log)


def fence_in_barrier(
    run: Run,
    held: apsw.Connection,
    name: str,
    fence: Callable[[apsw.Connection], int],
    clock: Timer | None = None,
    **journal: object,
) -> float:
    """The fence step both ways share: in the barrier's own transaction `fence` installs the fence
    (and whatever goes with it) and returns the file's schema_version after that edit, which is
    its last statement, recorded in state.fences (DDL on the file after this means tampering,
    hazard 1); the commit releases the waiting writers. Journals `fenced` (with `journal`'s
    changes) and returns the pause `clock` measured up to the commit (0.0 without one)."""
    with run.timed(Timed.FENCE):
        run.state.fences[name] = fence(held)
        held.execute("COMMIT")
        pause_ms = clock.ms if clock is not None else 0.0  # the writers go on from here
    run.journal(step=Step.FENCED, **journal)
    return pause_ms
