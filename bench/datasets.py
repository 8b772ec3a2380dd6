"""Generated blue files, cached in bench/results/ between runs.

Generating a 1 GB blue takes minutes; the cache key is the row count and a hash of the
generator's source, so a changed generator never serves a stale file. Callers get a fresh
copy (a file they may write to), never the cached original.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = HERE / "results"
sys.path.insert(0, str(REPO))

from bluegreen.tools import demo_data

# The demo's v1.2.1 rows that make a blue of about this size (bench/latency.py, bench/replication.py).
ROWS_FOR_SIZE = {"100mb": 147_000, "1gb": 1_470_000}

# A project on the shipped example, the pause budget at its default (format with schemas=...).
DEMO_CONFIG = """\
[database]
pointer = "data/current.toml"
initial = "data/app.db"
[migrations]
dir = "{schemas}"
[cutover]
max_write_pause_ms = 100
"""


def generator_version() -> str:
    return hashlib.sha256(Path(demo_data.__file__).read_bytes()).hexdigest()[:12]


def cached_blue(rows: int) -> Path:
    """The cached v1.2.1 file with `rows` content rows, generated once (checkpointed, WAL mode)."""
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"blue-{rows}-{generator_version()}.db"
    if not path.exists():
        partial = CACHE / f"{path.name}.partial"
        for leftover in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
            leftover.unlink(missing_ok=True)
        demo_data.create_v1_database(str(partial), rows=rows)  # closing checkpoints: no -wal left
        os.replace(partial, path)
    return path


def fresh_blue(rows: int, target: Path) -> Path:
    """A private copy of the cached file at target (its folder is created), already on disk.

    The copy is synced before it is returned: otherwise the kernel writes its hundreds of MB of
    dirty pages back some 30 s later (dirty_expire), in the middle of whatever is being timed, and
    idle writers' commits wait hundreds of ms behind it.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cached_blue(rows), target)
    with open(target, "rb+") as copy:
        os.fsync(copy.fileno())
    os.sync()
    return target


if __name__ == "__main__":
    for count in sys.argv[1:]:
        print(cached_blue(int(count)), flush=True)
