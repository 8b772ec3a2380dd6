"""Per-write cost of the WITHOUT ROWID capture key expression alone: quote() (the encoding before
NUL-holding text was spelled CAST(X'..' AS TEXT)) against capture's current one, in the same run,
alternating; 200k inserts and 200k updates in one transaction on an in-memory table with a
composite (text, integer) key, a trigger inserting the key per row, and no trigger as a floor.

    python bench/key_encoding.py [--rows 200000] [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import apsw

from bluegreen.engine.keys import _quoted_key_value


def quote_only(value: str) -> str:
    return f"quote({value})"


def us_per_write(encode, rows: int) -> float:
    conn = apsw.Connection(":memory:")
    conn.execute(
        "CREATE TABLE t(a TEXT, b INTEGER, v, PRIMARY KEY(a, b)) WITHOUT ROWID;"
        "CREATE TABLE cap(seq INTEGER PRIMARY KEY, key)"
    )
    if encode is not None:
        key = encode("NEW.a") + " || ',' || " + encode("NEW.b")
        conn.execute(
            f"CREATE TRIGGER ti AFTER INSERT ON t BEGIN INSERT INTO cap(key) VALUES ({key}); END;"
            f"CREATE TRIGGER tu AFTER UPDATE ON t BEGIN INSERT INTO cap(key) VALUES ({key}); END;"
        )
    data = [(f"user-session-{i:08d}", i, "x") for i in range(rows)]
    start = time.perf_counter()
    with conn:
        conn.executemany("INSERT INTO t VALUES (?, ?, ?)", data)
        conn.execute("UPDATE t SET v = 'y'")
    return (time.perf_counter() - start) / (2 * rows) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    found = {"no trigger": [], "quote()": [], "now": []}
    for _ in range(args.runs):
        for name, encode in (("no trigger", None), ("quote()", quote_only), ("now", _quoted_key_value)):
            found[name].append(us_per_write(encode, args.rows))
    for name, runs in found.items():
        print(f"  {name:<11} {statistics.median(runs):.3f} us/write (min {min(runs):.3f}, max {max(runs):.3f})")
    old, new = statistics.median(found["quote()"]), statistics.median(found["now"])
    print(f"  now / quote()  {new / old:.3f} x, +{new - old:.3f} us per captured write")


if __name__ == "__main__":
    main()
