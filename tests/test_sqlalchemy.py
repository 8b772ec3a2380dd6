"""bluegreen.sqlalchemy with the real SQLAlchemy: an application with no retry logic through real
deploys and reverts, the in-transaction rules (moved at BEGIN, replayed, refused), settings that
follow the connection, and the errors a bad pointer or an unacceptable schema give.

The application runs in this process on the standard library's sqlite3; the controller runs as
its own process (`project.cli_process`), as hazard 20 asks: never apsw and sqlite3 on one file in
one process. Files are read back with apsw only after the engine is disposed.
"""

from __future__ import annotations

import re
import threading
import time

import pytest
from conftest import REPO, disk_state, rows
from helpers import until

sa = pytest.importorskip("sqlalchemy")
from sqlalchemy import event, exc, orm  # noqa: E402

import bluegreen.sqlalchemy as bgsa  # noqa: E402
from bluegreen import client  # noqa: E402
from bluegreen.files import pointer  # noqa: E402

BLIND = "?watch=false&poll_interval=3600"  # notices no swap until a fence says so


class Base(orm.DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    name: orm.Mapped[str | None]


def readme_engine(project, monkeypatch):
    """The README's SQLAlchemy setup, run as written in the project's folder."""
    text = (REPO / "README.md").read_text()
    section = text.split("### SQLAlchemy", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(project.root)
    scope: dict = {}
    exec(code, scope)
    return scope["engine"]


def begin_emitted_by_sqlalchemy(engine, statement: str = "BEGIN") -> None:
    """SQLAlchemy's recipe for real SQLite transactions: sqlite3's own BEGIN off, SQLAlchemy's on."""

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection, record):
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql(statement)


# -- the application ------------------------------------------------------------------------------
class App:
    """Threads doing short transactions (engine.begin() and Session), reads and writes, with no
    retry logic: any exception is a failed request. Every acknowledged write is remembered."""

    def __init__(self, engine, threads: int = 4):
        self.engine = engine
        self.sessions = orm.sessionmaker(engine)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked: dict[int, str] = {}  # id -> the last name a committed transaction gave it
        self.failures: list[str] = []
        self.requests = 0
        self.files: dict[str, int] = {}
        self.workers = [threading.Thread(target=self.work, args=(n,)) for n in range(threads)]
        self.retries: dict[int, int] = {}  # per pooled connection, as it came back to the pool
        event.listen(engine, "checkin", self.checked_in)

    def __enter__(self) -> App:
        for worker in self.workers:
            worker.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        for worker in self.workers:
            worker.join(60)
        self.engine.dispose()

    @property
    def retried(self) -> int:
        return sum(self.retries.values())

    def checked_in(self, dbapi_connection, record) -> None:
        self.retries[id(dbapi_connection)] = bgsa.stats(dbapi_connection).fence_retries

    def work(self, n: int) -> None:
        step = 0
        mine: list[int] = []
        while not self.stop.is_set():
            step += 1
            try:
                self.request(n, step, mine)
            except Exception as failure:  # a failed request, as a user would see it
                with self.lock:
                    self.failures.append(f"{type(failure).__name__}: {failure}".splitlines()[0])
            with self.lock:
                self.requests += 1
            time.sleep(0.002)

    def request(self, n: int, step: int, mine: list[int]) -> None:
        name = f"t{n}-{step}"
        kind = step % 4
        if kind == 0:  # Core: insert, then read it back in the same transaction
            with self.engine.begin() as db:
                new_id = db.execute(sa.text("INSERT INTO items(name) VALUES (:n)"), {"n": name}).lastrowid
                assert db.execute(sa.text("SELECT name FROM items WHERE id = :i"), {"i": new_id}).scalar() == name
                where = db.connection.driver_connection.path.name
            self.ack(new_id, name, where, mine)
        elif kind == 1:  # ORM: add an item
            with self.sessions() as session, session.begin():
                item = Item(name=name)
                session.add(item)
                session.flush()
                new_id = item.id
                where = session.connection().connection.driver_connection.path.name
            self.ack(new_id, name, where, mine)
        elif kind == 2 and mine:  # ORM: read one of mine, then rename it
            with self.sessions() as session, session.begin():
                item = session.get(Item, mine[step % len(mine)])
                assert item is not None and item.name == self.acked[item.id]
                item.name = name
                item_id = item.id
                where = session.connection().connection.driver_connection.path.name
            self.ack(item_id, name, where, mine)
        else:  # a read outside any transaction of ours
            with self.engine.connect() as db:
                assert db.execute(sa.text("SELECT count(*) FROM items")).scalar() >= 50

    def ack(self, item_id: int, name: str, where: str, mine: list[int]) -> None:
        with self.lock:
            self.acked[item_id] = name
            self.files[where] = self.files.get(where, 0) + 1
        if item_id not in mine:
            mine.append(item_id)

    def writes_on(self, file: str) -> int:
        with self.lock:
            return self.files.get(file, 0)


@pytest.mark.parametrize(
    "begin, blind",
    [(None, False), ("BEGIN IMMEDIATE", False), ("BEGIN", False), (None, True)],
    ids=[
        "sqlite3-transactions",
        "begin-immediate",
        "begin-deferred-as-sqlalchemy-docs-write-it",
        "polling-only-so-every-connection-meets-the-fence",
    ],
)
def test_an_application_without_retry_logic_sees_no_failure_through_three_swaps(toy_ready, monkeypatch, begin, blind):
    engine = readme_engine(toy_ready, monkeypatch)
    assert type(engine.pool).__name__ == "QueuePool"
    if blind:  # the same setup with the watch off: connections learn of each swap from the fence
        engine = sa.create_engine(str(engine.url) + "?watch=false&poll_interval=1")
    if begin:
        begin_emitted_by_sqlalchemy(engine, begin)
    swaps = [("deploy", "app.gen2.db"), ("revert", "app.db"), ("deploy", "app.gen3.db")]
    with App(engine) as app:
        until(lambda: app.writes_on("app.db") >= 20, what="writes on blue", timeout=30)
        for command, file in swaps:
            done = toy_ready.cli_process(command)
            assert done.code == 0, done.err
            until(lambda file=file: app.writes_on(file) >= 20, what=f"writes on {file}", timeout=30)
    assert app.failures == [], app.failures[:5]
    if blind:
        assert app.retried > 0  # the fence was met, and nothing failed
    assert app.requests > 200
    assert set(app.files) == {"app.db", "app.gen2.db", "app.gen3.db"}
    active = toy_ready.data / pointer.read(toy_ready.pointer).active
    found = dict(rows(active, "SELECT id, name FROM items WHERE id > 50"))
    assert found == app.acked  # row by row: every acknowledged write, and nothing else
    assert rows(active, "SELECT count(*) FROM items WHERE id <= 50") == [(50,)]


# -- the rules, one at a time (a blind connection meets the fence instead of noticing the swap) --
def blind_engine(project, begin: str | None = None, **kwargs):
    engine = sa.create_engine(bgsa.url(project.pointer) + BLIND, **kwargs)
    if begin:
        begin_emitted_by_sqlalchemy(engine, begin)
    return engine


def name_of(db, item_id: int) -> str:
    return db.execute(sa.text("SELECT name FROM items WHERE id = :i"), {"i": item_id}).scalar()


def test_a_write_refused_by_the_fence_outside_a_transaction_runs_on_green(toy_ready):
    engine = blind_engine(toy_ready)
    with engine.connect() as db:
        assert name_of(db, 1) == "item 0"
        db.commit()
        assert toy_ready.cli_process("deploy").code == 0
        db.execute(sa.text("INSERT INTO items(name) VALUES ('after the fence')"))  # meets it, then green
        db.commit()
        assert bgsa.stats(db).fence_retries == 1 and bgsa.stats(db).reopens == 1
    engine.dispose()
    assert rows(toy_ready.gen(2), "SELECT count(*) FROM items WHERE name = 'after the fence'") == [(1,)]
    assert rows(toy_ready.blue, "SELECT count(*) FROM items WHERE name = 'after the fence'") == [(0,)]


def test_a_transaction_begun_on_a_fenced_file_moves_before_it_reads(toy_ready):
    engine = blind_engine(toy_ready, begin="BEGIN")
    with engine.connect() as db:
        assert name_of(db, 1) == "item 0"  # on blue; the pool keeps this connection
        db.commit()
        assert toy_ready.cli_process("deploy").code == 0
        with db.begin():  # BEGIN lands on fenced blue: taken to green before the SELECT
            assert db.execute(sa.text("SELECT count(*) FROM names")).scalar() == 50  # a v2 table: green
            db.execute(sa.text("UPDATE items SET name = 'moved' WHERE id = 1"))
        assert bgsa.stats(db).moved_at_begin == 1 and bgsa.stats(db).replayed == 0
    engine.dispose()
    assert rows(toy_ready.gen(2), "SELECT name FROM items WHERE id = 1") == [("moved",)]


def test_a_transaction_the_fence_meets_after_it_read_is_replayed_on_green(toy_ready):
    engine = blind_engine(toy_ready, begin="BEGIN")
    with engine.connect() as db:
        with db.begin():
            result = db.execute(sa.text("SELECT id, name FROM items ORDER BY id"))
            first = result.fetchmany(3)  # read on blue, the rest of the result not yet
            assert toy_ready.cli_process("deploy").code == 0  # fenced while this transaction is open
            db.execute(sa.text("UPDATE items SET name = 'replayed' WHERE id = 2"))  # refused, replayed, run
            rest = result.fetchall()  # now read on green, where the replay left it
        assert [r.id for r in first + rest] == list(range(1, 51))
        assert bgsa.stats(db).replayed == 1 and bgsa.stats(db).conflicts == 0
        assert db.connection.driver_connection.path == toy_ready.gen(2)
    engine.dispose()
    assert rows(toy_ready.gen(2), "SELECT name FROM items WHERE id = 2") == [("replayed",)]
    assert rows(toy_ready.blue, "SELECT name FROM items WHERE id = 2") == [("item 1",)]


def test_a_transaction_whose_read_changed_on_green_is_refused_and_nothing_of_it_commits(toy_ready):
    engine = blind_engine(toy_ready, begin="BEGIN")
    other = sa.create_engine(bgsa.url(toy_ready.pointer))  # follows the pointer by itself
    with engine.connect() as db:
        db.begin()
        assert name_of(db, 3) == "item 2"
        assert toy_ready.cli_process("deploy").code == 0
        with other.begin() as elsewhere:  # another writer changes what the transaction read
            until(lambda: elsewhere.connection.driver_connection.refresh() or True, what="refresh")
            assert elsewhere.connection.driver_connection.path == toy_ready.gen(2)
            elsewhere.execute(sa.text("UPDATE items SET name = 'changed on green' WHERE id = 3"))
        with pytest.raises(exc.OperationalError) as raised:
            db.execute(sa.text("UPDATE items SET name = 'lost update' WHERE id = 3"))
        db.rollback()
        assert isinstance(raised.value.orig, client.FencedInTransaction)
        message = str(raised.value)
        assert "app.db: retired under an open transaction (generation 1 is fenced; use generation 2)" in message
        assert "returns other rows on app.gen2.db: nothing of it was committed; run the transaction again" in message
        assert bgsa.stats(db).conflicts == 1
        with db.begin():  # the application's usual handling: run it again, now on green
            assert name_of(db, 3) == "changed on green"
    engine.dispose()
    other.dispose()
    assert rows(toy_ready.gen(2), "SELECT name FROM items WHERE id = 3") == [("changed on green",)]
    assert rows(toy_ready.blue, "SELECT name FROM items WHERE id = 3") == [("item 2",)]


def test_settings_made_at_connect_follow_the_connection_to_green(toy_ready):
    engine = blind_engine(toy_ready)

    @event.listens_for(engine, "connect")
    def _setup(dbapi_connection, record):
        dbapi_connection.execute("PRAGMA foreign_keys = ON")
        dbapi_connection.create_function("shout", 1, lambda s: s.upper() + "!")

    with engine.connect() as db:
        assert db.execute(sa.text("SELECT shout('blue')")).scalar() == "BLUE!"
        db.commit()
        assert toy_ready.cli_process("deploy").code == 0
        db.execute(sa.text("INSERT INTO items(name) VALUES ('x')"))  # the fence moves it to green
        db.commit()
        assert db.connection.driver_connection.path == toy_ready.gen(2)
        assert db.execute(sa.text("SELECT shout('green'), 'x' REGEXP '^x$'")).one() == ("GREEN!", 1)
        assert db.execute(sa.text("PRAGMA foreign_keys")).scalar() == 1
        with pytest.raises(exc.IntegrityError):  # names.id REFERENCES items(id): enforced on green too
            db.execute(sa.text("INSERT INTO names VALUES (9999, 'NOBODY')"))
        db.rollback()
    engine.dispose()


# -- what raises -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "damage, cause, words",
    [
        ("missing", "PointerInvalid", "current.toml"),
        ("garbled", "PointerInvalid", "current.toml"),
        ("file gone", "GenerationUnavailable", "app.gen7.db: generation 7 named by"),
        ("incompatible", "IncompatibleGeneration", "has schema 'unversioned', which this application does not accept"),
    ],
)
def test_a_bad_pointer_or_schema_is_an_operational_error_naming_the_cause(toy_ready, damage, cause, words):
    query = ""
    if damage == "missing":
        toy_ready.pointer.unlink()
    elif damage == "garbled":
        toy_ready.pointer.write_text("format = 1\nactive = [unclosed\n")
    elif damage == "file gone":
        pointer.write(toy_ready.pointer, pointer.Pointer("app.gen7.db", 7, "2.0.0"))
    else:
        query = "?compatible=2.*"
    before = disk_state(toy_ready.data)
    engine = sa.create_engine(bgsa.url(toy_ready.pointer) + query)
    with pytest.raises(exc.OperationalError) as raised:
        engine.connect()
    engine.dispose()
    assert type(raised.value.orig).__name__ == cause
    assert f"(bluegreen.sqlalchemy.{cause})" in str(raised.value) and words in str(raised.value)
    assert disk_state(toy_ready.data) == before  # nothing created, nothing changed
    assert not toy_ready.gen(7).exists()


