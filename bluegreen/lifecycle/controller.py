"""The lifecycle: init → prepare → cutover → (revert | finalize), and abort.

This is the only module that knows the order of steps. Each command is one linear method that
takes the controller lock, journals each step in the store, and returns its result as data.
Fence first, swap second: a crash between the two leaves writes refused, never lost.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import apsw

from bluegreen.files import contract
from bluegreen.engine import barrier
from bluegreen.engine import capture
from bluegreen.gates import estimate
from bluegreen.engine import migrations
from bluegreen.files import pointer
from bluegreen.files import registry
from bluegreen.reports import retention
from bluegreen.engine import revert_ddl
from bluegreen.config import Config
from bluegreen.engine.db import check_database, open_db, quote_ident, readonly_uri, schema_version
from bluegreen.errors import InputError, OperationFailed, ReplayConflict, RevertRefused
from bluegreen.reports.inspector import Inspector
from bluegreen.engine.replay import Replayer, export_changes
from bluegreen.results import Phase, Result
from bluegreen.lifecycle.builder import Builder
from bluegreen.gates.controls import ReleaseControls
from bluegreen.lifecycle.cutover import Switch, SwitchReport
from bluegreen.files.journal import State, Store
from bluegreen.results import Timer
from bluegreen.files.layout import file_mode, remove_database_files

@dataclasses.dataclass
class RevertOutcome:
    """What a revert carried back, what it could not, and where that was saved."""

    carried: list = dataclasses.field(default_factory=list)  # replay batches
    lost: dict[str, int] = dataclasses.field(default_factory=dict)  # table -> changed rows not carried
    exported: Path | None = None
    tables: dict[str, int] = dataclasses.field(default_factory=dict)  # new table -> rows copied whole
    report: SwitchReport | None = None  # the pause green's writers saw, and the budget's account


GUARD_SLICE_MS = 10  # the BLOB guard's indexes are made in transactions of about this long
REVERT_START = "revert_start_seq"  # blue's position when this revert began carrying (see _pre_carry)


ProgressFn = Callable[[str, int, int], None]  # (phase, done, total)
IDLE = dict(phase="idle", operation="", step="", blue="", blue_generation=0, green="", green_generation=0,
            target_version="", started_at="", conflict={})  # nothing in flight


class Controller:
    def __init__(self, config: Config, progress: ProgressFn | None = None, environment: str | None = None):
        self.config = config
        self.store = Store(config.database.pointer)
        self.inspector = Inspector(config, environment)
        self.progress = progress or (lambda phase, done, total: None)
        self._phases: list[Phase] = []
        self.builder = Builder(config, self.store, self.progress, self._phase, self._journal)
        self.switch = Switch(config, self.store, self._phase, self._journal)
        self.release = ReleaseControls(config, self.store, self.inspector, environment, self._phases, self._phase,
                                       self.progress)

    # ------------------------------------------------------------------------------------------
    # init
    # ------------------------------------------------------------------------------------------
    def init(self) -> Result:
        initial = self.config.database.initial
        pointer_path = self.config.database.pointer
        if initial.parent != pointer_path.parent:
            raise InputError(
                f"{self.config.path}: database.initial ({initial}) must be in the pointer's folder "
                f"({pointer_path.parent}); generations live beside the pointer"
            )
        with self.store.locked():
            if pointer_path.exists():
                current = pointer.read(pointer_path)
                if self.store.initialized():
                    return Result("init", f"already initialized: {current.active} is generation {current.generation}",
                                  data={"active": str(current.active_path(pointer_path)), "generation": current.generation})
            check_database(initial, "database.initial")
            version = self._version_of(initial)
            self.store.save(State(base_name=initial.name))
            pointer.write(pointer_path, pointer.Pointer(initial.name, 1, version, "", pointer.now_iso()),
                          mode=file_mode(initial))
            self.store.log("init", active=initial.name, generation=1, schema_version=version)
        return Result("init", f"adopted {initial} as generation 1 (schema {version})",
                      data={"active": str(initial), "generation": 1, "schema_version": version})

    # ------------------------------------------------------------------------------------------
    # prepare: capture on blue → snapshot → migrate green → catch up → validate
    # ------------------------------------------------------------------------------------------
    def prepare(self) -> Result:
        with self.store.locked(), self.release.on_failure("prepare"):
            return self._prepare("prepare")

    def _prepare(self, command: str) -> Result:
        state, blue, pending = self._start()
        if not pending:
            return Result(command, f"{blue.name} is up to date: nothing to {command}")
        estimate.require_free_space(self.config, blue, pending)  # nothing is written yet
        versions = (self._version_of(blue), pending[-1].version)
        self.release.pre_hook("pre-prepare", command, state, versions,
                              f"nothing was changed; run `bluegreen {command}` again once it passes")
        backed_up = self.release.backup_blue(blue)
        generation, green = self._begin_generation(state, command, "capture", blue, pending)
        try:
            with self._phase("capture"):
                self._install_capture_on_blue(blue)
            report = self.builder.build(state, blue, green, pending, online=True)
        except BaseException:
            self._discard_green(state, green, blue_capture=True)
            raise
        self._journal(state, phase="prepared", step="validated")
        result = Result(
            command,
            f"generation {generation} prepared in {green} (schema {state.target_version}) and kept caught up "
            "with blue; run `bluegreen cutover` to make it active, or `bluegreen abort`",
            self._phases,
            {"generation": generation, "green": str(green), "validation": report.as_dicts(), **backed_up},
        )
        return self.release.post_hook("post-prepare", command, state, versions, result)

    # ------------------------------------------------------------------------------------------
    # cutover: catch up → barrier on blue when the backlog fits the budget → replay the rest →
    # fence blue → swap
    # ------------------------------------------------------------------------------------------
    def cutover(self, offline: bool = False, wait: bool = False, force: bool = False, reason: str = "") -> Result:
        self.release.check_wait_option(wait)
        with self.store.locked(), self.release.on_failure("cutover"):
            return self._cutover("cutover", offline, wait, force, reason)

    def _cutover(self, command: str, offline: bool, wait: bool = False, force: bool = False,
                 reason: str = "") -> Result:
        state = self.store.load()
        if state.phase == "cut_over":
            return Result(command, f"already cut over: generation {state.green_generation} is active",
                          data={"generation": state.green_generation})
        blue, green = self.store.folder / state.blue, self.store.folder / state.green
        if state.phase == "cutting_over" and self._blue_fenced(state):
            versions = (self._version_of(blue), state.target_version)
            return self.release.post_hook("post-cutover", command, state, versions, self._complete_swap(state))
        if state.phase not in ("prepared", "cutting_over"):
            raise InputError(f"nothing prepared to cut over (phase {state.phase}); run `bluegreen prepare` first")
        pending = self.inspector.pending(blue)
        self.release.check_environment(command, pending, force, reason, log=False)  # refuse before any wait
        versions = (self._version_of(blue), state.target_version)
        if state.phase == "prepared":  # a fresh cutover; an interrupted one finishes without asking again
            try:
                self.release.hold_prepared(state, wait, lambda: self.builder.replayer(blue, green, pending))
            except ReplayConflict as exc:  # --wait keeps green caught up: status must name the row too
                self._journal(state, conflict=exc.details)
                raise
            self.release.pre_hook("pre-cutover", command, state, versions,
                                  f"generation {state.green_generation} stays prepared and blue active; run "
                                  "`bluegreen cutover` once it passes, or `bluegreen abort`")
        self.release.check_environment(command, pending, force, reason)  # again, now: a wait may have closed the window
        self._journal(state, phase="cutting_over", operation=command, step="catch_up")
        replayer = self.builder.replayer(blue, green, pending)
        recorded = None
        try:
            with self._phase("catch_up"):
                replayer.catch_up(progress=lambda done, total: self.progress("catch_up", done, total))
            if state.conflict:  # the row that stopped an earlier cutover has been fixed
                self._journal(state, conflict={})
            self.builder.report_catch_up(replayer)
            with self._phase("validate"):
                self.builder.validate_caught_up(replayer, state.green_generation, pending, blue=blue)
            self.release.stamp_approvals(green, pending)
            recorded = self._record_green_schema(green)
            green_version = self._version_of(green)  # now: after the fence, writers wait for the swap
            if offline:
                switched = self.switch.holding_writes(state, replayer, blue)
            else:
                switched = self.switch.within_budget(state, replayer, blue)
        except BaseException as exc:
            replayer.close()
            if state.step != "fenced":
                self._restore_green_schema(green, recorded)
                conflict = exc.details if isinstance(exc, ReplayConflict) else state.conflict
                self._journal(state, phase="prepared", operation="prepare", step="validated", conflict=conflict)
            raise
        try:
            with self._phase("swap"):
                self._swap(green, state.green_generation, green_version, previous=blue)
        finally:
            replayer.close()  # after the swap: freeing two large schemas is not the writers' wait
        self._journal(state, phase="cut_over", step="swapped")
        self.switch.tidy_blue(state, blue)
        result = switched.annotate(self._cut_over_result(command, state, green, switched.pause_ms))
        return self.release.post_hook("post-cutover", command, state, versions, result)

    # ------------------------------------------------------------------------------------------
    # deploy: prepare + cutover; --offline holds blue's write lock from the copy until the swap
    # ------------------------------------------------------------------------------------------
    def deploy(self, offline: bool = False, wait: bool = False, force: bool = False, reason: str = "") -> Result:
        self.release.check_wait_option(wait)
        with self.store.locked(), self.release.on_failure("deploy"):
            # The cutover's rule first: a deploy that could not cut over must not even start.
            self.release.check_environment("deploy", self._start()[2], force, reason, log=offline)
            self.release.hold_before_deploy(offline, wait)
            if offline:
                return self._deploy_offline()
            prepared = self._prepare("deploy")
            if not self.store.load().phase == "prepared":
                return prepared
            return self._cutover("deploy", False, wait, force, reason)

    def _deploy_offline(self) -> Result:
        state, blue, pending = self._start()
        if not pending:
            return Result("deploy", f"{blue.name} is up to date: nothing to deploy")
        estimate.require_free_space(self.config, blue, pending)  # nothing is written yet
        versions = (self._version_of(blue), pending[-1].version)
        for event in ("pre-prepare", "pre-cutover"):  # both before the lock: no hook runs while writers wait
            self.release.pre_hook(event, "deploy", state, versions,
                                  "nothing was changed; run `bluegreen deploy --offline` again once it passes")
        self.release.backup_blue(blue)
        generation, green = self._begin_generation(state, "deploy", "barrier", blue, pending)
        held = barrier.take(blue, self.config.cutover.lock_timeout_ms)
        clock = Timer()
        try:
            self.builder.build(state, blue, green, pending, online=False)
            self.release.stamp_approvals(green, pending)
            self._record_green_schema(green)
            with self._phase("fence"):
                state.fences[state.blue] = self._fence_offline(held, generation, green)
                held.execute("COMMIT")
            pause = clock.ms
            self._journal(state, phase="cutting_over", step="fenced")
        except BaseException:
            barrier.rollback(held)
            held.close()
            if state.step != "fenced":  # once blue is fenced, green is the only writable copy
                self._discard_green(state, green, blue_capture=False)
            raise
        held.close()
        with self._phase("swap"):
            self._swap(green, generation, self._version_of(green), previous=blue)
        self._journal(state, phase="cut_over", step="swapped")
        return self.release.post_hook("post-cutover", "deploy", state, versions,
                                      self._cut_over_result("deploy", state, green, pause))

    def _fence_offline(self, held: apsw.Connection, generation: int, green: Path) -> int:
        """Under blue's lock: fence blue and drop any capture it holds, the triggers in ONE schema
        edit (fence_replacing_capture, as cutover's _fence_blue; hazard 18) and a BLOB guard blue
        already has kept rather than dropped index by index and built again. The capture table
        and epoch go as before. Returns blue's schema_version after the edit, which is the last
        statement before COMMIT, for state.fences (hazard 1)."""
        guard = self.config.capture.guard_blob_writes
        capture.set_meta(held, source_epoch=self._capture_epoch(green), source_seq=0)
        capture.clear_meta(held, "capture_epoch")
        held.execute(f"DROP TABLE IF EXISTS main.{capture.CAPTURE_TABLE}")
        if not guard:
            capture.remove_blob_guard(held)
        return capture.fence_replacing_capture(held, generation, guard=guard)

    # ------------------------------------------------------------------------------------------
    # revert: blue's lock → green's barrier → carry green's changes (and new tables) back → fence
    # green → unfence blue → swap. No fence is ever lifted on the file the pointer names (hazard
    # 16): a connection that met a fence keeps the fenced schema it compiled against, so blue is
    # unfenced while the pointer still names green, and only then does the pointer move to it.
    # ------------------------------------------------------------------------------------------
    def revert(self, accept_loss: bool = False) -> Result:
        with self.store.locked(), self.release.on_failure("revert"):
            return self._revert(accept_loss)

    def _revert(self, accept_loss: bool, command: str = "revert") -> Result:
        state = self.store.load()
        if state.phase not in ("cut_over", "reverting"):
            raise InputError(
                f"nothing to revert (phase {state.phase}); revert is possible after a cutover, "
                "before `bluegreen finalize`"
            )
        blue, green = self.store.folder / state.blue, self.store.folder / state.green
        if state.phase == "reverting" and self._revert_finished(state):
            return self._close_revert(state, blue, green, carried=[], lost={}, exported=None, command=command)
        outcome = RevertOutcome()
        if state.phase == "cut_over" or self._fenced_by(blue) is not None:
            outcome = self._carry_back_and_unfence(state, blue, green, accept_loss)
        elif self._fenced_by(green) is None:  # blue unfenced, green open: no step of ours leaves that
            raise OperationFailed(
                f"{blue} is no longer fenced but {green} is not fenced either: both files take writes. "
                "Nothing was changed; stop the application's writers and inspect both files"
            )
        with self._phase("swap"):  # green is fenced and blue holds all it had: the pointer moves last
            self._swap(blue, state.blue_generation, self._version_of(blue), previous=green)
        self._journal(state, step="swapped")
        return self._close_revert(state, blue, green, outcome.carried, outcome.lost, outcome.exported, command,
                                  outcome.tables, outcome.report)

    def _carry_back_and_unfence(self, state: State, blue: Path, green: Path, accept_loss: bool) -> "RevertOutcome":
        """Carry green's changes into blue, fence green, unfence blue, within the write-pause budget
        (hazard 18): green's writers wait from green's barrier to the swap, so everything done under
        it is measured before the first try (on blue: fenced, nobody writes it, the same tables),
        most of the carry is done before it, and a try that would not fit lets go and tries again.
        Gives up after [cutover] max_attempts with green active and nothing lost."""
        # The migrations green has and blue has not: their rollback companions serve this revert.
        rollbacks = [m.rollback for m in self.inspector.pending(blue) if m.rollback]
        back = Replayer(green, blue, rollbacks, carried=migrations.carried_by(rollbacks),
                        busy_timeout_ms=self.config.cutover.lock_timeout_ms)
        back.make_durable()
        # Each step commits before the next starts and can be run again, so a crash anywhere
        # leaves writes refused, never lost, and `bluegreen resume` finishes the job.
        try:
            self._check_fence_intact("revert", state.blue)
            try:  # timed on blue under its lock: a stale writer there bounds it too (hazard 10)
                budget = self.switch.budget(back.conn, self._unfence_rehearsal(state))
            except apsw.BusyError:
                raise barrier.held_error(blue, self.config.cutover.lock_timeout_ms) from None
            if reason := budget.unreachable():
                raise budget.exceeded("revert", reason, self._revert_advice())
            with self._phase("measure_pause"):
                budget.observe(self._replay_rehearsal(back))
            pre_carried: list = []
            for attempt in range(1, self.config.cutover.max_attempts + 1):
                with self._phase("pre_carry"):
                    pre_carried += self._pre_carry(state, green, back, budget, accept_loss)
                outcome = self._revert_attempt(state, blue, green, back, accept_loss, budget, attempt)
                if outcome is not None:
                    outcome.carried[:0] = pre_carried
                    return outcome
            raise budget.exceeded("revert", f"{self.config.cutover.max_attempts} tries ({budget.replay_text()})",
                                  self._revert_advice())
        finally:
            barrier.rollback(back.conn)
            back.close()

    def _unfence_rehearsal(self, state: State) -> Callable[[apsw.Connection], object]:
        """What the locked window does besides replay, timed on blue in a rolled-back transaction:
        a fence (green's, on the same tables) and blue's unfence, the guard indexes kept."""
        def rehearse(conn: apsw.Connection) -> None:
            capture.install_fence(conn, state.blue_generation, guard=False)
            capture.remove_fence(conn, keep_guard=True)
            capture.clear_meta(conn, "source_epoch", "source_seq", "locked_at", REVERT_START)
        return rehearse

    def _replay_rehearsal(self, back: Replayer) -> list:
        """The carry's per-batch cost, measured before the first try (see Switch._replay_rehearsal);
        a table the old schema cannot take makes it unmeasurable, not a failure."""
        try:
            return self.switch._replay_rehearsal(back)
        except (apsw.Error, OperationFailed):
            return []

    def _pre_carry(self, state: State, green: Path, back: Replayer, budget, accept_loss: bool) -> list:
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
                self._refuse(state, lost, {})  # exit 5 as the locked window would, all rolled back
            back.conn.execute("COMMIT")
        finally:
            barrier.rollback(back.conn)
        budget.observe(carried)
        return carried

    def _revert_attempt(self, state: State, blue: Path, green: Path, back: Replayer, accept_loss: bool,
                        budget, attempt: int) -> "RevertOutcome | None":
        """One try under blue's lock and green's barrier (Switch.hold): the outcome, or None when
        the lock was let go (green busy, or predicted or found over the budget)."""
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
            found.append(self._carry_back(state, back, *found[0], accept_loss))
            return found[1].carried

        def commit(clock: Timer) -> float:
            self._journal(state, phase="reverting", operation="revert", step="carry_back")
            with self._phase("fence"):
                # Green keeps its capture: if we die before blue commits, a second revert
                # still knows what to carry. The fence covers tables created since cutover.
                state.fences[state.green] = capture.install_fence(green_conn, state.blue_generation,
                                                                  guard=self.config.capture.guard_blob_writes)
                green_conn.execute("COMMIT")
            self._journal(state, step="fenced")
            with self._phase("unfence"):  # the pointer still names green: nobody was told to use blue
                capture.clear_meta(back.conn, "source_epoch", "source_seq", "locked_at", REVERT_START)
                capture.remove_fence(back.conn, keep_guard=True)  # the guard's DROP INDEXes come after the swap
                back.conn.execute("COMMIT")  # blue holds green's changes, and takes writes again
            state.fences.pop(state.blue, None)
            self._journal(state, step="unfenced")
            return clock.ms

        def release() -> None:
            barrier.rollback(green_conn)
            green_conn.close()
            barrier.rollback(back.conn)

        pause_ms = self.switch.hold(budget, attempt, backlog, replay, commit, release)
        if pause_ms is None:
            return None
        found[1].report = SwitchReport(pause_ms, attempt, budget)
        return found[1]

    def _revert_advice(self) -> str:
        return ("the current generation stays active and nothing was lost: try again when writes are lighter, "
                "or raise [cutover] max_write_pause_ms")

    def _carry_plan(self, state: State, back: Replayer, green_conn: apsw.Connection,
                    accept_loss: bool) -> tuple:
        """Under green's barrier, before anything is carried: green's position, its schema drift,
        and what the old schema has no place for (refused here, exit 5, unless accept_loss)."""
        upto = capture.capture_position(green_conn)
        found = revert_ddl.drift(green_conn, back.conn)
        if found is None:
            self.store.log("revert_schema_unknown", file=state.green)  # cut over before the record existed
        refused = found.refused if found else {}
        for table in found.uncarriable_tables if found else []:
            back.tables.pop(table, None)  # altered, re-created or dropped on green: its rows are not carried
        start = capture.get_meta(back.conn, REVERT_START)
        start = back.position().seq if start is None else int(start)
        lost = back.uncarried(upto.seq, after=start) if upto else {}
        if (refused or lost) and not accept_loss:  # before carrying: a refusal must cost no pause
            self._refuse(state, lost, refused)
        return upto, found, start, lost

    def _carry_back(self, state: State, back: Replayer, upto, found, start: int, lost: dict,
                    accept_loss: bool) -> "RevertOutcome":
        """Under green's barrier, inside blue's open transaction: replay green's captured changes
        and copy tables created on green since cutover (hazard 14); refuse, or export with
        accept_loss, what the old schema has no place for. A refusal rolls it all back."""
        with self._phase("carry_back"):
            carried = back.catch_up(upto=upto.seq, own_transaction=False) if upto else []
            tables = revert_ddl.carry_new_tables(back.conn, found) if found else {}
            for table, count in back.script_uncarried().items():
                lost[table] = max(lost.get(table, 0), count)
            exported = self._refuse_or_export(state, back, lost, accept_loss, start, upto, found)
        return RevertOutcome(carried, lost, exported, tables)

    def _revert_finished(self, state: State) -> bool:
        """Died after the swap, before the journal said so: the pointer names blue, which is
        unfenced before the swap (hazard 16), so the files say the revert is done."""
        if pointer.read(self.config.database.pointer).active != state.blue:
            return False
        return self._fenced_by(self.store.folder / state.blue) is None

    def _fenced_by(self, path: Path) -> int | None:
        """The generation a file's fence names, or None if it takes writes."""
        conn = open_db(path, query_only=True)
        try:
            return contract.fenced_generation(conn)
        finally:
            conn.close()

    def _close_revert(self, state: State, blue: Path, green: Path, carried: list, lost: dict,
                      exported: Path | None, command: str = "revert", tables: dict[str, int] | None = None,
                      report: SwitchReport | None = None) -> Result:
        before = dataclasses.replace(state)  # the hook is told which files the revert moved between
        self._drop_guard(blue)
        versions = (self._version_of(green), self._version_of(blue))
        state.fences.pop(state.blue, None)
        state.reverted.append(state.green)
        active_generation, reverted = state.blue_generation, state.green_generation
        self._journal(state, **IDLE)
        changes = sum(b.keys for b in carried)
        tables = tables or {}
        new_tables = ", ".join(f"{t} ({n} row(s))" for t, n in tables.items())
        result = Result(
            "revert",
            f"reverted: {blue.name} (generation {active_generation}) is active again, with {changes} row(s) "
            f"changed on generation {reverted} carried back; generation {reverted} is fenced and kept at {green}"
            + (f"; table(s) created on generation {reverted} since cutover carried back whole: {new_tables}"
               if tables else "")
            + (f"; rows and schema changes that could not be carried back were saved in {exported}" if exported else ""),
            self._phases,
            {"active": str(blue), "generation": active_generation, "fenced": str(green),
             "carried_back": changes, "lost": lost, "exported": str(exported or ""), "carried_tables": tables},
        )
        if report is not None:  # a resume that found the revert done has no pause to report
            result.message += f"; writes on generation {reverted} paused {report.pause_ms:.1f} ms"
            result.data["write_pause_ms"] = report.pause_ms
            report.annotate(result)
        return self.release.post_hook("post-revert", command, before, versions, result)

    def _drop_guard(self, blue: Path) -> None:
        """After a revert's swap, or when a prepare is undone: the BLOB guard's indexes own pages,
        so each needs a DROP INDEX that rescans the schema; in short slices (_in_slices), so no
        writer on blue waits for all of them (hazard 18). Nothing captures blue now (capture went
        first), so the guard has nothing left to protect; one left behind (lock busy, crash) only
        refuses incremental BLOB writes, and is logged."""
        conn = open_db(blue, query_only=True)
        try:
            names = [name for (name,) in capture._objects(conn, "index", capture.GUARD_PREFIX)]
        finally:
            conn.close()
        try:
            self._in_slices(blue, names, lambda held, name: held.execute(
                f"DROP INDEX IF EXISTS main.{quote_ident(name)}"), "blob_guard_dropped")
        except (OperationFailed, apsw.Error) as exc:
            self.store.log("guard_left", file=blue.name, reason=str(exc))

    def _refuse(self, state: State, lost: dict[str, int], refused: dict[str, str]) -> None:
        """Exit 5, naming every changed row count and every schema object the old schema cannot take."""
        parts = []
        if lost:
            listing = ", ".join(f"{t}: {n}" for t, n in lost.items())
            parts.append(f"{sum(lost.values())} changed row(s) since cutover that cannot be carried back to "
                         f"{state.blue} ({listing}): the old schema has no place for them")
        if refused:
            parts.append(f"schema changes made on it since cutover that cannot be carried back to {state.blue}: "
                         + "; ".join(refused.values()))
        raise RevertRefused(
            f"generation {state.green_generation} has " + ", and ".join(parts) + ". Nothing was changed; "
            "`bluegreen revert --accept-loss` saves them to a file first",
            details={"tables": lost, "schema": refused},
        )

    def _refuse_or_export(self, state: State, back: Replayer, lost: dict[str, int], accept_loss: bool,
                          start: int, upto: capture.Position | None,
                          found: revert_ddl.Drift | None = None) -> Path | None:
        refused = found.refused if found else {}
        if not lost and not refused:
            return None
        if not accept_loss:
            self._refuse(state, lost, refused)
        target = self.store.folder / f"{Path(state.green).stem}.lost-{pointer.now_iso().replace(':', '')}.db"
        export_changes(back.source, target, list(lost), start, upto.seq if upto else start)
        if refused:
            self._export_schema(back.source, target, found)
        self.store.log("revert_export", file=target.name, tables=lost, schema=sorted(refused))
        return target

    @staticmethod
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

    # ------------------------------------------------------------------------------------------
    # resume: finish whatever a crash interrupted, trusting the files over the journal
    # ------------------------------------------------------------------------------------------
    def resume(self) -> Result:
        with self.store.locked(), self.release.on_failure("resume"):
            state = self.store.load()
            if state.phase == "preparing" and state.blue and self._blue_fenced(state):
                # deploy --offline died between its fence's commit and the journal: green is whole.
                self._journal(state, phase="cutting_over", step="fenced")
                return self._cutover("resume", offline=False)
            if state.phase == "preparing":
                # A half-built generation is not trusted: discard it, build a new one.
                interrupted = state.operation
                self._discard_green(state, self.store.folder / state.green, blue_capture=True)
                prepared = self._prepare("resume")
                if interrupted != "deploy" or self.store.load().phase != "prepared":
                    return prepared
                return self._cutover("resume", offline=False)
            if state.phase == "cutting_over" or (state.phase == "prepared" and state.operation == "deploy"):
                return self._cutover("resume", offline=False)
            if state.phase == "reverting":
                return self._revert(accept_loss=False, command="resume")
            return Result("resume", f"nothing to resume (phase {state.phase})", data={"phase": state.phase})

    # ------------------------------------------------------------------------------------------
    # abort, finalize
    # ------------------------------------------------------------------------------------------
    def abort(self) -> Result:
        with self.store.locked():
            state = self.store.load()
            if state.phase == "idle":
                return Result("abort", "nothing to abort")
            if state.phase in ("cut_over", "reverting"):
                raise InputError(f"phase {state.phase}: the swap already happened; use `bluegreen revert`")
            green = self.store.folder / state.green
            if state.blue and state.phase in ("preparing", "prepared", "cutting_over") and self._blue_fenced(state):
                # Writers that met blue's fence keep its fenced schema: lifting it while the pointer
                # names blue would leave them failing for ever (hazard 16). Only forward is safe.
                raise InputError(
                    f"too late to abort: {state.blue} is already fenced for generation {state.green_generation} "
                    f"(writers are waiting for the swap to {state.green}). Nothing was changed: run `bluegreen "
                    "resume` to finish the swap, then `bluegreen revert` if you want blue back"
                )
            self._discard_green(state, green, blue_capture=True)
            return Result("abort", f"aborted: generation {green.name} removed, {state.blue or 'blue'} unchanged "
                          "and active", data={"removed": str(green)})

    def finalize(self, force: bool = False) -> Result:
        with self.store.locked():
            state = self.store.load()
            if state.phase == "idle":
                return Result("finalize", "nothing to finalize")
            if state.phase != "cut_over":
                raise InputError(f"nothing to finalize (phase {state.phase})")
            blue_gone = not (self.store.folder / state.blue).is_file()  # deleted in the revert window
            if not blue_gone:
                self._check_fence_intact("finalize", state.blue)
            holders = registry.users_of(self.config.database.pointer, state.blue)
            if holders and not force:
                raise OperationFailed(
                    f"finalize refused: {len(holders)} live process(es) still have {state.blue} open "
                    f"({', '.join(h.name for h in holders)}); each moves at its next statement outside a transaction. "
                    "Nothing was changed: run finalize again once `bluegreen status` lists no process behind, or "
                    "`bluegreen finalize --force`",
                    details={"clients": [h.as_dict() for h in holders]})
            if holders:
                self.store.log("finalize_forced", clients=[h.name for h in holders])
            green = self.store.folder / state.green
            self._journal(state, operation="finalize", step="closing")  # repeatable: finalize again
            with barrier.holding(green, self.config.cutover.lock_timeout_ms) as conn:
                capture.remove_capture(conn)
            kept = state.blue
            if blue_gone:
                return self._finalized_without_blue(state)
            self._journal(state, **IDLE)
            return Result("finalize", f"finalized: the revert window is closed; {kept} stays on disk, fenced",
                          data={"kept": str(self.store.folder / kept)})

    def _finalized_without_blue(self, state: State) -> Result:
        """Blue was deleted in the revert window: nothing could be reverted to anyway, so the window
        closes (green keeps no capture) and the fence record of the missing file is forgotten."""
        blue = self.store.folder / state.blue
        state.fences.pop(state.blue, None)
        self.store.log("finalize_blue_missing", file=state.blue)
        self._journal(state, **IDLE)
        return Result("finalize", f"finalized: the revert window is closed; {blue} was already gone (deleted "
                      "during the revert window), so there is no previous file to keep", data={"kept": None, "blue_missing": str(blue)})

    # ------------------------------------------------------------------------------------------
    # prune: remove fenced generations retired longer ago than [retention] keep_days
    # ------------------------------------------------------------------------------------------
    def prune(self, names: list[str] | None = None, dry_run: bool = False) -> Result:
        with self.store.locked():
            state = self.store.load()
            retention.check_phase(state)
            keep_days = self.config.retention.keep_days
            active = pointer.read(self.config.database.pointer).active
            kept = retention.inventory(self.store, state, active, keep_days)
            chosen = retention.choose(kept, list(names or []), keep_days, self.store.folder)
            for item in chosen:  # every check before the first removal: all of it, or nothing
                retention.check_unused(self.config.database.pointer, item)
                self._check_fence_intact("prune", item.name)
            if not dry_run:
                for item in chosen:
                    retention.remove(self.store, state, item)
            return retention.prune_result(chosen, kept, keep_days, dry_run)
    # ------------------------------------------------------------------------------------------
    # steps shared by the commands above
    # ------------------------------------------------------------------------------------------
    def _start(self) -> tuple[State, Path, list[migrations.Migration]]:
        """Common checks before building a generation; nothing on disk changes."""
        state = self.store.load()
        if state.phase == "cut_over":
            raise InputError(
                f"generation {state.green_generation} is in its revert window; run `bluegreen finalize` "
                "to keep it (or `bluegreen revert`) before the next deploy"
            )
        if state.phase != "idle":
            raise InputError(
                f"an operation is in progress or was interrupted (phase {state.phase}, {state.operation}: "
                f"{state.step}); run `bluegreen resume` or `bluegreen abort` first"
            )
        blue = self.inspector.active_path()
        check_database(blue, "active database")
        conn = open_db(blue, query_only=True)
        try:
            capture.capturable(conn)
        finally:
            conn.close()
        return state, blue, self.inspector.pending(blue)

    def _begin_generation(self, state: State, operation: str, step: str, blue: Path,
                          pending: list) -> tuple[int, Path]:
        """Allocate the next generation and journal it before anything is written: its number is
        spent from here on, even if this operation fails (numbers are never reused)."""
        generation, green = self.store.allocate_generation(state)
        self._journal(state, phase="preparing", operation=operation, step=step, blue=blue.name,
                      blue_generation=pointer.read(self.config.database.pointer).generation, green=green.name,
                      green_generation=generation, target_version=pending[-1].version, last_generation=generation,
                      started_at=pointer.now_iso())
        return generation, green

    def _install_capture_on_blue(self, blue: Path) -> None:
        """Writers wait for each of these transactions (hazard 18). The BLOB guard's indexes own
        pages, so each is a CREATE INDEX that rescans the schema and reads its table: made in short
        transactions (_in_slices), all committed before capture starts, so no BLOB write can slip
        past the triggers (a handle opened earlier holds an older snapshot and cannot write after
        them).
        Then the capture triggers, worked out before the lock, as one schema edit; a table created
        meanwhile moves schema_version, so the install works them out again and guards it there."""
        if self.config.capture.guard_blob_writes:
            self._guard_gradually(blue)
        conn = open_db(blue, query_only=True)
        try:
            plan = capture.plan_capture(conn)  # before the lock; redone under it if the schema moved
        finally:
            conn.close()
        with barrier.holding(blue, self.config.cutover.lock_timeout_ms) as conn:
            capture.install_capture(conn, guard=self.config.capture.guard_blob_writes, plan=plan)

    def _guard_gradually(self, blue: Path) -> None:
        """The guard indexes blue lacks, in short slices under its lock (_in_slices)."""
        conn = open_db(blue, query_only=True)
        try:
            tables = capture.capturable(conn)  # refuses what capture cannot take before anything is written
            present = {name for (name,) in capture._objects(conn, "index", capture.GUARD_PREFIX)}
        finally:
            conn.close()
        todo = [t for t in tables if not t.without_rowid and capture.guard_name(t) not in present]
        self._in_slices(blue, todo, lambda held, table: capture.install_blob_guard(held, [table]), "blob_guard")

    def _in_slices(self, path: Path, items: list, apply: Callable[[apsw.Connection, object], object],
                   event: str) -> None:
        """`apply` each item under `path`'s write lock, in transactions of about GUARD_SLICE_MS,
        each followed by as long with the lock free: back-to-back transactions would starve a
        writer whose busy handler sleeps in growing steps and keeps waking to a taken lock."""
        todo = list(reversed(items))
        locks: list[float] = []
        conn = open_db(path, triggers=False, busy_timeout_ms=self.config.cutover.lock_timeout_ms)
        try:
            while todo:
                barrier.begin(conn, path, self.config.cutover.lock_timeout_ms)
                clock = Timer()
                try:
                    while todo and clock.ms < GUARD_SLICE_MS:
                        apply(conn, todo.pop())
                    conn.execute("COMMIT")
                finally:
                    barrier.rollback(conn)
                locks.append(clock.ms)
                time.sleep(clock.ms / 1000)
        finally:
            conn.close()
        if locks:
            self.store.log(event, file=path.name, transactions=len(locks), longest_lock_ms=round(max(locks), 2))

    def _check_fence_intact(self, command: str, name: str, conn: apsw.Connection | None = None) -> None:
        """A fenced file whose schema_version moved had DDL run on it after it was retired
        (hazard 1): refuse to touch it."""
        path = self.store.folder / name
        own = conn is None
        conn = conn or open_db(path, query_only=True)
        try:
            moved = schema_version(conn) != self.store.load().fences.get(name)
        finally:
            if own:
                conn.close()
        if moved:
            raise OperationFailed(
                f"{path}: its schema changed after it was fenced (someone ran DDL on the retired file); "
                f"{command} refused: inspect the file before using it"
            )

    def _blue_fenced(self, state: State) -> bool:
        """Did the fence commit? The file says so even if we died before journaling it."""
        conn = open_db(self.store.folder / state.blue, query_only=True)
        try:
            fenced = contract.fenced_generation(conn) == state.green_generation
            if fenced and state.blue not in state.fences:
                state.fences[state.blue] = schema_version(conn)
            return fenced
        finally:
            conn.close()

    def _record_green_schema(self, green: Path) -> list:
        """Green's schema as the swap will hand it over: a revert compares with it (hazard 14).
        Returns what was recorded before (a one-item list; None: nothing), for _restore."""
        with barrier.holding(green, self.config.cutover.lock_timeout_ms) as conn:
            previous = capture.get_meta(conn, revert_ddl.SCHEMA_KEY)
            revert_ddl.record(conn)
        return [previous]

    def _restore_green_schema(self, green: Path, previous: list | None) -> None:
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

    def _complete_swap(self, state: State) -> Result:
        """Blue is fenced but the pointer still names it: finish the swap (writers are waiting)."""
        green = self.store.folder / state.green
        with self._phase("swap"):
            self._swap(green, state.green_generation, self._version_of(green), previous=self.store.folder / state.blue)
        self._journal(state, phase="cut_over", step="swapped")
        return self._cut_over_result("cutover", state, green, 0.0)

    def _swap(self, target: Path, generation: int, version: str, previous: Path) -> None:
        pointer.write(
            self.config.database.pointer,
            pointer.Pointer(target.name, generation, version, previous.name, pointer.now_iso()),
            mode=file_mode(target),
        )
        self.store.log("swap", active=target.name, previous=previous.name, generation=generation,
                       schema_version=version)  # `previous` retires now: retention counts its age from here

    def _discard_green(self, state: State, green: Path, *, blue_capture: bool) -> None:
        """Undo a prepare: no partial generation behind, blue as it was (invariant 5)."""
        remove_database_files(green)
        if blue_capture and state.blue:
            with barrier.holding(self.store.folder / state.blue, self.config.cutover.lock_timeout_ms) as conn:
                capture.remove_capture(conn, keep_guard=True)
            self._drop_guard(self.store.folder / state.blue)
        self.store.log("discarded", generation=state.green_generation, file=state.green)
        self._journal(state, **IDLE)

    def _cut_over_result(self, command: str, state: State, green: Path, pause_ms: float) -> Result:
        return Result(
            command,
            f"generation {state.green_generation} is active: {green} (schema {state.target_version}); "
            f"{state.blue} is fenced and kept for `bluegreen revert`; writes paused {pause_ms:.1f} ms",
            self._phases,
            {"active": str(green), "generation": state.green_generation, "previous": str(self.store.folder / state.blue),
             "schema_version": state.target_version, "write_pause_ms": pause_ms},
        )

    def _capture_epoch(self, path: Path) -> str:
        conn = open_db(path, query_only=True)
        try:
            return capture.get_meta(conn, "capture_epoch") or ""
        finally:
            conn.close()

    def _version_of(self, path: Path) -> str:
        conn = open_db(path, query_only=True)
        try:
            return migrations.current_version(conn)
        finally:
            conn.close()

    def _journal(self, state: State, **changes: object) -> None:
        for key, value in changes.items():
            setattr(state, key, value)
        self.store.save(state)
        _crash_point(f"{state.operation}:{state.step}")

    @contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        clock = Timer()
        yield
        self._phases.append(Phase(name, clock.ms))
        self.store.log("phase", phase=name, duration_ms=clock.ms)


def _crash_point(name: str) -> None:
    """Test hook for crash injection: BLUEGREEN_CRASH_AT=operation:step kills this process with
    SIGKILL right after that step is journaled, exactly as `kill -9` would."""
    if os.environ.get("BLUEGREEN_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
