"""Read-only commands: status, plan, history, path, generations, check. They take no lock and change nothing."""

from __future__ import annotations

import socket
from pathlib import Path

import apsw

from bluegreen.config import Config
from bluegreen.engine import generations, migrations, revert_ddl
from bluegreen.engine.db import open_db, readonly_uri
from bluegreen.errors import EXIT_USAGE, BluegreenError, DatabaseInvalid, InputError
from bluegreen.files import contract, pointer, registry
from bluegreen.files.journal import Phase, Store
from bluegreen.files.layout import space_hint
from bluegreen.gates import approvals, environments, estimate, preflight
from bluegreen.replication import state as replication_state
from bluegreen.reports import check as monitor
from bluegreen.reports import holders, retention
from bluegreen.results import Result

NEXT_STEP = {
    Phase.PREPARING: "an interrupted prepare: bluegreen resume, or bluegreen abort",
    Phase.PREPARED: "bluegreen cutover (or abort)",
    Phase.CUTTING_OVER: "an interrupted cutover: bluegreen resume, or bluegreen abort",
    Phase.CUT_OVER: "bluegreen finalize to keep it, or bluegreen revert",
    Phase.REVERTING: "an interrupted revert: bluegreen resume",
}


BLUE_GONE_IN_WINDOW = (
    "bluegreen cannot revert without it; or run `bluegreen finalize` to keep green and close "
    "the revert window without it"
)

# Commands that open the files the journal names; the read-only ones need the active file only
# (active_path checks it), so `bluegreen path` in a script never fails over a missing green.
USES_JOURNAL_FILES = ("prepare", "cutover", "deploy", "revert", "finalize", "resume", "abort", "prune")


def _files_needed(state, command: str) -> list[tuple[str, str, str]]:
    """(role, file name, what to do if it is gone) for the files `command` needs in this phase."""
    if state.phase == Phase.IDLE:
        return []
    blue = (
        "blue (the file applications used before this operation)",
        state.blue,
        "restore it from a backup; "
        + (BLUE_GONE_IN_WINDOW if state.phase == Phase.CUT_OVER else "blue is the active file"),
    )
    if state.phase == Phase.CUT_OVER:
        green = (
            "green (the generation the cutover makes active)",
            state.green,
            "restore it from a backup; it is the active file",
        )
        # finalize only removes capture from green: with blue gone it closes the window without it
        return [green] if command == "finalize" else [blue, green]
    if state.phase in (Phase.PREPARING, Phase.PREPARED) or (state.phase == Phase.CUTTING_OVER and command == "abort"):
        green = (
            "the prepared generation",
            state.green,
            "run `bluegreen abort` (blue stays active, unchanged), then `bluegreen prepare` to build it again",
        )
        return [blue] if command in ("abort", "resume") or state.phase == Phase.PREPARING else [blue, green]
    green = (
        "green (the generation the cutover makes active)",
        state.green,
        "if the pointer still names blue, run `bluegreen abort`; if it names this file, restore it from a backup",
    )
    return [blue, green]