def test_an_incompatible_deploy_is_raised_once_and_the_connection_stays(toy_ready):
    engine = sa.create_engine(bgsa.url(toy_ready.pointer) + BLIND + "&compatible=unversioned")
    with engine.connect() as db:
        assert name_of(db, 1) == "item 0"
        db.commit()
        assert toy_ready.cli_process("deploy").code == 0
        db.connection.driver_connection._watch.check()  # the swap is seen (a blind one polls rarely)
        with pytest.raises(exc.OperationalError, match="schema '2.0.0', which this application does not accept"):
            name_of(db, 1)
        assert name_of(db, 1) == "item 0"  # reads go on, on blue; writes would wait for a compatible file
        assert db.connection.driver_connection.path == toy_ready.blue
    engine.dispose()


def test_the_url_names_the_pointer_and_known_options_only(toy_ready):
    with pytest.raises(exc.ArgumentError, match="unknown option 'colour'"):
        sa.create_engine(bgsa.url(toy_ready.pointer) + "?colour=blue").connect()
    with pytest.raises(exc.ArgumentError, match="fence_timeout_s='soon' is not a float"):
        sa.create_engine(bgsa.url(toy_ready.pointer) + "?fence_timeout_s=soon").connect()
    with pytest.raises(exc.ArgumentError, match="no pointer file"):
        sa.create_engine("bluegreen+sqlite://").connect()


