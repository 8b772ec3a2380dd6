"""The schema zoo: every table shape SQLite lets a REPLACE delete a row through, and random
inserts, updates, deletes, REPLACEs, UPSERTs and key changes on them.

Data for the tests (tests/test_schema_zoo.py, tests/test_capture_install.py use it in-process) and
for the writer program's `zoo` mode (bluegreen.tools.writer), which applies random_operation one
autocommit statement at a time. Statements a constraint refuses are part of the mix (an
application's failed write).
"""

from __future__ import annotations

import random

import apsw

ODD = 'odd "name" tbl'
ODD_KEY = 'we"ird col'
ODD_UNIQUE = "sp ace"

ZOO_SCHEMA = f"""
CREATE TABLE rowid_alias(id INTEGER PRIMARY KEY, v TEXT, u TEXT UNIQUE);
CREATE TABLE autoinc(id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT, u TEXT UNIQUE);
CREATE TABLE settings(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE intpk(id INT PRIMARY KEY, v TEXT);
CREATE TABLE descpk(id INTEGER PRIMARY KEY DESC, v TEXT);
CREATE TABLE comppk(a TEXT, b INT, v TEXT, PRIMARY KEY(a, b));
CREATE TABLE nokey(a TEXT, b TEXT);
CREATE TABLE wr_single(k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;
CREATE TABLE wr_nocase(k TEXT COLLATE NOCASE PRIMARY KEY, v TEXT) WITHOUT ROWID;
CREATE TABLE wr_comp(a BLOB, b REAL, v TEXT, u TEXT UNIQUE, PRIMARY KEY(a, b)) WITHOUT ROWID;
CREATE TABLE wr_untyped(k PRIMARY KEY, v TEXT) WITHOUT ROWID;
CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT UNIQUE COLLATE NOCASE, name TEXT);
CREATE TABLE members(id INTEGER PRIMARY KEY, email TEXT, name TEXT);
CREATE UNIQUE INDEX members_email ON members(email COLLATE NOCASE);
CREATE TABLE tags(id INTEGER PRIMARY KEY, label TEXT, v TEXT);
CREATE UNIQUE INDEX tags_label ON tags(lower(trim(label)));
CREATE TABLE handles(id INTEGER PRIMARY KEY, handle TEXT, deleted INT NOT NULL DEFAULT 0);
CREATE UNIQUE INDEX handles_live ON handles(handle) WHERE deleted = 0;
CREATE TABLE replacing(id INTEGER PRIMARY KEY, code TEXT UNIQUE ON CONFLICT REPLACE, v TEXT);
CREATE TABLE kv_replace(k TEXT PRIMARY KEY ON CONFLICT REPLACE, v TEXT);
CREATE TABLE defaults(id INTEGER PRIMARY KEY, code TEXT NOT NULL DEFAULT 'none' UNIQUE, v TEXT);
CREATE TABLE "{ODD.replace('"', '""')}"("{ODD_KEY.replace('"', '""')}" TEXT PRIMARY KEY, "{ODD_UNIQUE}" TEXT UNIQUE, v TEXT);
CREATE TABLE gen(id INTEGER PRIMARY KEY, a INT, twice INT GENERATED ALWAYS AS (a * 2) VIRTUAL UNIQUE, v TEXT);
CREATE TABLE gens(id INTEGER PRIMARY KEY, a TEXT, low TEXT GENERATED ALWAYS AS (lower(a)) STORED UNIQUE);
CREATE TABLE parents(id INTEGER PRIMARY KEY, code TEXT UNIQUE);
CREATE TABLE children(id INTEGER PRIMARY KEY, pid INT REFERENCES parents(id) ON DELETE CASCADE,
                      pcode TEXT REFERENCES parents(code) ON UPDATE CASCADE ON DELETE SET NULL);
"""

