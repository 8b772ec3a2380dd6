"""`bluegreen import alembic|django` against the real tools from PyPI: an Alembic project and a
Django project in tmp_path, their exported SQL imported, deployed and reverted by bluegreen, and
the tools' own `alembic current` / `showmigrations` pointed at `bluegreen path`'s file. The
README's subsections run as written. Every refusal: the message, exit 2, nothing on disk changed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import apsw
import pytest
from conftest import REPO, Project, disk_state, rows, write_config
from helpers import assert_refused

from bluegreen.engine import migrations
from bluegreen.errors import ArgumentInvalid, FileInTheWay, MigrationInvalid, NoSpace
from bluegreen.tools import importers

pytest.importorskip("alembic")
pytest.importorskip("django")

BIN = str(Path(sys.executable).parent)
REV1, REV2, REV3 = "ae1027a6acf", "fdf13821ccf1", "3c0ffee00001"
REVISIONS = {  # revision id -> (message, down revision, upgrade body)
    REV1: (
        "create account",
        None,
        'op.create_table("account", sa.Column("id", sa.Integer, primary_key=True), '
        'sa.Column("name", sa.String(50), nullable=False))',
    ),
    REV2: ("add email", REV1, 'op.add_column("account", sa.Column("email", sa.String(100)))'),
    REV3: (
        "create audit",
        REV2,
        'op.create_table("audit", sa.Column("id", sa.Integer, primary_key=True), sa.Column("what", sa.Text))',
    ),
}


# -- running the tools ----------------------------------------------------------------------------
def sh(root: Path, command: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """A shell command in the project folder, with this venv's alembic, python and bluegreen first on PATH."""
    environ = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "APP_DB", "DJANGO_SETTINGS_MODULE")}
    environ["PATH"] = BIN + os.pathsep + environ.get("PATH", "")
    done = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", command],
        cwd=root,
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=180,
    )
    if check:
        assert done.returncode == 0, f"{command}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    return done


def active(project: Project) -> str:
    path = project.cli("path").out.strip().splitlines()[-1]
    assert Path(path).is_file(), path
    return path


def alembic_current(project: Project) -> str:
    done = sh(project.root, "alembic current", env={"DATABASE_URL": f"sqlite:///{active(project)}"})
    return done.stdout.strip()


def showmigrations(project: Project) -> dict[str, bool]:
    done = sh(project.root, "python manage.py showmigrations shop -v 2", env={"APP_DB": active(project)})
    found = {}
    for line in done.stdout.splitlines():
        match = re.match(r"\s*\[( |X)\]\s+(\S+)", line)
        if match:
            found[match.group(2)] = match.group(1) == "X"
            if match.group(1) == "X":  # Django parsed the applied time bluegreen wrote
                assert re.search(r"\(applied at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\)", line), line
    return found


def wal(path: Path) -> None:
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA journal_mode=WAL").get
    conn.close()


def readme_blocks(title: str) -> dict[str, list[str]]:
    """The fenced blocks of README's `### {title}` subsection of "Coming from ...", by language."""
    text = (REPO / "README.md").read_text()
    start = text.index(f"\n### {title}\n", text.index("\n## Coming from "))
    end = min(i for i in (text.find("\n### ", start + 1), text.find("\n## ", start + 1)) if i != -1)
    blocks: dict[str, list[str]] = {}
    for language, body in re.findall(r"```(\w+)\n(.*?)```", text[start:end], re.S):
        blocks.setdefault(language, []).append(body)
    return blocks


