"""Builds a green generation: snapshot blue, migrate, catch up, validate, start capture.

Each step is a method; the controller decides when they run. `build` journals and times its
steps through the command's Run (lifecycle/run.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import apsw

from bluegreen.config import Config
from bluegreen.engine import barrier, capture, migrations, rowids, shapes, snapshot
from bluegreen.engine.db import open_db
from bluegreen.engine.flush import Flusher
from bluegreen.engine.replay import Replayer
from bluegreen.errors import MigrationFailed, NoSpace, SchemaDrift, SnapshotFailed, ValidationRefused
from bluegreen.files.journal import Step, Store
from bluegreen.files.layout import file_mode
from bluegreen.gates import perfgate, validate
from bluegreen.lifecycle.run import Run
from bluegreen.lifecycle.throttle import Throttle

ProgressFn = Callable[[str, int, int], None]  # (phase, done, total)
VM_STEPS = 20_000  # SQLite VM instructions between a migration's or a gate query's pause points


class Builder:
    def __init__(self, config: Config, store: Store, progress: ProgressFn):
        self.config = config
        self.store = store
        self.progress = progress
        self._throttle: Throttle | None = None  # while a command's work on green may pause
        self._flusher: Flusher | None = None  # while green is built with synchronous=OFF

    # -- pause points: bounded flushes of green (engine/flush.py) and throttling (throttle.py) ----
    @contextmanager
    def throttled(self, blue: Path, green: Path | None = None, *, throttle: bool = True) -> Iterator[None]:
        """Work on green in here pauses at its pause points while blue's writers wait too long (or
        the flag file says so); with `green`, green is built with synchronous=OFF and flushed in
        bounded steps (the build). Never throttled while blue's write lock is held (throttle=False:
        the offline deploy holds it throughout, and a pause would only lengthen the writers' wait)."""
        note = getattr(self.progress, "note", None)
        self._throttle = Throttle(self.config, self.store, blue, note) if throttle else None
        self._flusher = Flusher(green, self.config.snapshot.flush_mb, self.store.log) if green else None
        try:
            yield
        finally:
            if self._throttle:
                self._throttle.close()
            if self._flusher:
                self._flusher.close()
            self._throttle = self._flusher = None

    def pace(self, phase: str) -> None:
        """One pause point: flush green if enough was written, then wait while throttled."""
        if self._flusher is not None:
            self._flusher.maybe()
        if self._throttle is not None:
            self._throttle.point(phase)

    def paced(self, phase: str) -> Callable[[int, int], None]:
        """A progress callback that is a pause point too."""

        def report(done: int, total: int) -> None:
            self.progress(phase, done, total)
            self.pace(phase)

        return report

    def _pause_inside(self, conn: apsw.Connection, phase: str) -> None:
        """Pause points inside a migration's long statements (a CREATE INDEX, a table rebuild), by
        SQLite's progress handler; green is written with synchronous=OFF and flushed by pace()."""
        conn.execute("PRAGMA synchronous = OFF")
        self._pace_every_vm_steps(conn, phase)

    def _pace_every_vm_steps(self, conn: apsw.Connection, phase: str) -> None:
        def handler() -> bool:
            self.pace(phase)
            return False  # go on

        conn.set_progress_handler(handler, VM_STEPS)

    @contextmanager
    def _pauses_inside_checks(self, conn: apsw.Connection) -> Iterator[None]:
        """Pause points inside the validation's long statements too (a validate script's anti-joins
        over every row; integrity_check is one VM step and cannot pause inside): their sorts and
        temporary b-trees go to SQLite's unlinked temp files, which only a flush writes out a few MB
        at a time, and the throttle can wait there. Not around the performance gate, whose queries
        are timed. conn's synchronous is left as it is: at cutover it is the replayer's, whose
        writes to green must be durable."""
        self._pace_every_vm_steps(conn, Step.VALIDATE)
        try:
            yield
        finally:
            conn.set_progress_handler(None)

    def build(self, run: Run, blue: Path, green: Path, pending: list, *, online: bool) -> validate.Report:
        """Snapshot blue into green (created under its final name), migrate, catch up, validate,
        and start capture on green so that a revert can tell exactly what green gained. Green is
        written without fsyncs, flushed every [snapshot] flush_mb, and made durable at the end,
        before anything trusts it (engine/flush.py); the work pauses while throttled."""
        with self.throttled(blue, green, throttle=online):
            return self._build(run, blue, green, pending, online=online)

    def _build(self, run: Run, blue: Path, green: Path, pending: list, *, online: bool) -> validate.Report:
        state = run.state
        source = open_db(blue, query_only=True)
        try:
            with run.timed(Step.SNAPSHOT):
                run.journal(step=Step.SNAPSHOT)
                copied = self._copy(source, green, file_mode(blue))
        finally:
            source.close()
        conn = open_db(green, busy_timeout_ms=self.config.cutover.lock_timeout_ms)
        try:
            self._pause_inside(conn, Step.MIGRATE)
            with run.timed(Step.MIGRATE):
                run.journal(step=Step.MIGRATE)
                journal = _rollback_journal_for_the_migration(conn)
                try:
                    self._adopt_snapshot(conn, state.green_generation, copied)
                    self._migrate(conn, pending)
                    if journal:
                        _back_to_wal(conn)
                except apsw.BusyError:  # a reader of green, outside a migration's statements
                    raise migrations.green_held(str(green)) from None
        finally:
            conn.close()
        fk = None
        if online:
            replayer = self.replayer(blue, green, pending)
            try:
                replayer.conn.execute("PRAGMA synchronous = OFF")  # flushed by pace() at each batch
                self._check_sync_coverage(replayer, pending)
                with run.timed(Step.CATCH_UP):
                    run.journal(step=Step.CATCH_UP)
                    replayer.catch_up(progress=self.paced(Step.CATCH_UP))
                self.report_catch_up(replayer)
                fk = self.foreign_keys_at_one_position(replayer)
                self._check_source_schema(replayer)
            finally:
                replayer.close()
        conn = open_db(green, triggers=False, busy_timeout_ms=self.config.cutover.lock_timeout_ms)
        try:
            # Gate queries are timed on this connection: no pause inside them, only between them.
            conn.execute("PRAGMA synchronous = OFF")
            if fk is None:  # offline: blue is locked throughout, so the snapshot is the position
                fk = validate.ForeignKeys(validate.foreign_key_violations(conn), _violations_of(blue))
            with run.timed(Step.VALIDATE):
                run.journal(step=Step.VALIDATE)
                report = self.validate(conn, state.green_generation, pending, blue=blue, fk=fk)
            conn.execute("BEGIN IMMEDIATE")
            capture.install_capture(conn, guard=self.config.capture.guard_blob_writes)
            conn.execute("COMMIT")
            self._make_durable(conn)
        finally:
            barrier.rollback(conn)
            conn.close()
        return report

    def _make_durable(self, conn: apsw.Connection) -> None:
        """The build's last flush, before the journal (or the offline fence) trusts green: what the
        build wrote without fsync goes to disk (in bounded steps: most of it was flushed already),
        then a checkpoint at synchronous=FULL folds the WAL into the file and truncates it."""
        conn.set_progress_handler(None)
        conn.execute("PRAGMA synchronous = FULL")
        self._flusher.durable()
        conn.execute("PRAGMA main.wal_checkpoint(TRUNCATE)").fetchall()

    def _migrate(self, conn: apsw.Connection, pending: list) -> None:
        """Apply each pending migration in its own transaction; remember what each read and wrote."""
        effects = {}
        depends_on = migrations.current_version(conn)
        saved = rowids.save(conn, pending)  # a rebuild by PRIMARY KEY keeps its rowids (engine/rowids.py)
        for done, migration in enumerate(pending):
            self.progress(Step.MIGRATE, done, len(pending))
            result = migrations.apply(conn, migration, depends_on)
            effects[migration.file] = result.effects()
            self.store.log("migration", file=migration.file, duration_ms=result.execution_time_ms)
            depends_on = migration.version
        rowids.restore(conn, saved, effects)
        self.progress(Step.MIGRATE, len(pending), len(pending))
        capture.set_meta(conn, migration_effects=json.dumps(effects))

    def validate_caught_up(self, replayer: Replayer, generation: int, pending: list, *, blue: Path) -> validate.Report:
        """The gates on green as the replayer has caught it up (cutover, before the barrier)."""
        fk = self.foreign_keys_at_one_position(replayer)
        return self.validate(replayer.conn, generation, pending, blue=blue, fk=fk)

    @staticmethod
    def foreign_keys_at_one_position(replayer: Replayer) -> validate.ForeignKeys:
        """Green's and blue's foreign-key violations at the same capture position (hazard 17): in one
        transaction of the replayer's connection, whose read of blue (attached as `source`) is one
        snapshot, catch green up to the end of that snapshot's backlog, then check both."""
        conn = replayer.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            replayer.backlog()  # refuses a position from another capture epoch
            upto = replayer.source_position().seq
            replayer.catch_up(upto=upto, own_transaction=False)
            found = validate.ForeignKeys(
                validate.foreign_key_violations(conn, "main"),
                validate.foreign_key_violations(conn, "source"),
                as_of=upto,
            )
            conn.execute("COMMIT")
        finally:
            barrier.rollback(conn)
        return found

    def validate(
        self, conn: apsw.Connection, generation: int, pending: list, *, blue: Path, fk: validate.ForeignKeys
    ) -> validate.Report:
        """The gates on green (conn: triggers off): integrity, foreign keys (fk: green's and blue's
        violations at one position), validate scripts, and the performance gate against blue; its
        results are stored in green either way."""
        settings = self.config.performance
        queries = perfgate.queries(settings, self.config.migrations.dir, conn, pending)
        checks, total = validate.steps(pending), validate.steps(pending) + len(queries)  # one progress phase
        with self._pauses_inside_checks(conn):
            report = validate.run(conn, pending, fk, progress=self._validate_progress(total))

        def gate_progress(done: int, _: int) -> None:
            self.progress(Step.VALIDATE, checks + done, total)
            self.pace(Step.VALIDATE)  # between gate queries: blue's writers first

        timed = perfgate.run(conn, blue, queries, settings, progress=gate_progress)
        perfgate.record(conn, generation, timed)
        report = validate.Report(report.checks + tuple(m.as_check(settings) for m in timed))
        self.store.log(
            "validation",
            generation=generation,
            passed=report.passed,
            as_of_seq=fk.as_of,
            checks=report.as_dicts(),
            performance=perfgate.as_dicts(timed),
        )
        if not report.passed:
            hint = (
                "; blue stays active: restore the index the plan lost, or adjust [performance] in the config"
                if any(not m.passed for m in timed)
                else ""
            )
            raise ValidationRefused(
                f"validation refused generation {generation}: {report.summary()}{hint}",
                details={"validation": report.as_dicts(), "performance": perfgate.as_dicts(timed)},
            )
        return report

    def _validate_progress(self, total: int) -> Callable[[int, int], None]:
        step = self.paced(Step.VALIDATE)
        return lambda done, _: step(done, total)

    def replayer(self, blue: Path, green: Path, pending: list) -> Replayer:
        conn = open_db(green, query_only=True)
        try:
            effects = json.loads(capture.get_meta(conn, "migration_effects") or "{}")
        finally:
            conn.close()
        return Replayer(
            blue,
            green,
            [m.sync for m in pending if m.sync],
            effects=effects,
            busy_timeout_ms=self.config.cutover.lock_timeout_ms,
        )

    def report_catch_up(self, replayer: Replayer) -> None:
        """Log how the last catch-up went (the position aimed at, both rates); when writes came
        in faster than replay kept up, say so on the terminal too (a note, not a failure: the
        catch-up still ended at its position, and the cutover's own catch-up goes on from there)."""
        report = replayer.last_catch_up
        if report is None:
            return
        self.store.log("catch_up", **report.as_dict())
        if report.outpaced:
            note = getattr(self.progress, "note", None)
            if note:
                note(f"catch-up: {report.message()}", report.as_dict())

    @staticmethod
    def _check_source_schema(replayer: Replayer) -> None:
        """DDL on blue while green is built: capture cannot follow it (a new table has no capture
        triggers), so say so now rather than at cutover."""
        now = replayer.conn.execute("PRAGMA source.schema_version").get
        if now != capture.get_meta(replayer.conn, "source_schema_version"):
            raise SchemaDrift(
                f"{replayer.source}: its schema changed while the new generation was being built (DDL on the "
                "live file); nothing was kept: run the command again once the schema change is done"
            )

    def _check_sync_coverage(self, replayer: Replayer, pending: list) -> None:
        """Tables replay cannot keep exact need a sync script, or prepare refuses (hazard 3): the
        preflight's rule (shapes.missing_sync), here on green itself."""
        effects = json.loads(capture.get_meta(replayer.conn, "migration_effects") or "{}")
        refused = shapes.missing_sync(replayer.reshape, pending, effects)
        if refused is not None:
            raise refused

    def _copy(self, source: apsw.Connection, green: Path, mode: int) -> snapshot.SnapshotResult:
        try:
            return snapshot.copy(
                source,
                green,
                mode=mode,
                pages_per_step=self.config.snapshot.pages_per_step,
                progress=self.paced(Step.SNAPSHOT),
                flush_bytes=self.config.snapshot.flush_mb * 1024 * 1024,
            )
        except (apsw.FullError, apsw.IOError) as exc:
            # A full disk arrives as SQLITE_FULL, a file-size limit as SQLITE_IOERR_WRITE.
            raise NoSpace(
                f"{green}: could not write the copy ({_result_name(exc)}: disk full or file too large); "
                "nothing was changed: free space, then run the command again"
            ) from None
        except apsw.Error as exc:
            raise SnapshotFailed(f"{green}: snapshot failed ({_result_name(exc)}: {exc})") from None

    def _adopt_snapshot(self, conn: apsw.Connection, generation: int, copied: snapshot.SnapshotResult) -> None:
        """Green inherits blue's capture triggers in the copy: drop them before migrating, keep
        only the position they tell (which of blue's changes green already holds), and stamp it."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            position = capture.capture_position(conn)
            capture.remove_capture(conn)
            capture.remove_fence(conn)
            capture.clear_meta(conn, "source_epoch", "source_seq")
            capture.set_meta(
                conn,
                generation=generation,
                source_epoch=position.epoch if position else "",
                source_seq=position.seq if position else 0,
                source_schema_version=copied.source_schema_version,
            )
            conn.execute("COMMIT")
        except BaseException:
            barrier.rollback(conn)
            raise


def _rollback_journal_for_the_migration(conn: apsw.Connection) -> bool:
    """Green leaves WAL mode while migrations run, for a rollback journal (TRUNCATE): a big
    migration statement (an INSERT ... SELECT of millions of rows) is one transaction, which in WAL
    mode piles up in the WAL until its commit, whose checkpoint then copies it all into the file at
    once, GBs dirtied in seconds with no pause point in between, and the kernel's writeback of
    them stalled the writers' commits on blue 100-230 ms at 1 GB (issue 17). With the journal,
    pages go to the file as SQLite's cache spills, inside the statement, where pace() flushes them
    every flush_mb; new pages are not journaled, so most of the build is written once instead of
    twice. A crash meanwhile leaves a green the resume discards anyway (engine/flush.py).
    Only this connection may have green open; if another does, the build stays in WAL."""
    try:
        mode = conn.execute("PRAGMA journal_mode = TRUNCATE").get
    except apsw.BusyError:
        return False
    return str(mode).lower() == "truncate"


def _back_to_wal(conn: apsw.Connection) -> None:
    """WAL again before anything else opens green (catch-up, validation, capture, the application).
    Another process reading green keeps it from switching (apsw.BusyError, see _build); SQLite
    answering another mode is a failure of its own."""
    mode = conn.execute("PRAGMA journal_mode = WAL").get
    if str(mode).lower() != "wal":
        raise MigrationFailed(
            f"{conn.filename}: the new generation could not go back to WAL mode after its migrations (SQLite "
            f"answered {mode!r}); nothing was switched and the new generation was discarded"
        )


def _violations_of(path: Path) -> frozenset[tuple]:
    conn = open_db(path, query_only=True)
    try:
        return validate.foreign_key_violations(conn)
    finally:
        conn.close()


def _result_name(exc: apsw.Error) -> str:
    code = getattr(exc, "extendedresult", None) or getattr(exc, "result", None)
    return (
        apsw.mapping_result_codes.get(code, None)
        or apsw.mapping_extended_result_codes.get(code, "")
        or type(exc).__name__
    )
