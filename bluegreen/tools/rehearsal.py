"""`bluegreen rehearse`: the whole deploy, its gates and a revert, on a scratch copy.

Our answer to gh-ost's test-on-replica: before touching production, run exactly what `deploy`
and `revert` would run — a real Controller with the same migrations and the same cutover
settings — against a copy of the active file in a scratch folder, optionally while a synthetic
writer writes, and report each phase's duration, the write pause, the writer's longest wait and
the gates' verdicts.

The real project is only read: the pointer, and the active file through the backup API inside
one read transaction (what prepare's snapshot does, but without installing capture, so nothing
about the real file changes). The copy is stripped of any bluegreen triggers and marks it
carried (capture, fence, stamps) and adopted as generation 1 of its own scratch project.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import tomli_w

from bluegreen.config import Config, DatabaseConfig, HooksConfig
from bluegreen.config.sections import ReplicationConfig
from bluegreen.engine import barrier, capture, generations, snapshot
from bluegreen.engine.db import check_database, open_db, quote_ident, readonly_uri
from bluegreen.errors import ArgumentInvalid, BluegreenError, FileInTheWay, WriterFailed
from bluegreen.files import contract
from bluegreen.files.layout import create_file, file_mode
from bluegreen.lifecycle.controller import Controller
from bluegreen.reports.inspector import Inspector
from bluegreen.results import Result, Timer, Timing
from bluegreen.tools import demo
from bluegreen.tools.writer_process import WriterError, WriterProcess, read_log

ProgressFn = Callable[[str, int, int], None]
WRITER_WARM_UP = 5  # committed writes before the deploy starts: the writer is really writing
GREEN_WRITES = 20  # writes the writer makes on green after the cutover: what the revert must carry back
SDM_TABLES = {"content_v1", "downloads_v1"}  # the shipped example: its own, checkable writer


@dataclasses.dataclass(frozen=True)
class WriterReport:
    kind: str  # "sdm" (inserts, updates, deletes, each checked) or "touch" (same-value updates)
    committed: int
    longest_wait_ms: float
    met_fence: bool
    missing: int | None  # committed writes absent after the cutover (checked for "sdm" only)
    on_green: int = 0  # writes made on green after the cutover (the pointer followed)
    green_table: str | None = None  # the table they went to, and why it was picked
    green_rank: str | None = None
    green_rows: int = 0  # distinct rows those writes changed
    green_refused: str | None = None  # why green refused a write, if it did (its own triggers, a lock)
    not_back: int | None = None  # rows written on green that blue does not hold as green has them after the revert


def run(
    config: Config,
    *,
    into: str | None = None,
    keep: bool = False,
    writer: bool = False,
    progress: ProgressFn | None = None,
) -> Result:
    source = Inspector(config).active_path()
    check_database(source, "active database")
    scratch, made = _scratch_folder(config, into)
    try:
        return _rehearse(config, source, scratch, writer, progress, keep)
    finally:
        if not keep:
            _remove(scratch, made)


def _rehearse(
    config: Config, source: Path, scratch: Path, writer: bool, progress: ProgressFn | None, keep: bool
) -> Result:
    where = f"{scratch}" + (" (kept)" if keep else " (removed afterwards)")
    copy = scratch / "data" / config.database.initial.name
    clock = Timer()
    _copy(config, source, copy, progress)
    phases = [Timing("copy", clock.ms)]
    scratch_config = _scratch_config(config, scratch, copy)
    controller = Controller(scratch_config, progress=progress)
    controller.init()
    pending = generations.pending(scratch_config.migrations.dir, copy)
    data = {"source": str(source), "scratch": str(scratch), "kept": keep, "pending": [m.file for m in pending]}
    if not pending:
        return Result(
            "rehearse",
            f"{source.name} is up to date: nothing to rehearse (copied in {phases[0].duration_ms:.1f} ms to {where})",
            phases,
            data,
        )

    process, log, kind = _start_writer(scratch, scratch_config, copy) if writer else (None, None, "")
    try:
        try:
            deployed = controller.deploy()
        except BluegreenError as exc:
            data["validation"] = _verdicts(controller)
            data["deploy"] = {"ok": False, "error": exc.message}
            raise type(exc)(
                f"rehearsal in {where}: deploy failed, the real files were not touched: {exc.message}",
                details=dict(data, phases=_phases_logged(controller)),
                hint=exc.hint,
            ) from None
        if process is not None:
            process.wait(timeout=60)  # it stops by itself after its writes on green
    finally:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
    phases += deployed.timings
    data["deploy"] = {
        "ok": True,
        "generation": deployed.data["generation"],
        "schema_version": deployed.data["schema_version"],
        "write_pause_ms": deployed.data["write_pause_ms"],
        "attempts": deployed.data.get("attempts", 1),
    }
    data["validation"] = _verdicts(controller)
    report = _writer_report(kind, log, Path(deployed.data["active"])) if process is not None else None
    data["writer"] = dataclasses.asdict(report) if report else None

    try:
        reverted = controller.revert()  # a command of its own: its timings are the revert's only
    except BluegreenError as exc:
        data["revert"] = {"ok": False, "error": exc.message}
        wrote = (
            f" after the writer's {report.on_green} write(s) on {report.green_table}"
            if report and report.on_green
            else ""
        )
        raise type(exc)(
            f"rehearsal in {where}: the deploy passed but its revert{wrote} failed, the real files were not "
            f"touched: {exc.message}",
            details=dict(data, **(exc.details if isinstance(exc.details, dict) else {})),
            hint=exc.hint,
        ) from None
    phases += [Timing(f"revert.{p.name}", p.duration_ms) for p in reverted.timings]
    revert_ms = round(sum(p.duration_ms for p in reverted.timings), 1)
    data["revert"] = {"ok": True, "duration_ms": revert_ms, "carried_back": reverted.data["carried_back"]}
    data["phases"] = [dataclasses.asdict(p) for p in phases]

    if report is not None:
        green = Path(deployed.data["active"])  # fenced and kept by the revert: what the writer left there
        report = dataclasses.replace(report, not_back=_not_carried_back(read_log(log), green, copy))
        data["writer"] = dataclasses.asdict(report)
    if report and report.missing:
        raise WriterFailed(
            f"rehearsal in {where}: {report.missing} committed write(s) of the synthetic writer are "
            "missing after the cutover; the real files were not touched",
            details=data,
        )
    if report and report.not_back:
        raise WriterFailed(
            f"rehearsal in {where}: the revert passed, but {report.not_back} row(s) the synthetic writer wrote on "
            f"{report.green_table} after the cutover are not in {copy.name} as they were on the new generation: "
            "the rollback script does not carry them back as they are; the real files were not touched",
            details=data,
        )
    checks = data["validation"]["checks"]
    lines = [
        f"rehearsed on a copy of {source} in {where}; the real files were not touched",
        f"deploy: generation {deployed.data['generation']} (schema {deployed.data['schema_version']}) would be active; "
        f"writes paused {deployed.data['write_pause_ms']:.1f} ms (budget {config.cutover.max_write_pause_ms} ms, "
        f"{data['deploy']['attempts']} attempt(s))",
        f"gates: {sum(c['status'] == 'PASS' for c in checks)} of {len(checks)} check(s) passed ("
        + ", ".join(sorted({c["source"] for c in checks}))
        + ")",
    ]
    if report:
        lines.append(
            f"writer ({report.kind}): {report.committed} write(s) committed, longest wait {report.longest_wait_ms:.1f} ms"
            + (", every one present after the cutover" if report.missing == 0 else "")
        )
        lines.append(_green_line(report, copy.name))
    lines.append(f"revert: ok in {revert_ms:.1f} ms, {reverted.data['carried_back']} row(s) carried back")
    return Result("rehearse", "\n".join(lines), phases, data)


# -- the scratch project --------------------------------------------------------------------------
def _scratch_folder(config: Config, into: str | None) -> tuple[Path, bool]:
    """A new temporary folder, or --into DIR if it is empty or absent (never inside the real
    data folder: the rehearsal must leave it as it was)."""
    if into is None:
        return Path(tempfile.mkdtemp(prefix="bluegreen-rehearsal-")), True
    folder = Path(into).resolve()
    data_dir = config.data_dir.resolve()
    if folder == data_dir or data_dir in folder.parents:
        raise ArgumentInvalid.with_hint(
            f"{folder}: inside the data folder {data_dir}", "give --into a folder outside it"
        )
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise FileInTheWay.with_hint(
            f"{folder}: not an empty folder",
            "give --into a new or empty folder (it is deleted afterwards unless --keep)",
        )
    made = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    return folder, made


def _remove(folder: Path, made: bool) -> None:
    if made:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for entry in folder.iterdir():  # --into an existing empty folder: empty it again
        shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


def _copy(config: Config, source: Path, copy: Path, progress: ProgressFn | None) -> None:
    """Backup API, inside one read transaction on the real file (no capture, no lock taken), then
    drop what bluegreen left in the copy so it starts as a plain generation 1."""
    copy.parent.mkdir(parents=True)
    conn = open_db(source, query_only=True)
    try:
        snapshot.copy(
            conn,
            copy,
            mode=file_mode(source),
            pages_per_step=config.snapshot.pages_per_step,
            progress=(lambda done, total: progress("copy", done, total)) if progress else None,
        )
    finally:
        conn.close()
    with barrier.holding(copy, config.cutover.lock_timeout_ms) as scrub:
        capture.remove_capture(scrub)
        capture.remove_fence(scrub)
        scrub.execute(f"DROP TABLE IF EXISTS {contract.META_TABLE}")


def _scratch_config(config: Config, scratch: Path, copy: Path) -> Config:
    """The real config with the pointer moved into the scratch folder; the migrations folder,
    cutover budget and capture settings are the real ones. Hooks, the hold flag and the
    environments' rules and [replication] are left out: a rehearsal must not page anyone, ship to the real replica, reload the application,
    wait on a person or need approvals. Written out as config.toml too, so a --keep'd scratch
    folder can be inspected with bluegreen itself."""
    path = scratch / "config.toml"
    scratch_config = dataclasses.replace(
        config,
        path=path,
        database=DatabaseConfig(pointer=copy.parent / "current.toml", initial=copy),
        cutover=dataclasses.replace(config.cutover, wait_flag=None),
        hooks=HooksConfig(),
        environments={},
        replication=ReplicationConfig(),  # a scratch copy ships nothing to the real replica
    )
    document = {}
    for section in dataclasses.fields(scratch_config):
        value = getattr(scratch_config, section.name)
        if dataclasses.is_dataclass(value) and section.name not in ("hooks", "replication"):
            document[section.name] = {k: _as_toml(k, v) for k, v in dataclasses.asdict(value).items() if v is not None}
    create_file(path, file_mode(copy) & 0o666)  # never more readable than blue (issue 10 item 10)
    path.write_text("# written by `bluegreen rehearse`: a scratch copy of the real project\n" + tomli_w.dumps(document))
    return scratch_config


def _as_toml(key: str, value: object) -> object:
    """A config value as config.toml spells it: paths as strings, named queries as a table."""
    if isinstance(value, Path):
        return str(value)
    if key == "queries":
        return dict(value)
    return value


def _verdicts(controller: Controller) -> dict:
    """The last validation the scratch deploy ran (at cutover, after the last catch-up)."""
    runs = [e for e in controller.store.events() if e.get("event") == "validation"]
    if not runs:
        return {"passed": None, "checks": [], "runs": 0}
    return {"passed": runs[-1]["passed"], "checks": runs[-1]["checks"], "runs": len(runs)}


def _phases_logged(controller: Controller) -> list[dict]:
    """The phases a failed scratch deploy got through, from its event log."""
    return [
        {"name": e["phase"], "duration_ms": e["duration_ms"]}
        for e in controller.store.events()
        if e.get("event") == "phase"
    ]


# -- the synthetic writer -------------------------------------------------------------------------
def _start_writer(scratch: Path, config: Config, copy: Path) -> tuple[WriterProcess, Path, str]:
    """The shipped example gets the writer's demo mode (inserts, updates and deletes, each checked
    after the cutover); any other schema its rehearsal mode (same-value updates: lock, capture and
    replay load without inventing data). Either one then follows the pointer to green and writes
    there in green's schema (writer_green.py), which is what the revert must carry back."""
    conn = open_db(copy, query_only=True)
    try:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    finally:
        conn.close()
    kind = "sdm" if SDM_TABLES <= tables else "touch"
    mode = "demo" if kind == "sdm" else "rehearsal"
    log = scratch / "writer.log"
    create_file(log, file_mode(copy) & 0o666)  # the writer appends to it: it holds row values, so blue's mode
    process = WriterProcess.start(
        mode, config.database.pointer, log, seconds=600, stdout=subprocess.DEVNULL, follow=GREEN_WRITES
    )
    try:
        process.wait_for(WRITER_WARM_UP, timeout=30, gives_up="no_target")
    except WriterError:
        process.kill()
        raise WriterFailed.with_hint(
            f"{copy}: the synthetic writer could not write (no table with a rowid and rows?)",
            "rehearse without --writer",
        ) from None
    return process, log, kind