ZOO_SEED = f"""
INSERT INTO rowid_alias VALUES (1, 'one', 'u1'), (2, 'two', 'u2'), (3, 'three', 'u3');
INSERT INTO autoinc(v, u) VALUES ('one', 'u1'), ('two', 'u2'), ('three', 'u3');
INSERT INTO settings VALUES ('a', '1'), ('b', '2'), ('c', '3');
INSERT INTO intpk VALUES (1, 'one'), (2, 'two'), (3, 'three');
INSERT INTO descpk VALUES (1, 'one'), (2, 'two'), (3, 'three');
INSERT INTO comppk VALUES ('a', 1, 'a1'), ('a', 2, 'a2'), ('b', 1, 'b1');
INSERT INTO nokey VALUES ('a', '1'), ('b', '2');
INSERT INTO wr_single VALUES ('a', '1'), ('b', '2'), ('c', '3');
INSERT INTO wr_nocase VALUES ('a', '1'), ('b', '2'), ('c', '3');
INSERT INTO wr_comp VALUES (x'00', 1.5, 'x', 'u1'), (x'01ff', 0.0, 'y', 'u2'), (x'01ff', 2.0, 'z', 'u3');
INSERT INTO wr_untyped VALUES (1, 'int one'), ('1', 'text one'), (x'31', 'blob one'), (2.5, 'real');
INSERT INTO users VALUES (1, 'ann@example.com', 'Ann'), (2, 'bob@example.com', 'Bob'), (3, 'cy@example.com', 'Cy');
INSERT INTO members VALUES (1, 'ann@example.com', 'Ann'), (2, 'bob@example.com', 'Bob'), (3, 'cy@example.com', 'Cy');
INSERT INTO tags VALUES (1, 'Red', 'r'), (2, 'green', 'g'), (3, 'Blue', 'b');
INSERT INTO handles VALUES (1, 'ann', 0), (2, 'bob', 1), (3, 'bob', 0), (4, 'cy', 1);
INSERT INTO replacing VALUES (1, 'A', 'a'), (2, 'B', 'b'), (3, 'C', 'c');
INSERT INTO kv_replace VALUES ('a', '1'), ('b', '2'), ('c', '3');
INSERT INTO defaults VALUES (1, 'none', 'default'), (2, 'x', 'x'), (3, 'y', 'y');
INSERT INTO "{ODD.replace('"', '""')}" VALUES ('k1', 's1', 'one'), ('k2', 's2', 'two'), ('k3', 's3', 'three');
INSERT INTO gen(id, a, v) VALUES (1, 1, 'one'), (2, 2, 'two'), (3, 3, 'three');
INSERT INTO gens(id, a) VALUES (1, 'One'), (2, 'Two'), (3, 'Three');
INSERT INTO parents VALUES (1, 'a'), (2, 'b'), (3, 'c');
INSERT INTO children VALUES (10, 1, 'a'), (20, 2, 'b'), (30, 3, 'c'), (31, 3, 'c');
"""

ODD_Q = '"' + ODD.replace('"', '""') + '"'
ODD_KEY_Q = '"' + ODD_KEY.replace('"', '""') + '"'
ODD_UNIQUE_Q = f'"{ODD_UNIQUE}"'