def test_the_wing_imports_only_the_client_the_contract_and_sqlalchemy():
    import ast
    import sys

    from test_layout import CLIENT_MAY_IMPORT, PACKAGE

    files = sorted((PACKAGE / "sqlalchemy").glob("*.py"))
    assert len(files) >= 5
    wrong = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else ["." + (node.module or "")]
                if node.module == "bluegreen" and node.level == 0:
                    names = [f"bluegreen.{alias.name}" for alias in node.names]
            for name in names:
                top = name.split(".")[0]
                ok = (
                    (top == "bluegreen" and any(name == p or name.startswith(p + ".") for p in CLIENT_MAY_IMPORT))
                    or name == "bluegreen.sqlalchemy"
                    or name.startswith("bluegreen.sqlalchemy.")
                    or top == "sqlalchemy"
                    or (top in sys.stdlib_module_names and top != "bluegreen")
                    or name == "__future__"
                )
                if not ok:
                    wrong.append(f"{path.name}: {name}")
    assert wrong == []


# -- the driver alone, for another library ---------------------------------------------------------
def test_peewee_wired_as_the_readme_says_goes_through_a_deploy_and_a_revert(toy_ready, monkeypatch):
    peewee = pytest.importorskip("peewee")
    text = (REPO / "README.md").read_text().split("### Any other DB-API library", 1)[1]
    monkeypatch.chdir(toy_ready.root)
    scope: dict = {}
    exec(re.search(r"```python\n(.*?)```", text, re.S).group(1), scope)
    db = scope["db"]

    class PeeweeItem(peewee.Model):
        name = peewee.TextField(null=True)

        class Meta:
            database = db
            table_name = "items"

    done: list = []
    commands = threading.Thread(
        target=lambda: done.extend(toy_ready.cli_process(c) for c in ("deploy", "revert")), daemon=True
    )
    written: dict[int, str] = {}
    failures = []
    files = set()
    commands.start()
    step = 0
    while commands.is_alive() or step < 50:
        step += 1
        try:
            if step % 2:
                with db.atomic():  # BEGIN (peewee's DEFERRED), insert, read back
                    item = PeeweeItem.create(name=f"pw-{step}")
                    assert PeeweeItem.get_by_id(item.id).name == f"pw-{step}"
            else:  # autocommit: no transaction of peewee's
                item = PeeweeItem.create(name=f"pw-{step}")
            written[item.id] = f"pw-{step}"
            files.add(db.connection().path.name)
        except Exception as failure:
            failures.append(repr(failure))
        time.sleep(0.002)
    commands.join(60)
    assert [d.code for d in done] == [0, 0], [d.err for d in done]
    assert db.execute_sql("PRAGMA foreign_keys").fetchone() == (1,)  # the pragma followed it back to blue
    db.close()
    assert failures == []
    assert files == {"app.db", "app.gen2.db"}
    assert dict(rows(toy_ready.blue, "SELECT id, name FROM items WHERE id > 50")) == written


