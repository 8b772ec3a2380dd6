"""The on-ramp (issue 12, items 1 and 2): bluegreen installed as a package (not editable) runs its
demo in any empty folder and adopts a database of one's own; `init --database` scaffolds a
commented config, `new` the next migration and its companion skeletons; every refusal names the
cause, exits 2 and leaves the disk as it was; the README's "Your own database" runs as written."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import apsw
import pytest
from conftest import REPO, disk_state, rows, run_cli

from bluegreen import config
from bluegreen.engine import migrations, namedsql
from bluegreen.errors import ArgumentInvalid, DatabaseInvalid, FileInTheWay, MigrationInvalid, SchemaUnsupported
from bluegreen.tools import demo, scaffold, skeletons

EXAMPLE = REPO / "bluegreen" / "tools" / "example"


def make_db(path: Path, wal: bool = True, rows_: int = 3) -> None:
    conn = apsw.Connection(str(path))
    if wal:
        conn.execute("PRAGMA journal_mode=WAL").get
    with conn:
        conn.execute("CREATE TABLE orders(id INTEGER PRIMARY KEY, item TEXT)")
        conn.executemany("INSERT INTO orders(item) VALUES (?)", [(f"item {i}",) for i in range(rows_)])
    conn.close()


@pytest.fixture
def here(tmp_path, monkeypatch):
    """An empty folder as the working directory, no $BLUEGREEN_CONFIG: a new user's shell."""
    folder = tmp_path / "shop"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv(config.CONFIG_ENV, raising=False)
    return folder