# -- an Alembic project ---------------------------------------------------------------------------
def alembic_project(
    root: Path, upto: str | None, notes: int = 3, revisions: tuple[str, ...] = tuple(REVISIONS)
) -> Project:
    """alembic init; env.py takes $DATABASE_URL as the README says; the revisions (default all three); blue
    (data/app.db) migrated by Alembic itself to `upto` (None: never), with a `note` table of the
    application's and rows; then `bluegreen init`."""
    project = Project(root)
    write_config(root)
    project.schemas.mkdir()
    project.data.mkdir()
    sh(root, "alembic init alembic")
    env_py = root / "alembic" / "env.py"
    hook = readme_blocks("Alembic")["python"][0]
    env_py.write_text(env_py.read_text().replace("config = context.config\n", "config = context.config\n" + hook, 1))
    ini = root / "alembic.ini"
    ini.write_text(re.sub(r"(?m)^sqlalchemy.url = .*$", "sqlalchemy.url = sqlite:///data/app.db", ini.read_text()))
    for rev in revisions:
        message, _, body = REVISIONS[rev]
        sh(root, f"alembic revision -m '{message}' --rev-id {rev}")
        path = next((root / "alembic" / "versions").glob(f"{rev}_*.py"))
        source = path.read_text()
        assert '    """Upgrade schema."""\n    pass' in source
        path.write_text(source.replace('    """Upgrade schema."""\n    pass', f"    {body}", 1))
    conn = apsw.Connection(str(project.blue))
    conn.execute("PRAGMA journal_mode=WAL").get
    conn.execute("CREATE TABLE note(id INTEGER PRIMARY KEY, body TEXT)")
    conn.executemany("INSERT INTO note(body) VALUES (?)", [(f"note {i}",) for i in range(notes)])
    conn.close()
    if upto:
        sh(root, f"alembic upgrade {upto}")
        conn = apsw.Connection(str(project.blue))
        conn.execute("INSERT INTO account(name) VALUES ('ann'), ('bob')")
        conn.close()
    wal(project.blue)
    assert project.cli("init").code == 0
    return project


def imported(project: Project, command: str) -> list[str]:
    done = sh(project.root, command)
    return [Path(line).name for line in done.stdout.strip().splitlines()[1:]]


def test_alembic_from_a_fresh_database_online_then_revert(tmp_path):
    """A database Alembic never touched: `upgrade --sql REV1` creates alembic_version and account
    in one file; it deploys online (new tables only); alembic current follows, and after the
    revert blue has no alembic_version: current shows no revision; the application's rows and its
    write on green are on blue."""
    project = alembic_project(tmp_path, upto=None)
    names = imported(project, f"alembic upgrade --sql {REV1} 2>&1 | bluegreen import alembic -")
    assert names == [f"001_1+{REV1}_create_account.sql"]
    text = (project.schemas / names[0]).read_text()
    assert "CREATE TABLE alembic_version" in text and f"VALUES ('{REV1}')" in text
    assert [m.file for m in migrations.discover(project.schemas)] == names
    assert project.cli("deploy").code == 0  # online: no table blue keeps writing changed shape
    assert alembic_current(project) == REV1
    assert rows(Path(active(project)), "SELECT version_num FROM alembic_version") == [(REV1,)]
    conn = apsw.Connection(active(project))
    conn.execute("INSERT INTO note(body) VALUES ('written on green')")
    conn.close()
    assert project.cli("revert").code == 0
    assert alembic_current(project) == ""
    assert rows(project.blue, "SELECT name FROM sqlite_schema WHERE name IN ('alembic_version', 'account')") == []
    assert rows(project.blue, "SELECT body FROM note ORDER BY id")[-1] == ("written on green",)


def test_alembic_readme_recipe_as_written(tmp_path):
    """README's Alembic block, run as written on a database Alembic migrated to REV1 (with rows):
    REV2 (add column) imported from stdin, deployed offline, current shows the new head; revert
    brings current back to REV1; the rows are there with the new column before, and as before after."""
    project = alembic_project(tmp_path, upto=REV1, revisions=(REV1, REV2))
    (block,) = readme_blocks("Alembic")["sh"]
    done = sh(project.root, block)
    currents = [line.strip() for line in done.stdout.splitlines() if re.fullmatch(r"[0-9a-f]+( \(head\))?", line)]
    assert currents == [f"{REV2} (head)", REV1], done.stdout
    assert (project.schemas / f"001_1+{REV2}_add_email.sql").is_file()
    gen2 = project.gen(2)
    assert rows(gen2, "SELECT name, email FROM account ORDER BY id") == [("ann", None), ("bob", None)]
    assert rows(project.blue, "SELECT * FROM account ORDER BY id") == [(1, "ann"), (2, "bob")]
    assert alembic_current(project) == REV1


