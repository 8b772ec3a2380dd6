"""Issue 16, item 1 for the ORM integrations: every statement an SQLAlchemy engine
(`bluegreen+sqlite://`) or a Django site (`ENGINE: bluegreen.django`) runs is sampled per query
shape and generation into `.bluegreen/samples/`, like the apsw and sqlite3 clients: counts, errors,
latencies; a statement a fence refused counts once, on the file that ran it; a replayed
transaction's statements count once, where they first ran; `sampling=False` and
BLUEGREEN_SAMPLING=0 turn it off; `bluegreen watch` reads ORM traffic.

Real SQLAlchemy in this process (the controller in its own process: hazard 20), real Django in a
child process, real files, real `bluegreen deploy` runs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from test_watch import spans_of

from bluegreen.client import sampling
from bluegreen.files import samples

sa = pytest.importorskip("sqlalchemy")
pytest.importorskip("django")

from sqlalchemy import orm  # noqa: E402

import bluegreen.sqlalchemy as bgsa  # noqa: E402


class Base(orm.DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    name: orm.Mapped[str | None]


POINT = "SELECT name FROM items WHERE id = ?"
BLIND = "?watch=false&poll_interval=3600"  # notices no swap until a fence says so


def reads(db, n: int) -> None:
    for i in range(1, n + 1):
        db.execute(sa.text("SELECT name FROM items WHERE id = :i"), {"i": i}).scalar()


def shape(found: dict, generation: int, *words: str) -> samples.ShapeStats:
    """The one shape of a generation that holds every word."""
    matching = [s for s in found.get(generation, {}) if all(w in s for w in words)]
    assert len(matching) == 1, (words, sorted(found.get(generation, {})))
    return found[generation][matching[0]]


# -- SQLAlchemy -----------------------------------------------------------------------------------
def test_sqlalchemy_statements_are_sampled_per_shape_and_generation_with_errors(toy_ready):
    project = toy_ready
    engine = sa.create_engine(bgsa.url(project.pointer) + BLIND)
    with engine.connect() as db:
        reads(db, 30)
        db.execute(sa.text("SELECT * FROM items WHERE id IN (1, 2, 3)")).fetchall()
        db.execute(sa.text("SELECT * FROM items WHERE id IN (4, 5)")).fetchall()  # the same shape
        with pytest.raises(sa.exc.OperationalError, match="no such column"):
            db.execute(sa.text("SELECT nope FROM items"))
        db.rollback()
        assert project.cli_process("deploy").code == 0
        db.execute(sa.text("UPDATE items SET name = 'after' WHERE id = 7"))  # blue's fence refuses it: on 2
        db.commit()
        reads(db, 12)
        assert bgsa.stats(db).fence_retries == 1
    with orm.Session(engine) as session:  # the ORM's own statements too
        for i in range(1, 6):
            session.get(Item, i).name = f"orm {i}"
        session.commit()
    engine.dispose()
    found = spans_of(project)
    assert found[1][POINT].count == 30 and found[1][POINT].timed == 30 and found[2][POINT].count == 12
    assert found[1]["SELECT * FROM items WHERE id IN (?)"].count == 2
    assert found[1]["SELECT nope FROM items"].errors == 1 and found[1]["SELECT nope FROM items"].timed == 0
    update = "UPDATE items SET name = ? WHERE id = ?"
    assert update not in found[1]  # refused by the fence: no error of blue, and not counted there
    assert found[2][update].count == 1 and found[2][update].errors == 0
    orm_get = shape(found, 2, "FROM items WHERE items.id = ?")
    assert orm_get.count == 5 and shape(found, 2, "UPDATE items SET name=?").count == 5
    logs = os.listdir(samples.samples_dir(project.pointer))
    assert logs and all(n.endswith(".jsonl") for n in logs)


def test_a_replayed_sqlalchemy_transaction_is_counted_once_where_it_first_ran(toy_ready):
    project = toy_ready
    engine = sa.create_engine(bgsa.url(project.pointer) + BLIND)

    @sa.event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection, record):
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN")

    listing = "SELECT id, name FROM items ORDER BY id"
    with engine.connect() as db:
        with db.begin():
            result = db.execute(sa.text(listing))
            result.fetchmany(3)
            assert project.cli_process("deploy").code == 0
            db.execute(sa.text("UPDATE items SET name = 'replayed' WHERE id = 2"))  # replayed on 2, then run
            result.fetchall()
        assert bgsa.stats(db).replayed == 1
    engine.dispose()
    found = spans_of(project)
    assert found[1][listing].count == 1 and found[1]["BEGIN"].count == 1  # where they first ran
    assert listing not in found[2] and "BEGIN" not in found[2]  # the replay is not the application's
    assert found[2]["UPDATE items SET name = ? WHERE id = ?"].count == 1
    assert "UPDATE items SET name = ? WHERE id = ?" not in found[1]


@pytest.mark.parametrize("how", ["url", "connect_args", "environment"])
def test_sqlalchemy_sampling_turns_off(toy_ready, monkeypatch, how):
    project = toy_ready
    url, kwargs = bgsa.url(project.pointer), {}
    if how == "url":
        url += "?sampling=false"
    elif how == "connect_args":
        kwargs["connect_args"] = {"sampling": False}
    else:
        monkeypatch.setenv(sampling.ENV_VAR, "0")
    engine = sa.create_engine(url, **kwargs)
    with engine.connect() as db:
        reads(db, 5)
    engine.dispose()
    assert spans_of(project) == {}
    assert not samples.samples_dir(project.pointer).exists()


def test_bluegreen_watch_reads_sqlalchemy_traffic(toy_ready):
    """Too few samples: no verdict, each side's count said. Enough: a verdict (which one depends on
    this machine's timings, so either is accepted), with the counts it used."""
    project = toy_ready
    old = sa.create_engine(bgsa.url(project.pointer) + BLIND)  # reads stay on generation 1
    with old.connect() as db:
        reads(db, 30)
        db.commit()
        assert project.cli_process("deploy").code == 0
        new = sa.create_engine(bgsa.url(project.pointer))
        with new.connect() as fresh:
            reads(fresh, 30)
        spans_of(project)  # flushed
        few = project.cli_process("watch", "--json")
        assert few.code == 0, few.err
        row = next(r for r in few.json["post_migration_performance"] if r["shape"] == POINT)
        assert row["verdict"] == "no verdict" and row["new"]["queries"] == 30 and row["old"]["queries"] == 30
        assert "too few samples: 30 new, 30 old" in project.cli_process("watch").out
        reads(db, 1000)  # 1,030 on generation 1: cheap, so after the first ones of a span 1 in 16 is timed
        assert db.connection.driver_connection.generation == 1
        with new.connect() as fresh:
            reads(fresh, 1000)  # 1,030 on generation 2
    old.dispose()
    new.dispose()
    spans_of(project)
    enough = project.cli_process("watch", "--json")
    assert enough.code in (0, 7), enough.err
    row = next(r for r in enough.json["post_migration_performance"] if r["shape"] == POINT)
    assert row["new"]["queries"] == 1030 and row["old"]["queries"] == 1030
    assert (
        sampling.TIMED_PER_SPAN < row["new"]["timed"] <= 1030 and sampling.TIMED_PER_SPAN < row["old"]["timed"] <= 1030
    )
    assert row["verdict"] in ("healthy", "regressed")
    assert enough.json["verdict"] in ("healthy", "regressed")


