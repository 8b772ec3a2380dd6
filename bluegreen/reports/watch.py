"""After the swap: the active generation's traffic compared with the previous one's, from the
sample log the clients keep (files/samples.py), as the migration plan's post_migration_performance
report. Read-only; `bluegreen watch` prints it and `cutover --watch` (lifecycle/watch.py) acts on it.

Honest statistics: no verdict from too few samples. A shape's p95 is compared only when it has
`min_samples` timed statements on both generations; the error rate only when the new generation
ran `min_statements`; every comparison says how many samples it used. A shape seen on one
generation only (new SQL in the new release) is listed, not compared. The thresholds and why
their defaults are what they are: docs/design.md, "After the swap".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bluegreen.config import Config, WatchConfig
from bluegreen.errors import EXIT_REGRESSED, ArgumentInvalid
from bluegreen.files import pointer, samples
from bluegreen.gates import environments
from bluegreen.results import Result

REGRESSED, HEALTHY, NO_VERDICT = "regressed", "healthy", "no verdict"


def thresholds(config: Config, environment: str | None) -> WatchConfig:
    """The chosen environment's [environments.NAME.watch] (over [watch]), else [watch]."""
    chosen = environments.select(config, environment)
    return chosen.watch if chosen is not None and chosen.watch is not None else config.watch


@dataclass
class Side:
    """One generation's statements in the window."""

    generation: int
    file: str
    shapes: dict[str, samples.ShapeStats] = field(default_factory=dict)
    first: float = 0.0  # Unix time of its first and last samples in the window
    last: float = 0.0

    @property
    def total(self) -> samples.ShapeStats:
        out = samples.ShapeStats()
        for stats in self.shapes.values():
            out.add(stats)
        return out


@dataclass
class ShapeVerdict:
    shape: str
    new: samples.ShapeStats
    old: samples.ShapeStats | None
    share: float  # of the new generation's statements
    ratio: float | None  # new p95 / max(old p95, min_p95_ms); None: not compared
    verdict: str
    why: str

    def as_dict(self) -> dict:
        return {
            "shape": self.shape,
            "share": round(self.share, 4),
            "new": _summary(self.new),
            "old": _summary(self.old) if self.old else None,
            "p95_ratio": None if self.ratio is None else round(self.ratio, 2),
            "verdict": self.verdict,
            "why": self.why,
        }


