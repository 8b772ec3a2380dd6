"""Benchmark: what sampling costs a point read through the ORM integrations (issue 16, item 1).

    python bench/sampling_orm.py               # appends an "ORMs" section to bench/results-sampling.md
    python bench/sampling_orm.py --print       # prints it only

On a v1.2.1 demo database (bench/sampling.py builds it the same way), one point read
(`SELECT id, url, title FROM content_v1 WHERE id = ?`) three ways: SQLAlchemy Core
(`conn.execute(text(...)).fetchall()` on a `bluegreen+sqlite://` engine), the SQLAlchemy ORM
(`session.get`, identity map cleared each time) and Django (`Model.objects.get`, ENGINE
bluegreen.django), each with sampling on and off. Figures: the best of 15 rounds of 1,000, on and
off alternating (the minimum resists a busy machine), and on/off - 1 as the overhead. The process opens the files with sqlite3
only (hazard 20): the project is made by a `bluegreen init` child process.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import timeit
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from machine import machine  # noqa: E402

POINT = "SELECT id, url, title FROM content_v1 WHERE id = :i"
N, REPEAT = 1000, 15


def project(root: Path, rows: int) -> Path:
    code = (
        "import sys; sys.path.insert(0, sys.argv[2]); from pathlib import Path; import sampling; "
        "sampling.project(Path(sys.argv[1]), int(sys.argv[3]))"
    )
    subprocess.run([sys.executable, "-c", code, str(root), str(HERE), str(rows)], check=True)
    return root / "data" / "current.toml"


def best_ns(on, off) -> tuple[float, float]:
    """ns per call of each, the best of REPEAT rounds, on and off alternating (drift falls on both)."""
    rounds = [(timeit.timeit(on, number=N), timeit.timeit(off, number=N)) for _ in range(REPEAT)]
    return min(r[0] for r in rounds) / N * 1e9, min(r[1] for r in rounds) / N * 1e9


def sqlalchemy_reads(pointer: Path, rows: int) -> dict[str, tuple[float, float]]:
    import sqlalchemy as sa
    from sqlalchemy import orm

    import bluegreen.sqlalchemy as bgsa

    class Base(orm.DeclarativeBase):
        pass

    class Content(Base):
        __tablename__ = "content_v1"
        id = sa.Column(sa.Integer, primary_key=True)
        url = sa.Column(sa.Text, nullable=False)
        title = sa.Column(sa.Text)

    rng = random.Random(5)
    statement = sa.text(POINT)
    engines = {sampled: sa.create_engine(bgsa.url(pointer), connect_args={"sampling": sampled}) for sampled in (1, 0)}
    dbs = {k: engine.connect() for k, engine in engines.items()}
    sessions = {k: orm.Session(engine) for k, engine in engines.items()}

    def core(k: int):
        return lambda: dbs[k].execute(statement, {"i": rng.randrange(1, rows + 1)}).fetchall()

    def get(k: int):
        def run() -> None:
            sessions[k].get(Content, rng.randrange(1, rows + 1))
            sessions[k].expunge_all()

        return run

    found = {
        "SQLAlchemy Core": best_ns(core(1), core(0)),
        "SQLAlchemy ORM (session.get)": best_ns(get(1), get(0)),
    }
    for k in engines:
        sessions[k].close()
        dbs[k].close()
        engines[k].dispose()
    return found


def django_reads(pointer: Path, rows: int) -> dict[str, tuple[float, float]]:
    import django
    from django.conf import settings

    databases = {
        name: {"ENGINE": "bluegreen.django", "NAME": str(pointer), "OPTIONS": {"sampling": sampled}}
        for name, sampled in (("default", True), ("off", False))
    }
    settings.configure(DATABASES=databases, INSTALLED_APPS=[], USE_TZ=True)
    django.setup()
    from django.db import models

    class Content(models.Model):
        url = models.TextField()
        title = models.TextField(null=True)

        class Meta:
            app_label = "bench"
            db_table = "content_v1"
            managed = False

    rng = random.Random(6)
    on, off = Content.objects.using("default"), Content.objects.using("off")
    return {
        "Django (objects.get)": best_ns(
            lambda: on.get(id=rng.randrange(1, rows + 1)), lambda: off.get(id=rng.randrange(1, rows + 1))
        )
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--print", action="store_true", help="print only; do not append to the results file")
    parser.add_argument("--out", type=Path, default=HERE / "results-sampling.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        pointer = project(Path(scratch), args.rows)
        results = {**sqlalchemy_reads(pointer, args.rows), **django_reads(pointer, args.rows)}
    lines = [
        "",
        "## ORMs",
        "",
        f"Run {datetime.now():%Y-%m-%d %H:%M} on {machine()}, load average {os.getloadavg()[0]:.1f}. "
        "`python bench/sampling_orm.py "
        f"--rows {args.rows}`: one point read, best of {REPEAT} x {N:,}.",
        "",
        "| path | sampling on | sampling off | overhead (on/off - 1) |",
        "|---|---:|---:|---:|",
        *(
            f"| {name} | {on / 1000:.2f} µs | {off / 1000:.2f} µs | {on / off - 1:+.1%} |"
            for name, (on, off) in results.items()
        ),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.print:
        with args.out.open("a") as out:
            out.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
