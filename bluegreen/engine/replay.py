"""Last-state replay: bring a target file up to date with the rows a source file changed.

For each distinct (table, key) the source captured since the target's stored position, read the
source row as it is now and write it into the target (or delete it there if it is gone), then run
each migration's sync script with the batch's keys in `temp.bluegreen_changes`. Everything happens
inside one target transaction that also stores the new position, and the source is read through
an ATTACH on the same connection, so one batch sees one consistent snapshot of the source.
Idempotent: a crash mid-batch rolls back, and running a batch twice leaves the same rows.

Beside it: keys.py decodes WITHOUT ROWID keys for keyed lookups, shapes.py decides which tables
are copied as they are, conflicts.py names the rows a failed batch could not write, and
lost_changes.py saves what `revert --accept-loss` drops.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import apsw

from bluegreen.engine import capture, derive
from bluegreen.engine.alters import alter_statements
from bluegreen.engine.conflicts import ConflictDiagnosis
from bluegreen.engine.db import open_db, quote_ident, readonly_uri, run_script, user_tables
from bluegreen.engine.keys import clear_keys, delete_keyed, keys_from, load_keys
from bluegreen.engine.shapes import TableCopy, companion_tables, reshapes, same_shape_tables
from bluegreen.errors import CaptureLost, MigrationFailed, OperationFailed, ReplayConflict
from bluegreen.files import contract

CHANGES_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS bluegreen_changes(table_name TEXT, row_key, present INTEGER);"
    # Each table's keys are looked up, never scanned for (hazard 19).
    "CREATE INDEX IF NOT EXISTS temp.bluegreen_changes_key ON bluegreen_changes(table_name, row_key);"
    # A rollback script lists here the changed rows the old schema has no place for.
    "CREATE TEMP TABLE IF NOT EXISTS bluegreen_uncarried(table_name TEXT, row_key);"
    "DELETE FROM temp.bluegreen_uncarried;"
)


@dataclass(frozen=True)
class BatchResult:
    changes: int  # capture rows consumed
    keys: int  # distinct (table, key) applied
    position: capture.Position
    seconds: float


@dataclass(frozen=True)
class CatchUpReport:
    """One catch-up: the position it aimed at, what it replayed, and what the source's writers
    added meanwhile. A steady writer never lets the backlog reach zero, so catch-up aims at a
    position instead (hazard 19); when writes arrive faster than replay, this says so."""

    started_at: int  # the target's position when it began
    target: int  # the position aimed at: `upto`, or the source's last change when it began
    reached: int
    replayed: int  # capture rows replayed
    arrived: int  # capture rows the source gained while it ran (0 under a barrier)
    seconds: float

    @property
    def replay_rate(self) -> float:
        return self.replayed / self.seconds if self.seconds > 0 else 0.0

    @property
    def write_rate(self) -> float:
        return self.arrived / self.seconds if self.seconds > 0 else 0.0

    @property
    def outpaced(self) -> bool:
        """Writes arrived faster than they were replayed: the backlog grew while it ran."""
        return self.arrived > self.replayed

    def as_dict(self) -> dict:
        return {
            **asdict(self),
            "seconds": round(self.seconds, 3),
            "replay_rate": round(self.replay_rate, 1),
            "write_rate": round(self.write_rate, 1),
            "outpaced": self.outpaced,
        }

    def message(self) -> str:
        return (
            f"writes arrived faster than catch-up replayed them ({self.write_rate:,.0f} vs "
            f"{self.replay_rate:,.0f} changes/s): {self.arrived:,} arrived while {self.replayed:,} were replayed"
        )


class Replayer:
    """Replays one source into one target. Open it, call `batch()` until `backlog()` is small."""

    def __init__(
        self,
        source: Path,
        target: Path,
        scripts: list[Path],
        *,
        effects: dict | None = None,
        carried: set[str] = frozenset(),
        carry_back: dict | None = None,
        busy_timeout_ms: int = 10_000,
    ):
        """scripts: the sync (or rollback) scripts to run after each batch. effects: what each
        migration read and wrote; tables a migration wrote to are reshaped, and generic replay
        leaves them to the scripts (hazard 3). carried: tables the scripts declare they carry.
        carry_back: for revert, the effects of the migrations the target (blue) lacks, as green
        recorded them: tables those changed in a way that keeps row identity are carried back
        through their mapping (engine/derive.py), as catch-up maps them forward."""
        self.source = Path(source)
        self.target = Path(target)
        self.scripts = [(p.name, p.read_text(encoding="utf-8")) for p in scripts]
        self.carried = set(carried)
        self.last_catch_up: CatchUpReport | None = None
        self._sequences: bool | None = None  # both files have sqlite_sequence (looked up once)
        self._saved: list = []  # a conflict diagnosis's batch keys, while it writes keys one by one
        self.conn = open_db(target, triggers=False, busy_timeout_ms=busy_timeout_ms)
        self.make_durable(False)
        try:
            self.conn.execute("ATTACH ? AS source", (readonly_uri(source),))
            run_script(self.conn, CHANGES_DDL)
            # A companion overrides derivation: the tables its migration changed are left to it.
            companions = {name.rsplit("_", 1)[0] + ".sql" for name, _ in self.scripts}
            if carry_back is None:
                overridden = companion_tables(effects or {}, companions)
                self.reshape = reshapes(self.conn, effects or {}, overridden=overridden)
            else:
                overridden = companion_tables(carry_back, companions) | self.carried
                alters = alter_statements(carry_back)
                self.reshape = reshapes(
                    self.conn,
                    {},
                    alters=alters,
                    forward=False,
                    overridden=overridden,
                    restored=derive.restored_rowids(carry_back),
                )
            self.mapped = dict(self.reshape.derived)  # source table -> how its rows map
            left_out = self.reshape.reshaped.keys() | self.reshape.history.keys() | self.mapped.keys()
            self.tables = {n: t for n, t in same_shape_tables(self.conn).items() if n not in left_out}
            self.source_tables = {t.name: t for t in user_tables(self.conn, "source") if not t.virtual}
        except BaseException:
            self.conn.close()
            raise

    def close(self) -> None:
        self.conn.close()

    def make_durable(self, durable: bool = True) -> None:
        """Catch-up batches commit without an fsync (WAL, synchronous=NORMAL): a power cut can
        only lose whole batches together with their stored position, and replay redoes them.
        The batches that must survive before a fence commits run with synchronous=FULL, whose
        fsync also covers every earlier batch. Call outside a transaction."""
        self.conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")

    def flush(self) -> None:
        """Write green's WAL into its file and fsync both (a checkpoint syncs even at NORMAL), so
        the cutover's own fsync under blue's lock covers only its last batch, and the kernel is
        not still writing back hundreds of MB of green while writers wait on their commits."""
        self.conn.execute("PRAGMA main.wal_checkpoint(PASSIVE)").fetchall()

    # -- position ---------------------------------------------------------------------------------
    def position(self) -> capture.Position:
        epoch, seq = self._own_meta("source_epoch"), self._own_meta("source_seq")
        return capture.Position(str(epoch or ""), int(seq or 0))

    def _own_meta(self, key: str):
        """A meta value of the target, read straight from its meta table: every batch reads its
        position, and capture.get_meta's existence check scans the whole schema, which grows
        with the table count (hazard 19)."""
        try:
            row = self.conn.execute(f"SELECT value FROM main.{contract.META_TABLE} WHERE key = ?", (key,)).fetchall()
        except apsw.SQLError:  # no meta table yet
            return None
        return row[0][0] if row else None

    def source_position(self) -> capture.Position:
        position = capture.capture_position(self.conn, "source")
        if position is None:
            raise CaptureLost(
                f"{self.source}: change capture is not installed; run `bluegreen abort` and prepare again"
            )
        return position

    def backlog(self) -> int:
        """Capture rows the target has not seen yet (refuses a position from another epoch)."""
        mine, theirs = self.position(), self.source_position()
        if mine.epoch != theirs.epoch:
            raise CaptureLost(
                f"{self.target}: its position belongs to another capture of {self.source.name} "
                "(capture was reinstalled); this generation cannot be caught up: run `bluegreen abort`"
            )
        return max(0, theirs.seq - mine.seq)

    # -- one batch --------------------------------------------------------------------------------
    def uncarried(self, upto: int, after: int | None = None) -> dict[str, int]:
        """Changed rows per table (after seq `after`, default this target's position, up to seq
        `upto`) that neither generic replay nor a script carries."""
        rows = self.conn.execute(
            f"SELECT tbl, count(DISTINCT key) FROM source.{capture.CAPTURE_TABLE} WHERE seq > ? AND seq <= ? "
            "GROUP BY tbl ORDER BY tbl",
            (self.position().seq if after is None else after, upto),
        ).fetchall()
        return {t: n for t, n in rows if t not in self.tables and t not in self.mapped and t not in self.carried}

    def script_uncarried(self) -> dict[str, int]:
        """Rows the scripts said they could not carry (temp.bluegreen_uncarried), per table."""
        return dict(
            self.conn.execute(
                "SELECT table_name, count(DISTINCT row_key) FROM temp.bluegreen_uncarried GROUP BY table_name"
            ).fetchall()
        )

    def batch(self, limit: int = 20_000, upto: int | None = None, own_transaction: bool = True) -> BatchResult:
        """One batch in its own transaction, or inside the caller's (own_transaction=False)."""
        started = time.perf_counter()
        if own_transaction:
            self.conn.execute("BEGIN IMMEDIATE")
        try:
            before = self.position()
            bound = "AND seq <= ?" if upto is not None else ""
            args = (before.seq, *(() if upto is None else (upto,)), limit)
            count, last = self.conn.execute(
                f"SELECT count(*), max(seq) FROM (SELECT seq FROM source.{capture.CAPTURE_TABLE} "
                f"WHERE seq > ? {bound} ORDER BY seq LIMIT ?)",
                args,
            ).fetchall()[0]
            if not count:
                if own_transaction:
                    self.conn.execute("COMMIT")
                return BatchResult(0, 0, before, time.perf_counter() - started)
            try:
                self._apply_range(before.seq, last)
            except apsw.ConstraintError as exc:
                end = self.conn.execute(f"SELECT coalesce(max(seq), 0) FROM source.{capture.CAPTURE_TABLE}").get
                end = end if upto is None else min(upto, end)
                if end <= last:
                    raise self._conflict(exc) from None
                # The batch stopped short of what this snapshot holds (its limit): a row it copies
                # may meet the old value of a row whose change lies beyond it, which the snapshot
                # already moved away. Replay to the snapshot's end: last-state is exact there.
                count += self.conn.execute(
                    f"SELECT count(*) FROM source.{capture.CAPTURE_TABLE} WHERE seq > ? AND seq <= ?", (last, end)
                ).get
                last = end
                try:
                    self._apply_range(before.seq, last)
                except apsw.ConstraintError as again:
                    raise self._conflict(again) from None
            keys = self.conn.execute("SELECT count(*) FROM temp.bluegreen_changes").get
            capture.set_meta(self.conn, source_seq=last)
            if own_transaction:
                self.conn.execute("COMMIT")
        except BaseException:
            if own_transaction and not self.conn.get_autocommit():
                self.conn.execute("ROLLBACK")
            raise
        return BatchResult(count, keys, capture.Position(before.epoch, last), time.perf_counter() - started)

    def _apply_range(self, after: int, last: int) -> None:
        """Apply the changes in (after, last] inside a savepoint; a constraint failure rolls the
        savepoint back and propagates, for batch() to extend the range or name the row."""
        self.conn.execute("DELETE FROM temp.bluegreen_changes")
        self.conn.execute(
            "INSERT INTO temp.bluegreen_changes(table_name, row_key, present) "
            f"SELECT DISTINCT tbl, key, 0 FROM source.{capture.CAPTURE_TABLE} WHERE seq > ? AND seq <= ?",
            (after, last),
        )
        tables = self._tables_in_batch()  # keys loaded outside the savepoint: a diagnosis reads them
        self.conn.execute("SAVEPOINT bluegreen_batch")
        try:
            for table in tables:
                self._apply_table(table)
            for name in self._mapped_in_batch():
                source = self.source_tables[name]
                keyed = keys_from(source, "source") if source.without_rowid else ""
                derive.apply(self.conn, self.mapped[name], source, keyed)
            self._mark_present()
            self._carry_autoincrement()
            self._run_scripts()
        except apsw.ConstraintError:
            self.conn.execute("ROLLBACK TO bluegreen_batch")
            self.conn.execute("RELEASE bluegreen_batch")
            raise
        self.conn.execute("RELEASE bluegreen_batch")

    def _run_scripts(self) -> None:
        for name, script in self.scripts:
            try:
                run_script(self.conn, script)
            except apsw.ConstraintError:
                raise  # batch() names the row
            except apsw.Error as exc:
                raise MigrationFailed(f"{name}: failed on a batch of changed keys: {exc}") from None

    # -- a constraint failure: which change, which constraint, which values -----------------------
    def _conflict(self, error: apsw.ConstraintError) -> ReplayConflict:
        """The error naming each changed row the target's constraints reject (conflicts.py)."""
        return ConflictDiagnosis(
            self.conn,
            self.source,
            self.target,
            self.tables,
            self.source_tables,
            self._run_scripts if self.scripts else None,
            self._mark_present,
            (self._delete_mapped, self._write_one_mapped, self._restore_changes) if self.mapped else None,
        ).error(error)

    def _delete_mapped(self) -> None:
        for name in self._mapped_in_batch():
            derive.delete_changed(self.conn, self.mapped[name])

    def _write_one_mapped(self, table_name: str, row_key, present: int) -> None:
        """One changed key of a mapped table written alone (a diagnosis names the row that fails)."""
        if table_name not in self.mapped or table_name not in self.source_tables:
            return
        self._saved = (
            self._saved
            or self.conn.execute(
                "SELECT table_name, row_key, present FROM temp.bluegreen_changes ORDER BY rowid"
            ).fetchall()
        )
        self.conn.execute("DELETE FROM temp.bluegreen_changes")
        self.conn.execute("INSERT INTO temp.bluegreen_changes VALUES (?, ?, ?)", (table_name, row_key, present))
        self._tables_in_batch()
        source = self.source_tables[table_name]
        derive.apply(
            self.conn, self.mapped[table_name], source, keys_from(source, "source") if source.without_rowid else ""
        )

    def _restore_changes(self) -> None:
        """Put back the batch's changed keys a diagnosis replaced one by one."""
        if self._saved:
            self.conn.execute("DELETE FROM temp.bluegreen_changes")
            self.conn.executemany("INSERT INTO temp.bluegreen_changes VALUES (?, ?, ?)", self._saved)
            self._tables_in_batch()
        self._saved = []

    def catch_up(
        self, until: int = 0, limit: int = 20_000, upto: int | None = None, progress=None, own_transaction: bool = True
    ) -> list[BatchResult]:
        """Replay batches up to a position: `upto`, or else the source's last change when this
        starts. Aiming at a position, not at an empty backlog, is what makes it finish under a
        steady writer (hazard 19). Stops once within `until` changes of it; with `upto` it
        replays exactly to it or fails. progress(done, total) is told the changes replayed so
        far and the total to the position; `last_catch_up` tells how it went, rates included."""
        started = time.perf_counter()
        start = self.position().seq
        target = upto if upto is not None else start + self.backlog()
        results = []
        done = 0
        while True:
            left = max(0, target - self.position().seq)
            if progress:
                progress(done, done + left)
            if left <= until:
                break
            # Each batch reads as far as its snapshot holds (limit permitting), even past the
            # target: a batch cut short of its snapshot copies rows as they are now next to rows
            # whose later change it has not applied, and a unique value that moved between
            # them conflicts. Only a caller's `upto` (a barrier's position) bounds it exactly.
            result = self.batch(limit, upto, own_transaction)
            if result.changes == 0:
                if upto is not None:  # never stop short silently: that would drop writes
                    raise OperationFailed(
                        f"{self.source}: changes up to {upto} were expected but the snapshot ends at "
                        f"{self.position().seq}; nothing was lost, run the command again"
                    )
                break
            results.append(result)
            done += result.changes
        # Under a barrier (`upto`) nothing can arrive; otherwise count what did, for the rates.
        arrived = 0 if upto is not None else max(0, self.source_position().seq - target)
        self.last_catch_up = CatchUpReport(
            start, target, self.position().seq, done, arrived, time.perf_counter() - started
        )
        return results

    # -- helpers ----------------------------------------------------------------------------------
    def _tables_in_batch(self) -> list[TableCopy]:
        """The same-shape tables this batch changed, and only those: per-batch work follows the
        tables and keys in the batch, not the tables in the file. Decodes their WITHOUT ROWID
        keys first (`load_keys`), which `_apply_table` and `_mark_present` then join on."""
        clear_keys(self.conn)
        names = [t for (t,) in self.conn.execute("SELECT DISTINCT table_name FROM temp.bluegreen_changes")]
        for name in names:
            table = self.source_tables.get(name)
            if table is not None and table.without_rowid:
                rows = self.conn.execute(
                    "SELECT CAST(row_key AS BLOB) FROM temp.bluegreen_changes WHERE table_name = ?", (name,)
                ).fetchall()
                load_keys(self.conn, table, [key for (key,) in rows])
        return [self.tables[name] for name in names if name in self.tables]

    def _mapped_in_batch(self) -> list[str]:
        if not self.mapped:
            return []
        names = [t for (t,) in self.conn.execute("SELECT DISTINCT table_name FROM temp.bluegreen_changes")]
        return [n for n in names if n in self.mapped and n in self.source_tables]

    def _apply_table(self, table: TableCopy) -> None:
        """Delete the changed keys in the target, then copy the rows the source still has, each
        found through its key (hazard 19: a rowid or primary-key search, never a scan). Rows
        the source lost to a REPLACE conflict are among the changed keys (capture records them,
        hazard 5), so a plain INSERT meets no conflict; if it ever did, failing loudly beats
        OR REPLACE silently dropping a row the source still has."""
        name = quote_ident(table.name)
        columns = ", ".join(quote_ident(c) for c in table.columns)
        if table.without_rowid:
            keyed = self.source_tables[table.name]  # the same definition as main's (same shape)
            self.conn.execute(delete_keyed(keyed), (table.name,))
            picked = ", ".join(f"s.{quote_ident(c)}" for c in table.columns)
            self.conn.execute(
                f"INSERT INTO main.{name}({columns}) SELECT {picked} FROM {keys_from(keyed, 'source')}",
                (table.name,),
            )
            return
        changed = "SELECT row_key FROM temp.bluegreen_changes WHERE table_name = ?"
        self.conn.execute(f"DELETE FROM main.{name} WHERE {table.key_sql} IN ({changed})", (table.name,))
        self.conn.execute(
            f"INSERT INTO main.{name}({table.key_sql}, {columns}) "
            f"SELECT {table.key_sql}, {columns} FROM source.{name} WHERE {table.key_sql} IN ({changed})",
            (table.name,),
        )

    def _carry_autoincrement(self) -> None:
        """AUTOINCREMENT counters move forward with the source, so a key it used is never reused."""
        if not self._has_sequences():
            return
        in_batch = "SELECT DISTINCT table_name FROM temp.bluegreen_changes"
        for name, seq in self.conn.execute(
            f"SELECT name, seq FROM source.sqlite_sequence WHERE name IN ({in_batch})"
        ).fetchall():
            if name not in self.tables and name not in self.mapped:
                continue
            name = self.mapped[name].target if name in self.mapped else name  # renamed (derive.py)
            mine = self.conn.execute("SELECT seq FROM main.sqlite_sequence WHERE name = ?", (name,)).fetchall()
            if not mine:
                self.conn.execute("INSERT INTO main.sqlite_sequence(name, seq) VALUES (?, ?)", (name, seq))
            elif mine[0][0] < seq:
                self.conn.execute("UPDATE main.sqlite_sequence SET seq = ? WHERE name = ?", (seq, name))

    def _has_sequences(self) -> bool:
        """Both files have sqlite_sequence. Looked up once: the lookup scans the schema, and the
        source's schema cannot change under a replay that is still valid (DDL on it is refused)."""
        if self._sequences is None:
            found = "SELECT 1 FROM {}.sqlite_schema WHERE name = 'sqlite_sequence'"
            self._sequences = all(self.conn.execute(found.format(s)).fetchall() for s in ("source", "main"))
        return self._sequences

    def _mark_present(self) -> None:
        """present = 1 for changed keys whose row the source still has (scripts delete the rest),
        each looked up by its key."""
        for name in [t for (t,) in self.conn.execute("SELECT DISTINCT table_name FROM temp.bluegreen_changes")]:
            table = self.source_tables.get(name)
            if table is None:
                continue
            if table.without_rowid:
                found = f"SELECT k.row_key FROM {keys_from(table, 'source')}"
            else:
                key = table.rowid_alias
                found = (
                    f"SELECT {key} FROM source.{quote_ident(name)} WHERE {key} IN "
                    "(SELECT row_key FROM temp.bluegreen_changes WHERE table_name = ?)"
                )
            self.conn.execute(
                f"UPDATE temp.bluegreen_changes SET present = 1 WHERE table_name = ? AND row_key IN ({found})",
                (name, name),
            )