def test_a_result_not_read_when_the_connection_moves_is_still_read_whole(toy_ready):
    engine = blind_engine(toy_ready)
    with engine.connect() as db:
        pending = db.execute(sa.text("SELECT id FROM items ORDER BY id"))  # not read yet
        assert toy_ready.cli_process("deploy").code == 0
        db.connection.driver_connection._watch.check()  # the swap is seen
        assert db.execute(sa.text("SELECT count(*) FROM names")).scalar() == 50  # moved to green
        assert [r.id for r in pending] == list(range(1, 51))  # read from blue before it closed
        db.execute(sa.text("PRAGMA user_version = 7"))  # a setting of the file, not of the connection
        db.execute(sa.text("PRAGMA cache_size = -4000"))  # one of the connection
        db.commit()
        assert toy_ready.cli_process("revert").code == 0
        db.connection.driver_connection._watch.check()
        assert db.execute(sa.text("PRAGMA user_version")).scalar() == 0  # back on blue, not repeated there
        assert db.execute(sa.text("PRAGMA cache_size")).scalar() == -4000  # followed the connection
        assert db.connection.driver_connection.path == toy_ready.blue
    engine.dispose()
    assert rows(toy_ready.gen(2), "PRAGMA user_version") == [(7,)]


def test_sqlite3_arguments_are_taken_and_unknown_ones_named(toy_ready):
    from bluegreen.sqlalchemy import dbapi

    conn = dbapi.connect(toy_ready.pointer, timeout=2.5, detect_types=0)
    assert conn.options.busy_timeout_ms == 2500
    conn.close()
    with pytest.raises(TypeError, match="unknown option 'colour'; the options are compatible"):
        dbapi.connect(toy_ready.pointer, colour="blue")


