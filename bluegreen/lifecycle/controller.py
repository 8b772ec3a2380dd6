"""The lifecycle: init → prepare → cutover → (revert | finalize), and abort.

This is the only module that knows the order of steps. Each command is one linear method that
takes the controller lock, starts one Run (lifecycle/run.py: the journal, timed steps, hook runs),
hands it to the parts (builder, cutover, revert, the gate runner) and returns its result as data.
Fence first, swap second: a crash between the two leaves writes refused, never lost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bluegreen.config import Config
from bluegreen.engine import barrier, capture, generations, migrations
from bluegreen.engine.db import check_database, open_db
from bluegreen.engine.generations import version_of
from bluegreen.engine.replay import Replayer
from bluegreen.errors import BluegreenError, ConfigInvalid, ReplayConflict, WrongPhase
from bluegreen.files import pointer
from bluegreen.files.journal import Phase, State, Step, Store
from bluegreen.files.layout import file_mode, remove_database_files
from bluegreen.gates import estimate, preflight
from bluegreen.gates.runner import GateRunner
from bluegreen.lifecycle import fences, guard
from bluegreen.lifecycle.budget import PauseReport
from bluegreen.lifecycle.builder import Builder
from bluegreen.lifecycle.closing import Closing
from bluegreen.lifecycle.cutover import Cutover
from bluegreen.lifecycle.revert import Revert
from bluegreen.lifecycle.run import IDLE, Run
from bluegreen.lifecycle.watch import Watch
from bluegreen.replication.state import wait_pointer_replicated, wait_replicated
from bluegreen.reports.watch import REGRESSED
from bluegreen.results import Result, Timer

ProgressFn = Callable[[str, int, int], None]  # (phase, done, total)


class Controller:
    """Reusable: each command starts its own Run, so nothing of one command stays for the next."""

    def __init__(self, config: Config, progress: ProgressFn | None = None, environment: str | None = None):
        self.config = config
        self.store = Store(config.database.pointer)
        self.progress = progress or (lambda phase, done, total: None)
        self.gates = GateRunner(config, self.store, environment, self.progress)
        self.builder = Builder(config, self.store, self.progress)
        self.forward = Cutover(config, self.store)  # blue → green
        self.backward = Revert(config, self.store, self.gates)  # green → blue
        self.closing = Closing(config, self.store)  # the revert window closed, old files removed
        self.watching = Watch(config, self.store, self.gates)  # after the swap: the traffic compared

    @contextmanager
    def _command(self, name: str, *, gated: bool = True) -> Iterator[Run]:
        """The controller lock, one Run, and (gated) the on-failure hook around the command."""
        with self.store.locked():
            run = Run(self.store)
            if not gated:
                yield run
                return
            with self.gates.on_failure(run, name):
                yield run

    # ------------------------------------------------------------------------------------------
    # init
    # ------------------------------------------------------------------------------------------
    def init(self) -> Result:
        initial = self.config.database.initial
        pointer_path = self.config.database.pointer
        if initial.parent != pointer_path.parent:
            raise ConfigInvalid(
                f"{self.config.path}: database.initial ({initial}) must be in the pointer's folder "
                f"({pointer_path.parent}); generations live beside the pointer"
            )
        with self.store.locked():
            if pointer_path.exists():
                current = pointer.read(pointer_path)
                if self.store.initialized():
                    return Result(
                        "init",
                        f"already initialized: {current.active} is generation {current.generation}",
                        data={"active": str(current.active_path(pointer_path)), "generation": current.generation},
                    )
            check_database(initial, "database.initial")
            version = version_of(initial)
            self.store.save(State(base_name=initial.name))
            pointer.write(
                pointer_path, pointer.Pointer(initial.name, 1, version, "", pointer.now_iso()), mode=file_mode(initial)
            )
            self.store.log("init", active=initial.name, generation=1, schema_version=version)
        return Result(
            "init",
            f"adopted {initial} as generation 1 (schema {version})",
            data={"active": str(initial), "generation": 1, "schema_version": version},
        )

    # ------------------------------------------------------------------------------------------
    # prepare: capture on blue → snapshot → migrate green → catch up → validate
    # ------------------------------------------------------------------------------------------
    def prepare(self) -> Result:
        with self._command("prepare") as run:
            return self._prepare(run, "prepare", *self._start(run))

    def _prepare(self, run: Run, command: str, blue: Path, pending: list[migrations.Migration]) -> Result:
        state = run.state
        if not pending:
            return Result(command, f"{blue.name} is up to date: nothing to {command}")
        estimate.require_free_space(self.config, blue, pending)  # nothing is written yet
        versions = (version_of(blue), pending[-1].version)
        self.gates.pre_hook(
            run,
            "pre-prepare",
            command,
            state,
            versions,
            f"nothing was changed; run `bluegreen {command}` again once it passes",
        )
        backed_up = self.gates.backup_blue(run, blue)
        generation, green = self._begin_generation(run, command, Step.CAPTURE, blue, pending)
        try:
            with run.timed(Step.CAPTURE):
                guard.install_capture_on_blue(self.config, self.store, blue)
            report = self.builder.build(run, blue, green, pending, online=True)
        except BaseException:
            self._discard_green(run, green, blue_capture=True)
            raise
        run.journal(phase=Phase.PREPARED, step=Step.VALIDATED)
        result = Result(
            command,
            f"generation {generation} prepared in {green} (schema {state.target_version}) and kept caught up "
            "with blue; run `bluegreen cutover` to make it active, or `bluegreen abort`",
            run.timings,
            {"generation": generation, "green": str(green), "validation": report.as_dicts(), **backed_up},
        )
        return self.gates.post_hook(run, "post-prepare", command, state, versions, result)

    # ------------------------------------------------------------------------------------------
    # cutover: catch up → barrier on blue when the backlog fits the budget → replay the rest →
    # fence blue → swap
    # ------------------------------------------------------------------------------------------
    def cutover(
        self,
        offline: bool = False,
        wait: bool = False,
        force: bool = False,
        reason: str = "",
        watch_s: float | None = None,
        auto_revert: bool = False,
    ) -> Result:
        self.gates.check_wait_option(wait)
        with self._command("cutover") as run:
            result = self._cutover(run, "cutover", offline, wait, force, reason)
        return self._watch_after_swap(result, watch_s, auto_revert)

    def _cutover(
        self, run: Run, command: str, offline: bool, wait: bool = False, force: bool = False, reason: str = ""
    ) -> Result:
        state = run.state
        if state.phase == Phase.CUT_OVER:
            return Result(
                command,
                f"already cut over: generation {state.green_generation} is active",
                data={"generation": state.green_generation},
            )
        blue, green = self.store.folder / state.blue, self.store.folder / state.green
        if state.phase == Phase.CUTTING_OVER and fences.blue_fenced(self.store, state):
            versions = (version_of(blue), state.target_version)
            return self.gates.post_hook(run, "post-cutover", command, state, versions, self._complete_swap(run))
        if state.phase not in (Phase.PREPARED, Phase.CUTTING_OVER):
            raise WrongPhase(f"nothing prepared to cut over (phase {state.phase}); run `bluegreen prepare` first")
        pending = generations.pending(self.config.migrations.dir, blue)
        self.gates.check_environment(command, pending, force, reason, log=False)  # refuse before any wait
        versions = (version_of(blue), state.target_version)
        if state.phase == Phase.PREPARED:  # a fresh cutover; an interrupted one finishes without asking again
            self._hold_and_ask(run, command, wait, versions, blue, green, pending)
        self.gates.check_environment(command, pending, force, reason)  # again, now: a wait may have closed the window
        wait_replicated(self.config, self.store, green, command)  # [replication]: green's replica first
        run.journal(phase=Phase.CUTTING_OVER, operation=command, step=Step.CATCH_UP)
        replayer = self.builder.replayer(blue, green, pending)
        switched, green_version = self._catch_up_and_fence(run, replayer, blue, green, pending, offline)
        try:
            run.swap(self.config.database.pointer, green, state.green_generation, green_version, previous=blue)
        finally:
            replayer.close()  # after the swap: freeing two large schemas is not the writers' wait
        run.journal(phase=Phase.CUT_OVER, step=Step.SWAPPED)
        wait_pointer_replicated(self.config, self.store, command)  # [replication]: the replica names green
        self.forward.tidy_blue(state, blue)
        result = switched.annotate(self._cut_over_result(run, command, green, switched.pause_ms))
        return self.gates.post_hook(run, "post-cutover", command, state, versions, result)

    def _hold_and_ask(
        self, run: Run, command: str, wait: bool, versions: tuple[str, str], blue: Path, green: Path, pending: list
    ) -> None:
        """Before a fresh cutover: the hold flag (--wait keeps green caught up meanwhile), then the
        pre-cutover hook. Green stays prepared if either says no."""
        try:
            self.gates.hold_prepared(run, run.state, wait, lambda: self.builder.replayer(blue, green, pending))
        except ReplayConflict as exc:  # --wait keeps green caught up: status must name the row too
            run.journal(conflict=exc.details)
            raise
        self.gates.pre_hook(
            run,
            "pre-cutover",
            command,
            run.state,
            versions,
            f"generation {run.state.green_generation} stays prepared and blue active; run "
            "`bluegreen cutover` once it passes, or `bluegreen abort`",
        )

    def _catch_up_and_fence(
        self, run: Run, replayer: Replayer, blue: Path, green: Path, pending: list, offline: bool
    ) -> tuple[PauseReport, str]:
        """Catch green up, validate it as caught up, then fence blue in the barrier (cutover.py).
        Until the fence commits, a failure leaves green prepared as it was and blue active."""
        state = run.state
        recorded = None
        try:
            with self.builder.throttled(blue, throttle=not offline):  # pauses while blue's writers wait
                with run.timed(Step.CATCH_UP):
                    replayer.catch_up(progress=self.builder.paced(Step.CATCH_UP))
                if state.conflict:  # the row that stopped an earlier cutover has been fixed
                    run.journal(conflict={})
                self.builder.report_catch_up(replayer)
                with run.timed(Step.VALIDATE):
                    self.builder.validate_caught_up(replayer, state.green_generation, pending, blue=blue)
            self.gates.stamp_approvals(green, pending)
            recorded = self.forward.record_green_schema(green)
            green_version = version_of(green)  # now: after the fence, writers wait for the swap
            if offline:
                return self.forward.holding_writes(run, replayer, blue), green_version
            return self.forward.within_budget(run, replayer, blue), green_version
        except BaseException as exc:
            replayer.close()
            if state.step != Step.FENCED:
                self.forward.restore_green_schema(green, recorded)
                conflict = exc.details if isinstance(exc, ReplayConflict) else state.conflict
                run.journal(phase=Phase.PREPARED, operation="prepare", step=Step.VALIDATED, conflict=conflict)
            raise

    # ------------------------------------------------------------------------------------------
    # deploy: prepare + cutover; --offline holds blue's write lock from the copy until the swap
    # ------------------------------------------------------------------------------------------
    def deploy(
        self,
        offline: bool = False,
        wait: bool = False,
        force: bool = False,
        reason: str = "",
        watch_s: float | None = None,
        auto_revert: bool = False,
    ) -> Result:
        self.gates.check_wait_option(wait)
        with self._command("deploy") as run:
            blue, pending = self._start(run, online=not offline)
            # The cutover's rule first: a deploy that could not cut over must not even start.
            self.gates.check_environment("deploy", pending, force, reason, log=offline)
            self.gates.hold_before_deploy(run, offline, wait)
            if offline:
                result = self._deploy_offline(run, blue, pending)
            else:
                prepared = self._prepare(run, "deploy", blue, pending)
                if run.state.phase != Phase.PREPARED:
                    return prepared
                result = self._cutover(run, "deploy", False, wait, force, reason)
        return self._watch_after_swap(result, watch_s, auto_revert)

    # ------------------------------------------------------------------------------------------
    # --watch: after the swap, the application's traffic on green against blue's (lifecycle/watch.py)
    # ------------------------------------------------------------------------------------------
    def _watch_after_swap(self, cut: Result, watch_s: float | None, auto_revert: bool) -> Result:
        """Watch for watch_s without any lock; on a regression revert (--auto-revert: revert's own
        refusals stand, exit 5 pages through on-failure and leaves green standing) or recommend it."""
        if watch_s is None or "previous" not in cut.data:  # nothing was cut over: nothing to watch
            return cut
        generation, previous = cut.data["generation"], self.store.load().blue_generation or None
        found, active = self.watching.observe(generation, previous, watch_s)
        reverted = None
        if found.verdict == REGRESSED and auto_revert and active:
            try:
                reverted = self.revert()
            except BluegreenError as exc:
                failed = self.watching.refused(exc, found)
                self.watching.post_watch(cut.command, cut, found.verdict, failed)
                raise failed from None
        outcome = self.watching.outcome(cut, found, watch_s, active, auto_revert, reverted)
        return self.watching.post_watch(cut.command, outcome, found.verdict)

    def _deploy_offline(self, run: Run, blue: Path, pending: list[migrations.Migration]) -> Result:
        state = run.state
        if not pending:
            return Result("deploy", f"{blue.name} is up to date: nothing to deploy")
        estimate.require_free_space(self.config, blue, pending)  # nothing is written yet
        versions = (version_of(blue), pending[-1].version)
        for event in ("pre-prepare", "pre-cutover"):  # both before the lock: no hook runs while writers wait
            self.gates.pre_hook(
                run,
                event,
                "deploy",
                state,
                versions,
                "nothing was changed; run `bluegreen deploy --offline` again once it passes",
            )
        self.gates.backup_blue(run, blue)
        held = barrier.take(blue, self.config.cutover.lock_timeout_ms)  # first: a busy blue spends no number
        clock, green = Timer(), None
        try:
            generation, green = self._begin_generation(run, "deploy", Step.BARRIER, blue, pending)
            self.builder.build(run, blue, green, pending, online=False)
            self.gates.stamp_approvals(green, pending)
            self.forward.record_green_schema(green)
            pause = self.forward.fence_offline(run, held, green, clock)
        except BaseException:
            barrier.rollback(held)
            held.close()
            if green is not None and state.step != Step.FENCED:  # once blue is fenced, green is the only copy
                self._discard_green(run, green, blue_capture=False)
            raise
        held.close()
        run.swap(self.config.database.pointer, green, generation, version_of(green), previous=blue)
        run.journal(phase=Phase.CUT_OVER, step=Step.SWAPPED)
        return self.gates.post_hook(
            run, "post-cutover", "deploy", state, versions, self._cut_over_result(run, "deploy", green, pause)
        )

    # ------------------------------------------------------------------------------------------
    # revert (lifecycle/revert.py): blue's lock → green's barrier → carry green's changes back →
    # fence green → unfence blue → swap
    # ------------------------------------------------------------------------------------------
    def revert(self, accept_loss: bool = False) -> Result:
        with self._command("revert") as run:
            if run.state.phase == Phase.CUT_OVER:  # [replication]: the revert target's replica first
                wait_replicated(self.config, self.store, self.store.folder / run.state.blue, "revert")
            result = self.backward.revert(run, accept_loss)
            wait_pointer_replicated(self.config, self.store, "revert")  # [replication]: the replica names blue
            return result

    # ------------------------------------------------------------------------------------------
    # resume: finish whatever a crash interrupted, trusting the files over the journal
    # ------------------------------------------------------------------------------------------
    def resume(self) -> Result:
        with self._command("resume") as run:
            state = run.state
            if state.phase == Phase.PREPARING and state.blue and fences.blue_fenced(self.store, state):
                # deploy --offline died between its fence's commit and the journal: green is whole.
                run.journal(phase=Phase.CUTTING_OVER, step=Step.FENCED)
                return self._cutover(run, "resume", offline=False)
            if state.phase == Phase.PREPARING:
                # A half-built generation is not trusted: discard it, build a new one.
                interrupted = state.operation
                self._discard_green(run, self.store.folder / state.green, blue_capture=True)
                prepared = self._prepare(run, "resume", *self._start(run))
                if interrupted != "deploy" or run.state.phase != Phase.PREPARED:
                    return prepared
                return self._cutover(run, "resume", offline=False)
            if state.phase == Phase.CUTTING_OVER or (state.phase == Phase.PREPARED and state.operation == "deploy"):
                return self._cutover(run, "resume", offline=False)
            if state.phase == Phase.REVERTING:
                return self.backward.revert(run, accept_loss=False, command="resume")
            return Result("resume", f"nothing to resume (phase {state.phase})", data={"phase": state.phase})

    # ------------------------------------------------------------------------------------------
    # abort, finalize
    # ------------------------------------------------------------------------------------------
    def abort(self) -> Result:
        with self._command("abort", gated=False) as run:
            state = run.state
            if state.phase == Phase.IDLE:
                return Result("abort", "nothing to abort")
            if state.phase in (Phase.CUT_OVER, Phase.REVERTING):
                raise WrongPhase(f"phase {state.phase}: the swap already happened; use `bluegreen revert`")
            green = self.store.folder / state.green
            if (
                state.blue
                and state.phase in (Phase.PREPARING, Phase.PREPARED, Phase.CUTTING_OVER)
                and fences.blue_fenced(self.store, state)
            ):
                # Writers that met blue's fence keep its fenced schema: lifting it while the pointer
                # names blue would leave them failing for ever (hazard 16). Only forward is safe.
                raise WrongPhase(
                    f"too late to abort: {state.blue} is already fenced for generation {state.green_generation} "
                    f"(writers are waiting for the swap to {state.green}). Nothing was changed: run `bluegreen "
                    "resume` to finish the swap, then `bluegreen revert` if you want blue back"
                )
            self._discard_green(run, green, blue_capture=True)
            return Result(
                "abort",
                f"aborted: generation {green.name} removed, {state.blue or 'blue'} unchanged and active",
                data={"removed": str(green)},
            )

    def finalize(self, force: bool = False) -> Result:
        with self._command("finalize", gated=False) as run:
            return self.closing.finalize(run, force)

    def prune(self, names: list[str] | None = None, dry_run: bool = False, force: bool = False) -> Result:
        """Remove fenced generations retired longer ago than [retention] keep_days."""
        return self.closing.prune(list(names or []), dry_run, force)

    # ------------------------------------------------------------------------------------------
    # steps shared by the commands above
    # ------------------------------------------------------------------------------------------
    def _start(self, run: Run, online: bool = True) -> tuple[Path, list[migrations.Migration]]:
        """Common checks before building a generation: the active file, what it lacks, and the plan's
        checks of it (gates/preflight.py); nothing on disk changes and no generation number is spent."""
        state = run.state
        if state.phase == Phase.CUT_OVER:
            raise WrongPhase(
                f"generation {state.green_generation} is in its revert window; run `bluegreen finalize` "
                "to keep it (or `bluegreen revert`) before the next deploy"
            )
        if state.phase != Phase.IDLE:
            raise WrongPhase(
                f"an operation is in progress or was interrupted (phase {state.phase}, {state.operation}: "
                f"{state.step}); run `bluegreen resume` or `bluegreen abort` first"
            )
        blue = generations.active_path(self.config.database.pointer, self.store)
        check_database(blue, "active database")
        conn = open_db(blue, query_only=True)
        try:
            capture.capturable(conn)
        finally:
            conn.close()
        pending = generations.pending(self.config.migrations.dir, blue)
        preflight.require(blue, pending, online=online)
        return blue, pending

    def _begin_generation(self, run: Run, operation: str, step: Step, blue: Path, pending: list) -> tuple[int, Path]:
        """Allocate the next generation and journal it before anything is written: its number is
        spent from here on, even if this operation fails (numbers are never reused)."""
        generation, green = self.store.allocate_generation(run.state)
        run.journal(
            phase=Phase.PREPARING,
            operation=operation,
            step=step,
            blue=blue.name,
            blue_generation=pointer.read(self.config.database.pointer).generation,
            green=green.name,
            green_generation=generation,
            target_version=pending[-1].version,
            last_generation=generation,
            started_at=pointer.now_iso(),
        )
        return generation, green

    def _complete_swap(self, run: Run) -> Result:
        """Blue is fenced but the pointer still names it: finish the swap (writers are waiting)."""
        state = run.state
        green = self.store.folder / state.green
        run.swap(
            self.config.database.pointer,
            green,
            state.green_generation,
            version_of(green),
            previous=self.store.folder / state.blue,
        )
        run.journal(phase=Phase.CUT_OVER, step=Step.SWAPPED)
        return self._cut_over_result(run, "cutover", green, 0.0)

    def _discard_green(self, run: Run, green: Path, *, blue_capture: bool) -> None:
        """Undo a prepare: no partial generation behind, blue as it was (invariant 5)."""
        state = run.state
        remove_database_files(green)
        if blue_capture and state.blue:
            with barrier.holding(self.store.folder / state.blue, self.config.cutover.lock_timeout_ms) as conn:
                capture.remove_capture(conn, keep_guard=True)
            guard.drop_guard(self.config, self.store, self.store.folder / state.blue)
        self.store.log("discarded", generation=state.green_generation, file=state.green)
        run.journal(**IDLE)

    def _cut_over_result(self, run: Run, command: str, green: Path, pause_ms: float) -> Result:
        state = run.state
        return Result(
            command,
            f"generation {state.green_generation} is active: {green} (schema {state.target_version}); "
            f"{state.blue} is fenced and kept for `bluegreen revert`; writes paused {pause_ms:.1f} ms",
            run.timings,
            {
                "active": str(green),
                "generation": state.green_generation,
                "previous": str(self.store.folder / state.blue),
                "schema_version": state.target_version,
                "write_pause_ms": pause_ms,
            },
        )