@dataclass
class WatchReport:
    new: Side
    old: Side | None
    window_s: float
    limits: WatchConfig
    shapes: list[ShapeVerdict]
    errors_verdict: str
    errors_why: str
    watched_s: float | None = None  # cutover --watch: how long it had watched when this was made

    @property
    def regressions(self) -> list[str]:
        found = [f"error rate: {self.errors_why}"] if self.errors_verdict == REGRESSED else []
        return found + [f"{s.shape}: {s.why}" for s in self.shapes if s.verdict == REGRESSED]

    @property
    def verdict(self) -> str:
        if self.regressions:
            return REGRESSED
        if self.errors_verdict == HEALTHY or any(s.verdict == HEALTHY for s in self.shapes):
            return HEALTHY
        return NO_VERDICT

    @property
    def weighted_p95_ratio(self) -> float | None:
        """The compared shapes' p95 ratios, weighted by their traffic on the new generation."""
        compared = [s for s in self.shapes if s.ratio is not None]
        weight = sum(s.new.count for s in compared)
        return sum(s.ratio * s.new.count for s in compared) / weight if weight else None

    def line(self) -> str:
        """One line: the verdict and the samples it rests on."""
        new, old = self.new.total, self.old.total if self.old else samples.ShapeStats()
        base = (
            f"generation {self.new.generation} ({new.count} statements) against generation "
            f"{self.old.generation} ({old.count} statements)"
            if self.old
            else f"generation {self.new.generation} ({new.count} statements), no previous generation sampled"
        )
        if self.verdict == REGRESSED:
            return f"regressed: {'; '.join(self.regressions)} ({base})"
        compared = sum(1 for s in self.shapes if s.ratio is not None)
        if self.verdict == HEALTHY:
            return f"healthy: no threshold crossed; {compared} shape(s) compared, error rate {self.errors_verdict} ({base})"
        return f"no verdict: too few samples ({self.errors_why}; {compared} shape(s) with enough on both) ({base})"

    def as_dict(self) -> dict:
        new, old = self.new.total, self.old.total if self.old else None
        ratio = self.weighted_p95_ratio
        return {
            "verdict": self.verdict,
            "summary": self.line(),
            "regressions": self.regressions,
            "window_s": self.window_s,
            "watched_s": self.watched_s,
            "active": {"generation": self.new.generation, "file": self.new.file, **_summary(new)},
            "previous": {"generation": self.old.generation, "file": self.old.file, **_summary(old)}
            if self.old
            else None,
            "error_rate": {"verdict": self.errors_verdict, "why": self.errors_why},
            "weighted_p95_ratio": None if ratio is None else round(ratio, 2),
            "thresholds": {
                "max_error_rate": self.limits.max_error_rate,
                "max_p95_ratio": self.limits.max_p95_ratio,
                "min_p95_ms": self.limits.min_p95_ms,
                "min_samples": self.limits.min_samples,
                "min_statements": self.limits.min_statements,
            },
            "post_migration_performance": [s.as_dict() for s in self.shapes],
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _summary(stats: samples.ShapeStats) -> dict:
    ms = _round
    return {
        "queries": stats.count,
        "timed": stats.timed,  # the statements averages, percentiles and slow counts come from
        "errors": stats.errors,
        "error_rate": round(stats.errors / stats.count, 4) if stats.count else None,
        "avg_ms": round(stats.total_ns / stats.timed / 1e6, 3) if stats.timed else None,
        "p50_ms": ms(stats.percentile(50)),
        "p95_ms": ms(stats.percentile(95)),
        "p99_ms": ms(stats.percentile(99)),
        "max_ms": round(stats.max_ns / 1e6, 3),
        "slow": stats.slow,
        "very_slow": stats.very_slow,
    }


# -- reading the log ------------------------------------------------------------------------------
def sides(
    pointer_path: Path, active: int, previous: int | None, window_s: float, since: float | None = None, named=True
) -> tuple[Side, Side | None]:
    """Each generation's last window_s of samples (the new one's only after `since`, if given);
    previous: the other generation whose samples end latest, unless named (by the user: it must
    have samples; by the watch after a cutover, named=False: it may have none yet)."""
    spans = samples.read_spans(pointer_path)
    ends: dict[int, float] = {}
    for span in spans:
        for g in span.shapes:
            ends[g] = max(ends.get(g, 0.0), span.t1)
    if previous is None:
        others = [g for g in ends if g != active]
        previous = max(others, key=lambda g: ends[g]) if others else None
    elif previous == active:
        raise ArgumentInvalid(f"--previous {previous} is the active generation; name the one to compare it with")
    elif previous not in ends and named:
        raise ArgumentInvalid(
            f"{samples.samples_dir(pointer_path)}: no samples of generation {previous}; "
            f"sampled: {', '.join(map(str, sorted(ends))) or 'none'}"
        )
    return _side(spans, active, ends, window_s, since), (
        _side(spans, previous, ends, window_s, None) if previous is not None else None
    )


def _side(spans: list[samples.Span], generation: int, ends: dict[int, float], window_s: float, since) -> Side:
    side = Side(generation, "")
    cutoff = ends.get(generation, 0.0) - window_s
    for span in spans:
        shapes = span.shapes.get(generation)
        if not shapes or span.t1 < cutoff or (since is not None and span.t1 < since):
            continue
        side.file = span.files.get(generation, side.file)
        side.first = side.first or span.t0
        side.last = max(side.last, span.t1)
        for shape, stats in shapes.items():
            side.shapes.setdefault(shape, samples.ShapeStats()).add(stats)
    return side


# -- comparing ------------------------------------------------------------------------------------
def compare(new: Side, old: Side | None, limits: WatchConfig, window_s: float) -> WatchReport:
    total_new = new.total
    shapes = []
    for shape, stats in sorted(new.shapes.items(), key=lambda kv: -kv[1].count):
        before = old.shapes.get(shape) if old else None
        shapes.append(_shape_verdict(shape, stats, before, total_new.count, limits))
    errors_verdict, errors_why = _error_verdict(total_new, old.total if old else None, limits)
    return WatchReport(new, old, window_s, limits, shapes, errors_verdict, errors_why)


def _shape_verdict(
    shape: str, new: samples.ShapeStats, old: samples.ShapeStats | None, total: int, limits: WatchConfig
) -> ShapeVerdict:
    share = new.count / total if total else 0.0
    if old is None:
        return ShapeVerdict(shape, new, None, share, None, NO_VERDICT, "not run on the previous generation")
    if new.timed < limits.min_samples or old.timed < limits.min_samples:
        why = f"too few samples: {new.timed} new, {old.timed} old (min_samples {limits.min_samples})"
        return ShapeVerdict(shape, new, old, share, None, NO_VERDICT, why)
    new_p95, old_p95 = new.percentile(95), old.percentile(95)
    ratio = new_p95 / max(old_p95, limits.min_p95_ms)
    used = f"p95 {new_p95:.3f} ms against {old_p95:.3f} ms, {new.timed} and {old.timed} samples"
    if ratio > limits.max_p95_ratio:
        floor = f" (the old p95 taken as {limits.min_p95_ms:g} ms)" if old_p95 < limits.min_p95_ms else ""
        return ShapeVerdict(
            shape,
            new,
            old,
            share,
            ratio,
            REGRESSED,
            f"{ratio:.1f}x slower at p95 ({used}){floor}, over {limits.max_p95_ratio:g}x",
        )
    return ShapeVerdict(shape, new, old, share, ratio, HEALTHY, f"{ratio:.2f}x ({used})")


def _error_verdict(new: samples.ShapeStats, old: samples.ShapeStats | None, limits: WatchConfig) -> tuple[str, str]:
    if new.count < limits.min_statements:
        return NO_VERDICT, f"{new.count} statements on the new generation, min_statements {limits.min_statements}"
    rate = new.errors / new.count
    if old is not None and old.count >= limits.min_statements:
        base, against = old.errors / old.count, f"{old.errors} of {old.count} before"
    else:
        base, against = 0.0, f"0 assumed: {old.count if old else 0} statements before, too few to say"
    text = f"{rate:.2%} ({new.errors} of {new.count}) against {base:.2%} ({against})"
    if rate - base > limits.max_error_rate:
        return REGRESSED, f"{text}, up more than {limits.max_error_rate:.2%}"
    return HEALTHY, text


def report(
    config: Config,
    limits: WatchConfig,
    window_s: float | None = None,
    previous: int | None = None,
    since: float | None = None,
    active: int | None = None,
) -> WatchReport:
    """active given (the watch after a cutover): previous is the journal's, sampled or not."""
    pointer_path = config.database.pointer
    generation = active if active is not None else pointer.read(pointer_path).generation
    window = float(window_s or limits.window_s)
    new, old = sides(pointer_path, generation, previous, window, since, named=active is None)
    return compare(new, old, limits, window)


# -- rendering ------------------------------------------------------------------------------------
def render(found: WatchReport) -> str:
    """The migration plan's post_migration_performance report, shape by shape, busiest first."""
    old = found.old
    lines = [
        f"watch       {found.line()}",
        f"window      each generation's last {found.window_s:g} s of samples",
        f"error rate  {found.errors_verdict}: {found.errors_why}",
    ]
    ratio = found.weighted_p95_ratio
    if ratio is not None:
        lines.append(f"p95 ratio   {ratio:.2f}x, weighted by traffic over the compared shapes")
    lines.append(
        f"post_migration_performance (generation {found.new.generation}"
        + (f" against {old.generation}" if old else "")
        + "; ms; slow > 100 ms, very slow > 500 ms)"
    )
    lines.append(
        f"  {'queries':>8} {'errors':>6} {'avg':>8} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8} "
        f"{'slow':>5} {'v.slow':>6} {'old p95':>8}  verdict / shape"
    )
    for s in found.shapes:
        new, was = _summary(s.new), _summary(s.old) if s.old else {}
        cells = [_ms(new[k]) for k in ("avg_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms")]
        lines.append(
            f"  {new['queries']:>8} {new['errors']:>6} {' '.join(f'{c:>8}' for c in cells)} {new['slow']:>5} "
            f"{new['very_slow']:>6} {_ms(was.get('p95_ms')):>8}  {s.verdict}: {s.why}"
        )
        lines.append(f"      {s.shape}")
    if not found.shapes:
        lines.append("  (no statements sampled on this generation in the window)")
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def watch_command(config: Config, environment: str | None, window_s: float | None, previous: int | None) -> Result:
    """`bluegreen watch`: the report, exit 7 when it says regressed."""
    found = report(config, thresholds(config, environment), window_s, previous)
    regressed = found.verdict == REGRESSED
    return Result(
        "watch",
        render(found),
        data=found.as_dict(),
        exit_code=EXIT_REGRESSED if regressed else 0,
        error=("the active generation regressed: " + "; ".join(found.regressions) + "; consider `bluegreen revert`")
        if regressed
        else "",
    )
