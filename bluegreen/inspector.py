"""Read-only commands: status, plan, history, path, check. They take no lock and change nothing."""

from __future__ import annotations

from pathlib import Path

from bluegreen import estimate, migrations, monitor, pointer, registry
from bluegreen.config import Config
from bluegreen.db import open_db
from bluegreen.errors import BluegreenError, InputError
from bluegreen.results import Result
from bluegreen.store import Store

NEXT_STEP = {
    "preparing": "an interrupted prepare: bluegreen resume, or bluegreen abort",
    "prepared": "bluegreen cutover (or abort)",
    "cutting_over": "an interrupted cutover: bluegreen resume, or bluegreen abort",
    "cut_over": "bluegreen finalize to keep it, or bluegreen revert",
    "reverting": "an interrupted revert: bluegreen resume",
}


class Inspector:
    def __init__(self, config: Config):
        self.config = config
        self.store = Store(config.database.pointer)

    def active_path(self) -> Path:
        """The file the pointer names; a missing one is an error, never a new empty database."""
        path = pointer.read(self.config.database.pointer).active_path(self.config.database.pointer)
        if not path.is_file():
            raise InputError(
                f"{path}: active generation not found (named by {self.config.database.pointer}); restore "
                "the file, or point `active` at an existing generation"
            )
        return path

    def pending(self, active: Path) -> list[migrations.Migration]:
        found = migrations.discover(self.config.migrations.dir)
        conn = open_db(active, query_only=True)
        try:
            return migrations.pending(found, conn)
        finally:
            conn.close()

    def status(self) -> Result:
        current = pointer.read(self.config.database.pointer)
        state = self.store.load()
        active = self.active_path()
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
            data["pending"] = [m.file for m in self.pending(active)]
        except BluegreenError as exc:
            data["pending_error"] = exc.message
        in_flight = state.green if state.phase in ("preparing", "prepared", "cutting_over") else ""
        clients = registry.live_clients(self.config.database.pointer)
        behind = [c for c in clients if any(f.file not in (current.active, in_flight) for f in c.files)]
        data["clients"] = [c.as_dict() for c in clients]
        data["clients_behind"] = [c.as_dict() for c in behind]  # still on a file the pointer moved away from
        idle_next = "bluegreen deploy (or prepare, then cutover)" if data["pending"] else "nothing pending"
        data["next"] = NEXT_STEP.get(state.phase, idle_next)
        lines = [
            f"active      {active} (generation {current.generation}, schema {current.schema_version})",
            f"phase       {state.phase}" + (f" ({state.operation}: {state.step})" if state.operation else ""),
        ]
        if data["previous"]:
            lines.append(f"previous    {data['previous']}")
        if state.green:
            lines.append(f"green       {data['green']} (generation {state.green_generation})")
        lines.append("pending     " + (", ".join(data["pending"]) or data.get("pending_error", "none")))
        if clients:
            lines.append(f"clients     {len(clients)} live process(es), {len(behind)} on another file than {current.active}")
        for c in behind:
            files = ", ".join(f"{f.file} (generation {f.generation})" for f in c.files if f.file != current.active)
            lines.append(f"  behind    {c.name} on {files}: it moves at its next statement outside a transaction")
        lines.append("next        " + data["next"])
        return Result("status", "\n".join(lines), data=data)

    def plan(self) -> Result:
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
        return Result("plan", "\n".join(lines), data=data)

    def history(self) -> Result:
        active = self.active_path()
        conn = open_db(active, query_only=True)
        try:
            rows = migrations.history_rows(conn)
        finally:
            conn.close()
        lines = [f"{r['applied_at']}  {r['file']}  {r['execution_time_ms']} ms" for r in rows]
        return Result("history", "\n".join(lines) or f"{active.name} has no migration history", data={"migrations": rows})

    def check(self) -> Result:
        """The integrity monitor on the active file (see monitor.py); exit 3 when it finds anything."""
        return monitor.run(self.config, self.active_path())

    def path(self) -> Result:
        path = self.active_path()
        return Result("path", str(path), data={"path": str(path)})