def test_alembic_add_column_deploys_online_derived_and_reverts(tmp_path):
    """Online, REV2's ADD COLUMN needs no companion: account keeps its rows' identity, so replay
    derives its catch-up and carry-back (engine/derive.py; it was refused with exit 3 before
    derivation). A write blue took during prepare reaches green, one green took comes back."""
    project = alembic_project(tmp_path, upto=REV1)
    imported(project, f"alembic upgrade --sql {REV1}:{REV2} | bluegreen import alembic -")
    assert project.cli("plan").code == 0
    assert project.cli("prepare").code == 0
    conn = apsw.Connection(str(project.blue))
    conn.execute("UPDATE account SET name = 'ann (blue)' WHERE id = 1")
    conn.close()
    assert project.cli("cutover").code == 0
    assert alembic_current(project).split()[0] == REV2
    assert rows(Path(active(project)), "SELECT name, email FROM account ORDER BY id") == [
        ("ann (blue)", None),
        ("bob", None),
    ]
    conn = apsw.Connection(active(project))
    conn.execute("UPDATE account SET name = 'bob (green)', email = 'b@x' WHERE id = 2")
    conn.close()
    # The email green took has no column in blue: revert refuses (exit 5) rather than drop it;
    # --accept-loss saves it to a file, then carries the name back.
    refused = project.cli("revert")
    assert refused.code == 5 and "column email" in refused.err, refused.err
    assert alembic_current(project).split()[0] == REV2  # nothing changed: green still active
    assert project.cli("revert", "--accept-loss").code == 0
    assert alembic_current(project) == REV1
    assert rows(project.blue, "SELECT * FROM account ORDER BY id") == [(1, "ann (blue)"), (2, "bob (green)")]


def test_alembic_history_statement_needs_no_sync_online(tmp_path):
    """The exemption: blue already holds alembic_version (at REV2); REV3 only adds a table, and its
    UPDATE alembic_version is the one write to a table blue has. It deploys online, catching up a
    write blue took; current follows, and the revert brings REV2 back."""
    project = alembic_project(tmp_path, upto=REV2)
    names = imported(project, f"alembic upgrade --sql {REV2}:{REV3} 2>&1 | bluegreen import alembic -")
    assert names == [f"001_1+{REV3}_create_audit.sql"]
    result = project.cli("deploy")
    assert result.code == 0, result.err
    assert alembic_current(project) == f"{REV3} (head)"
    assert rows(Path(active(project)), "SELECT count(*) FROM note") == [(3,)]
    assert project.cli("revert").code == 0
    assert alembic_current(project) == REV2
    assert rows(project.blue, "SELECT version_num FROM alembic_version") == [(REV2,)]


def test_alembic_several_revisions_make_one_file_each_in_order(tmp_path):
    project = alembic_project(tmp_path, upto=None)
    names = imported(project, "alembic upgrade --sql head > all.sql 2>&1 && bluegreen import alembic all.sql")
    assert names == [
        f"001_1+{REV1}_create_account.sql",
        f"002_2+{REV2}_add_email.sql",
        f"003_3+{REV3}_create_audit.sql",
    ]
    assert "CREATE TABLE alembic_version" in (project.schemas / names[0]).read_text()
    assert "alembic_version (" not in (project.schemas / names[1]).read_text()
    assert f"UPDATE alembic_version SET version_num='{REV2}'" in (project.schemas / names[1]).read_text()
    # without the log lines (stdout only) the description falls back to a fixed word
    sh(project.root, f"rm schemas/*.sql && alembic upgrade --sql {REV1} > one.sql")
    assert imported(project, "bluegreen import alembic one.sql") == [f"001_1+{REV1}_alembic_revision.sql"]
    assert project.cli("deploy").code == 0
    assert alembic_current(project) == REV1


# -- a Django project -----------------------------------------------------------------------------
MODEL = """\
from django.db import models


class Product(models.Model):
    name = models.CharField(max_length=50)
"""