# One deterministic write per shape that deletes a row through a REPLACE (or an UPSERT, or a key
# change), each followed by a plain write, so the captured keys and the lost row differ.
SHAPES: dict[str, str] = {
    "settings: INSERT OR REPLACE on a TEXT PRIMARY KEY": "INSERT OR REPLACE INTO settings VALUES ('a', 'new')",
    "intpk: REPLACE INTO on an INT PRIMARY KEY": "REPLACE INTO intpk VALUES (2, 'replaced')",
    "descpk: INSERT OR REPLACE on INTEGER PRIMARY KEY DESC (not a rowid alias)": "INSERT OR REPLACE INTO descpk VALUES (3, 'replaced')",
    "comppk: INSERT OR REPLACE on a composite PRIMARY KEY": "INSERT OR REPLACE INTO comppk VALUES ('a', 1, 'new')",
    "comppk: UPDATE OR REPLACE moves a key onto another": "UPDATE OR REPLACE comppk SET b = 2 WHERE a = 'a' AND b = 1",
    "settings: UPDATE OR REPLACE renames a key onto another": "UPDATE OR REPLACE settings SET key = 'b' WHERE key = 'a'",
    "users: INSERT OR REPLACE on a UNIQUE COLLATE NOCASE column": "INSERT OR REPLACE INTO users(id, email, name) VALUES (10, 'ANN@example.com', 'Ann again')",
    "members: INSERT OR REPLACE on a UNIQUE index COLLATE NOCASE": "INSERT OR REPLACE INTO members(id, email, name) VALUES (10, 'BOB@EXAMPLE.COM', 'Bob again')",
    "members: UPDATE OR REPLACE on a UNIQUE index COLLATE NOCASE": "UPDATE OR REPLACE members SET email = 'Cy@Example.com' WHERE id = 1",
    "tags: INSERT OR REPLACE on an expression UNIQUE index": "INSERT OR REPLACE INTO tags(id, label, v) VALUES (10, '  RED ', 'again')",
    "tags: UPDATE OR REPLACE on an expression UNIQUE index": "UPDATE OR REPLACE tags SET label = 'GREEN ' WHERE id = 3",
    "handles: INSERT OR REPLACE on a partial UNIQUE index": "INSERT OR REPLACE INTO handles(id, handle, deleted) VALUES (10, 'bob', 0)",
    "handles: UPDATE OR REPLACE enters a partial UNIQUE index": "UPDATE OR REPLACE handles SET deleted = 0 WHERE id = 4;"
    "UPDATE OR REPLACE handles SET handle = 'ann' WHERE id = 4",
    "replacing: plain INSERT on a UNIQUE ON CONFLICT REPLACE column": "INSERT INTO replacing(id, code, v) VALUES (10, 'B', 'took B')",
    "kv_replace: plain INSERT on a PRIMARY KEY ON CONFLICT REPLACE": "INSERT INTO kv_replace VALUES ('c', 'took c')",
    "defaults: REPLACE stores a NOT NULL column's default": "INSERT OR REPLACE INTO defaults(id, code, v) VALUES (10, NULL, 'took none')",
    "settings: UPSERT DO UPDATE and DO NOTHING": "INSERT INTO settings VALUES ('b', 'upserted') ON CONFLICT(key) DO UPDATE SET value = excluded.value;"
    "INSERT INTO settings VALUES ('c', 'ignored') ON CONFLICT DO NOTHING;"
    "INSERT OR REPLACE INTO settings VALUES ('c', 'replaced')",
    "replacing: UPSERT on the key while the UNIQUE column replaces": "INSERT INTO replacing(id, code, v) VALUES (1, 'C', 'upsert') ON CONFLICT(id) DO NOTHING;"
    "INSERT INTO replacing(id, code, v) VALUES (11, 'A', 'new') ON CONFLICT(id) DO UPDATE SET v = excluded.v",
    "wr_nocase: WITHOUT ROWID NOCASE key replaced by another spelling": "INSERT OR REPLACE INTO wr_nocase VALUES ('A', 'upper')",
    "wr_comp: WITHOUT ROWID, REPLACE on a UNIQUE column, BLOB and REAL keys": "INSERT OR REPLACE INTO wr_comp VALUES (x'02', -0.0, 'new', 'u2');"
    "INSERT OR REPLACE INTO wr_comp VALUES (x'01ff', -0.0, 'minus zero', 'u9')",
    "wr_untyped: WITHOUT ROWID untyped key, 1 and 1.0 are one key": "INSERT OR REPLACE INTO wr_untyped VALUES (1.0, 'real one')",
    "wr_single: WITHOUT ROWID key change": "UPDATE OR REPLACE wr_single SET k = 'b' WHERE k = 'a'",
    "odd names: INSERT OR REPLACE on a quoted TEXT key and UNIQUE column": f"INSERT OR REPLACE INTO {ODD_Q} VALUES ('k1', 's2', 'took two')",
    "gen: INSERT OR REPLACE on a UNIQUE generated column": "INSERT OR REPLACE INTO gen(id, a, v) VALUES (10, 2, 'twice 4')",
    "gens: INSERT OR REPLACE on a UNIQUE STORED generated column": "INSERT OR REPLACE INTO gens(id, a) VALUES (10, 'TWO')",
    "autoinc: INSERT OR REPLACE on AUTOINCREMENT with a UNIQUE column": "INSERT OR REPLACE INTO autoinc(v, u) VALUES ('new', 'u2')",
    "rowid_alias: REPLACE on the rowid and a UNIQUE column at once": "REPLACE INTO rowid_alias VALUES (1, 'both', 'u3')",
    "nokey: implicit rowid, REPLACE by rowid": "REPLACE INTO nokey(rowid, a, b) VALUES (1, 'z', 'z')",
}
# After each shape's write, a plain write that re-uses the freed key (so a resurrection shows).
FOLLOW_UP = "INSERT INTO nokey(a, b) VALUES ('after', 'after')"