# -- Django ---------------------------------------------------------------------------------------
DJANGO_SCRIPT = textwrap.dedent(
    """\
    import subprocess, sys
    import django
    from django.conf import settings

    pointer, config, options = sys.argv[1], sys.argv[2], eval(sys.argv[3])
    settings.configure(
        DATABASES={"default": {"ENGINE": "bluegreen.django", "NAME": pointer, "OPTIONS": options}},
        INSTALLED_APPS=[], USE_TZ=True,
    )
    django.setup()
    from django.db import DatabaseError, connection, models

    class Item(models.Model):
        name = models.TextField(null=True)

        class Meta:
            app_label = "shop"
            db_table = "items"
            managed = False

    for i in range(1, 31):
        Item.objects.get(id=i)
    list(Item.objects.filter(id__in=[1, 2, 3]))
    list(Item.objects.filter(id__in=[4, 5]))  # the same shape
    with connection.cursor() as cursor:
        try:
            cursor.execute("SELECT nope FROM items")
        except DatabaseError:
            pass
    if "--deploy" in sys.argv:
        assert subprocess.run([sys.executable, "-m", "bluegreen", "--config", config, "deploy"]).returncode == 0
        Item.objects.filter(id=7).update(name="after")  # blue's fence refuses it: runs on generation 2
        for i in range(1, 13):
            Item.objects.get(id=i)
        assert connection.bluegreen_target.generation == 2
    """
)


def run_django(project, tmp_path, *flags: str, options: dict | None = None, env: dict | None = None) -> None:
    script = tmp_path / "site.py"
    script.write_text(DJANGO_SCRIPT)
    opts = {"watch": False, "poll_interval": 3600, **(options or {})}
    argv = [sys.executable, str(script), str(project.pointer), str(project.config), repr(opts), *flags]
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120)
    assert done.returncode == 0, done.stderr


def test_django_statements_are_sampled_per_shape_and_generation_through_a_deploy(toy_ready, tmp_path):
    project = toy_ready
    run_django(project, tmp_path, "--deploy")
    found = spans_of(project)
    get = shape(found, 1, 'WHERE "items"."id" = ?', "LIMIT ?")
    assert get.count == 30 and get.timed == 30 and shape(found, 2, 'WHERE "items"."id" = ?', "LIMIT ?").count == 12
    assert shape(found, 1, 'WHERE "items"."id" IN (?)').count == 2  # Django's %s folded like ? and IN lists
    assert found[1]["SELECT nope FROM items"].errors == 1
    assert not [s for s in found[1] if s.startswith("UPDATE")]  # refused by the fence: not blue's
    assert shape(found, 2, 'UPDATE "items" SET "name" = ?').count == 1
    assert not [s for g in found.values() for s in g if "%s" in s]
    document = project.cli_process("watch", "--json").json  # 12 against 30: too few for a verdict
    row = next(r for r in document["post_migration_performance"] if 'WHERE "items"."id" = ?' in r["shape"])
    assert row["verdict"] == "no verdict" and row["new"]["queries"] == 12 and row["old"]["queries"] == 30


@pytest.mark.parametrize("how", ["options", "environment"])
def test_django_sampling_turns_off(toy_ready, tmp_path, how):
    project = toy_ready
    if how == "options":
        run_django(project, tmp_path, options={"sampling": False})
    else:
        run_django(project, tmp_path, env={sampling.ENV_VAR: "0"})
    assert spans_of(project) == {}
    assert not samples.samples_dir(project.pointer).exists()
