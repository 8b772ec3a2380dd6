"""Closing the revert window (finalize) and removing retired generations (prune).

Both refuse while a process still has the file open: the one thing that must not happen is a
file deleted or its window closed under a reader or writer that still uses it.
"""

from __future__ import annotations

from bluegreen.config import Config
from bluegreen.engine import barrier, capture
from bluegreen.errors import WrongPhase
from bluegreen.files import pointer
from bluegreen.files.journal import Phase, Step, Store
from bluegreen.lifecycle import fences
from bluegreen.lifecycle.run import IDLE, Run
from bluegreen.reports import holders, retention
from bluegreen.results import Result


class Closing:
    def __init__(self, config: Config, store: Store):
        self.config = config
        self.store = store

    def finalize(self, run: Run, force: bool = False) -> Result:
        state = run.state
        if state.phase == Phase.IDLE:
            return Result("finalize", "nothing to finalize")
        if state.phase != Phase.CUT_OVER:
            raise WrongPhase(f"nothing to finalize (phase {state.phase})")
        blue_gone = not (self.store.folder / state.blue).is_file()  # deleted in the revert window
        if not blue_gone:
            fences.check_intact(self.store, "finalize", state.blue)
        users = holders.users_of(self.config.database.pointer, self.store.folder / state.blue)
        if users and not force:
            holders.refuse_if_used(
                users,
                self.store.folder / state.blue,
                "finalize refused",
                "run finalize again once they have closed it (`bluegreen status` lists them), or "
                "`bluegreen finalize --force`",
            )
        if users:
            self.store.log("finalize_forced", clients=[c.name for c in users.clients], **_processes(users))
        green = self.store.folder / state.green
        run.journal(operation="finalize", step=Step.CLOSING)  # repeatable: finalize again
        with barrier.holding(green, self.config.cutover.lock_timeout_ms) as conn:
            capture.remove_capture(conn)
        kept = state.blue
        if blue_gone:
            return self._finalized_without_blue(run)
        run.journal(**IDLE)
        return Result(
            "finalize",
            f"finalized: the revert window is closed; {kept} stays on disk, fenced",
            data={"kept": str(self.store.folder / kept)},
        )

    def _finalized_without_blue(self, run: Run) -> Result:
        """Blue was deleted in the revert window: nothing could be reverted to anyway, so the window
        closes (green keeps no capture) and the fence record of the missing file is forgotten."""
        state = run.state
        blue = self.store.folder / state.blue
        state.fences.pop(state.blue, None)
        self.store.log("finalize_blue_missing", file=state.blue)
        run.journal(**IDLE)
        return Result(
            "finalize",
            f"finalized: the revert window is closed; {blue} was already gone (deleted "
            "during the revert window), so there is no previous file to keep",
            data={"kept": None, "blue_missing": str(blue)},
        )

    def prune(self, names: list[str], dry_run: bool, force: bool = False) -> Result:
        with self.store.locked():
            state = self.store.load()
            retention.check_phase(state)
            keep_days = self.config.retention.keep_days
            active = pointer.read(self.config.database.pointer).active
            kept = retention.inventory(self.store, state, active, keep_days)
            chosen = retention.choose(kept, names, keep_days, self.store.folder)
            forced = {}
            for item in chosen:  # every check before the first removal: all of it, or nothing
                users = retention.check_unused(self.config.database.pointer, self.store.folder / item.name, force)
                if users:
                    forced[item.name] = {"clients": [c.name for c in users.clients], **_processes(users)}
                fences.check_intact(self.store, "prune", item.name)
            if not dry_run:
                for item in chosen:
                    if item.name in forced:
                        self.store.log("prune_forced", file=item.name, **forced[item.name])
                    retention.remove(self.store, state, item)
            result = retention.prune_result(chosen, kept, keep_days, dry_run)
            result.data["forced"] = forced  # with --force: who still had each file open
            return result


def _processes(users: holders.Users) -> dict:
    return {"processes": [p.describe() for p in users.processes]}