RANDOM_TABLES = [
    "rowid_alias",
    "autoinc",
    "settings",
    "intpk",
    "descpk",
    "comppk",
    "nokey",
    "wr_single",
    "wr_nocase",
    "wr_comp",
    "wr_untyped",
    "users",
    "members",
    "tags",
    "handles",
    "replacing",
    "kv_replace",
    "defaults",
    ODD,
    "gen",
    "gens",
]
# Written only with foreign_keys on (test_schema_zoo): random writes would break references, which
# the foreign-key gate judges, not capture.
FK_TABLES = ["parents", "children"]
ZOO_TABLES = RANDOM_TABLES + FK_TABLES
# A REPLACE on the parent with foreign_keys on: its cascades delete and update child rows.
FK_SHAPES = {
    "parents: REPLACE cascades a delete and an update to children": "INSERT OR REPLACE INTO parents VALUES (4, 'a'); INSERT OR REPLACE INTO parents VALUES (3, 'b')",
    "parents: UPDATE OR REPLACE cascades": "UPDATE OR REPLACE parents SET code = 'c' WHERE id = 1",
}
WITHOUT_ROWID = {"wr_single", "wr_nocase", "wr_comp", "wr_untyped"}


# -- random operations ----------------------------------------------------------------------------
TEXTS = ["a", "A", "b", "B", "c", " a", "d"]
EMAILS = ["ann@example.com", "ANN@example.com", "bob@example.com", "Bob@Example.com", "dee@example.com", "eve@x"]
LABELS = ["Red", "red ", " RED", "green", "Blue", "blue", "teal"]
BLOBS = [b"\x00", b"\x01\xff", b"\x02", b"a"]
REALS = [1.5, 0.0, -0.0, 2.0, 1e-300]
UNTYPED = [1, 1.0, "1", b"1", 2.5, "x", -0.0, 0]