# -- installed from the checkout, not editable ------------------------------------------------------
@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A clean venv with `pip install <copy of the checkout>` (a copy: pip builds in the source
    tree and would leave build/ in the checkout). Returns the venv's bin folder."""
    root = tmp_path_factory.mktemp("installed")
    source = root / "src"
    skip = shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", ".pytest_cache", "data", "bluegreen-demo", "results"
    )
    shutil.copytree(REPO, source, symlinks=True, ignore=skip)
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, timeout=120)
    done = subprocess.run(
        [str(root / "venv" / "bin" / "pip"), "install", "-q", str(source)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    shutil.rmtree(source)  # nothing may depend on the checkout any more
    return root / "venv" / "bin"


def run_installed(bin_dir: Path, cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in (config.CONFIG_ENV, "PYTHONPATH")}
    return subprocess.run(
        [str(bin_dir / "bluegreen"), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


def test_installed_package_runs_the_demo_and_adopts_a_database_in_empty_folders(installed, tmp_path):
    where = subprocess.run(
        [str(installed / "python"), "-c", "import bluegreen.tools.demo as d; print(d.EXAMPLE)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    example = Path(where)
    assert "site-packages" in example.parts and not example.is_relative_to(REPO)
    shipped = sorted(p.name for p in (EXAMPLE / "schemas").glob("*.sql"))
    assert sorted(p.name for p in (example / "schemas").glob("*.sql")) == shipped and len(shipped) == 8
    assert (example / "config.toml").read_text() == (EXAMPLE / "config.toml").read_text()

    # bluegreen demo, in an empty folder: its own project folder, said where, every write checked.
    empty = tmp_path / "empty"
    empty.mkdir()
    ran = run_installed(installed, empty, "demo", "--rows", "2000")
    assert ran.returncode == 0, ran.stderr
    project = empty / "bluegreen-demo"
    assert ran.stdout.splitlines()[0] == (
        f"made the demo project {project} (config.toml, schemas/, data/); cd there to try status and revert"
    )
    assert re.search(r"writer: (\d+) writes committed, all \1 present in app\.gen2\.db", ran.stdout)
    assert sorted(p.name for p in empty.iterdir()) == ["bluegreen-demo"]
    assert sorted(p.name for p in (project / "schemas").iterdir()) == shipped
    status = run_installed(installed, project, "status", "--json")
    assert status.returncode == 0 and '"generation": 2' in status.stdout

    # A database of one's own: init scaffolds and adopts, new makes a file, deploy deploys it.
    mine = tmp_path / "mine"
    mine.mkdir()
    make_db(mine / "app.db")
    init = run_installed(installed, mine, "init", "--database", "app.db")
    assert init.returncode == 0, init.stderr
    assert {"config.toml", "migrations", "current.toml", ".bluegreen"} <= {p.name for p in mine.iterdir()}
    new = run_installed(installed, mine, "new", "add_status")
    assert new.returncode == 0, new.stderr
    path = Path(new.stdout.splitlines()[-1])
    assert path == mine / "migrations" / "001_v1.0.0_add_status.sql" and path.is_file()
    with open(path, "a") as handle:
        handle.write("ALTER TABLE orders ADD COLUMN status TEXT NOT NULL DEFAULT 'new';\n")
    deployed = run_installed(installed, mine, "deploy", "--offline")
    assert deployed.returncode == 0, deployed.stderr
    assert rows(mine / "app.gen2.db", "SELECT id, item, status FROM orders ORDER BY id") == [
        (1, "item 0", "new"),
        (2, "item 1", "new"),
        (3, "item 2", "new"),
    ]


# -- packaging, in the checkout -------------------------------------------------------------------
def test_the_checkout_runs_on_the_packaged_example():
    """One copy of the example: the root schemas/ is the packaged folder; the root config is the
    packaged one, so the README's set-up demo and an installed demo run the same thing."""
    assert (REPO / "schemas").resolve() == (EXAMPLE / "schemas").resolve()
    assert (REPO / "config.toml").read_text() == (EXAMPLE / "config.toml").read_text()
    assert demo.EXAMPLE == EXAMPLE.resolve()
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    data = pyproject["tool"]["setuptools"]["package-data"]["bluegreen.tools"]
    assert "example/config.toml" in data and "example/schemas/*.sql" in data


def test_demo_in_an_empty_folder_makes_its_project_and_makes_it_again(here):
    first = run_cli("demo", "--rows", "300", "--json")
    assert first.code == 0, first.err
    project = here / "bluegreen-demo"
    assert first.json["project"] == str(project)
    assert (project / "config.toml").read_text() == (EXAMPLE / "config.toml").read_text()
    (project / "data" / "notes.txt").write_text("mine")  # the demo's folder: the next demo starts over
    again = run_cli("demo", "--rows", "300")
    assert again.code == 0, again.err
    assert not (project / "data" / "notes.txt").exists()
    assert sorted(p.name for p in here.iterdir()) == ["bluegreen-demo"]


@pytest.mark.parametrize("kind", ["folder", "file", "symlink"])
def test_demo_refuses_a_bluegreen_demo_it_did_not_make(here, kind):
    target = here / "bluegreen-demo"
    if kind == "folder":
        target.mkdir()
        (target / "precious.txt").write_text("keep me")
    elif kind == "file":
        target.write_text("keep me")
    else:
        (here / "elsewhere").mkdir()
        target.symlink_to(here / "elsewhere")
    before = disk_state(here)
    refused = run_cli("demo", "--rows", "100", "--json")
    assert refused.code == 2
    assert f"{target}: already there and not made by `bluegreen demo`" in refused.err
    assert refused.json["exit_code"] == 2
    assert disk_state(here) == before and target.exists()
    with pytest.raises(FileInTheWay):
        demo.project_config(None)


def test_demo_with_its_migrations_folder_missing_leaves_nothing(here):
    shutil.copy(EXAMPLE / "config.toml", here / "config.toml")  # dir = "schemas", absent here
    before = disk_state(here)
    refused = run_cli("demo", "--rows", "100")
    assert refused.code == 2
    assert f"{here / 'schemas'}: migrations folder not found" in refused.err
    assert disk_state(here) == before and not (here / "data").exists()


# -- init --database -------------------------------------------------------------------------------
def test_init_database_scaffolds_a_commented_config_and_adopts(here):
    make_db(here / "app.db")
    done = run_cli("init", "--database", "app.db", "--json")
    assert done.code == 0, done.err
    assert done.json["generation"] == 1 and done.json["config"] == str(here / "config.toml")
    text = (here / "config.toml").read_text()
    cfg = config.load(here / "config.toml")
    assert cfg.database.initial == here / "app.db" and cfg.database.pointer == here / "current.toml"
    assert cfg.migrations.dir == here / "migrations" and cfg.migrations.dir.is_dir()
    assert (here / "current.toml").is_file()
    # every section a user may need is there, commented, with what it does
    for section in [*config._SECTIONS, "environments.production", "performance.queries", "check.queries"]:
        header = f"[{section}]" if section in ("database", "migrations") else f"# [{section}]"
        assert header in text.splitlines(), section
    # init again: as before
    assert run_cli("init").out.startswith("already initialized: app.db is generation 1")


def test_init_database_in_a_subfolder_and_a_path_needing_quotes(here):
    (here / "data dir").mkdir()
    make_db(here / "data dir" / 'my "app".db')
    done = run_cli("init", "--database", 'data dir/my "app".db')
    assert done.code == 0, done.err
    cfg = config.load(here / "config.toml")
    assert cfg.database.initial == here / "data dir" / 'my "app".db'
    assert cfg.database.pointer == here / "data dir" / "current.toml"
    assert cfg.migrations.dir == here / "migrations"


def test_each_commented_section_of_the_template_loads_once_uncommented(here):
    make_db(here / "app.db")
    assert run_cli("init", "--database", "app.db").code == 0
    text = (here / "config.toml").read_text()
    setting = re.compile(r"^# (\[[a-z._]+\]|[a-z_-]+ = .*)$")
    uncommented = "\n".join(line[2:] if setting.match(line) else line for line in text.splitlines())
    assert uncommented.count("\n[") >= 12
    (here / "all.toml").write_text(uncommented)
    cfg = config.load(here / "all.toml")
    assert cfg.cutover.max_write_pause_ms == 100 and cfg.environments["production"].approvals == 2
    assert dict(cfg.performance.queries) == {"recent_orders": "SELECT id FROM orders ORDER BY id DESC LIMIT 50"}
    assert cfg.hooks.pre_prepare == "./scripts/check-release.sh" and cfg.retention.keep_days == 30


def test_init_database_with_the_config_naming_it_behaves_as_init(toy, monkeypatch):
    monkeypatch.chdir(toy.root)
    monkeypatch.delenv(config.CONFIG_ENV, raising=False)
    before = toy.config.read_bytes()
    done = run_cli("init", "--database", "data/app.db")
    assert done.code == 0, done.err
    assert done.out.startswith(f"adopted {toy.blue} as generation 1")
    assert toy.config.read_bytes() == before and not (toy.root / "migrations").exists()


def _refusal_cases(here: Path) -> dict:
    """name -> (set up, --database, expected type, message part)."""

    def foreign_history():
        make_db(here / "app.db")
        conn = apsw.Connection(str(here / "app.db"))
        conn.execute(
            "CREATE TABLE schema_migrations(version TEXT PRIMARY KEY); INSERT INTO schema_migrations VALUES (1)"
        )
        conn.close()

    def other_config():
        make_db(here / "app.db")
        make_db(here / "other.db")
        (here / "config.toml").write_text(
            '[database]\npointer = "current.toml"\ninitial = "other.db"\n[migrations]\ndir = "m"\n'
        )

    def outside():
        (here.parent / "elsewhere").mkdir()
        make_db(here.parent / "elsewhere" / "app.db")

    def symlink():
        make_db(here / "real.db")
        (here / "app.db").symlink_to(here / "real.db")

    def beside(name, is_dir=False):
        def setup():
            make_db(here / "app.db")
            (here / name).mkdir() if is_dir else (here / name).write_text("x")

        return setup

    return {
        "missing": (
            lambda: None,
            "app.db",
            DatabaseInvalid,
            "app.db: database file not found; bluegreen adopts an existing",
        ),
        "not sqlite": (
            lambda: (here / "app.db").write_text("hello"),
            "app.db",
            DatabaseInvalid,
            "not a SQLite database",
        ),
        "rollback journal": (
            lambda: make_db(here / "app.db", wal=False),
            "app.db",
            DatabaseInvalid,
            "is in 'delete' journal mode; bluegreen needs WAL",
        ),
        "a folder": (lambda: (here / "app.db").mkdir(), "app.db", DatabaseInvalid, "app.db: database file not found"),
        "foreign history table": (foreign_history, "app.db", SchemaUnsupported, "table of another migration tool"),
        "config names another": (other_config, "app.db", ArgumentInvalid, "already names"),
        "outside the folder": (outside, "../elsewhere/app.db", ArgumentInvalid, "is outside"),
        "symlink": (symlink, "app.db", ArgumentInvalid, "is a symlink"),
        "pointer there": (beside("current.toml"), "app.db", FileInTheWay, "current.toml: already there"),
        "state folder there": (beside(".bluegreen", True), "app.db", FileInTheWay, ".bluegreen: already there"),
        "migrations is a file": (beside("migrations"), "app.db", FileInTheWay, "where the migrations folder goes"),
        "empty": (lambda: None, "", ArgumentInvalid, "give the path of your SQLite file"),
    }


@pytest.mark.parametrize("case", list(_refusal_cases(Path("/x"))))
def test_init_database_refusals_change_nothing(here, case):
    setup, database, error, message = _refusal_cases(here)[case]
    setup()
    before = disk_state(here.parent)
    refused = run_cli("init", "--database", database, "--json")
    assert refused.code == 2, (refused.out, refused.err)
    assert message in refused.err and refused.err.startswith("bluegreen: error: ")
    assert refused.json["ok"] is False and refused.json["exit_code"] == 2
    assert disk_state(here.parent) == before
    with pytest.raises(error):
        scaffold.ensure_config(Path("config.toml"), database)
    assert disk_state(here.parent) == before


def test_init_database_under_a_config_path_whose_folder_is_missing(here):
    make_db(here / "app.db")
    before = disk_state(here)
    refused = run_cli("--config", "nowhere/config.toml", "init", "--database", "app.db")
    assert refused.code == 2 and "does not exist; create it" in refused.err
    assert disk_state(here) == before


# -- new ------------------------------------------------------------------------------------------
@pytest.fixture
def adopted(here):
    make_db(here / "app.db")
    assert run_cli("init", "--database", "app.db").code == 0
    return here


def test_new_numbers_and_versions_each_migration(adopted):
    folder = adopted / "migrations"
    first = run_cli("new", "add_status")
    assert first.code == 0, first.err
    assert first.out.splitlines()[-1] == str(folder / "001_v1.0.0_add_status.sql")
    second = run_cli("new", "add_index", "--json").json
    assert second["path"] == str(folder / "002_v1.0.1_add_index.sql") and second["version"] == "1.0.1"
    third = run_cli("new", "split", "--version", "v2.0", "--with", "sync,validate", "--with", "rollback", "--json").json
    assert third["path"] == str(folder / "003_v2.0_split.sql")
    assert [Path(p).name for p in third["companions"]] == [
        "003_v2.0_split_sync.sql",
        "003_v2.0_split_validate.sql",
        "003_v2.0_split_rollback.sql",
    ]
    assert run_cli("new", "more", "--json").json["version"] == "2.1"
    found = migrations.discover(folder)
    assert [(m.seq, m.version, m.description) for m in found] == [
        (1, "1.0.0", "add_status"),
        (2, "1.0.1", "add_index"),
        (3, "2.0", "split"),
        (4, "2.1", "more"),
    ]
    assert found[2].sync and found[2].validate and found[2].rollback
    assert "Runs once on green" in found[0].path.read_text()


def test_new_keeps_the_width_of_the_numbers_and_follows_shipped_names(adopted):
    folder = adopted / "migrations"
    (folder / "0007_v3.4.9_old.sql").write_text("SELECT 1;\n")
    made = run_cli("new", "next_one", "--json").json
    assert Path(made["path"]).name == "0008_v3.4.10_next_one.sql"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add status"], "description 'add status': use letters, digits and _ only"),
        (["_hidden"], "use letters, digits and _ only"),
        (["../escape"], "e.g. bluegreen new escape"),
        (["a" * 101], "at most 100 characters"),
        (["add_sync"], "ends like a _sync.sql companion"),
        (["fix_check"], "ends like a _check.sql companion"),
        (["ok", "--version", "1.x"], "--version '1.x': expected numbers separated by dots"),
        (["ok", "--version", "0.9.0"], "below 1.0.0, the version of the last migration"),
    ],
)
def test_new_refusals_change_nothing(adopted, args, message):
    assert run_cli("new", "first").code == 0  # 001_v1.0.0_first.sql
    before = disk_state(adopted)
    refused = run_cli("new", *args)
    assert refused.code == 2 and message in refused.err, refused.err
    assert disk_state(adopted) == before


def test_new_refuses_an_unknown_companion_and_a_missing_folder(adopted):
    before = disk_state(adopted)
    bad = run_cli("new", "x", "--with", "sync,rollbak")
    assert bad.code == 2 and "expected some of sync, rollback, validate, benchmark, check" in bad.err
    (adopted / "migrations").rmdir()
    before = disk_state(adopted)
    gone = run_cli("new", "x")
    assert gone.code == 2 and "migrations folder not found" in gone.err
    assert disk_state(adopted) == before


def test_new_never_overwrites(adopted, monkeypatch):
    """A file that appears between the check and the write (another `new`, an editor) is kept and
    what this `new` had written is taken back."""
    folder = adopted / "migrations"
    real_open = open

    def racing_open(path, mode="r", *args, **kwargs):
        if mode == "x" and str(path).endswith("_validate.sql"):
            Path(path).write_text("theirs")
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", racing_open)
    refused = run_cli("new", "x", "--with", "sync,validate")
    monkeypatch.undo()
    assert refused.code == 2 and "appeared while writing" in refused.err
    assert sorted(p.name for p in folder.iterdir()) == ["001_v1.0.0_x_validate.sql"]
    assert (folder / "001_v1.0.0_x_validate.sql").read_text() == "theirs"


# -- the skeletons teach their contract, and none passes for a script --------------------------------
def test_skeleton_examples_work_once_uncommented(tmp_path):
    values = dict(file="f.sql", migration="m.sql", stem="m", description="d", version="1", seq=1)

    def example(template: str) -> str:
        text = template.format(**values)
        block = text.split("-- Example", 1)[1].split("\n\n")[0]
        return "\n".join(line[4:].rstrip() for line in block.splitlines()[1:] if line.startswith("--   "))

    db = tmp_path / "x.db"
    conn = apsw.Connection(str(db))
    conn.execute(
        "CREATE TABLE orders(id INTEGER PRIMARY KEY, price, quantity, status TEXT);"
        "INSERT INTO orders VALUES (1, 2, 3, 'new'), (2, 5, 1, 'new');"
        "CREATE TABLE order_totals(order_id INTEGER PRIMARY KEY, total);"
        "CREATE TEMP TABLE bluegreen_changes(table_name TEXT, row_key, present INTEGER);"
        "INSERT INTO temp.bluegreen_changes VALUES ('orders', '1', 1), ('orders', 2, 1);"
        "CREATE TEMP TABLE bluegreen_uncarried(table_name TEXT, row_key)"
    )
    conn.execute(example(skeletons.SYNC))
    conn.execute(example(skeletons.SYNC))  # idempotent, as the skeleton asks
    assert conn.execute("SELECT * FROM order_totals ORDER BY 1").fetchall() == [(1, 6), (2, 5)]
    assert conn.execute(example(skeletons.VALIDATE)).fetchall() == [("no order without a status", 0, 0, "PASS")]
    for kind in ("benchmark", "check"):
        path = tmp_path / f"m_{kind}.sql"
        path.write_text(example(skeletons.COMPANIONS[kind]))
        (query,) = namedsql.parse(path, kind)
        assert query.name in ("orders_by_status", "orders_without_status")
        assert conn.execute(query.sql).fetchall() == ([(2,), (1,)] if kind == "benchmark" else [])
    rollback = example(skeletons.ROLLBACK)
    path = tmp_path / "m_rollback.sql"
    path.write_text(rollback.replace("    -- bluegreen", "-- bluegreen"))
    assert migrations.carried_by([path]) == {"order_totals"}


def test_unwritten_skeletons_never_pass_for_scripts(tmp_path):
    values = dict(file="f.sql", migration="m.sql", stem="m", description="d", version="1", seq=1)
    conn = apsw.Connection(":memory:")
    with pytest.raises(apsw.SQLError, match="no such function: replace_this_skeleton_with_your_sync_sql"):
        conn.execute(skeletons.SYNC.format(**values)).fetchall()
    assert conn.execute(skeletons.VALIDATE.format(**values)).fetchall() == []  # the gate: "no rows", FAIL
    for kind in ("benchmark", "check"):
        path = tmp_path / f"m_{kind}.sql"
        path.write_text(skeletons.COMPANIONS[kind].format(**values))
        with pytest.raises(MigrationInvalid, match="no queries"):
            namedsql.parse(path, kind)
    path = tmp_path / "m_rollback.sql"
    path.write_text(skeletons.ROLLBACK.format(**values))
    assert migrations.carried_by([path]) == set()  # the example's carries line is not read


def test_the_sync_tripwire_is_refused_before_anything_is_built(adopted):
    """A migration that derives a table from one blue keeps writing, with its sync companion left
    as `new` wrote it: plan and prepare dry-run the skeleton and refuse it (exit 2, the file and
    the tripwire's line), nothing built, no generation number spent, blue still active."""
    made = run_cli("new", "totals", "--with", "sync", "--json").json
    with open(made["path"], "a") as handle:
        handle.write("CREATE TABLE item_names(id INTEGER PRIMARY KEY, name TEXT);\n")
        handle.write("INSERT INTO item_names SELECT id, upper(item) FROM orders;\n")
    before = disk_state(adopted)
    for command in ("plan", "prepare", "deploy"):
        refused = run_cli(command)
        assert refused.code == 2, (command, refused.err)
        assert "001_v1.0.0_totals_sync.sql:" in refused.err
        assert "no such function: replace_this_skeleton_with_your_sync_sql" in refused.err
    assert disk_state(adopted) == before
    assert tomllib.loads((adopted / "current.toml").read_text())["active"] == "app.db"


# -- the README's "Your own database", as written --------------------------------------------------
def readme_section_blocks(title: str) -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```sh\n(.*?)^```$", section, flags=re.DOTALL | re.MULTILINE)


def test_readme_your_own_database_runs_as_written(tmp_path):
    blocks = readme_section_blocks("Your own database")
    assert len(blocks) == 4
    folder = tmp_path / "shop"
    folder.mkdir()
    make_db(folder / "app.db")
    env = {k: v for k, v in os.environ.items() if k != config.CONFIG_ENV}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    outputs = []
    for block in blocks:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block], cwd=folder, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, (block, done.stdout, done.stderr)
        outputs.append(done.stdout)
    init, new, deploy, revert = outputs
    # what the text says the user sees
    assert f"wrote {folder / 'config.toml'}" in init and f"made {folder / 'migrations'}/" in init
    assert f"adopted {folder / 'app.db'} as generation 1 (schema unversioned)" in init
    assert (folder / "migrations" / "001_v1.0.0_add_status.sql").is_file()
    assert "1 pending migration(s) for app.db" in new and "001_v1.0.0_add_status.sql" in new
    assert f"generation 2 is active: {folder / 'app.gen2.db'} (schema 1.0.0)" in deploy
    assert "001_v1.0.0_add_status.sql" in deploy.split("active ", 2)[-1]  # history lists it
    assert rows(folder / "app.gen2.db", "SELECT count(*) FROM orders WHERE status = 'new'") == [(3,)]
    assert "orders: derived, no companion needed (column status added; column item renamed to product)" in new
    assert rows(folder / "app.gen2.db", "SELECT product FROM orders ORDER BY id") == rows(
        folder / "app.db", "SELECT item FROM orders ORDER BY id"
    )
    assert not list((folder / "migrations").glob("*_sync.sql")) and not list(
        (folder / "migrations").glob("*_rollback.sql")
    )
    assert "reverted: app.db (generation 1) is active again" in revert
    assert "pending     001_v1.0.0_add_status.sql" in revert