def django_project(root: Path, upto: str | None) -> Project:
    """settings.py with README's DATABASES, an app `shop` with 0001_initial, 0002_add_price (a field:
    Django rebuilds the table on SQLite), 0003_tag (a new model), 0004_fill (RunPython); blue
    migrated by Django itself to `upto` with rows, or never; then `bluegreen init`."""
    project = Project(root)
    write_config(root)
    project.schemas.mkdir()
    project.data.mkdir()
    (root / "shop" / "migrations").mkdir(parents=True)
    (root / "shop" / "__init__.py").write_text("")
    (root / "shop" / "migrations" / "__init__.py").write_text("")
    settings = (
        'import os\nfrom pathlib import Path\n\nBASE_DIR = Path(__file__).resolve().parent\nSECRET_KEY = "test"\n'
    )
    settings += 'INSTALLED_APPS = ["shop"]\nUSE_TZ = True\nDEFAULT_AUTO_FIELD = "django.db.models.AutoField"\n'
    (root / "settings.py").write_text(settings + readme_blocks("Django")["python"][0])
    (root / "manage.py").write_text(
        "import os\nimport sys\n\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'settings')\n"
        "from django.core.management import execute_from_command_line\n\nexecute_from_command_line(sys.argv)\n"
    )
    models = root / "shop" / "models.py"
    models.write_text(MODEL)
    sh(root, "python manage.py makemigrations shop -n initial")
    models.write_text(MODEL + "    price = models.IntegerField(default=0)\n")
    sh(root, "python manage.py makemigrations shop -n add_price")
    models.write_text(
        MODEL + "    price = models.IntegerField(default=0)\n\n\nclass Tag(models.Model):\n"
        "    label = models.CharField(max_length=20)\n"
    )
    sh(root, "python manage.py makemigrations shop -n tag")
    sh(root, "python manage.py makemigrations shop --empty -n fill")
    fill = root / "shop" / "migrations" / "0004_fill.py"
    fill.write_text(
        fill.read_text().replace("operations = [", "operations = [migrations.RunPython(lambda apps, schema: None),")
    )
    conn = apsw.Connection(str(project.blue))
    conn.execute("PRAGMA journal_mode=WAL").get
    conn.execute("CREATE TABLE note(id INTEGER PRIMARY KEY, body TEXT); INSERT INTO note(body) VALUES ('n1')")
    conn.close()
    if upto:
        sh(root, f"python manage.py migrate shop {upto}", env={"APP_DB": str(project.blue)})
        conn = apsw.Connection(str(project.blue))
        priced = upto != "0001"  # Django's default=0 is not a column default in the database
        conn.execute(
            f"INSERT INTO shop_product(name{', price' if priced else ''}) VALUES ('pen'{', 0' if priced else ''}), ('ink'{', 0' if priced else ''})"
        )
        conn.close()
    wal(project.blue)
    assert project.cli("init").code == 0
    return project


def test_django_from_a_fresh_database_online_then_revert(tmp_path):
    """sqlmigrate 0001 imported: BEGIN/COMMIT gone, django_migrations created and its row added;
    online deploy; showmigrations shows 0001 applied; after revert none (blue has no table)."""
    project = django_project(tmp_path, upto=None)
    sh(project.root, "python manage.py sqlmigrate shop 0001_initial > 0001.sql")
    assert "BEGIN;" in (project.root / "0001.sql").read_text()
    names = imported(project, "bluegreen import django shop 0001_initial 0001.sql")
    assert names == ["001_1+shop.0001_shop_initial.sql"]
    text = (project.schemas / names[0]).read_text()
    assert "BEGIN;" not in text and "COMMIT;" not in text
    assert 'INSERT INTO "django_migrations" ("app", "name", "applied") VALUES (\'shop\', \'0001_initial\'' in text
    assert project.cli("deploy").code == 0
    assert showmigrations(project) == {
        "0001_initial": True,
        "0002_add_price": False,
        "0003_tag": False,
        "0004_fill": False,
    }
    assert project.cli("revert").code == 0
    assert not any(showmigrations(project).values())
    assert rows(project.blue, "SELECT name FROM sqlite_schema WHERE name LIKE 'django%' OR name LIKE 'shop%'") == []


def test_django_readme_recipe_as_written(tmp_path):
    """README's Django block as written on a database Django migrated to 0001 with rows: 0002
    (Django's table rebuild) deployed offline, showmigrations shows it applied, the rows got the
    default price; after revert 0002 is unapplied again and blue's rows are as they were."""
    project = django_project(tmp_path, upto="0001")
    (block,) = readme_blocks("Django")["sh"]
    done = sh(project.root, block)
    marks = re.findall(r"\[( |X)\] 0002_add_price", done.stdout)
    assert marks == ["X", " "], done.stdout
    assert (project.schemas / "001_1+shop.0002_shop_add_price.sql").is_file()
    assert rows(project.gen(2), "SELECT name, price FROM shop_product ORDER BY id") == [("pen", 0), ("ink", 0)]
    assert rows(project.blue, "SELECT * FROM shop_product ORDER BY id") == [(1, "pen"), (2, "ink")]
    assert showmigrations(project) == {
        "0001_initial": True,
        "0002_add_price": False,
        "0003_tag": False,
        "0004_fill": False,
    }


