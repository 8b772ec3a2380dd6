"""One command's run: its journal, its crash points, its timed steps, its hook runs and the swap.

The controller makes one Run per command and hands it to the parts (builder, cutover, revert,
the gate runner); they journal and time their steps through it and never call back up into the
controller. A Controller is therefore reusable: nothing of one command stays for the next.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bluegreen.files import pointer
from bluegreen.files.journal import Phase, State, Step, Store
from bluegreen.files.layout import file_mode
from bluegreen.gates.hooks import HookRun
from bluegreen.results import Timed, Timer, Timing

CRASH_AT = "BLUEGREEN_CRASH_AT"

IDLE = dict(
    phase=Phase.IDLE,
    operation="",
    step=Step.NONE,
    blue="",
    blue_generation=0,
    green="",
    green_generation=0,
    target_version="",
    started_at="",
    conflict={},
)  # nothing in flight


class Run:
    def __init__(self, store: Store):
        self.store = store
        self._state: State | None = None
        self.timings: list[Timing] = []
        self.hook_runs: list[HookRun] = []

    @property
    def state(self) -> State:
        """The journal as this command found it under the controller lock, and as it changed it:
        every step journals this one object, so it is what state.json holds."""
        if self._state is None:
            self._state = self.store.load()
        return self._state

    def journal(self, **changes: object) -> None:
        """Record a step: apply `changes` to the state, save it atomically, then the crash point."""
        for key, value in changes.items():
            setattr(self.state, key, value)
        self.store.save(self.state)
        crash_point(f"{self.state.operation}:{self.state.step}")

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Time a step for the report and the event log (only when it ends normally)."""
        clock = Timer()
        yield
        self.timings.append(Timing(str(name), clock.ms))
        self.store.log("phase", phase=str(name), duration_ms=clock.ms)

    def hook_ran(self, run: HookRun) -> None:
        """A hook ran: reported among the timed steps, and its outcome in the result."""
        self.timings.append(Timing(f"{run.event} hook", run.duration_ms))
        self.hook_runs.append(run)

    def swap(self, pointer_path: Path, target: Path, generation: int, version: str, previous: Path) -> None:
        """Point applications at `target`: the one atomic rename every command's story ends in."""
        with self.timed(Timed.SWAP):
            pointer.write(
                pointer_path,
                pointer.Pointer(target.name, generation, version, previous.name, pointer.now_iso()),
                mode=file_mode(target),
            )
            self.store.log(
                "swap", active=target.name, previous=previous.name, generation=generation, schema_version=version
            )  # `previous` retires now: retention counts its age from here


def crash_point(name: str) -> None:
    """Test hook for crash injection: BLUEGREEN_CRASH_AT=operation:step kills this process with
    SIGKILL right after that step is journaled, exactly as `kill -9` would."""
    if os.environ.get(CRASH_AT) == name:
        os.kill(os.getpid(), signal.SIGKILL)
