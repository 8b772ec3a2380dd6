"""`cutover --watch DURATION [--auto-revert]` (and deploy): after the swap, watch the application's
traffic on the new generation against the previous one's (reports/watch.py, from the samples the
clients write) for DURATION, checking about once a second. A crossed threshold ends the watch at
once: with --auto-revert the controller runs `revert` itself (its usual refusals stand: a revert
that would lose writes refuses with exit 5, the on-failure hook pages, nothing is forced), else
the report recommends it. The outcome is logged (event `watch`), handed to the post-watch hook,
and exits 7 when the watch saw a regression (reverted or not; `reverted` in --json says which).

The watch holds no lock: the application writes on, and a person may run `bluegreen revert`
meanwhile (the watch sees the pointer move and stops).
"""

from __future__ import annotations

import time

from bluegreen.config import Config
from bluegreen.errors import EXIT_AFTER_HOOK, EXIT_REGRESSED, BluegreenError
from bluegreen.files import pointer
from bluegreen.files.journal import Store
from bluegreen.gates.runner import GateRunner
from bluegreen.lifecycle.run import Run
from bluegreen.reports import watch as compare
from bluegreen.results import Result

TICK_S = 1.0  # how often the watch reads the samples (the clients flush about once a second)


class Watch:
    def __init__(self, config: Config, store: Store, gates: GateRunner):
        self.config = config
        self.store = store
        self.gates = gates

    def observe(self, generation: int, previous: int | None, duration_s: float) -> tuple[compare.WatchReport, bool]:
        """Compare until duration_s is over or a threshold is crossed; (the last report, whether
        the pointer still names `generation`). The report's watched_s says how long it took."""
        limits = compare.thresholds(self.config, self.gates.environment)
        window = max(float(limits.window_s), duration_s)
        started = time.monotonic()
        deadline = started + duration_s
        self.store.log("watch_started", generation=generation, previous=previous, duration_s=duration_s)
        while True:
            time.sleep(max(0.0, min(TICK_S, deadline - time.monotonic())))
            found = compare.report(self.config, limits, window, previous, active=generation)
            found.watched_s = round(time.monotonic() - started, 1)
            if not self.still_active(generation):
                return found, False
            if found.verdict == compare.REGRESSED or time.monotonic() >= deadline:
                return found, True

    def still_active(self, generation: int) -> bool:
        return pointer.read(self.config.database.pointer).generation == generation

    def outcome(
        self,
        cut: Result,
        found: compare.WatchReport,
        duration_s: float,
        active: bool,
        auto_revert: bool,
        reverted: Result | None,
    ) -> Result:
        """The cutover's result with what the watch saw and did; exit 7 on a regression."""
        generation = cut.data["generation"]
        data = {**cut.data, "watch": found.as_dict(), "reverted": reverted is not None}
        head = f"{cut.message}\nwatch ({found.watched_s:g} of {duration_s:g} s): {found.line()}"
        result = Result(cut.command, head, cut.timings, data)
        if reverted is not None:
            data["revert"] = reverted.data
            result.message += f"\nreverted on its own (--auto-revert): {reverted.message}"
            result.exit_code, result.error = (
                EXIT_REGRESSED,
                f"generation {generation} regressed and was reverted: {'; '.join(found.regressions)}",
            )
        elif not active:
            result.message += "\nthe pointer moved during the watch (a revert?); the watch stopped"
        elif found.verdict == compare.REGRESSED:
            result.exit_code, result.error = (
                EXIT_REGRESSED,
                f"generation {generation} regressed: {'; '.join(found.regressions)}; it stands: run "
                "`bluegreen revert` (or watch with --auto-revert)",
            )
        elif found.verdict == compare.NO_VERDICT:
            result.message += "\nno verdict yet: run `bluegreen watch` once more traffic has been sampled"
        self.store.log(
            "watch",
            generation=generation,
            verdict=found.verdict,
            regressions=found.regressions,
            auto_revert=auto_revert,
            reverted=reverted is not None,
        )
        return result

    def refused(self, exc: BluegreenError, found: compare.WatchReport) -> BluegreenError:
        """--auto-revert's revert failed or refused (exit 5: writes would be lost): the new
        generation stands; the error keeps its cause and exit code and says what the watch saw."""
        what = (
            "the automatic revert went through, but"
            if exc.exit_code == EXIT_AFTER_HOOK
            else "the automatic revert did not happen, so the new generation stands:"
        )
        exc.message = (
            f"the watch after the swap saw a regression ({'; '.join(found.regressions)}); {what} {exc.message}"
        )
        exc.details = {**(exc.details if isinstance(exc.details, dict) else {}), "watch": found.as_dict()}
        reverted = exc.exit_code == EXIT_AFTER_HOOK
        self.store.log(
            "watch", verdict=found.verdict, regressions=found.regressions, reverted=reverted, error=exc.message
        )
        return exc

    def post_watch(self, command: str, result: Result, verdict: str, failed: BluegreenError | None = None) -> Result:
        """The post-watch hook, outside the controller lock (it may run `bluegreen revert` itself).
        Its failure is exit 6 only when the watch itself ended well; else it is added to the message."""
        run = Run(self.store)
        versions = (result.data.get("schema_version", ""), result.data.get("schema_version", ""))
        if failed is not None:
            result = Result(command, failed.message, data={}, exit_code=failed.exit_code)
        try:
            return self.gates.post_hook(run, "post-watch", command, run.state, versions, result, verdict)
        except BluegreenError as exc:
            if result.exit_code == 0 and failed is None:
                raise
            note = f" (the post-watch hook also failed: {exc.message})"
            if failed is not None:
                failed.message += note
            else:
                result.error += note
            return result