@pytest.mark.parametrize("other_changes_the_row", [False, True], ids=["reads-unchanged", "read-changed"])
def test_a_deferred_transaction_that_read_waits_for_the_lock_instead_of_failing(toy_ready, other_changes_the_row):
    """SQLite refuses at once a deferred transaction that read and then writes while another
    holds the lock (hazard 22): the cutover's barrier is such a writer. It is re-run as BEGIN
    IMMEDIATE, which waits, and goes on if what it read is unchanged; else SQLite's own error."""
    engine = sa.create_engine(bgsa.url(toy_ready.pointer))
    begin_emitted_by_sqlalchemy(engine, "BEGIN")
    with engine.connect() as db, engine.connect() as holder:
        holder.begin()  # another writer holds the write lock for a moment
        holder.execute(
            sa.text("UPDATE items SET name = :n WHERE id = 4"), {"n": "other" if other_changes_the_row else "item 3"}
        )
        db.begin()
        assert name_of(db, 4) == "item 3"
        threading.Timer(0.3, holder.commit).start()
        if other_changes_the_row:
            with pytest.raises(exc.OperationalError, match="database is locked"):
                db.execute(sa.text("UPDATE items SET name = 'mine' WHERE id = 4"))
            db.rollback()
            assert bgsa.stats(db).relocked == 0
        else:
            db.execute(sa.text("UPDATE items SET name = 'mine' WHERE id = 4"))  # waited, re-read, wrote
            db.commit()
            assert bgsa.stats(db).relocked == 1
    engine.dispose()
    assert rows(toy_ready.blue, "SELECT name FROM items WHERE id = 4") == [
        ("other" if other_changes_the_row else "mine",)
    ]
