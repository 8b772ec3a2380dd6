"""The sample log: what the application's statements cost, per query shape and generation, as the
clients measured them (`bluegreen.client` writes it; `bluegreen watch` and `cutover --watch` read it).

One file per client process, `<pointer folder>/.bluegreen/samples/<host>-<pid>.jsonl`, never the
application's database (a write there would be captured and carried back). Each line is one flush
(about a second of traffic): its time span and, per generation, per query shape, the statements'
count, errors, total and maximum time, slow (> 100 ms) and very slow (> 500 ms) counts, and a
latency histogram in fixed quarter-octave buckets, so histograms of any lines, processes or spans
add up exactly and a percentile is known to within one bucket (±12 %).

The size is bounded: a file that would grow past its bound is compacted (lines merged into
coarser time spans, exact; then the oldest spans dropped) to half of it, so a process's log
stays under `max_bytes` however long it runs; logs untouched for `KEEP_S` are deleted by the next
process that starts sampling. Plain appends, never fsynced: losing the last second to a power cut
only loses samples.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from bluegreen.files.layout import STATE_DIR, folder_mode, make_dirs

FORMAT = 1
SAMPLES_DIR = "samples"
DEFAULT_MAX_BYTES = 256 * 1024  # per process: ~10 minutes of 20 busy shapes at full resolution, then coarser
KEEP_S = 7 * 86_400  # a log no process has written for a week is deleted
SLOW_NS = 100_000_000  # the migration plan's "slow" (> 100 ms) and "very slow" (> 500 ms)
VERY_SLOW_NS = 500_000_000
OTHER_SHAPE = "(other shapes)"  # where statements go past a process's shape limit


def bucket(ns: int) -> int:
    """The histogram bucket of a duration: 4 buckets per power of two (quarter octaves)."""
    if ns < 8:
        return max(ns, 0)
    bits = ns.bit_length()
    return (bits - 1) * 4 + ((ns >> (bits - 3)) & 3)


def bucket_bounds(index: int) -> tuple[int, int]:
    """[low, high) in ns of a bucket."""
    if index < 8:
        return index, index + 1
    octave, sub = divmod(index, 4)
    low = (4 + sub) << (octave - 2)
    return low, low + (1 << (octave - 2))


@dataclass
class ShapeStats:
    """One shape's statements over some span; adding two is exact."""

    count: int = 0
    errors: int = 0
    total_ns: int = 0
    max_ns: int = 0
    slow: int = 0
    very_slow: int = 0
    hist: dict[int, int] = field(default_factory=dict)

    def add(self, other: ShapeStats) -> None:
        self.count += other.count
        self.errors += other.errors
        self.total_ns += other.total_ns
        self.max_ns = max(self.max_ns, other.max_ns)
        self.slow += other.slow
        self.very_slow += other.very_slow
        for index, n in other.hist.items():
            self.hist[index] = self.hist.get(index, 0) + n

    @property
    def timed(self) -> int:
        """Statements with a duration (errors are counted, not timed)."""
        return sum(self.hist.values())

    def percentile(self, p: float) -> float | None:
        """The p-th percentile in ms (bucket midpoint, capped at the maximum seen); None if nothing was timed."""
        total = self.timed
        if not total:
            return None
        rank, seen = p / 100 * total, 0
        for index in sorted(self.hist):
            seen += self.hist[index]
            if seen >= rank:
                low, high = bucket_bounds(index)
                return min((low + high) / 2, self.max_ns) / 1e6
        return self.max_ns / 1e6

    def encode(self) -> list:
        return [self.count, self.errors, self.total_ns, self.max_ns, self.slow, self.very_slow, self.hist]

    @classmethod
    def decode(cls, raw: list) -> ShapeStats:
        count, errors, total, most, slow, very_slow, hist = raw
        return cls(
            int(count),
            int(errors),
            int(total),
            int(most),
            int(slow),
            int(very_slow),
            {int(k): int(v) for k, v in hist.items()},
        )


