"""Last-state replay: bring a target file up to date with the rows a source file changed.

For each distinct (table, key) the source captured since the target's stored position, read the
source row as it is now and write it into the target (or delete it there if it is gone), then run
each migration's sync script with the batch's keys in `temp.bluegreen_changes`. Everything happens
inside one target transaction that also stores the new position, and the source is read through
an ATTACH on the same connection, so one batch sees one consistent snapshot of the source.
Idempotent: a crash mid-batch rolls back, and running a batch twice leaves the same rows.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import apsw

from bluegreen.files import contract
from bluegreen.engine import capture
from bluegreen.engine.db import INTERNAL_PREFIX, Table, open_db, quote_ident, readonly_uri, run_script, user_tables
from bluegreen.errors import OperationFailed, ReplayConflict
from bluegreen.files.layout import create_file, file_mode

CHANGES_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS bluegreen_changes(table_name TEXT, row_key, present INTEGER);"
    # Each table's keys are looked up, never scanned for (hazard 19).
    "CREATE INDEX IF NOT EXISTS temp.bluegreen_changes_key ON bluegreen_changes(table_name, row_key);"
    # A rollback script lists here the changed rows the old schema has no place for.
    "CREATE TEMP TABLE IF NOT EXISTS bluegreen_uncarried(table_name TEXT, row_key);"
    "DELETE FROM temp.bluegreen_uncarried;"
)


@dataclass(frozen=True)
class TableCopy:
    """How to copy one same-shape table's rows: its key and its writable columns."""

    name: str
    key_sql: str  # the rowid alias, or the quote()-encoded primary key, as the capture stores it
    without_rowid: bool
    columns: tuple[str, ...]


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
        return {**asdict(self), "seconds": round(self.seconds, 3), "replay_rate": round(self.replay_rate, 1),
                "write_rate": round(self.write_rate, 1), "outpaced": self.outpaced}

    def message(self) -> str:
        return (f"writes arrived faster than catch-up replayed them ({self.write_rate:,.0f} vs "
                f"{self.replay_rate:,.0f} changes/s): {self.arrived:,} arrived while {self.replayed:,} were replayed")


