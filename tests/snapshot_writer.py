"""A writer process for the snapshot tests: random inserts, updates and deletes on `items`, each
transaction also appending its effect to `history`, so the state at any history seq can be rebuilt.

    python tests/snapshot_writer.py DB SEED STOP_FILE [COUNT]

A small wal_autocheckpoint makes it checkpoint (and restart the WAL) often, while copies run.
"""

from __future__ import annotations

import os
import random
import sys

import apsw


def write_one(conn: apsw.Connection, rng: random.Random) -> None:
    conn.execute("BEGIN IMMEDIATE")
    top = conn.execute("SELECT max(id) FROM items").get or 1
    target = conn.execute("SELECT id FROM items WHERE id >= ? ORDER BY id LIMIT 1", (rng.randint(1, top),)).get
    roll = rng.random()
    payload = rng.randbytes(rng.randrange(10, 3000))
    if roll < 0.5 or target is None:
        conn.execute("INSERT INTO items(payload) VALUES (?)", (payload,))
        conn.execute("INSERT INTO history(op, item_id, payload) VALUES ('insert', last_insert_rowid(), ?)", (payload,))
    elif roll < 0.85:
        conn.execute("UPDATE items SET payload = ? WHERE id = ?", (payload, target))
        conn.execute("INSERT INTO history(op, item_id, payload) VALUES ('update', ?, ?)", (target, payload))
    else:
        conn.execute("DELETE FROM items WHERE id = ?", (target,))
        conn.execute("INSERT INTO history(op, item_id, payload) VALUES ('delete', ?, NULL)", (target,))
    conn.execute("COMMIT")


def main(db: str, seed: int, stop: str, count: int) -> None:
    conn = apsw.Connection(db)
    conn.set_busy_timeout(30_000)
    conn.execute("PRAGMA wal_autocheckpoint = 16").get
    rng = random.Random(seed)
    done = 0
    while not os.path.exists(stop) and done != count:
        write_one(conn, rng)
        done += 1
    conn.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else -1)