def test_django_new_model_online_with_the_history_table_on_blue(tmp_path):
    """The exemption on Django's side: blue has django_migrations (Django migrated it to 0002); 0003
    adds a model and a row to django_migrations: online deploy, showmigrations agrees, revert too."""
    project = django_project(tmp_path, upto="0002")
    sh(project.root, "python manage.py sqlmigrate shop 0003_tag | bluegreen import django shop 0003_tag -")
    result = project.cli("deploy")
    assert result.code == 0, result.err
    assert showmigrations(project)["0003_tag"] is True
    assert rows(Path(active(project)), "SELECT name, price FROM shop_product ORDER BY id") == [("pen", 0), ("ink", 0)]
    assert project.cli("revert").code == 0
    assert showmigrations(project) == {
        "0001_initial": True,
        "0002_add_price": True,
        "0003_tag": False,
        "0004_fill": False,
    }


# -- the exemption is narrow ----------------------------------------------------------------------
def apply_effects(tmp_path: Path, setup: str, migration: str) -> migrations.ApplyResult:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "001_1_x.sql").write_text(migration)
    conn = apsw.Connection(str(tmp_path / "x.db"))
    conn.execute(setup)
    try:
        return migrations.apply(conn, migrations.discover(folder)[0], None)
    finally:
        conn.close()


SETUP = "CREATE TABLE alembic_version(version_num VARCHAR(32) PRIMARY KEY); INSERT INTO alembic_version VALUES ('a');"
SETUP += "CREATE TABLE note(id INTEGER PRIMARY KEY, body TEXT)"


def test_only_history_statements_are_exempt(tmp_path):
    done = apply_effects(
        tmp_path, SETUP, "UPDATE alembic_version SET version_num='b' WHERE alembic_version.version_num = 'a';"
    )
    assert done.history_tables == {"alembic_version"} and done.tables_written == set() and done.tables_read == set()


def test_a_history_table_row_derived_from_another_table_is_an_ordinary_write(tmp_path):
    done = apply_effects(tmp_path, SETUP, "UPDATE alembic_version SET version_num = (SELECT max(body) FROM note);")
    assert done.history_tables == set() and done.tables_written == {"alembic_version"} and "note" in done.tables_read


def test_a_history_table_also_written_otherwise_is_not_exempt(tmp_path):
    migration = "INSERT INTO alembic_version VALUES ('b');\nINSERT INTO alembic_version SELECT body FROM note;"
    done = apply_effects(tmp_path, SETUP, migration)
    assert done.history_tables == set() and done.tables_written == {"alembic_version"}


def test_another_table_is_never_exempt(tmp_path):
    done = apply_effects(tmp_path, SETUP, "INSERT INTO note(body) VALUES ('x');")
    assert done.history_tables == set() and done.tables_written == {"note"}


# -- refusals: message, exit 2, nothing written ---------------------------------------------------
@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, str]:
    """Real output of both tools, made once: Alembic's upgrade and downgrade, Django's sqlmigrate
    of a field, and of a RunPython migration."""
    root = tmp_path_factory.mktemp("al")
    alembic_project(root, upto=None)
    droot = tmp_path_factory.mktemp("dj")
    django_project(droot, upto=None)
    return {
        "alembic": sh(root, f"alembic upgrade --sql {REV1}:{REV2}").stdout,
        "downgrade": sh(root, f"alembic downgrade --sql {REV2}:{REV1}").stdout,
        "django": sh(droot, "python manage.py sqlmigrate shop 0002_add_price").stdout,
        "runpython": sh(droot, "python manage.py sqlmigrate shop 0004_fill").stdout,
    }


@pytest.fixture
def empty(tmp_path) -> Project:
    project = Project(tmp_path)
    write_config(tmp_path)
    project.schemas.mkdir()
    project.data.mkdir()
    conn = apsw.Connection(str(project.blue))
    conn.execute("PRAGMA journal_mode=WAL").get
    conn.execute("CREATE TABLE note(id INTEGER PRIMARY KEY)")
    conn.close()
    assert project.cli("init").code == 0
    return project