class Inspector:
    def __init__(self, config: Config, environment: str | None = None):
        self.config = config
        self.environment = environment  # the chosen environment's name, if any
        self.store = Store(config.database.pointer)

    def current(self) -> pointer.Pointer:
        return generations.current(self.config.database.pointer, self.store)

    def active_path(self) -> Path:
        return generations.active_path(self.config.database.pointer, self.store)

    def _missing_active(self, path: Path) -> str:
        return generations.missing_active(self.config.database.pointer, path)

    def require_files(self, command: str) -> None:
        """Before a command opens what the journal names: every file its phase needs is there, or one line says
        which is gone and what to do (a deleted generation, hazard 11: never a new empty file)."""
        if not self.store.initialized() or command not in USES_JOURNAL_FILES:
            return
        state = self.store.load()
        self.current()
        for role, name, fix in _files_needed(state, command):
            path = self.store.folder / name
            if not path.is_file():
                raise DatabaseInvalid.with_hint(
                    f"{path}: {role} not found (the journal {self.store.state_path} names "
                    f"it, phase {state.phase}); nothing was changed",
                    fix,
                    sep=": ",
                )

    def pending(self, active: Path) -> list[migrations.Migration]:
        return generations.pending(self.config.migrations.dir, active)

    def _pending_on_any_disk(self, active: Path) -> list[migrations.Migration]:
        return generations.pending_on_any_disk(self.config.migrations.dir, active)

    def status(self) -> Result:
        """The on-call's first command: it writes nothing, and reports what it cannot read instead
        of failing on it (a full disk, a deleted generation)."""
        current = self.current()
        state = self.store.load()
        active = current.active_path(self.config.database.pointer)
        gone = [
            (role, name, fix)
            for role, name, fix in _files_needed(state, "status")
            if name != current.active and not (self.store.folder / name).is_file()
        ]
        problems = [p for p in [self._missing_active(active)] if p]
        missing = [current.active] if problems else []
        problems += [f"{self.store.folder / name}: {role} not found; {fix}" for role, name, fix in gone]
        missing += [name for _, name, _ in gone]
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
        invalid: list[str] = []  # configuration and migration errors: status shows them and exits 2
        refusals: list[str] = []  # what prepare and deploy would refuse (exit 3), e.g. a missing sync companion
        try:
            waiting = self._pending_on_any_disk(active) if not problems else []
            data["pending"] = [m.file for m in waiting]
            if problems:
                data["pending_error"] = "unknown (a file is missing, see below)"
            checked = preflight.check(active, waiting)  # what prepare and deploy would refuse
            data["details"] = {"findings": checked.as_dicts(), "note": checked.note}
            invalid += [f.message for f in checked.findings if isinstance(f, InputError)]
            refusals = [f.message for f in checked.findings if not isinstance(f, InputError)]
        except BluegreenError as exc:
            data["pending_error"] = exc.message
            if isinstance(exc, InputError):  # a missing migrations folder, a misnamed or edited file
                invalid.append(exc.message)
        except apsw.Error as exc:  # e.g. a full disk when SQLite must create -shm: report, go on
            data["pending_error"] = f"unknown: cannot read {active.name} ({exc}{space_hint(active.parent)})"
        in_flight = state.green if state.phase in (Phase.PREPARING, Phase.PREPARED, Phase.CUTTING_OVER) else ""
        clients = registry.live_clients(self.config.database.pointer)
        behind = [c for c in clients if any(f.file not in (current.active, in_flight) for f in c.files)]
        data["clients"] = [c.as_dict() for c in clients]
        data["clients_behind"] = [c.as_dict() for c in behind]  # still on a file the pointer moved away from
        release = self._release(state, active) if not problems else {}
        data.update(release)
        idle_next = (
            "bluegreen deploy (or prepare, then cutover)"
            if data["pending"]
            else "nothing pending"
            if "pending_error" not in data
            else "unknown until the pending migrations can be read"
        )
        data["next"] = NEXT_STEP.get(state.phase, idle_next)
        past_fence = self._blue_fenced(state)
        if past_fence:  # abort is refused now (hazard 16): only forward
            data["next"] = "an interrupted cutover, past blue's fence: bluegreen resume (then revert if wanted)"
        data["conflict"] = state.conflict
        if state.conflict and state.phase in (Phase.PREPARED, Phase.CUTTING_OVER) and not past_fence:
            data["next"] = conflict_next_step(state.conflict)
        lines = [
            f"active      {active} (generation {current.generation}, schema {current.schema_version})",
            f"phase       {state.phase}" + (f" ({state.operation}: {state.step})" if state.operation else ""),
        ]
        if data["previous"]:
            lines.append(f"previous    {data['previous']}")
        if state.green:
            lines.append(f"green       {data['green']} (generation {state.green_generation})")
        shown = "unknown (see the problem line below)" if data.get("pending_error") in invalid else None
        lines.append("pending     " + (", ".join(data["pending"]) or shown or data.get("pending_error", "none")))
        if release.get("environment") or release.get("environment_error"):
            lines.append(f"environment {release.get('environment') or release['environment_error']}")
        if release.get("approvals"):
            a = release["approvals"]
            lines.append(
                f"approvals   {len(a['approved_by'])} of {a['required']} for v{a['version']}"
                + (f" ({', '.join(a['approved_by'])})" if a["approved_by"] else "")
            )
        if release.get("window"):
            w = release["window"]
            lines.append(f"window      {w['window']}, {'open' if w['open'] else 'closed'} now ({w['now']})")
        replicated = replication_state.report(self.config, self.store)  # None without [replication]
        if replicated is not None:
            data["replication"] = replicated
            lines.append(replication_state.describe(replicated))
        if clients:
            lines.append(
                f"clients     {len(clients)} live process(es), {len(behind)} on another file than {current.active}"
            )
        for c in behind:
            files = ", ".join(f"{f.file} (generation {f.generation})" for f in c.files if f.file != current.active)
            lines.append(f"  behind    {c.name} on {files}: it moves at its next statement outside a transaction")
        lines += self._processes(data, state, current.active, clients)
        lines += self._revert_refusals(data, state) if not problems else []
        kept = self.kept_files(state, current.active)
        data["kept"] = [k.as_dict() for k in kept]
        due = [k.name for k in kept if k.due]
        others = [k for k in kept if k.name != current.active]
        if others:
            lines.append(
                f"kept        {len(others)} other file(s), {retention.human_size(sum(k.size_bytes for k in others))}"
                + (f"; due for `bluegreen prune`: {', '.join(due)}" if due else "")
                + " (`bluegreen generations` lists them)"
            )
        if invalid and not problems and state.phase == Phase.IDLE:
            data["next"] = "fix what the problem lines name, then bluegreen plan (it runs the same checks)"
        if refusals and not invalid and not problems and state.phase == Phase.IDLE:
            data["next"] = (
                "add what the refusal line names (bluegreen plan says the same), or bluegreen deploy --offline"
            )
        lines += [f"refusal     prepare and deploy would refuse (exit 3): {r}" for r in refusals]
        problems += invalid
        if problems:
            if len(problems) > len(invalid):
                data["next"] = _missing_next_step(state, missing, gone, past_fence)
            data["problems"] = problems
            lines += [f"problem     {p}" for p in problems]
        for line in conflict_lines(state.conflict if state.phase in (Phase.PREPARED, Phase.CUTTING_OVER) else {}):
            lines.append(line)
        lines.append("next        " + data["next"])
        if problems:
            return Result("status", "\n".join(lines), data=data, exit_code=EXIT_USAGE, error=problems[0])
        return Result("status", "\n".join(lines), data=data)

    def _processes(self, data: dict, state, active: str, clients: list) -> list[str]:
        """Every process holding a generation file open, bluegreen client or not (issue 14): the
        kernel's view (reports/holders.py); the text names those on another file than the active one."""
        found = holders.scan(self.store.generations_on_disk(state.base_name).values())
        data["processes"] = found.as_dict()
        if not found.supported:
            return ["processes   other processes holding a generation are not visible on this system (Linux only)"]
        local = {c.pid for c in clients if c.host == socket.gethostname()}
        behind = [h for h in found.holders if any(f != active for f in h.files)]
        data["processes_behind"] = [h.as_dict() for h in behind]
        if not found.holders:
            return []
        unseen = (
            f"; {found.not_inspected} process(es) of other users not inspected for open files (root sees them; "
            "their SQLite locks are seen)"
            if found.not_inspected
            else ""
        )
        lines = [
            f"processes   {len(found.holders)} process(es) have a generation open, {len(behind)} on another "
            f"file than {active}{unseen}"
        ]
        for h in behind:
            files = ", ".join(f for f in h.files if f != active)
            what = (
                "a bluegreen client (see behind)"
                if h.pid in local
                else "not a bluegreen client: it stays until it closes the file; finalize and prune wait for it"
            )
            lines.append(f"  holding   {h.describe()} has {files} open: {what}")
        return lines

    def _revert_refusals(self, data: dict, state) -> list[str]:
        """In the revert window: what revert would refuse today (hazard 14), e.g. a table another
        tool rebuilt on the active file (sqlite-utils transform), said now rather than at revert."""
        if state.phase != Phase.CUT_OVER:
            return []
        try:
            green = _read_only(self.store.folder / state.green)
            blue = _read_only(self.store.folder / state.blue)
            try:
                found = revert_ddl.drift(green, blue)
            finally:
                green.close()
                blue.close()
        except apsw.Error:  # a lock, a full disk: revert itself will say
            return []
        refused = list(found.refused.values()) if found else []
        data["revert_refusals"] = refused
        return [
            f"revert      would refuse (exit 5): {why}; bluegreen finalize keeps generation "
            f"{state.green_generation} (and closes the revert window), bluegreen revert --accept-loss saves it"
            for why in refused
        ]

    def _blue_fenced(self, state) -> bool:
        """Is blue fenced for this operation, so `abort` refuses? The file says so even when the
        journal does not (deploy --offline killed between its fence's commit and the journal),
        exactly as abort decides; the journal's fence record when blue cannot be read."""
        if state.phase not in (Phase.PREPARING, Phase.PREPARED, Phase.CUTTING_OVER) or not state.blue:
            return False
        path = self.store.folder / state.blue
        if not path.is_file():
            return state.blue in state.fences
        try:
            conn = open_db(readonly_uri(path), readonly=True)
            try:
                return contract.fenced_generation(conn) == state.green_generation
            finally:
                conn.close()
        except apsw.Error:  # a full disk, a lock: what the journal knows
            return state.blue in state.fences

    def _release(self, state, active: Path) -> dict:
        """The chosen environment, the approvals of the version a cutover would bring, the window."""
        try:
            env = environments.select(self.config, self.environment)
            if env is None:
                return {}
            in_flight = state.phase in (Phase.PREPARING, Phase.PREPARED, Phase.CUTTING_OVER)
            pending = self._pending_on_any_disk(self.store.folder / state.blue if in_flight else active)
        except BluegreenError as exc:
            return {"environment_error": exc.message} if self.config.environments else {}
        except apsw.Error as exc:
            if not self.config.environments:
                return {}
            return {"environment_error": f"cannot read the pending versions ({exc}{space_hint(active.parent)})"}
        if env is None:
            return {}
        out: dict = {"environment": env.name}
        if pending:
            version = pending[-1].version
            have = [
                a.by for a in approvals.Approvals(self.store.state_dir, self.store.file_mode()).of(version, env.name)
            ]
            out["approvals"] = {"version": version, "approved_by": have, "required": env.approvals}
        window = environments.window_state(env)
        if window:
            out["window"] = {"window": window.text, "open": window.open, "now": window.now}
        return out

    def kept_files(self, state, active: str) -> list[retention.KeptFile]:
        return retention.inventory(self.store, state, active, self.config.retention.keep_days)

    def generations(self) -> Result:
        """Every generation and export in the data folder with its role, size and age."""
        state = self.store.load()
        current = pointer.read(self.config.database.pointer)
        kept = self.kept_files(state, current.active)
        keep_days = self.config.retention.keep_days
        lines = [f"{'file':<28} {'role':<14} {'size':>10}  retired"]
        for k in kept:
            retired = f"{k.age_days:.1f} day(s) ago ({k.age_from})" if k.age_days is not None else "-"
            lines.append(
                f"{k.name:<28} {k.role:<14} {retention.human_size(k.size_bytes):>10}  {retired}"
                + ("  due for prune" if k.due else "")
            )
        lines.append(
            f"retention: fenced generations retired {keep_days} or more day(s) ago are due "
            f"([retention] keep_days); {sum(k.due for k in kept)} due now"
        )
        return Result(
            "generations", "\n".join(lines), data={"keep_days": keep_days, "generations": [k.as_dict() for k in kept]}
        )

    def plan(self, offline: bool = False) -> Result:
        active = self.active_path()
        pending = self.pending(active)
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
                    "benchmark": m.benchmark.name if m.benchmark else None,
                    "check": m.check.name if m.check else None,
                }
                for m in pending
            ],
        }
        if not pending:
            return Result("plan", f"{active.name} is up to date: no pending migrations", data=data)
        lines = [f"{len(pending)} pending migration(s) for {active.name}:"]
        for m in pending:
            extras = ", ".join(k for k in migrations.COMPANIONS if getattr(m, k)) or "no companions"
            lines.append(f"  {m.file}  (v{m.version}; {extras})")
        found = estimate.estimate(self.config, active, pending)
        data["estimate"] = found.as_dict()
        lines += ["estimates (before anything runs; see README, Plan):"] + estimate.describe(found)
        checked = preflight.check(active, pending, online=not offline)  # what prepare and deploy would refuse
        data["details"] = {"findings": checked.as_dicts(), "note": checked.note}
        data["tables"] = {table: what for table, what in checked.tables}  # online: what replay does with each
        lines += checked.lines()
        if checked.first is None:
            return Result("plan", "\n".join(lines), data=data)
        return Result("plan", "\n".join(lines), data=data, exit_code=checked.exit_code, error=checked.first.message)

    def history(self) -> Result:
        active = self.active_path()
        conn = open_db(active, query_only=True)
        try:
            rows = migrations.history_rows(conn)
        finally:
            conn.close()
        lines = [f"{r['applied_at']}  {r['file']}  {r['execution_time_ms']} ms" for r in rows]
        return Result(
            "history", "\n".join(lines) or f"{active.name} has no migration history", data={"migrations": rows}
        )

    def check(self) -> Result:
        """The integrity monitor on the active file (see monitor.py); exit 3 when it finds anything."""
        return monitor.run(self.config, self.active_path())

    def path(self) -> Result:
        path = self.active_path()
        return Result("path", str(path), data={"path": str(path)})