def random_operation(rng: random.Random, counter: int) -> tuple[str, tuple]:
    """One random write on a random zoo table, from a small key space so conflicts are frequent."""
    n = lambda: rng.randint(1, 8)  # noqa: E731
    t = lambda: rng.choice(TEXTS)  # noqa: E731
    v = f"w{counter}"
    table = rng.choice(RANDOM_TABLES)
    ops = {
        "rowid_alias": [
            ("INSERT OR REPLACE INTO rowid_alias VALUES (?, ?, ?)", (n(), v, t())),
            ("UPDATE OR REPLACE rowid_alias SET u = ? WHERE id = ?", (t(), n())),
            ("UPDATE OR REPLACE rowid_alias SET id = ? WHERE id = ?", (n(), n())),
            ("DELETE FROM rowid_alias WHERE id = ?", (n(),)),
        ],
        "autoinc": [
            ("INSERT OR REPLACE INTO autoinc(v, u) VALUES (?, ?)", (v, t())),
            ("INSERT INTO autoinc(v, u) VALUES (?, ?) ON CONFLICT(u) DO UPDATE SET v = excluded.v", (v, t())),
            ("DELETE FROM autoinc WHERE u = ?", (t(),)),
        ],
        "settings": [
            ("INSERT OR REPLACE INTO settings VALUES (?, ?)", (t(), v)),
            ("INSERT INTO settings VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", (t(), v)),
            ("INSERT INTO settings VALUES (?, ?) ON CONFLICT DO NOTHING", (t(), v)),
            ("UPDATE OR REPLACE settings SET key = ? WHERE key = ?", (t(), t())),
            ("DELETE FROM settings WHERE key = ?", (t(),)),
        ],
        "intpk": [
            ("REPLACE INTO intpk VALUES (?, ?)", (n(), v)),
            ("UPDATE OR REPLACE intpk SET id = ? WHERE id = ?", (n(), n())),
            ("DELETE FROM intpk WHERE id = ?", (n(),)),
        ],
        "descpk": [
            ("INSERT OR REPLACE INTO descpk VALUES (?, ?)", (n(), v)),
            ("UPDATE OR REPLACE descpk SET id = ? WHERE id = ?", (n(), n())),
            ("DELETE FROM descpk WHERE id = ?", (n(),)),
        ],
        "comppk": [
            ("INSERT OR REPLACE INTO comppk VALUES (?, ?, ?)", (t(), rng.randint(1, 3), v)),
            ("UPDATE OR REPLACE comppk SET b = ? WHERE a = ?", (rng.randint(1, 3), t())),
            (
                "INSERT INTO comppk VALUES (?, ?, ?) ON CONFLICT(a, b) DO UPDATE SET v = excluded.v",
                (t(), rng.randint(1, 3), v),
            ),
            ("DELETE FROM comppk WHERE a = ? AND b = ?", (t(), rng.randint(1, 3))),
        ],
        "nokey": [
            ("INSERT INTO nokey VALUES (?, ?)", (t(), v)),
            ("REPLACE INTO nokey(rowid, a, b) VALUES (?, ?, ?)", (n(), t(), v)),
            ("UPDATE nokey SET b = ? WHERE a = ?", (v, t())),
            ("DELETE FROM nokey WHERE rowid = ?", (n(),)),
        ],
        "wr_single": [
            ("INSERT OR REPLACE INTO wr_single VALUES (?, ?)", (t(), v)),
            ("UPDATE OR REPLACE wr_single SET k = ? WHERE k = ?", (t(), t())),
            ("DELETE FROM wr_single WHERE k = ?", (t(),)),
        ],
        "wr_nocase": [
            ("INSERT OR REPLACE INTO wr_nocase VALUES (?, ?)", (t(), v)),
            ("UPDATE OR REPLACE wr_nocase SET k = ? WHERE k = ?", (t(), t())),
            ("INSERT INTO wr_nocase VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v", (t(), v)),
            ("DELETE FROM wr_nocase WHERE k = ?", (t(),)),
        ],
        "wr_comp": [
            ("INSERT OR REPLACE INTO wr_comp VALUES (?, ?, ?, ?)", (rng.choice(BLOBS), rng.choice(REALS), v, t())),
            ("UPDATE OR REPLACE wr_comp SET u = ? WHERE a = ?", (t(), rng.choice(BLOBS))),
            (
                "UPDATE OR REPLACE wr_comp SET b = ? WHERE a = ? AND b = ?",
                (rng.choice(REALS), rng.choice(BLOBS), rng.choice(REALS)),
            ),
            ("DELETE FROM wr_comp WHERE a = ? AND b = ?", (rng.choice(BLOBS), rng.choice(REALS))),
        ],
        "wr_untyped": [
            ("INSERT OR REPLACE INTO wr_untyped VALUES (?, ?)", (rng.choice(UNTYPED), v)),
            ("UPDATE OR REPLACE wr_untyped SET k = ? WHERE k = ?", (rng.choice(UNTYPED), rng.choice(UNTYPED))),
            ("DELETE FROM wr_untyped WHERE k = ?", (rng.choice(UNTYPED),)),
        ],
        "users": [
            ("INSERT OR REPLACE INTO users VALUES (?, ?, ?)", (n(), rng.choice(EMAILS), v)),
            ("UPDATE OR REPLACE users SET email = ? WHERE id = ?", (rng.choice(EMAILS), n())),
            (
                "INSERT INTO users VALUES (?, ?, ?) ON CONFLICT(email) DO UPDATE SET name = excluded.name",
                (n(), rng.choice(EMAILS), v),
            ),
            ("DELETE FROM users WHERE id = ?", (n(),)),
        ],
        "members": [
            ("INSERT OR REPLACE INTO members VALUES (?, ?, ?)", (n(), rng.choice(EMAILS), v)),
            ("UPDATE OR REPLACE members SET email = ? WHERE id = ?", (rng.choice(EMAILS), n())),
            ("INSERT INTO members VALUES (?, ?, ?) ON CONFLICT DO NOTHING", (n(), rng.choice(EMAILS), v)),
            ("DELETE FROM members WHERE id = ?", (n(),)),
        ],
        "tags": [
            ("INSERT OR REPLACE INTO tags VALUES (?, ?, ?)", (n(), rng.choice(LABELS), v)),
            ("UPDATE OR REPLACE tags SET label = ? WHERE id = ?", (rng.choice(LABELS), n())),
            ("INSERT INTO tags VALUES (?, ?, ?) ON CONFLICT DO NOTHING", (n(), rng.choice(LABELS), v)),
            ("DELETE FROM tags WHERE id = ?", (n(),)),
        ],
        "handles": [
            ("INSERT OR REPLACE INTO handles VALUES (?, ?, ?)", (n(), t(), rng.randint(0, 1))),
            ("UPDATE OR REPLACE handles SET deleted = ? WHERE id = ?", (rng.randint(0, 1), n())),
            ("UPDATE OR REPLACE handles SET handle = ? WHERE id = ?", (t(), n())),
            ("DELETE FROM handles WHERE id = ?", (n(),)),
        ],
        "replacing": [
            ("INSERT INTO replacing VALUES (?, ?, ?)", (n(), t(), v)),
            ("UPDATE replacing SET code = ? WHERE id = ?", (t(), n())),
            ("INSERT INTO replacing VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET v = excluded.v", (n(), t(), v)),
            ("DELETE FROM replacing WHERE id = ?", (n(),)),
        ],
        "kv_replace": [
            ("INSERT INTO kv_replace VALUES (?, ?)", (t(), v)),
            ("UPDATE kv_replace SET k = ? WHERE k = ?", (t(), t())),
            ("DELETE FROM kv_replace WHERE k = ?", (t(),)),
        ],
        "defaults": [
            ("INSERT OR REPLACE INTO defaults VALUES (?, ?, ?)", (n(), rng.choice([None, "x", "y", "none"]), v)),
            ("UPDATE OR REPLACE defaults SET code = ? WHERE id = ?", (rng.choice([None, "x", "y", "none"]), n())),
            ("DELETE FROM defaults WHERE id = ?", (n(),)),
        ],
        ODD: [
            (f"INSERT OR REPLACE INTO {ODD_Q} VALUES (?, ?, ?)", (f"k{n()}", f"s{n()}", v)),
            (f"UPDATE OR REPLACE {ODD_Q} SET {ODD_UNIQUE_Q} = ? WHERE {ODD_KEY_Q} = ?", (f"s{n()}", f"k{n()}")),
            (f"DELETE FROM {ODD_Q} WHERE {ODD_KEY_Q} = ?", (f"k{n()}",)),
        ],
        "gens": [
            ("INSERT OR REPLACE INTO gens(id, a) VALUES (?, ?)", (n(), rng.choice(LABELS))),
            ("UPDATE OR REPLACE gens SET a = ? WHERE id = ?", (rng.choice(LABELS), n())),
            ("DELETE FROM gens WHERE id = ?", (n(),)),
        ],
        "gen": [
            ("INSERT OR REPLACE INTO gen(id, a, v) VALUES (?, ?, ?)", (n(), n(), v)),
            ("UPDATE OR REPLACE gen SET a = ? WHERE id = ?", (n(), n())),
            ("DELETE FROM gen WHERE id = ?", (n(),)),
        ],
    }[table]
    return rng.choice(ops)


def apply(conn: apsw.Connection, sql: str, args: tuple = ()) -> bool:
    """One application statement; False when a constraint refused it (nothing was written)."""
    try:
        for _ in conn.execute(sql, args):
            pass
        return True
    except apsw.ConstraintError:
        return False