@dataclass
class Span:
    """One line of a log: statements between t0 and t1 (Unix time), per generation, per shape."""

    t0: float
    t1: float
    files: dict[int, str]  # generation -> its file name
    shapes: dict[int, dict[str, ShapeStats]]  # generation -> shape -> stats

    def encode(self) -> str:
        gens = {
            str(g): {"file": self.files.get(g, ""), "shapes": {s: st.encode() for s, st in shapes.items()}}
            for g, shapes in self.shapes.items()
        }
        return json.dumps({"format": FORMAT, "t0": self.t0, "t1": self.t1, "generations": gens}, separators=(",", ":"))

    @classmethod
    def decode(cls, line: str) -> Span | None:
        try:
            raw = json.loads(line)
            files, shapes = {}, {}
            for g, entry in raw["generations"].items():
                files[int(g)] = str(entry["file"])
                shapes[int(g)] = {str(s): ShapeStats.decode(st) for s, st in entry["shapes"].items()}
            return cls(float(raw["t0"]), float(raw["t1"]), files, shapes)
        except (ValueError, KeyError, TypeError, AttributeError):
            return None  # a line cut short by a crash, or not ours

    def merge(self, other: Span) -> None:
        self.t0, self.t1 = min(self.t0, other.t0), max(self.t1, other.t1)
        self.files.update(other.files)
        for g, shapes in other.shapes.items():
            mine = self.shapes.setdefault(g, {})
            for shape, stats in shapes.items():
                mine.setdefault(shape, ShapeStats()).add(stats)


def samples_dir(pointer_path: Path) -> Path:
    return Path(pointer_path).resolve().parent / STATE_DIR / SAMPLES_DIR


def read_spans(pointer_path: Path) -> list[Span]:
    """Every span of every process's log, oldest first."""
    folder = samples_dir(pointer_path)
    try:
        names = sorted(n for n in os.listdir(folder) if n.endswith(".jsonl") and not n.startswith("."))
    except (FileNotFoundError, NotADirectoryError):
        return []
    spans = []
    for name in names:
        try:
            text = (folder / name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        spans += [s for s in map(Span.decode, text.splitlines()) if s is not None]
    return sorted(spans, key=lambda s: s.t1)


class Log:
    """One process's log file: append a span, compacting first when the file would pass max_bytes."""

    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES, mode: int = 0o600):
        self.path = path
        self.max_bytes = max_bytes
        self.mode = mode

    def append(self, span: Span) -> None:
        line = span.encode() + "\n"
        make_dirs(self.path.parent, folder_mode(self.mode))
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            size = 0
        if size + len(line) > self.max_bytes:
            self._compact(line)
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, self.mode)
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)

    def _compact(self, line: str) -> None:
        """Rewrite the log, with the new line, into at most half its bound: neighbouring spans
        merged into ever coarser ones (exact), then, if that is not enough, the oldest dropped."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            text = ""
        spans = [s for s in map(Span.decode, (text + line).splitlines()) if s is not None]
        budget = self.max_bytes // 2
        while len(spans) > 1 and sum(len(s.encode()) + 1 for s in spans) > budget:
            merged = []
            for i in range(0, len(spans) - 1, 2):  # the newest span stays at full resolution
                first, second = spans[i], spans[i + 1]
                first.merge(second)
                merged.append(first)
            if len(spans) % 2:
                merged.append(spans[-1])
            if len(merged) == len(spans):
                break
            spans = merged
        while spans and sum(len(s.encode()) + 1 for s in spans) > budget:
            spans.pop(0)
        temp = self.path.with_name(f".{self.path.name}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, self.mode)
        try:
            os.write(fd, "".join(s.encode() + "\n" for s in spans).encode("utf-8"))
        finally:
            os.close(fd)
        os.replace(temp, self.path)


def expire(pointer_path: Path, keep_s: float = KEEP_S) -> None:
    """Delete logs nobody has written for keep_s (their processes are long gone)."""
    folder = samples_dir(pointer_path)
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        try:
            if entry.name.endswith(".jsonl") and now - entry.stat().st_mtime > keep_s:
                os.unlink(entry.path)
        except OSError:
            pass
