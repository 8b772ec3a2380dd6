"""The lifecycle: init → prepare → cutover → (revert | finalize), and abort.

This is the only module that knows the order of steps. Each command is one linear method that
takes the controller lock, journals each step in the store, and returns its result as data.
Fence first, swap second: a crash between the two leaves writes refused, never lost.
"""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import apsw

from bluegreen import capture, migrations, pointer, snapshot, validate
from bluegreen.config import Config
from bluegreen.db import check_database, open_db, schema_version
from bluegreen.errors import BluegreenError, GateRefused, InputError, OperationFailed, RevertRefused
from bluegreen.store import State, Store, Timer, remove_database_files

ProgressFn = Callable[[str, int, int], None]  # (phase, done, total)
IDLE = dict(phase="idle", operation="", step="", blue="", blue_generation=0, green="", green_generation=0,
            target_version="", started_at="")  # nothing in flight


@dataclass
class Phase:
    name: str
    duration_ms: float


@dataclass
class Result:
    """What a command did, as data: the CLI renders it as text or JSON."""

    command: str
    message: str
    phases: list[Phase] = field(default_factory=list)
    data: dict = field(default_factory=dict)


class Controller:
    def __init__(self, config: Config, progress: ProgressFn | None = None):
        self.config = config
        self.store = Store(config.database.pointer)
        self.progress = progress or (lambda phase, done, total: None)
        self._phases: list[Phase] = []

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
            conn = open_db(initial, query_only=True)
            try:
                version = migrations.current_version(conn)
            finally:
                conn.close()
            self.store.save(State(base_name=initial.name))
            pointer.write(
                pointer_path,
                pointer.Pointer(initial.name, 1, version, "", pointer.now_iso()),
                mode=_file_mode(initial),
            )
            self.store.log("init", active=initial.name, generation=1, schema_version=version)
        return Result("init", f"adopted {initial} as generation 1 (schema {version})",
                      data={"active": str(initial), "generation": 1, "schema_version": version})

    # ------------------------------------------------------------------------------------------
    # status, plan, history, path
    # ------------------------------------------------------------------------------------------
    def status(self) -> Result:
        current = pointer.read(self.config.database.pointer)
        state = self.store.load()
        active = self._active_path()
        data = {
            "active": str(active),
            "generation": current.generation,
            "schema_version": current.schema_version,
            "phase": state.phase,
            "previous": str(current.previous_path(self.config.database.pointer) or ""),
            "switched_at": current.switched_at,
            "pending": [],
            "operation": state.operation,
            "step": state.step,
            "green": str(self.store.folder / state.green) if state.green else "",
            "fenced": sorted(state.fences),
            "generations": {str(n): str(p) for n, p in self.store.generations_on_disk(state.base_name).items()},
        }
        try:
            data["pending"] = [m.file for m in self._pending(active)]
        except BluegreenError as exc:
            data["pending_error"] = exc.message
        lines = [
            f"active      {active} (generation {current.generation}, schema {current.schema_version})",
            f"phase       {state.phase}" + (f" ({state.operation}: {state.step})" if state.operation else ""),
        ]
        if data["previous"]:
            lines.append(f"previous    {data['previous']}")
        if state.green:
            lines.append(f"green       {data['green']} (generation {state.green_generation})")
        lines.append("pending     " + (", ".join(data["pending"]) or data.get("pending_error", "none")))
        lines.append("next        " + _next_step(state.phase, bool(data["pending"])))
        return Result("status", "\n".join(lines), data=data)

    def plan(self) -> Result:
        active = self._active_path()
        pending = self._pending(active)
        data = {
            "active": str(active),
            "pending": [
                {
                    "file": m.file,
                    "version": m.version,
                    "description": m.description,
                    "sync": m.sync.name if m.sync else None,
                    "validate": m.validate.name if m.validate else None,
                    "rollback": m.rollback.name if m.rollback else None,
                }
                for m in pending
            ],
        }
        if not pending:
            return Result("plan", f"{active.name} is up to date: no pending migrations", data=data)
        lines = [f"{len(pending)} pending migration(s) for {active.name}:"]
        for m in pending:
            extras = ", ".join(k for k in ("validate", "sync", "rollback") if getattr(m, k)) or "no companions"
            lines.append(f"  {m.file}  (v{m.version}; {extras})")
        return Result("plan", "\n".join(lines), data=data)

    def history(self) -> Result:
        active = self._active_path()
        conn = open_db(active, query_only=True)
        try:
            rows = migrations.history_rows(conn)
        finally:
            conn.close()
        lines = [f"{r['applied_at']}  {r['file']}  {r['execution_time_ms']} ms" for r in rows]
        return Result("history", "\n".join(lines) or f"{active.name} has no migration history", data={"migrations": rows})

    def active_path(self) -> Path:
        return self._active_path()

    # ------------------------------------------------------------------------------------------
    # prepare: capture on blue → snapshot → migrate green → validate
    # ------------------------------------------------------------------------------------------
    def prepare(self) -> Result:
        with self.store.locked():
            state, blue, pending = self._start("prepare")
            if not pending:
                return Result("prepare", f"{blue.name} is up to date: nothing to prepare")
            generation, green = self._begin_generation(state, "prepare", "capture", blue, pending)
            try:
                with self._phase("capture"):
                    self._install_capture_on_blue(blue)
                report = self._build_green(state, blue, green, pending)
            except BaseException:
                self._discard_green(state, green, blue_capture=True)
                raise
            self._journal(state, phase="prepared", step="validated")
            return Result(
                "prepare",
                f"generation {generation} prepared in {green} (schema {state.target_version}); "
                "run `bluegreen cutover` to make it active, or `bluegreen abort`",
                self._phases,
                {"generation": generation, "green": str(green), "validation": report.as_dicts()},
            )

    # ------------------------------------------------------------------------------------------
    # cutover: barrier on blue → check nothing changed → fence blue → swap
    # ------------------------------------------------------------------------------------------
    def cutover(self) -> Result:
        with self.store.locked():
            state = self.store.load()
            if state.phase == "cut_over":
                return Result("cutover", f"already cut over: generation {state.green_generation} is active",
                              data={"generation": state.green_generation})
            if state.phase == "cutting_over" and state.step == "fenced":
                return self._complete_swap(state)
            if state.phase != "prepared":
                raise InputError(f"nothing prepared to cut over (phase {state.phase}); run `bluegreen prepare` first")
            blue = self.store.folder / state.blue
            green = self.store.folder / state.green
            self._journal(state, phase="cutting_over", operation="cutover", step="barrier")
            barrier_clock = Timer()
            barrier = self._take_barrier(blue)
            try:
                with self._phase("verify"):
                    self._check_blue_unchanged(barrier, green)
                pause = self._finish_cutover(state, barrier, blue, green, barrier_clock)
            except BaseException:
                _rollback(barrier)
                if state.step != "fenced":
                    self._journal(state, phase="prepared", operation="prepare", step="validated")
                raise
            finally:
                barrier.close()
            return self._cut_over_result("cutover", state, green, pause)

    # ------------------------------------------------------------------------------------------
    # deploy (offline): barrier on blue from before the snapshot until the swap
    # ------------------------------------------------------------------------------------------
    def deploy(self) -> Result:
        with self.store.locked():
            state, blue, pending = self._start("deploy")
            if not pending:
                return Result("deploy", f"{blue.name} is up to date: nothing to deploy")
            generation, green = self._begin_generation(state, "deploy", "barrier", blue, pending)
            barrier_clock = Timer()
            barrier = self._take_barrier(blue)
            try:
                self._build_green(state, blue, green, pending)
                self._journal(state, phase="cutting_over", step="fence")
                pause = self._finish_cutover(state, barrier, blue, green, barrier_clock)
            except BaseException:
                _rollback(barrier)
                barrier.close()
                if state.step != "fenced":  # once blue is fenced, green is the only writable copy
                    self._discard_green(state, green, blue_capture=False)
                raise
            barrier.close()
            return self._cut_over_result("deploy", state, green, pause)

    # ------------------------------------------------------------------------------------------
    # revert: barrier on blue, then green → refuse if green has writes → fence green → swap → unfence blue
    # ------------------------------------------------------------------------------------------
    def revert(self) -> Result:
        with self.store.locked():
            state = self.store.load()
            if state.phase != "cut_over":
                raise InputError(
                    f"nothing to revert (phase {state.phase}); revert is possible after a cutover, "
                    "before `bluegreen finalize`"
                )
            blue = self.store.folder / state.blue
            green = self.store.folder / state.green
            # Blue's lock first, with a bounded wait: a stale writer stuck on fenced blue must not
            # leave us holding green's barrier forever (hazard 10).
            blue_conn = self._take_barrier(blue)
            try:
                self._check_fence_intact("revert", state.blue, blue_conn)
                green_conn = self._take_barrier(green)
                try:
                    lost = capture.captured_counts(green_conn)
                    if lost:
                        raise RevertRefused(
                            f"generation {state.green_generation} has {sum(lost.values())} changed row(s) since "
                            f"cutover ({', '.join(f'{t}: {n}' for t, n in lost.items())}); reverting now would lose "
                            "them. Nothing was changed",
                            details={"tables": lost},
                        )
                    with self._phase("fence"):
                        capture.remove_capture(green_conn)
                        capture.install_fence(green_conn, state.blue_generation)
                        green_fence = schema_version(green_conn)
                        green_conn.execute("COMMIT")
                finally:
                    _rollback(green_conn)
                    green_conn.close()
                state.fences[state.green] = green_fence
                self._journal(state, phase="reverting", operation="revert", step="fenced")
                with self._phase("swap"):
                    self._swap(blue, state.blue_generation, self._version_of(blue_conn), previous=green)
                self._journal(state, step="swapped")
                with self._phase("unfence"):
                    capture.remove_fence(blue_conn)
                    blue_conn.execute("COMMIT")
            finally:
                _rollback(blue_conn)
                blue_conn.close()
            state.fences.pop(state.blue, None)
            state.reverted.append(state.green)
            active_generation, reverted = state.blue_generation, state.green_generation
            self._journal(state, **IDLE)
            return Result(
                "revert",
                f"reverted: {blue.name} (generation {active_generation}) is active again; "
                f"generation {reverted} is fenced and kept at {green}",
                self._phases,
                {"active": str(blue), "generation": active_generation, "fenced": str(green)},
            )

    # ------------------------------------------------------------------------------------------
    # abort, finalize
    # ------------------------------------------------------------------------------------------
    def abort(self) -> Result:
        with self.store.locked():
            state = self.store.load()
            if state.phase in ("idle",):
                return Result("abort", "nothing to abort")
            if state.phase in ("cut_over", "reverting"):
                raise InputError(f"phase {state.phase}: the swap already happened; use `bluegreen revert`")
            green = self.store.folder / state.green
            self._discard_green(state, green, blue_capture=True)
            return Result("abort", f"aborted: generation {green.name} removed, {state.blue} unchanged and active",
                          data={"removed": str(green)})

    def finalize(self) -> Result:
        with self.store.locked():
            state = self.store.load()
            if state.phase == "idle":
                return Result("finalize", "nothing to finalize")
            if state.phase != "cut_over":
                raise InputError(f"nothing to finalize (phase {state.phase})")
            self._check_fence_intact("finalize", state.blue)
            green = self.store.folder / state.green
            conn = open_db(green, triggers=False, busy_timeout_ms=self.config.cutover.lock_timeout_ms)
            try:
                conn.execute("BEGIN IMMEDIATE")
                capture.remove_capture(conn)
                conn.execute("COMMIT")
            finally:
                _rollback(conn)
                conn.close()
            kept = state.blue
            self._journal(state, **IDLE)
            return Result("finalize", f"finalized: the revert window is closed; {kept} stays on disk, fenced",
                          data={"kept": str(self.store.folder / kept)})

    # ------------------------------------------------------------------------------------------
    # steps shared by the commands above
    # ------------------------------------------------------------------------------------------
    def _start(self, command: str) -> tuple[State, Path, list[migrations.Migration]]:
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
                f"{state.step}); run `bluegreen abort` or `bluegreen cutover` first"
            )
        blue = self._active_path()
        check_database(blue, "active database")
        conn = open_db(blue, query_only=True)
        try:
            capture.capturable(conn)
        finally:
            conn.close()
        return state, blue, self._pending(blue)

    def _begin_generation(self, state: State, operation: str, step: str, blue: Path,
                          pending: list) -> tuple[int, Path]:
        """Allocate the next generation and journal it before anything is written: its number is
        spent from here on, even if this operation fails (numbers are never reused)."""
        generation, green = self.store.allocate_generation(state)
        self._journal(state, phase="preparing", operation=operation, step=step, blue=blue.name,
                      blue_generation=self._pointer().generation, green=green.name, green_generation=generation,
                      target_version=pending[-1].version, last_generation=generation, started_at=pointer.now_iso())
        return generation, green

    def _install_capture_on_blue(self, blue: Path) -> None:
        conn = open_db(blue, triggers=False, busy_timeout_ms=self.config.cutover.lock_timeout_ms)
        try:
            conn.execute("BEGIN IMMEDIATE")
            capture.install_capture(conn)
            conn.execute("COMMIT")
        finally:
            _rollback(conn)
            conn.close()

    def _build_green(self, state: State, blue: Path, green: Path, pending: list) -> validate.Report:
        """Snapshot blue into green (created under its final name), migrate, validate."""
        source = open_db(blue, query_only=True)
        try:
            with self._phase("snapshot"):
                self._journal(state, step="snapshot")
                copied = self._copy(source, green, _file_mode(blue))
        finally:
            source.close()
        conn = open_db(green, busy_timeout_ms=self.config.cutover.lock_timeout_ms)
        try:
            with self._phase("migrate"):
                self._journal(state, step="migrate")
                self._adopt_snapshot(conn, state.green_generation, copied)
                fk_baseline = validate.foreign_key_violations(conn)
                applied = []
                depends_on = migrations.current_version(conn)
                for migration in pending:
                    self.progress("migrate", len(applied), len(pending))
                    result = migrations.apply(conn, migration, depends_on)
                    applied.append({"file": migration.file, "ms": result.execution_time_ms})
                    self.store.log("migration", file=migration.file, duration_ms=result.execution_time_ms)
                    depends_on = migration.version
            with self._phase("validate"):
                self._journal(state, step="validate")
                report = validate.run(conn, pending, fk_baseline)
            self.store.log("validation", generation=state.green_generation, passed=report.passed,
                           checks=report.as_dicts())
            if not report.passed:
                raise GateRefused(f"validation refused generation {state.green_generation}: {report.summary()}",
                                  details={"validation": report.as_dicts()})
        finally:
            conn.close()
        return report

    def _copy(self, source: apsw.Connection, green: Path, mode: int) -> snapshot.SnapshotResult:
        try:
            return snapshot.copy(
                source, green, mode=mode, pages_per_step=self.config.snapshot.pages_per_step,
                progress=lambda done, total: self.progress("snapshot", done, total),
            )
        except (apsw.FullError, apsw.IOError) as exc:
            # A full disk arrives as SQLITE_FULL, a file-size limit as SQLITE_IOERR_WRITE.
            raise OperationFailed(
                f"{green}: could not write the copy ({_result_name(exc)}: disk full or file too large); "
                "nothing was changed: free space, then run the command again"
            ) from None
        except apsw.Error as exc:
            raise OperationFailed(f"{green}: snapshot failed ({_result_name(exc)}: {exc})") from None

    def _adopt_snapshot(self, conn: apsw.Connection, generation: int, copied: snapshot.SnapshotResult) -> None:
        """Green inherits blue's capture triggers in the copy: drop them before migrating, keep
        only the position they tell (which of blue's changes green already holds), and stamp it."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            position = capture.capture_position(conn)
            capture.remove_capture(conn)
            capture.remove_fence(conn)
            capture.set_meta(
                conn,
                generation=generation,
                source_epoch=position.epoch if position else "",
                source_seq=position.seq if position else 0,
                source_schema_version=copied.source_schema_version,
            )
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise

    def _take_barrier(self, path: Path) -> apsw.Connection:
        """BEGIN IMMEDIATE on a triggers-off connection: no other writer can commit until we do."""
        conn = open_db(path, triggers=False, busy_timeout_ms=self.config.cutover.lock_timeout_ms)
        try:
            conn.execute("BEGIN IMMEDIATE")
        except apsw.BusyError:
            conn.close()
            raise OperationFailed(
                f"{path}: another connection held the write lock for over "
                f"{self.config.cutover.lock_timeout_ms} ms; nothing was changed, try again"
            ) from None
        return conn

    def _check_blue_unchanged(self, barrier: apsw.Connection, green: Path) -> None:
        """Exactly, not by sampling: blue's capture position and schema_version, read under the
        barrier, must equal what the snapshot carried into green."""
        conn = open_db(green, query_only=True)
        try:
            expected = (capture.get_meta(conn, "source_epoch"), capture.get_meta(conn, "source_seq"))
            expected_schema = capture.get_meta(conn, "source_schema_version")
        finally:
            conn.close()
        position = capture.capture_position(barrier)
        if position is None or position.epoch != expected[0]:
            raise OperationFailed(
                "blue's change capture is missing or was reinstalled since prepare; run `bluegreen abort`, "
                "then `bluegreen deploy`"
            )
        changed = capture.captured_counts(barrier, after_seq=expected[1])
        if changed or schema_version(barrier) != expected_schema:
            what = ", ".join(f"{t}: {n}" for t, n in changed.items()) or "schema changed"
            raise OperationFailed(
                f"blue changed since prepare ({what}); this version cannot carry those writes into green yet. "
                "Nothing was changed: run `bluegreen abort`, then `bluegreen deploy` (holds writes for the copy)",
                details={"changed": changed},
            )

    def _finish_cutover(self, state: State, barrier: apsw.Connection, blue: Path, green: Path,
                        barrier_clock: Timer) -> float:
        """Under the barrier: start capture on green, fence blue and commit, then swap.
        Returns how long the barrier was held: the longest a writer could have waited."""
        with self._phase("fence"):
            conn = open_db(green, triggers=False, busy_timeout_ms=self.config.cutover.lock_timeout_ms)
            try:
                conn.execute("BEGIN IMMEDIATE")
                capture.install_capture(conn)  # so revert can tell exactly what green gained
                green_version = migrations.current_version(conn)
                conn.execute("COMMIT")
            finally:
                _rollback(conn)
                conn.close()
            capture.remove_capture(barrier)
            capture.install_fence(barrier, state.green_generation)
            fence_version = schema_version(barrier)  # DDL on blue after this means tampering
            barrier.execute("COMMIT")
        pause = barrier_clock.ms
        state.fences[state.blue] = fence_version
        self._journal(state, phase="cutting_over", step="fenced")
        with self._phase("swap"):
            self._swap(green, state.green_generation, green_version, previous=blue)
        self._journal(state, phase="cut_over", step="swapped")
        return pause

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

    def _complete_swap(self, state: State) -> Result:
        """Blue is fenced but the pointer still names it: finish the swap (writers are waiting)."""
        green = self.store.folder / state.green
        conn = open_db(green, query_only=True)
        try:
            version = migrations.current_version(conn)
        finally:
            conn.close()
        with self._phase("swap"):
            self._swap(green, state.green_generation, version, previous=self.store.folder / state.blue)
        self._journal(state, phase="cut_over", step="swapped")
        return self._cut_over_result("cutover", state, green, 0.0)

    def _swap(self, target: Path, generation: int, version: str, previous: Path) -> None:
        pointer.write(
            self.config.database.pointer,
            pointer.Pointer(target.name, generation, version, previous.name, pointer.now_iso()),
            mode=_file_mode(target),
        )
        self.store.log("swap", active=target.name, generation=generation, schema_version=version)

    def _discard_green(self, state: State, green: Path, *, blue_capture: bool) -> None:
        """Undo a prepare: no partial generation behind, blue as it was (invariant 5)."""
        remove_database_files(green)
        if blue_capture:
            blue = self.store.folder / state.blue
            conn = open_db(blue, triggers=False, busy_timeout_ms=self.config.cutover.lock_timeout_ms)
            try:
                conn.execute("BEGIN IMMEDIATE")
                capture.remove_capture(conn)
                conn.execute("COMMIT")
            finally:
                _rollback(conn)
                conn.close()
        self.store.log("discarded", generation=state.green_generation, file=state.green)
        self._journal(state, **IDLE)

    def _cut_over_result(self, command: str, state: State, green: Path, pause_ms: float) -> Result:
        return Result(
            command,
            f"generation {state.green_generation} is active: {green} (schema {state.target_version}); "
            f"{state.blue} is fenced and kept for `bluegreen revert`",
            self._phases,
            {"active": str(green), "generation": state.green_generation, "previous": str(self.store.folder / state.blue),
             "schema_version": state.target_version, "write_pause_ms": pause_ms},
        )

    def _pointer(self) -> pointer.Pointer:
        return pointer.read(self.config.database.pointer)

    def _active_path(self) -> Path:
        """The file the pointer names; a missing one is an error, never a new empty database."""
        path = self._pointer().active_path(self.config.database.pointer)
        if not path.is_file():
            raise InputError(
                f"{path}: active generation not found (named by {self.config.database.pointer}); restore "
                "the file, or point `active` at an existing generation"
            )
        return path

    def _pending(self, active: Path) -> list[migrations.Migration]:
        found = migrations.discover(self.config.migrations.dir)
        conn = open_db(active, query_only=True)
        try:
            return migrations.pending(found, conn)
        finally:
            conn.close()

    @staticmethod
    def _version_of(conn: apsw.Connection) -> str:
        return migrations.current_version(conn)

    def _journal(self, state: State, **changes: object) -> None:
        for key, value in changes.items():
            setattr(state, key, value)
        self.store.save(state)

    @contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        clock = Timer()
        yield
        self._phases.append(Phase(name, clock.ms))
        self.store.log("phase", phase=name, duration_ms=clock.ms)


def _rollback(conn: apsw.Connection) -> None:
    """End an open transaction if there is one (safe to call on a committed connection)."""
    try:
        if not conn.get_autocommit():
            conn.execute("ROLLBACK")
    except apsw.Error:
        pass


def _result_name(exc: apsw.Error) -> str:
    code = getattr(exc, "extendedresult", None) or getattr(exc, "result", None)
    return apsw.mapping_result_codes.get(code, None) or apsw.mapping_extended_result_codes.get(code, "") or type(exc).__name__


def _file_mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _next_step(phase: str, pending: bool) -> str:
    return {
        "idle": "bluegreen deploy (or prepare, then cutover)" if pending else "nothing pending",
        "preparing": "interrupted prepare: bluegreen abort",
        "prepared": "bluegreen cutover (or abort)",
        "cutting_over": "interrupted cutover: bluegreen cutover again, or abort",
        "cut_over": "bluegreen finalize to keep it, or bluegreen revert",
        "reverting": "interrupted revert: bluegreen revert again",
    }.get(phase, "")