CASES = [
    ("alembic", "django", [], "not Alembic's output", "bluegreen import django"),
    ("alembic", "plain", [], "not Alembic's output", "alembic upgrade --sql"),
    ("alembic", "downgrade", [], "alembic downgrade --sql", "upgrades only"),
    ("alembic", "no_history", [], f"revision {REV2}", "alembic_version"),
    ("alembic", "before", [], "before the first `-- Running upgrade`", "alembic upgrade --sql"),
    ("django", "alembic", ["shop", "0002_add_price"], "Alembic's output", "bluegreen import alembic"),
    ("django", "plain", ["shop", "0002_add_price"], "not Django's output", "sqlmigrate APP NAME"),
    ("django", "runpython", ["shop", "0004_fill"], "RunPython", "applied without running it"),
    ("django", "django", ["shop-x", "0002_add_price"], "'shop-x'", "app label"),
    ("django", "django", ["shop", "0002 add"], "'0002 add'", "migration name"),
    ("django", "binary", ["shop", "0002_add_price"], "not UTF-8", "sqlmigrate"),
]


@pytest.mark.parametrize(("tool", "given", "args", "first", "second"), CASES)
def test_refusal(empty, outputs, tool, given, args, first, second):
    texts = dict(outputs)
    texts["plain"] = "CREATE TABLE t(id INTEGER PRIMARY KEY);\n"
    texts["no_history"] = "\n".join(line for line in outputs["alembic"].splitlines() if "alembic_version" not in line)
    texts["before"] = "CREATE TABLE sneaky(id);\n" + outputs["alembic"]
    texts["binary"] = None
    source = empty.root / "input.sql"
    source.write_bytes(b"\xff\xfe--\n" if texts[given] is None else texts[given].encode())
    before = disk_state(empty.root)
    result = empty.cli("import", tool, *args, str(source))
    assert_refused(result, 2, first, second)
    assert result.out == ""
    assert disk_state(empty.root) == before


def test_missing_input_file_and_missing_folder(empty):
    before = disk_state(empty.root)
    assert_refused(empty.cli("import", "alembic", str(empty.root / "nope.sql")), 2, "nope.sql: file not found")
    assert_refused(empty.cli("import", "django", "shop", "0001_initial", str(empty.root)), 2, "a folder, not a file")
    assert disk_state(empty.root) == before
    (empty.schemas).rmdir()
    (empty.root / "in.sql").write_text("x")
    before = disk_state(empty.root)
    assert_refused(empty.cli("import", "alembic", str(empty.root / "in.sql")), 2, "migrations folder not found")
    assert disk_state(empty.root) == before


def test_importing_the_same_migration_twice_is_refused(empty, outputs):
    source = empty.root / "up.sql"
    source.write_text(outputs["django"])
    assert empty.cli("import", "django", "shop", "0002_add_price", str(source)).code == 0
    before = disk_state(empty.root)
    assert_refused(empty.cli("import", "django", "shop", "0002_add_price", str(source)), 2, "imported before")
    assert disk_state(empty.root) == before
    (empty.root / "al.sql").write_text(outputs["alembic"])
    assert empty.cli("import", "alembic", str(empty.root / "al.sql")).code == 0
    before = disk_state(empty.root)
    assert_refused(empty.cli("import", "alembic", str(empty.root / "al.sql")), 2, f"alembic {REV2}", "imported before")
    assert disk_state(empty.root) == before


def test_the_errors_are_typed(tmp_path, outputs):
    with pytest.raises(MigrationInvalid):
        importers.alembic(outputs["django"], 1)
    with pytest.raises(MigrationInvalid):
        importers.django(outputs["alembic"], 1, "shop", "0002_add_price")
    with pytest.raises(ArgumentInvalid):
        importers.django(outputs["django"], 1, "", "0002_add_price")
    with pytest.raises(ArgumentInvalid):
        importers.read_source(str(tmp_path / "missing.sql"))
    planned = importers.django(outputs["django"], 1, "shop", "0002_add_price")
    (tmp_path / planned[0].name).write_text("mine")
    with pytest.raises(FileInTheWay):
        importers.write_all(tmp_path, planned)
    assert (tmp_path / planned[0].name).read_text() == "mine"  # never overwritten


def test_a_failed_write_leaves_no_file(tmp_path, outputs):
    """Several revisions are written all or none: a second file that cannot be written removes the first."""
    first = importers.alembic(outputs["alembic"], 1)[0]
    with pytest.raises(NoSpace):
        importers.write_all(tmp_path, [first, importers.Planned("missing/002_2_x.sql", "", "")])
    assert list(tmp_path.iterdir()) == []