def _read_only(path: Path) -> apsw.Connection:
    """A connection that leaves nothing behind: status writes nothing. With no -wal/-shm no
    connection has the file open and the file alone is the database (an immutable open creates
    no side file); otherwise a query-only one, whose close removes them if it is the last."""
    if not any(Path(f"{path}{side}").exists() for side in ("-wal", "-shm")):
        return open_db(readonly_uri(path) + "&immutable=1", readonly=True)
    return open_db(path, query_only=True)


def conflict_lines(conflict: dict) -> list[str]:
    """The rows that stopped the last cutover: green's schema rejects them (issue 10, item 8)."""
    lines = []
    for item in conflict.get("conflicts", []):
        values = ", ".join(f"{c}={v}" for c, v in (item.get("values") or {}).items())
        lines.append(
            f"conflict    table {item['table']!r} key {item['key']!r}: {item['constraint']}"
            + (f" (values: {values})" if values else "")
        )
    if conflict and not conflict.get("conflicts"):
        lines.append(f"conflict    {conflict.get('error', 'a replayed batch breaks a constraint of green')}")
    return lines


def _missing_next_step(state, missing: list[str], gone: list[tuple[str, str, str]], past_fence: bool) -> str:
    """The `next` line when a file is gone: what the problem line says to do, and never `abort`
    once blue is fenced (abort refuses then)."""
    if state.phase == Phase.CUT_OVER and missing == [state.blue]:
        return f"restore {state.blue} from a backup to keep revert possible, or bluegreen finalize"
    if past_fence and state.green in missing:
        return (
            f"restore {state.green} from a backup (blue is fenced, so abort refuses and green holds the "
            "latest writes), then bluegreen resume"
        )
    if gone and missing == [gone[0][1]]:
        return gone[0][2]
    return "restore the missing file (see the error below)"


def conflict_next_step(conflict: dict) -> str:
    source = Path(conflict.get("source", "blue")).name
    return (
        f"fix the conflicting row(s) on {source} (green's new constraints reject them), then bluegreen cutover; "
        "or bluegreen abort"
    )
