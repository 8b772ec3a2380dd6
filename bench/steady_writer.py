"""A writer process for the benchmarks: the demo application's write mix at a steady rate.

    python bench/steady_writer.py DB LOG STOP_FILE [INTERVAL_S]

Writes one realistic v1.2.1 change (demo_data.random_v1_write) every INTERVAL seconds until
STOP_FILE exists, and logs each write's wait in ms, one per line, so the benchmark can tell
whether a copy slowed the application down.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import apsw  # noqa: E402

from bluegreen.tools import demo_data  # noqa: E402


def main(db: str, log: str, stop: str, interval: float) -> None:
    conn = apsw.Connection(db, flags=apsw.SQLITE_OPEN_READWRITE)
    conn.set_busy_timeout(60_000)
    rng = random.Random(os.getpid())
    waits = []
    while not os.path.exists(stop):
        started = time.perf_counter()
        demo_data.random_v1_write(conn, rng)
        waits.append((time.perf_counter() - started) * 1000)
        time.sleep(interval)
    conn.close()
    Path(log).write_text("".join(f"{w:.3f}\n" for w in waits))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]) if len(sys.argv) > 4 else 0.005)
