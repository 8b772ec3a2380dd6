"""The write-pause budget: how many captured changes can be replayed while writers wait.

Cutover takes the barrier only when the backlog fits the budget (invariant 3). The replay rate is
measured on the catch-up batches of this very run, so the estimate is this machine's and this
workload's, not a constant.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bluegreen.replay import BatchResult

ASSUMED_ROWS_PER_SECOND = 20_000.0  # before any batch was measured: deliberately modest
SAFETY = 0.5  # spend at most half the budget on replay; fencing and commit take the rest


@dataclass
class PauseBudget:
    max_pause_ms: int
    changes: int = 0
    seconds: float = 0.0
    pauses_ms: list[float] = field(default_factory=list)

    def observe(self, batches: list[BatchResult]) -> None:
        for batch in batches:
            self.changes += batch.changes
            self.seconds += batch.seconds

    @property
    def rows_per_second(self) -> float:
        if self.changes < 100 or self.seconds <= 0:
            return ASSUMED_ROWS_PER_SECOND
        return self.changes / self.seconds

    def rows_within(self, fraction: float = 1.0) -> int:
        """The backlog that can be replayed within `fraction` of the budget (at least one row)."""
        return max(1, int(self.rows_per_second * self.max_pause_ms / 1000 * SAFETY * fraction))
