"""Naming the rows behind a replay batch that the target's constraints reject (ReplayConflict).

A batch is applied as one statement per table, so SQLite's ConstraintError names a constraint but
no row. This module re-runs the batch key by key inside a savepoint that is always rolled back,
and turns what it finds into the one error cutover refuses with (exit 3): each table, key,
constraint and the source row's values. Its own module because it runs only after a failure and
must leave the target exactly as it found it; replay's batches never call into it otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import apsw

from bluegreen.engine.db import Table, quote_ident
from bluegreen.engine.keys import key_pattern
from bluegreen.engine.shapes import TableCopy, key_sql
from bluegreen.errors import ReplayConflict
from bluegreen.files import contract


class ConflictDiagnosis:
    """One diagnosis on a replayer's connection, in the middle of its failed batch: the changed
    keys are in temp.bluegreen_changes, the source attached as `source`."""

    def __init__(
        self,
        conn: apsw.Connection,
        source: Path,
        target: Path,
        tables: dict[str, TableCopy],
        source_tables: dict[str, Table],
        run_scripts: Callable[[], None] | None,
        mark_present: Callable[[], None],
        mapped: tuple[Callable[[], None], Callable[[str, object, int], None], Callable[[], None]] | None = None,
    ):
        """tables: what replay copies; source_tables: the source's tables by name; run_scripts:
        the replayer's sync (or rollback) scripts over temp.bluegreen_changes, None without any;
        mark_present: sets `present` of the changed keys, as a batch does before its scripts.
        mapped: for the tables replay maps (engine/derive.py), the replayer's (delete every changed
        key of them, write one changed key alone, put the batch's keys back)."""
        self.conn = conn
        self.source = source
        self.target = target
        self.tables = tables
        self.source_tables = source_tables
        self.run_scripts = run_scripts
        self.mark_present = mark_present
        self.mapped = mapped

    def error(self, error: apsw.ConstraintError) -> ReplayConflict:
        """Find the changed rows the target's constraints reject, inside a savepoint that is rolled
        back: delete every changed key, then copy the source rows back one key at a time (each
        after the ones before it, so two new rows that clash are told apart from a swap), then run
        the scripts key by key. Returns the error naming each offender (hazard: green's new
        constraints, issue 10 item 8)."""
        changes = self.conn.execute(
            "SELECT table_name, row_key, present FROM temp.bluegreen_changes ORDER BY rowid"
        ).fetchall()
        offenders: list[dict] = []
        self.conn.execute("SAVEPOINT bluegreen_diagnose")
        try:
            copied = [(t, k) for t, k, _ in changes if t in self.tables]
            for table_name, row_key in copied:
                self._delete_key(self.tables[table_name], row_key)
            for table_name, row_key in copied:
                self._try_key(
                    offenders, table_name, row_key, lambda t=table_name, k=row_key: self._insert_key(self.tables[t], k)
                )
            if not offenders and self.mapped is not None:
                delete_all, write_one, restore = self.mapped
                delete_all()
                for table_name, row_key, present in changes:
                    self._try_key(
                        offenders, table_name, row_key, lambda t=table_name, k=row_key, p=present: write_one(t, k, p)
                    )
                restore()
            if not offenders and self.run_scripts is not None:
                self.mark_present()
                marked = self.conn.execute(
                    "SELECT table_name, row_key, present FROM temp.bluegreen_changes ORDER BY rowid"
                ).fetchall()
                for table_name, row_key, present in marked:

                    def one_key(t=table_name, k=row_key, p=present) -> None:
                        self.conn.execute("DELETE FROM temp.bluegreen_changes")
                        self.conn.execute(
                            "INSERT INTO temp.bluegreen_changes(table_name, row_key, present) VALUES (?, ?, ?)",
                            (t, k, p),
                        )
                        self.run_scripts()

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
            offenders.append(
                {
                    "table": table_name,
                    "key": row_key,
                    "constraint": str(exc).removeprefix("ConstraintError: "),
                    "values": self._source_values(table_name, row_key),
                }
            )
        finally:
            self.conn.execute("RELEASE bluegreen_key")

    def _key_match(self, table: TableCopy | Table, row_key) -> tuple[str, tuple]:
        """WHERE clause and bindings for one captured key: the rowid, or the primary key values
        (the quote()d key text is SQL: selecting it gives the values back)."""
        if not table.without_rowid:
            return f"{table.key_sql if isinstance(table, TableCopy) else table.rowid_alias} = ?", (row_key,)
        source = self.source_tables[table.name]
        encoded = row_key.encode("utf-8", "surrogatepass") if isinstance(row_key, str) else row_key
        if not isinstance(encoded, bytes) or not key_pattern(len(source.primary_key)).fullmatch(encoded):
            return f"({key_sql(source)}) = ?", (row_key,)  # not what capture writes: match the encoding, slowly
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
        self.conn.execute(
            f"INSERT INTO main.{name}({key_prefix}{columns}) SELECT {key_prefix}{columns} "
            f"FROM source.{name} WHERE {where}",
            args,
        )

    def _source_values(self, table_name: str, row_key) -> dict[str, str] | None:
        """The source row as SQL literals (exact for every type, JSON-safe), or None if it is gone."""
        table = self.source_tables.get(table_name)
        if table is None:
            return None
        columns = [
            c
            for (c,) in self.conn.execute(
                "SELECT name FROM pragma_table_xinfo(?, 'source') WHERE hidden <> 1", (table_name,)
            )
        ]
        where, args = self._key_match(table, row_key)
        found = self.conn.execute(
            f"SELECT {', '.join(f'quote({quote_ident(c)})' for c in columns)} FROM source.{quote_ident(table_name)} "
            f"WHERE {where}",
            args,
        ).fetchall()
        return dict(zip(columns, found[0])) if found else None

    def _conflict_error(self, error: apsw.ConstraintError, offenders: list[dict]) -> ReplayConflict:
        reverse = contract.fenced_generation(self.conn) is not None  # carrying back into a fenced file: a revert
        advice = (
            f"nothing was lost, {self.source.name} stays active and {self.target.name} fenced: fix the row on "
            f"{self.source.name}, then run the command again"
            if reverse
            else f"nothing was lost and {self.source.name} stays active: fix the row on {self.source.name}, then run "
            "the command again, or run `bluegreen abort` to drop the new generation"
        )
        if not offenders:
            message = (
                f"{self.target.name}: a batch of rows changed on {self.source.name} breaks a constraint of "
                f"{self.target.name}'s schema ({error}), and no single row could be named; {advice}"
            )
        else:
            listed = "; ".join(
                f"table {o['table']!r} key {o['key']!r}: {o['constraint']}"
                + (f" (values: {', '.join(f'{c}={v}' for c, v in o['values'].items())})" if o["values"] else "")
                for o in offenders
            )
            message = (
                f"{self.target.name}: {len(offenders)} row(s) written on {self.source.name} break a constraint "
                f"of {self.target.name}'s schema (a UNIQUE index, CHECK or NOT NULL the migrations added): "
                f"{listed}. N{advice[1:]}"
            )
        return ReplayConflict(
            message,
            details={
                "conflicts": offenders,
                "source": str(self.source),
                "target": str(self.target),
                "error": str(error),
            },
        )