def _writer_report(kind: str, log: Path, active: Path) -> WriterReport:
    events = read_log(log)
    committed = [e for e in events if e["event"] == "committed"]
    fenced = [e for e in events if e["event"] == "fenced"]
    longest = max([e["wait_ms"] for e in committed + fenced], default=0.0)
    missing = len(demo.verify_writes(events, active)) if kind == "sdm" else None
    on_green = [e for e in events if e["event"] == "green_write"]
    reopened = next((e for e in events if e["event"] == "reopened"), {})
    return WriterReport(
        kind,
        len(committed),
        longest,
        bool(fenced),
        missing,
        len(on_green),
        reopened.get("table"),
        reopened.get("rank"),
        len({(e["table"], e["id"]) for e in on_green}),
        next((e["error"] for e in events if e["event"] == "green_refused"), None),
    )


def _not_carried_back(events: list[dict], green: Path, blue: Path) -> int | None:
    """Rows the writer wrote on green that blue, after the revert, does not hold as green has them
    (the columns both have, by rowid); None when its table has no namesake in blue to compare."""
    written = sorted({(e["table"], e["id"]) for e in events if e["event"] == "green_write"})
    if not written:
        return None
    conn = open_db(blue, query_only=True)
    try:
        conn.execute("ATTACH ? AS green", (readonly_uri(green),))
        table = written[0][0]
        if not conn.execute("SELECT 1 FROM main.sqlite_schema WHERE type = 'table' AND name = ?", (table,)).get:
            return None
        both = [
            quote_ident(c)
            for (c,) in conn.execute("SELECT name FROM main.pragma_table_info(?)", (table,))
            if conn.execute("SELECT 1 FROM green.pragma_table_info(?) WHERE name = ?", (table, c)).get
        ]
        columns = ", ".join(["rowid", *both])
        differ = 0
        for _, key in written:
            query = f"SELECT {columns} FROM {{}}.{quote_ident(table)} WHERE rowid = ?"
            if (
                conn.execute(query.format("main"), (key,)).fetchall()
                != conn.execute(query.format("green"), (key,)).fetchall()
            ):
                differ += 1
        return differ
    finally:
        conn.close()


def _green_line(report: WriterReport, blue_name: str) -> str:
    refused = f" (then the new generation refused one: {report.green_refused})" if report.green_refused else ""
    if not report.on_green:
        if report.green_table:
            return f"writer after the cutover: no write on the new generation's {report.green_table}{refused}"
        return "writer after the cutover: no write on the new generation (no rowid table with rows there)"
    line = (
        f"writer after the cutover: {report.on_green} write(s) on the new generation's {report.green_table} "
        f"({report.green_rank}){refused}"
    )
    if report.not_back is None:
        return line + f", carried back by the revert (no table of that name in {blue_name} to compare row by row)"
    return line + f", every one back in {blue_name} row by row after the revert"
