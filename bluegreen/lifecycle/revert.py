"""Revert: cutover's peer, the other way. Blue's lock → green's barrier → carry green's changes
(and new tables) back → fence green → unfence blue → swap.

No fence is ever lifted on the file the pointer names (hazard 16): a connection that met a fence
keeps the fenced schema it compiled against, so blue is unfenced while the pointer still names
green, and only then does the pointer move to it. Green's writers wait from green's barrier to the
swap, so that moment is cutover's locked moment (locked.py): measured before the first try, most
of the carry done before it (pre-carry), a try that would not fit let go (hazard 18).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import apsw

from bluegreen.config import Config
from bluegreen.engine import barrier, capture, generations, migrations, revert_ddl
from bluegreen.engine.db import open_db, readonly_uri
from bluegreen.engine.lost_changes import export_changes
from bluegreen.engine.replay import Replayer
from bluegreen.errors import FenceTampered, OperationFailed, RevertRefused, WrongPhase
from bluegreen.files import pointer
from bluegreen.files.journal import Phase, State, Step, Store
from bluegreen.gates.runner import GateRunner
from bluegreen.lifecycle import fences, guard, locked
from bluegreen.lifecycle.budget import PauseBudget, PauseReport
from bluegreen.lifecycle.run import IDLE, Run
from bluegreen.results import Result, Timed, Timer

REVERT_START = "revert_start_seq"  # blue's position when this revert began carrying (see _pre_carry)


@dataclasses.dataclass
class RevertOutcome:
    """What a revert carried back, what it could not, and where that was saved."""

    carried: list = dataclasses.field(default_factory=list)  # replay batches
    lost: dict[str, int] = dataclasses.field(default_factory=dict)  # table -> changed rows not carried
    exported: Path | None = None
    tables: dict[str, int] = dataclasses.field(default_factory=dict)  # new table -> rows copied whole
    report: PauseReport | None = None  # the pause green's writers saw, and the budget's account


class Revert:
    def __init__(self, config: Config, store: Store, gates: GateRunner):
        self.config = config
        self.store = store
        self.gates = gates

    def revert(self, run: Run, accept_loss: bool, command: str = "revert") -> Result:
        state = run.state
        if state.phase not in (Phase.CUT_OVER, Phase.REVERTING):
            raise WrongPhase(
                f"nothing to revert (phase {state.phase}); revert is possible after a cutover, "
                "before `bluegreen finalize`"
            )
        blue, green = self.store.folder / state.blue, self.store.folder / state.green
        if state.phase == Phase.REVERTING and self._finished(state):
            return self._close(run, blue, green, RevertOutcome(), command)
        outcome = RevertOutcome()
        if state.phase == Phase.CUT_OVER or fences.fenced_by(blue) is not None:
            with self._carrier(blue, green) as back:
                outcome = self._within_budget(run, back, blue, green, accept_loss)
        elif fences.fenced_by(green) is None:  # blue unfenced, green open: no step of ours leaves that
            raise FenceTampered(
                f"{blue} is no longer fenced but {green} is not fenced either: both files take writes. "
                "Nothing was changed; stop the application's writers and inspect both files"
            )
        # green is fenced and blue holds all it had: the pointer moves last
        run.swap(
            self.config.database.pointer, blue, state.blue_generation, generations.version_of(blue), previous=green
        )
        run.journal(step=Step.SWAPPED)
        return self._close(run, blue, green, outcome, command)

    @contextmanager
    def _carrier(self, blue: Path, green: Path) -> Iterator[Replayer]:
        """The replayer that carries green's changes into blue; the migrations green has and blue
        has not serve it with their rollback companions. Each step it takes commits before the
        next starts and can be run again, so a crash anywhere leaves writes refused, never lost,
        and `bluegreen resume` finishes the job."""
        rollbacks = [m.rollback for m in generations.pending(self.config.migrations.dir, blue) if m.rollback]
        back = Replayer(
            green,
            blue,
            rollbacks,
            carried=migrations.carried_by(rollbacks),
            carry_back=_migration_effects(green),
            busy_timeout_ms=self.config.cutover.lock_timeout_ms,
        )
        try:
            back.make_durable()
            yield back
        finally:
            barrier.rollback(back.conn)
            back.close()

    def _within_budget(self, run: Run, back: Replayer, blue: Path, green: Path, accept_loss: bool) -> RevertOutcome:
        """Carry green's changes into blue, fence green, unfence blue, within the write-pause budget:
        everything done under green's barrier is measured before the first try (on blue: fenced,
        nobody writes it, the same tables), most of the carry is done before it, and a try that
        would not fit lets go and tries again. Gives up after [cutover] max_attempts with green
        active and nothing lost."""
        state = run.state
        fences.check_intact(self.store, "revert", state.blue)
        try:  # timed on blue under its lock: a stale writer there bounds it too (hazard 10)
            budget = locked.measure(self.config, run, back.conn, self._unfence_rehearsal(state))
        except apsw.BusyError:
            raise barrier.held_error(blue, self.config.cutover.lock_timeout_ms) from None
        if reason := budget.unreachable():
            raise budget.exceeded("revert", reason, self._advice())
        with run.timed(Timed.MEASURE_PAUSE):
            budget.observe(self._replay_rehearsal(back))
        pre_carried: list = []
        for attempt in range(1, self.config.cutover.max_attempts + 1):
            with run.timed(Timed.PRE_CARRY):
                pre_carried += self._pre_carry(state, green, back, budget, accept_loss)
            outcome = self._attempt(run, blue, green, back, accept_loss, budget, attempt)
            if outcome is not None:
                outcome.carried[:0] = pre_carried
                return outcome
        raise budget.exceeded(
            "revert", f"{self.config.cutover.max_attempts} tries ({budget.replay_text()})", self._advice()
        )

    def _unfence_rehearsal(self, state: State) -> Callable[[apsw.Connection], object]:
        """What the locked window does besides replay, timed on blue in a rolled-back transaction:
        a fence (green's, on the same tables) and blue's unfence, the guard indexes kept."""

        def rehearse(conn: apsw.Connection) -> None:
            capture.install_fence(conn, state.blue_generation, guard=False)
            capture.remove_fence(conn, keep_guard=True)
            capture.clear_meta(conn, "source_epoch", "source_seq", "locked_at", REVERT_START)

        return rehearse

    @staticmethod
    def _replay_rehearsal(back: Replayer) -> list:
        """The carry's per-batch cost, measured before the first try (locked.replay_rehearsal);
        a table the old schema cannot take makes it unmeasurable, not a failure."""
        try:
            return locked.replay_rehearsal(back)
        except (apsw.Error, OperationFailed):
            return []

    def _pre_carry(self, state: State, green: Path, back: Replayer, budget: PauseBudget, accept_loss: bool) -> list:
        """Carry green's changes into fenced blue before green's barrier, in a blue transaction of
        its own: nobody writes blue, replay is last-state by key, and blue's position says how far
        it got, so the locked window replays only what came after. The revert's first position is
        kept (REVERT_START): what cannot be carried is counted and exported from there. Skipped when
        the old schema has no place for something and accept_loss was not given (the locked window
        refuses before carrying: nothing changed; what a rollback script says it cannot carry is
        refused here, the pre-carry rolled back) or when the backlog already fits."""
        if capture.capture_position(back.conn, "source") is None:
            return []  # green has no capture to carry from: the locked window says what it does then
        if back.backlog() <= budget.rows_within() and budget.replay_measured:
            return []
        conn = open_db(green, query_only=True)
        try:
            found = revert_ddl.drift(conn, back.conn)
        finally:
            conn.close()
        upto = back.source_position().seq
        if found is None:
            return []  # cut over before the schema record existed: the locked window logs it and carries all
        if (found.refused or back.uncarried(upto)) and not accept_loss:
            return []  # the locked window refuses it (exit 5) before carrying anything: blue stays untouched
        for table in found.uncarriable_tables:
            back.tables.pop(table, None)  # as the locked window does: their rows are exported, not carried
            back.mapped.pop(table, None)
        barrier.begin(back.conn, back.target, self.config.cutover.lock_timeout_ms)
        try:
            # Green as this transaction sees it (BEGIN IMMEDIATE pinned it, hazard 21): an `upto`
            # read before would stop short of that snapshot, where last-state replay can meet a
            # unique value a later change on green moved (see Replayer.batch).
            upto = back.source_position().seq
            if capture.get_meta(back.conn, REVERT_START) is None:
                capture.set_meta(back.conn, **{REVERT_START: back.position().seq})
            carried = back.catch_up(upto=upto, own_transaction=False)
            if back.script_uncarried() and not accept_loss:  # a rollback script has no place for a row:
                lost = back.uncarried(upto, after=int(capture.get_meta(back.conn, REVERT_START)))
                for table, count in back.script_uncarried().items():
                    lost[table] = max(lost.get(table, 0), count)
                self._refuse(state, lost, {}, back)  # exit 5 as the locked window would, all rolled back
            back.conn.execute("COMMIT")
        finally:
            barrier.rollback(back.conn)
        budget.observe(carried)
        return carried

    def _attempt(
        self, run: Run, blue: Path, green: Path, back: Replayer, accept_loss: bool, budget: PauseBudget, attempt: int
    ) -> RevertOutcome | None:
        """One try under blue's lock and green's barrier (locked.hold): the outcome, or None when
        the lock was let go (green busy, or predicted or found over the budget)."""
        state = run.state
        # Blue's lock first, with a bounded wait: a stale writer stuck on fenced blue must
        # not leave us holding green's barrier forever (hazard 10). A deferred BEGIN and a
        # write to main take blue's lock without pinning a snapshot of the attached green:
        # BEGIN IMMEDIATE would start that read now, before green's barrier, and miss the
        # writes that land on green in between.
        barrier.lock_main(back.conn, blue, self.config.cutover.lock_timeout_ms)
        green_conn = barrier.take(green, self.config.cutover.max_write_pause_ms, must=False)
        if green_conn is None:
            barrier.rollback(back.conn)
            self.store.log("barrier_busy", attempt=attempt, file=state.green)
            return None
        found: list = []

        def backlog() -> int:
            found.append(self._carry_plan(state, back, green_conn, accept_loss))
            return found[0][0].seq - back.position().seq if found[0][0] else 0

        def replay() -> list:
            found.append(self._carry_back(run, back, *found[0], accept_loss))
            return found[1].carried

        def commit(clock: Timer) -> float:
            run.journal(phase=Phase.REVERTING, operation="revert", step=Step.CARRY_BACK)
            # Green keeps its capture: if we die before blue commits, a second revert
            # still knows what to carry. The fence covers tables created since cutover.
            locked.fence_in_barrier(
                run,
                green_conn,
                state.green,
                lambda conn: capture.install_fence(
                    conn, state.blue_generation, guard=self.config.capture.guard_blob_writes
                ),
            )
            with run.timed(Timed.UNFENCE):  # the pointer still names green: nobody was told to use blue
                capture.clear_meta(back.conn, "source_epoch", "source_seq", "locked_at", REVERT_START)
                capture.remove_fence(back.conn, keep_guard=True)  # the guard's DROP INDEXes come after the swap
                back.conn.execute("COMMIT")  # blue holds green's changes, and takes writes again
            state.fences.pop(state.blue, None)
            run.journal(step=Step.UNFENCED)
            return clock.ms

        def release() -> None:
            barrier.rollback(green_conn)
            green_conn.close()
            barrier.rollback(back.conn)

        pause_ms = locked.hold(run, budget, attempt, backlog, replay, commit, release)
        if pause_ms is None:
            return None
        found[1].report = PauseReport(pause_ms, attempt, budget)
        return found[1]

    def _advice(self) -> str:
        return (
            "the current generation stays active and nothing was lost: try again when writes are lighter, "
            "or raise [cutover] max_write_pause_ms"
        )

    def _carry_plan(self, state: State, back: Replayer, green_conn: apsw.Connection, accept_loss: bool) -> tuple:
        """Under green's barrier, before anything is carried: green's position, its schema drift,
        and what the old schema has no place for (refused here, exit 5, unless accept_loss)."""
        upto = capture.capture_position(green_conn)
        found = revert_ddl.drift(green_conn, back.conn)
        if found is None:
            self.store.log("revert_schema_unknown", file=state.green)  # cut over before the record existed
        refused = found.refused if found else {}
        for table in found.uncarriable_tables if found else []:
            back.tables.pop(table, None)  # altered, re-created or dropped on green: its rows are not carried
            back.mapped.pop(table, None)
        start = capture.get_meta(back.conn, REVERT_START)
        start = back.position().seq if start is None else int(start)
        lost = back.uncarried(upto.seq, after=start) if upto else {}
        if (refused or lost) and not accept_loss:  # before carrying: a refusal must cost no pause
            self._refuse(state, lost, refused, back)
        return upto, found, start, lost

    def _carry_back(
        self, run: Run, back: Replayer, upto, found, start: int, lost: dict, accept_loss: bool
    ) -> RevertOutcome:
        """Under green's barrier, inside blue's open transaction: replay green's captured changes
        and copy tables created on green since cutover (hazard 14); refuse, or export with
        accept_loss, what the old schema has no place for. A refusal rolls it all back."""
        with run.timed(Step.CARRY_BACK):
            carried = back.catch_up(upto=upto.seq, own_transaction=False) if upto else []
            tables = revert_ddl.carry_new_tables(back.conn, found) if found else {}
            for table, count in back.script_uncarried().items():
                lost[table] = max(lost.get(table, 0), count)
            exported = self._refuse_or_export(run.state, back, lost, accept_loss, start, upto, found)
        return RevertOutcome(carried, lost, exported, tables)

    def _finished(self, state: State) -> bool:
        """Died after the swap, before the journal said so: the pointer names blue, which is
        unfenced before the swap (hazard 16), so the files say the revert is done."""
        if pointer.read(self.config.database.pointer).active != state.blue:
            return False
        return fences.fenced_by(self.store.folder / state.blue) is None

    def _close(self, run: Run, blue: Path, green: Path, outcome: RevertOutcome, command: str) -> Result:
        state = run.state
        before = dataclasses.replace(state)  # the hook is told which files the revert moved between
        guard.drop_guard(self.config, self.store, blue)
        versions = (generations.version_of(green), generations.version_of(blue))
        state.fences.pop(state.blue, None)
        state.reverted.append(state.green)
        active_generation, reverted = state.blue_generation, state.green_generation
        run.journal(**IDLE)
        changes = sum(b.keys for b in outcome.carried)
        tables, exported, report = outcome.tables or {}, outcome.exported, outcome.report
        new_tables = ", ".join(f"{t} ({n} row(s))" for t, n in tables.items())
        result = Result(
            "revert",
            f"reverted: {blue.name} (generation {active_generation}) is active again, with {changes} row(s) "
            f"changed on generation {reverted} carried back; generation {reverted} is fenced and kept at {green}"
            + (
                f"; table(s) created on generation {reverted} since cutover carried back whole: {new_tables}"
                if tables
                else ""
            )
            + (
                f"; rows and schema changes that could not be carried back were saved in {exported}" if exported else ""
            ),
            run.timings,
            {
                "active": str(blue),
                "generation": active_generation,
                "fenced": str(green),
                "carried_back": changes,
                "lost": outcome.lost,
                "exported": str(exported or ""),
                "carried_tables": tables,
            },
        )
        if report is not None:  # a resume that found the revert done has no pause to report
            result.message += f"; writes on generation {reverted} paused {report.pause_ms:.1f} ms"
            result.data["write_pause_ms"] = report.pause_ms
            report.annotate(result)
        return self.gates.post_hook(run, "post-revert", command, before, versions, result)

    def _refuse(self, state: State, lost: dict[str, int], refused: dict[str, str], back: Replayer) -> None:
        """Exit 5, naming every table whose changed rows cannot be carried, and for each what would
        carry them (a `_rollback.sql` companion, named) or that they have no place in blue at all,
        and every schema object the old schema cannot take."""
        parts, why = [], self._why_uncarried(lost, refused, back)
        if lost:
            listing = "; ".join(f"{t}: {n} row(s) ({why[t]['reason']})" for t, n in lost.items())
            parts.append(
                f"{sum(lost.values())} changed row(s) since cutover that cannot be carried back to {state.blue}: "
                + listing
            )
        if refused:
            parts.append(
                f"schema changes made on it since cutover that cannot be carried back to {state.blue}: "
                + "; ".join(refused.values())
            )
        raise RevertRefused(
            f"generation {state.green_generation} has " + ", and ".join(parts) + ". Nothing was changed; "
            "`bluegreen revert --accept-loss` saves them to a file first",
            details={"tables": lost, "schema": refused, "why": why},
        )

    def _why_uncarried(self, lost: dict[str, int], refused: dict[str, str], back: Replayer) -> dict[str, dict]:
        """Per table: `rollback` (blue has the table, a migration changed its shape: the named
        `_rollback.sql` companion would carry the rows, or its missing `carries` line), `script`
        (a rollback script listed the rows in temp.bluegreen_uncarried) or `no_place` (blue has no
        such table: its rows have nowhere to go but the --accept-loss file), or `ddl` (the
        application changed the table itself on green after cutover: listed with the schema changes)."""
        pending = generations.pending(self.config.migrations.dir, back.target) if lost else []
        listed = back.script_uncarried() if lost else {}
        scripts = ", ".join(m.rollback.name for m in pending if m.rollback) or "the rollback script"
        found = {}
        for table in lost:
            in_blue = back.conn.execute(
                "SELECT 1 FROM main.sqlite_schema WHERE type = 'table' AND name = ?", (table,)
            ).fetchall()
            mention = re.compile(rf"(?<![\w$]){re.escape(table)}(?![\w$])", re.IGNORECASE)
            touching = [m for m in pending if mention.search(m.sql)] or pending[-1:]
            migration = touching[-1] if touching else None
            if f"table {table}" in refused:
                found[table] = {
                    "kind": "ddl",
                    "reason": "the table itself was changed on the new generation after cutover: listed with the schema changes",
                }
            elif table in listed and back.mapped.get(table) is not None and back.mapped[table].lost:
                columns = ", ".join(f"column {c}" for c, _ in back.mapped[table].lost)
                found[table] = {
                    "kind": "new_columns",
                    "reason": f"they hold values written on the new generation in {columns}, which "
                    f"{back.target.name} does not have: reverting would drop them",
                }
            elif table in listed:
                found[table] = {
                    "kind": "script",
                    "reason": f"{scripts} lists them in temp.bluegreen_uncarried: {back.target.name}'s shape cannot "
                    "hold them",
                }
            elif in_blue and migration is not None and migration.rollback is not None:
                found[table] = {
                    "kind": "rollback",
                    "file": str(migration.rollback),
                    "reason": f"{back.target.name} has {table} in another shape, and {migration.rollback} does not "
                    f"declare it: if it carries these rows, add the line `-- bluegreen: carries {table}`",
                }
            elif in_blue and migration is not None:
                companion = migration.path.with_name(f"{migration.path.name[:-4]}_rollback.sql")
                found[table] = {
                    "kind": "rollback",
                    "file": str(companion),
                    "reason": f"{back.target.name} has {table}, but {migration.file} changed its shape and has no "
                    f"rollback companion: write {companion} to carry them back into the old shape, with the line "
                    f"`-- bluegreen: carries {table}`",
                }
            elif in_blue:  # no pending migration to name (blue and green at the same version)
                found[table] = {
                    "kind": "rollback",
                    "reason": f"{back.target.name} has {table} in another shape: a `_rollback.sql` companion of the "
                    f"migration that changed it would carry them back, with the line `-- bluegreen: carries {table}`",
                }
            else:
                found[table] = {
                    "kind": "no_place",
                    "reason": f"{back.target.name} has no table {table}: the old schema has no place for them, only "
                    f"a `_rollback.sql` that maps them into its tables (`-- bluegreen: carries {table}`) could carry "
                    "them",
                }
        return found

    def _refuse_or_export(
        self,
        state: State,
        back: Replayer,
        lost: dict[str, int],
        accept_loss: bool,
        start: int,
        upto: capture.Position | None,
        found: revert_ddl.Drift | None = None,
    ) -> Path | None:
        refused = found.refused if found else {}
        if not lost and not refused:
            return None
        if not accept_loss:
            self._refuse(state, lost, refused, back)
        target = self.store.folder / f"{Path(state.green).stem}.lost-{pointer.now_iso().replace(':', '')}.db"
        export_changes(back.source, target, list(lost), start, upto.seq if upto else start)
        if refused:
            _export_schema(back.source, target, found)
        self.store.log("revert_export", file=target.name, tables=lost, schema=sorted(refused))
        return target


def _export_schema(green: Path, target: Path, found: revert_ddl.Drift) -> None:
    conn = open_db(target)
    try:
        conn.execute("ATTACH ? AS source", (readonly_uri(green),))
        conn.execute("BEGIN")
        revert_ddl.export_refused(conn, found)
        conn.execute("COMMIT")
    finally:
        barrier.rollback(conn)
        conn.close()


def _migration_effects(green: Path) -> dict:
    """What green's migrations did, as the builder recorded it: revert derives the carry-back of
    the tables they changed without touching row identity (engine/derive.py)."""
    conn = open_db(green, query_only=True)
    try:
        return json.loads(capture.get_meta(conn, "migration_effects") or "{}")
    finally:
        conn.close()