class Replayer:
    """Replays one source into one target. Open it, call `batch()` until `backlog()` is small."""

    def __init__(self, source: Path, target: Path, scripts: list[Path], *, effects: dict | None = None,
                 carried: set[str] = frozenset(), busy_timeout_ms: int = 10_000):
        """scripts: the sync (or rollback) scripts to run after each batch. effects: what each
        migration read and wrote; tables a migration wrote to are reshaped, and generic replay
        leaves them to the scripts (hazard 3). carried: tables the scripts declare they carry."""
        self.source = Path(source)
        self.target = Path(target)
        self.scripts = [(p.name, p.read_text(encoding="utf-8")) for p in scripts]
        self.carried = set(carried)
        self.last_catch_up: CatchUpReport | None = None
        self._sequences: bool | None = None  # both files have sqlite_sequence (looked up once)
        self.conn = open_db(target, triggers=False, busy_timeout_ms=busy_timeout_ms)
        self.make_durable(False)
        try:
            self.conn.execute("ATTACH ? AS source", (readonly_uri(source),))
            run_script(self.conn, CHANGES_DDL)
            self.reshape = reshapes(self.conn, effects or {})
            self.tables = {n: t for n, t in self._same_shape_tables().items() if n not in self.reshape.reshaped}
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
            raise OperationFailed(f"{self.source}: change capture is not installed; run `bluegreen abort` and prepare again")
        return position

    def backlog(self) -> int:
        """Capture rows the target has not seen yet (refuses a position from another epoch)."""
        mine, theirs = self.position(), self.source_position()
        if mine.epoch != theirs.epoch:
            raise OperationFailed(
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
        return {t: n for t, n in rows if t not in self.tables and t not in self.carried}

    def script_uncarried(self) -> dict[str, int]:
        """Rows the scripts said they could not carry (temp.bluegreen_uncarried), per table."""
        return dict(self.conn.execute(
            "SELECT table_name, count(DISTINCT row_key) FROM temp.bluegreen_uncarried GROUP BY table_name"
        ).fetchall())

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
                count += self.conn.execute(f"SELECT count(*) FROM source.{capture.CAPTURE_TABLE} "
                                           "WHERE seq > ? AND seq <= ?", (last, end)).get
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
        self.conn.execute("SAVEPOINT bluegreen_batch")
        try:
            for table in self._tables_in_batch():
                self._apply_table(table)
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
                raise OperationFailed(f"{name}: failed on a batch of changed keys: {exc}") from None

    # -- a constraint failure: which change, which constraint, which values -----------------------
    def _conflict(self, error: apsw.ConstraintError) -> ReplayConflict:
        """Find the changed rows the target's constraints reject, inside a savepoint that is rolled
        back: delete every changed key, then copy the source rows back one key at a time (each
        after the ones before it, so two new rows that clash are told apart from a swap), then run
        the scripts key by key. Returns the error naming each offender (hazard: green's new
        constraints, issue 10 item 8)."""
        changes = self.conn.execute(
            "SELECT table_name, row_key, present FROM temp.bluegreen_changes ORDER BY rowid").fetchall()
        offenders: list[dict] = []
        self.conn.execute("SAVEPOINT bluegreen_diagnose")
        try:
            copied = [(t, k) for t, k, _ in changes if t in self.tables]
            for table_name, row_key in copied:
                self._delete_key(self.tables[table_name], row_key)
            for table_name, row_key in copied:
                self._try_key(offenders, table_name, row_key, lambda: self._insert_key(self.tables[table_name], row_key))
            if not offenders and self.scripts:
                self._mark_present()
                marked = self.conn.execute(
                    "SELECT table_name, row_key, present FROM temp.bluegreen_changes ORDER BY rowid").fetchall()
                for table_name, row_key, present in marked:
                    def one_key(t=table_name, k=row_key, p=present) -> None:
                        self.conn.execute("DELETE FROM temp.bluegreen_changes")
                        self.conn.execute("INSERT INTO temp.bluegreen_changes(table_name, row_key, present) VALUES (?, ?, ?)",
                                          (t, k, p))
                        self._run_scripts()
                    self._try_key(offenders, table_name, row_key, one_key)
        finally:
            self.conn.execute("ROLLBACK TO bluegreen_diagnose")
            self.conn.execute("RELEASE bluegreen_diagnose")
        return self._conflict_error(error, offenders)

    def _try_key(self, offenders: list[dict], table_name: str, row_key, step) -> None:
        if len(offenders) >= 10:
            return
        self.conn.execute("SAVEPOINT bluegreen_key")
        try:
            step()
        except apsw.ConstraintError as exc:
            self.conn.execute("ROLLBACK TO bluegreen_key")
            offenders.append({"table": table_name, "key": row_key, "constraint": str(exc).removeprefix("ConstraintError: "),
                              "values": self._source_values(table_name, row_key)})
        finally:
            self.conn.execute("RELEASE bluegreen_key")

    def _key_match(self, table: TableCopy | Table, row_key) -> tuple[str, tuple]:
        """WHERE clause and bindings for one captured key: the rowid, or the primary key values
        (the quote()d key text is SQL: selecting it gives the values back)."""
        if not table.without_rowid:
            return f"{table.key_sql if isinstance(table, TableCopy) else table.rowid_alias} = ?", (row_key,)
        source = self.source_tables[table.name]
        encoded = row_key.encode("utf-8", "surrogatepass") if isinstance(row_key, str) else row_key
        if not isinstance(encoded, bytes) or not _key_pattern(len(source.primary_key)).fullmatch(encoded):
            return f"({_key_sql(source)}) = ?", (row_key,)  # not what capture writes: match the encoding, slowly
        values = self.conn.execute(f"SELECT {row_key}").fetchall()[0]
        return " AND ".join(f"{quote_ident(c)} = ?" for c in source.primary_key), tuple(values)

    def _delete_key(self, table: TableCopy, row_key) -> None:
        where, args = self._key_match(table, row_key)
        self.conn.execute(f"DELETE FROM main.{quote_ident(table.name)} WHERE {where}", args)

    def _insert_key(self, table: TableCopy, row_key) -> None:
        name = quote_ident(table.name)
        columns = ", ".join(quote_ident(c) for c in table.columns)
        key_prefix = "" if table.without_rowid else f"{table.key_sql}, "
        where, args = self._key_match(table, row_key)
        self.conn.execute(f"INSERT INTO main.{name}({key_prefix}{columns}) SELECT {key_prefix}{columns} "
                          f"FROM source.{name} WHERE {where}", args)

    def _source_values(self, table_name: str, row_key) -> dict[str, str] | None:
        """The source row as SQL literals (exact for every type, JSON-safe), or None if it is gone."""
        table = self.source_tables.get(table_name)
        if table is None:
            return None
        columns = [c for (c,) in self.conn.execute(
            "SELECT name FROM pragma_table_xinfo(?, 'source') WHERE hidden <> 1", (table_name,))]
        where, args = self._key_match(table, row_key)
        found = self.conn.execute(
            f"SELECT {', '.join(f'quote({quote_ident(c)})' for c in columns)} FROM source.{quote_ident(table_name)} "
            f"WHERE {where}", args).fetchall()
        return dict(zip(columns, found[0])) if found else None

    def _conflict_error(self, error: apsw.ConstraintError, offenders: list[dict]) -> ReplayConflict:
        reverse = contract.fenced_generation(self.conn) is not None  # carrying back into a fenced file: a revert
        advice = (f"nothing was lost, {self.source.name} stays active and {self.target.name} fenced: fix the row on "
                  f"{self.source.name}, then run the command again" if reverse else
                  f"nothing was lost and {self.source.name} stays active: fix the row on {self.source.name}, then run "
                  "the command again, or run `bluegreen abort` to drop the new generation")
        if not offenders:
            message = (f"{self.target.name}: a batch of rows changed on {self.source.name} breaks a constraint of "
                       f"{self.target.name}'s schema ({error}), and no single row could be named; {advice}")
        else:
            listed = "; ".join(
                f"table {o['table']!r} key {o['key']!r}: {o['constraint']}"
                + (f" (values: {', '.join(f'{c}={v}' for c, v in o['values'].items())})" if o["values"] else "")
                for o in offenders)
            message = (f"{self.target.name}: {len(offenders)} row(s) written on {self.source.name} break a constraint "
                       f"of {self.target.name}'s schema (a UNIQUE index, CHECK or NOT NULL the migrations added): "
                       f"{listed}. N{advice[1:]}")
        return ReplayConflict(message, details={"conflicts": offenders, "source": str(self.source),
                                                "target": str(self.target), "error": str(error)})

    def catch_up(self, until: int = 0, limit: int = 20_000, upto: int | None = None, progress=None,
                 own_transaction: bool = True) -> list[BatchResult]:
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
        self.last_catch_up = CatchUpReport(start, target, self.position().seq, done, arrived,
                                           time.perf_counter() - started)
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
            self.conn.execute(_delete_keyed(keyed), (table.name,))
            picked = ", ".join(f"s.{quote_ident(c)}" for c in table.columns)
            self.conn.execute(
                f"INSERT INTO main.{name}({columns}) SELECT {picked} FROM {_keys_from(keyed, 'source')}",
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
            if name not in self.tables:
                continue
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
                found = f"SELECT k.row_key FROM {_keys_from(table, 'source')}"
            else:
                key = table.rowid_alias
                found = (f"SELECT {key} FROM source.{quote_ident(name)} WHERE {key} IN "
                         "(SELECT row_key FROM temp.bluegreen_changes WHERE table_name = ?)")
            self.conn.execute(
                f"UPDATE temp.bluegreen_changes SET present = 1 WHERE table_name = ? AND row_key IN ({found})",
                (name, name),
            )

    def _same_shape_tables(self) -> dict[str, TableCopy]:
        """Tables replay copies as they are: the same definition in source and target."""
        found = {}
        for table in capture.capturable(self.conn):
            if not self._same_definition(table.name):
                continue
            columns = tuple(
                name for name, hidden in self.conn.execute(
                    "SELECT name, hidden FROM pragma_table_xinfo(?, 'main')", (table.name,)
                ) if hidden == 0
            )
            found[table.name] = TableCopy(table.name, _key_sql(table), table.without_rowid, columns)
        return found

    def _same_definition(self, name: str) -> bool:
        return same_definition(self.conn, name)


def _key_sql(table: Table) -> str:
    """The key as capture stores it: the rowid, or the quote()-encoded primary key values."""
    if table.without_rowid:
        return " || ',' || ".join(f"quote({quote_ident(c)})" for c in table.primary_key)
    return table.rowid_alias


# -- keyed lookups for WITHOUT ROWID tables (hazard 19) ---------------------------------------------
# Capture names a WITHOUT ROWID row by the quote() text of its key values. Matching that text
# against an expression over the table scans it; instead each batch decodes the text back into
# typed values (quote() output is SQL literals) in temp.bluegreen_keys_N, and every lookup joins
# on the primary-key columns, a PRIMARY KEY search. The search compares with the columns' own
# collation and affinity, as the table's uniqueness does: deleting in the target, that is what
# clears the way for the source's row. Reading the source, comparing the quote() text of the row
# found with the captured text then keeps exactly the row the capture named (NOCASE 'ABC' is not
# 'abc', 1 is not 1.0), so no row is copied twice and `present` is exact.
# The exact comparison uses capture.key_expression itself, so it follows any change there; a
# key_expression that spells text quote() cannot keep (an embedded NUL: quote() stops there) as
# CAST(X'..' AS TEXT) is decoded too.
_LITERAL = (r"NULL|-?[0-9]+(?:\.[0-9]+)?(?:e[+-][0-9]+)?|'(?:[^']|'')*'|X'(?:[0-9A-F][0-9A-F])*'"
            r"|CAST\(X'(?:[0-9A-F][0-9A-F])*' AS TEXT\)")
_KEYS_PER_STATEMENT = 500


_TEXT_TOKEN = re.compile(rb"(X'[0-9A-F]*')|'((?:[^']|'')*)'")


@lru_cache(maxsize=None)
def _key_pattern(arity: int) -> re.Pattern:
    """What quote() writes for `arity` values joined by ',' (as bytes) — nothing else reaches SQL."""
    return re.compile(",".join([f"(?:{_LITERAL})"] * arity).encode(), re.DOTALL)


def _key_row(table_name: str, key: bytes) -> tuple[str, list]:
    """One VALUES row (table_name, row_key, c1..cN) for a captured key, and its bindings. Text
    that is not UTF-8 (SQLite stores what it is given) cannot travel as a Python str: such a key
    goes as CAST(X'..' AS TEXT) literals, byte for byte."""
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        values = _TEXT_TOKEN.sub(
            lambda m: m.group(1) or b"CAST(X'" + m.group(2).replace(b"''", b"'").hex().encode() + b"' AS TEXT)", key)
        return f"(?, CAST(X'{key.hex()}' AS TEXT), {values.decode('ascii')})", [table_name]
    return f"(?, ?, {text})", [table_name, text]


def keys_table(conn: apsw.Connection, arity: int) -> str:
    """temp.bluegreen_keys_N(table_name, row_key, c1..cN), made once per connection and key width.
    Columns c1..cN have no type, so each value keeps the type it was captured with."""
    name = f"bluegreen_keys_{arity}"
    columns = ", ".join(f"c{i}" for i in range(1, arity + 1))
    conn.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {name}(table_name TEXT, row_key, {columns});"
        f"CREATE INDEX IF NOT EXISTS temp.{name}_table ON {name}(table_name)"
    )
    return f"temp.{name}"


def clear_keys(conn: apsw.Connection) -> None:
    """Empty every temp.bluegreen_keys_N before a new batch's keys are loaded."""
    for (name,) in conn.execute(
        "SELECT name FROM temp.sqlite_schema WHERE type = 'table' AND name GLOB 'bluegreen_keys_[0-9]*'"
    ).fetchall():
        conn.execute(f"DELETE FROM temp.{quote_ident(name)}")


def load_keys(conn: apsw.Connection, table: Table, row_keys: Iterable[bytes]) -> str:
    """Decode the captured keys of one WITHOUT ROWID table (each as bytes: CAST(row_key AS
    BLOB)) into typed columns: each is checked to be quote() output of exactly as many values
    as the key has (anything else is not a key bluegreen's capture wrote, and never reaches
    SQL), then inserted as literals."""
    arity = len(table.primary_key)
    target = keys_table(conn, arity)
    pattern = _key_pattern(arity)
    keys = list(row_keys)
    for key in keys:
        if not isinstance(key, bytes) or not pattern.fullmatch(key):
            raise OperationFailed(
                f"{table.name}: captured key {key!r} is not {arity} quote()d value(s) of its primary key; "
                "the capture table was written by something other than bluegreen: run `bluegreen abort`"
            )
    for start in range(0, len(keys), _KEYS_PER_STATEMENT):
        rows = [_key_row(table.name, key) for key in keys[start:start + _KEYS_PER_STATEMENT]]
        conn.execute(
            f"INSERT INTO {target} VALUES " + ", ".join(sql for sql, _ in rows),
            [value for _, bindings in rows for value in bindings],
            can_cache=False,  # never the same text twice: keep it out of apsw's statement cache
        )
    return target


def _keys_from(table: Table, schema: str) -> str:
    """FROM clause: each decoded key of `table` (alias k), then the row of schema.table it names
    (alias s), found by a PRIMARY KEY search. One binding: the table name."""
    keys = f"temp.bluegreen_keys_{len(table.primary_key)}"
    search = " AND ".join(f"s.{quote_ident(c)} = k.c{i}" for i, c in enumerate(table.primary_key, 1))
    return (f"{keys} AS k CROSS JOIN {quote_ident(schema)}.{quote_ident(table.name)} AS s "
            f"ON {search} AND {capture.key_expression(table, 's')} = k.row_key WHERE k.table_name = ?")


def _delete_keyed(table: Table) -> str:
    """DELETE of the target's rows the decoded keys name, by PRIMARY KEY search under the key's
    own collation and affinity: also the row a REPLACE on blue pushed out without a trace, whose
    key is equal but not identical ('abc' replaced by 'ABC' under NOCASE, 1 by 1.0); any other
    row it meets was changed too. One binding: the table name."""
    keys = f"temp.bluegreen_keys_{len(table.primary_key)}"
    columns = ", ".join(quote_ident(c) for c in table.primary_key)
    values = ", ".join(f"c{i}" for i in range(1, len(table.primary_key) + 1))
    return (f"DELETE FROM main.{quote_ident(table.name)} WHERE ({columns}) IN "
            f"(SELECT {values} FROM {keys} WHERE table_name = ?)")


def same_definition(conn: apsw.Connection, name: str) -> bool:
    """Same CREATE TABLE, UNIQUE indexes and application triggers in main and the attached source."""
    table = "SELECT sql FROM {}.sqlite_schema WHERE type = 'table' AND name = ?"
    triggers = (
        "SELECT sql FROM {}.sqlite_schema WHERE type = 'trigger' AND tbl_name = ? "
        f"AND substr(name, 1, {len(INTERNAL_PREFIX)}) <> '{INTERNAL_PREFIX}' ORDER BY name"
    )
    unique = (
        "SELECT group_concat(ii.name, ',') FROM {0}.pragma_index_list(?) AS il "
        "JOIN {0}.pragma_index_info(il.name) AS ii WHERE il.\"unique\" AND il.origin <> 'pk' "
        "GROUP BY il.name ORDER BY 1"
    )
    mine = conn.execute(table.format("main"), (name,)).fetchall()
    theirs = conn.execute(table.format("source"), (name,)).fetchall()
    if not (mine and theirs and mine == theirs):
        return False
    # A UNIQUE index the migration added makes a row blue keeps writing conflict in green.
    if conn.execute(unique.format("main"), (name,)).fetchall() != conn.execute(unique.format("source"), (name,)).fetchall():
        return False
    return conn.execute(triggers.format("main"), (name,)).fetchall() == conn.execute(
        triggers.format("source"), (name,)
    ).fetchall()


@dataclass(frozen=True)
class ReshapeReport:
    """What generic replay cannot keep exact, and why: each needs a sync script (hazard 3)."""

    reshaped: dict[str, str]  # source table -> reason
    derived_by: list[str]  # migrations that read source tables and wrote rows from them


def reshapes(conn: apsw.Connection, effects: dict[str, dict[str, list[str]]]) -> ReshapeReport:
    """Compare the migrated target (main) with the source (attached) and the migrations' effects."""
    source_tables = [t.name for t in user_tables(conn, "source") if not t.virtual]
    reshaped: dict[str, str] = {}
    for name in source_tables:
        exists = conn.execute("SELECT 1 FROM main.sqlite_schema WHERE type = 'table' AND name = ?", (name,)).fetchall()
        writers = [f for f, e in effects.items() if name in e.get("written", [])]
        if not exists:
            reshaped[name] = "not in the target"
        elif not same_definition(conn, name):
            reshaped[name] = "definition or triggers changed"
        elif writers:
            reshaped[name] = f"written by {', '.join(writers)}"
    derived = [
        f for f, e in effects.items()
        if e.get("written") and set(e.get("read", [])) & set(source_tables)
    ]
    return ReshapeReport(reshaped, derived)


def export_changes(source: Path, target: Path, tables: list[str], after_seq: int, upto_seq: int) -> None:
    """Save the source's current rows for the changed keys of `tables`, and the change list
    itself, to a new SQLite file: what `revert --accept-loss` keeps before it drops them. The file
    is created with the source's mode before SQLite opens it: it holds row data verbatim."""
    create_file(target, file_mode(source))
    conn = open_db(target, create=True)
    try:
        conn.execute("ATTACH ? AS source", (readonly_uri(source),))
        conn.execute("BEGIN")
        conn.execute(
            "CREATE TABLE bluegreen_lost_changes AS SELECT seq, tbl AS table_name, key AS row_key, op "
            f"FROM source.{capture.CAPTURE_TABLE} WHERE seq > ? AND seq <= ? AND tbl IN (SELECT value FROM json_each(?))",
            (after_seq, upto_seq, json.dumps(tables)),
        )
        conn.execute("CREATE INDEX main.bluegreen_lost_key ON bluegreen_lost_changes(table_name, row_key)")
        for table in user_tables(conn, "source"):
            if table.name not in tables:
                continue
            name = quote_ident(table.name)
            if table.without_rowid:
                load_keys(conn, table, [k for (k,) in conn.execute(
                    "SELECT DISTINCT CAST(row_key AS BLOB) FROM bluegreen_lost_changes WHERE table_name = ?",
                    (table.name,))])
                conn.execute(f"CREATE TABLE main.{name} AS SELECT s.* FROM {_keys_from(table, 'source')}",
                             (table.name,))
                continue
            conn.execute(
                f"CREATE TABLE main.{name} AS SELECT * FROM source.{name} WHERE {table.rowid_alias} IN "
                "(SELECT row_key FROM bluegreen_lost_changes WHERE table_name = ?)",
                (table.name,),
            )
        conn.execute("COMMIT")
    finally:
        conn.close()