def test_json_prints_the_paths(empty, outputs):
    (empty.root / "up.sql").write_text(outputs["alembic"])
    result = empty.cli("import", "alembic", str(empty.root / "up.sql"), "--json")
    assert result.code == 0
    document = result.json
    assert document["ok"] and document["path"] == str(empty.schemas / f"001_1+{REV2}_alembic_revision.sql")
    assert document["paths"] == [document["path"]]


def test_help_teaches_the_naming_rule():
    done = subprocess.run(
        [sys.executable, "-m", "bluegreen", "import", "alembic", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert "{seq}+{id}" in done.stdout and "BEGIN/COMMIT" in done.stdout and "django_migrations" in done.stdout
    assert "exit codes:" in done.stdout


def test_the_history_table_is_left_out_of_generic_replay(tmp_path):
    """Green's history rows describe green's schema: a row blue's copy gained meanwhile (someone ran
    the tool on the live file) is not copied over them. The same table without the effect is replayed."""
    from bluegreen.engine.replay import Replayer

    for name in ("blue.db", "green.db"):
        conn = apsw.Connection(str(tmp_path / name))
        conn.execute("PRAGMA journal_mode=WAL").get
        conn.execute(SETUP)
        conn.close()
    effects = {"001_1+x_y.sql": {"written": [], "read": [], "history": ["alembic_version"]}}
    for given, replayed in ((effects, False), ({}, True)):
        replayer = Replayer(tmp_path / "blue.db", tmp_path / "green.db", [], effects=given)
        try:
            assert ("alembic_version" in replayer.tables) is replayed
            assert "note" in replayer.tables
            assert replayer.reshape.reshaped == {}
        finally:
            replayer.close()


def test_alembic_log_lines_inside_the_sql_are_taken_out(outputs):
    """With `2>&1` stderr's log lines interleave with buffered stdout, even inside a line of SQL."""
    sql = outputs["alembic"]
    at = sql.index("ADD COLUMN") + 4
    log = f"INFO  [alembic.runtime.migration] Running upgrade {REV1} -> {REV2}, add email\n"
    (planned,) = importers.alembic(log + sql[:at] + log + sql[at:], 1)
    assert planned.name == f"001_1+{REV2}_add_email.sql"
    assert "ALTER TABLE account ADD COLUMN email VARCHAR(100);" in planned.text and "INFO" not in planned.text


def test_alembic_failing_is_refused_with_its_message(tmp_path):
    """`alembic upgrade --sql nope 2>&1 | bluegreen import alembic -`: Alembic's own error, nothing written;
    the same for a traceback (an alembic.ini Alembic cannot use)."""
    project = alembic_project(tmp_path, upto=None)
    before = disk_state(project.root)
    done = sh(project.root, "alembic upgrade --sql nope 2>&1 | bluegreen import alembic -", check=False)
    assert done.returncode == 2, done
    assert (
        "bluegreen: error: Alembic failed (" in done.stderr
        and "Can't locate revision identified by 'nope'" in done.stderr
    )
    assert disk_state(project.root) == before
    (project.root / "alembic.ini").write_text("[alembic]\nscript_location = alembic\nsqlalchemy.url = driver://x\n")
    before = disk_state(project.root)
    done = sh(project.root, "alembic upgrade --sql head 2>&1 | bluegreen import alembic -", check=False)
    assert done.returncode == 2 and "bluegreen: error: Alembic failed (" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert disk_state(project.root) == before


def test_a_history_row_the_tool_writes_on_green_in_the_revert_window_is_carried_back(tmp_path):
    """In the revert window Django itself runs the data-only 0004 (RunPython) on green: its row in
    green's django_migrations is an ordinary write there (capture started after the migration) and
    revert carries it to blue like the data it changed; 0003, which blue never ran, stays unapplied."""
    project = django_project(tmp_path, upto="0002")
    sh(project.root, "python manage.py sqlmigrate shop 0003_tag | bluegreen import django shop 0003_tag -")
    assert project.cli("deploy").code == 0
    sh(project.root, "python manage.py migrate shop 0004", env={"APP_DB": active(project)})
    assert showmigrations(project) == {
        "0001_initial": True,
        "0002_add_price": True,
        "0003_tag": True,
        "0004_fill": True,
    }
    result = project.cli("revert")
    assert result.code == 0, result.err
    assert showmigrations(project) == {
        "0001_initial": True,
        "0002_add_price": True,
        "0003_tag": False,
        "0004_fill": True,
    }


def test_django_table_rebuild_deploys_online_derived_and_reverts(tmp_path):
    """0002_add_price is Django's 12-step rebuild of shop_product, its copy filling the new field
    with the literal 0 (no column DEFAULT): derived, so it deploys online with no companion. A row
    blue took during prepare reaches green with price 0; a rename green took carries back (its
    price is still what a deploy gives it); a price green changed is refused by revert (exit 5)."""
    project = django_project(tmp_path, upto="0001")
    sh(project.root, "python manage.py sqlmigrate shop 0002_add_price | bluegreen import django shop 0002_add_price -")
    planned = project.cli("plan")
    assert planned.code == 0, planned.out + planned.err
    assert "shop_product: derived, no companion needed (rebuilt as new__shop_product" in planned.out
    assert "column price filled with 0" in planned.out
    assert project.cli("prepare").code == 0
    conn = apsw.Connection(str(project.blue))
    conn.execute(
        "INSERT INTO shop_product(name) VALUES ('cap'); UPDATE shop_product SET name = 'pen (blue)' WHERE id = 1"
    )
    conn.close()
    assert project.cli("cutover").code == 0
    assert showmigrations(project)["0002_add_price"] is True
    green = Path(active(project))
    assert rows(green, "SELECT id, name, price FROM shop_product ORDER BY id") == [
        (1, "pen (blue)", 0),
        (2, "ink", 0),
        (3, "cap", 0),
    ]
    conn = apsw.Connection(str(green))
    conn.execute("UPDATE shop_product SET name = 'ink (green)' WHERE id = 2")
    conn.close()
    assert project.cli("revert").code == 0
    assert rows(project.blue, "SELECT * FROM shop_product ORDER BY id") == [
        (1, "pen (blue)"),
        (2, "ink (green)"),
        (3, "cap"),
    ]
    assert project.cli("deploy").code == 0
    conn = apsw.Connection(active(project))
    conn.execute("UPDATE shop_product SET price = 7 WHERE id = 3")
    conn.close()
    refused = project.cli("revert")
    assert refused.code == 5 and "column price" in refused.err, refused.err


BATCH = (
    'with op.batch_alter_table("account", recreate="always", copy_from=sa.Table("account", sa.MetaData(), '
    'sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(50), nullable=False), '
    'sa.Column("email", sa.String(100)))) as batch: batch.alter_column("email", type_=sa.String(200))'
)


def test_alembic_batch_mode_rebuild_deploys_online_derived_and_reverts(tmp_path):
    """Alembic's batch mode on SQLite recreates the table (its copy names the columns by table:
    `SELECT account.id, ...`): derived, online with no companion; a write on each side arrives."""
    project = alembic_project(tmp_path, upto=REV2, revisions=(REV1, REV2))
    rev = "b47c40000004"
    sh(project.root, f"alembic revision -m 'widen email' --rev-id {rev}")
    path = next((project.root / "alembic" / "versions").glob(f"{rev}_*.py"))
    path.write_text(path.read_text().replace('    """Upgrade schema."""\n    pass', f"    {BATCH}", 1))
    imported(project, f"alembic upgrade --sql {REV2}:{rev} | bluegreen import alembic -")
    sql = next(project.schemas.glob(f"*{rev}*.sql")).read_text()
    assert "INSERT INTO _alembic_tmp_account" in sql and "SELECT account.id" in sql, sql
    planned = project.cli("plan")
    assert planned.code == 0, planned.out + planned.err
    assert "account: derived, no companion needed (rebuilt as _alembic_tmp_account" in planned.out
    assert project.cli("prepare").code == 0
    conn = apsw.Connection(str(project.blue))
    conn.execute("UPDATE account SET email = 'a@x' WHERE id = 1; INSERT INTO account(name) VALUES ('cy')")
    conn.close()
    assert project.cli("cutover").code == 0
    green = Path(active(project))
    assert rows(green, "SELECT * FROM account ORDER BY id") == [(1, "ann", "a@x"), (2, "bob", None), (3, "cy", None)]
    conn = apsw.Connection(str(green))
    conn.execute("UPDATE account SET email = 'b@x' WHERE id = 2")
    conn.close()
    assert project.cli("revert").code == 0
    assert rows(project.blue, "SELECT * FROM account ORDER BY id") == [
        (1, "ann", "a@x"),
        (2, "bob", "b@x"),
        (3, "cy", None),
    ]
