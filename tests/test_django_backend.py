"""`ENGINE: "bluegreen.django"` with the real Django from PyPI: a Django project in tmp_path
(settings, an app with a model, a view that reads and two that write), `manage.py migrate` on
the active generation, served by `manage.py runserver` (a real process, threads, persistent
connections) while real `bluegreen deploy` and `bluegreen revert` processes swap the pointer:
no request fails and every acknowledged write reads back, row by row. The failure paths: a
pointer missing, garbled, or naming a schema the settings do not accept is one clear line from
`manage.py`, its exit code, and nothing on disk changed."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import apsw
import pytest
from conftest import REPO, Project, disk_state, rows, write_config
from helpers import until

pytest.importorskip("django")

BIN = str(Path(sys.executable).parent)


def readme_blocks() -> dict[str, list[str]]:
    """The fenced blocks of README's "## ORMs" / "### Django", by language."""
    text = (REPO / "README.md").read_text()
    start = text.index("\n### Django\n", text.index("\n## ORMs\n"))
    end = min(i for i in (text.find("\n### ", start + 1), text.find("\n## ", start + 1)) if i != -1)
    blocks: dict[str, list[str]] = {}
    for language, body in re.findall(r"^```(\w+)\n(.*?)^```", text[start:end], re.S | re.M):
        blocks.setdefault(language, []).append(body)
    return blocks


SETTINGS = """\
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "test"
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = ["shop"]
ROOT_URLCONF = "shop.urls"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
"""
OVERRIDES = """
if "CONN_MAX_AGE" in os.environ:
    DATABASES["default"]["CONN_MAX_AGE"] = None if os.environ["CONN_MAX_AGE"] == "-1" else int(os.environ["CONN_MAX_AGE"])
DATABASES["default"]["ATOMIC_REQUESTS"] = os.environ.get("ATOMIC_REQUESTS") == "1"
if "COMPATIBLE" in os.environ:
    DATABASES["default"]["OPTIONS"] = {"compatible": os.environ["COMPATIBLE"].split(",")}
"""
MODELS = """\
from django.db import models


class Item(models.Model):
    name = models.CharField(max_length=50)
"""
TAG = "\n\nclass Tag(models.Model):\n    label = models.CharField(max_length=20)\n"
VIEWS = """\
from django.db import connection, transaction
from django.http import JsonResponse

from shop.models import Item


def answer(item):
    response = JsonResponse({"id": item.id, "name": item.name})
    response["X-File"] = connection.bluegreen_target.file
    return response


def write(request):
    return answer(Item.objects.create(name=request.GET["name"]))


def write_atomic(request):  # a read, then two writes, in one transaction, on one file
    with transaction.atomic():
        target = connection.bluegreen_target
        Item.objects.filter(name=request.GET["name"]).count()
        item = Item.objects.create(name="pending")
        Item.objects.filter(id=item.id).update(name=request.GET["name"])
        item.refresh_from_db()
        assert connection.bluegreen_target is target
    return answer(item)


def read(request, pk):
    return answer(Item.objects.get(id=pk))
"""
URLS = """\
from django.urls import path

from shop import views

urlpatterns = [
    path("write", views.write),
    path("write-atomic", views.write_atomic),
    path("read/<int:pk>", views.read),
]
"""


# -- the project ----------------------------------------------------------------------------------
def manage(root: Path, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "COMPATIBLE")}
    environ["PATH"] = BIN + os.pathsep + environ.get("PATH", "")
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=root,
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check:
        assert done.returncode == 0, f"manage.py {' '.join(args)}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    return done


def django_project(root: Path) -> Project:
    """A bluegreen project whose app is Django: blue holds one table of its own, `bluegreen init`
    adopts it, then Django's `migrate` runs through the backend on the active generation (0001);
    0002 (a new model) is only a migration file, for bluegreen to deploy."""
    project = Project(root)
    write_config(root)
    project.schemas.mkdir()
    project.data.mkdir()
    app = root / "shop"
    (app / "migrations").mkdir(parents=True)
    for name, text in {"__init__.py": "", "migrations/__init__.py": "", "views.py": VIEWS, "urls.py": URLS}.items():
        (app / name).write_text(text)
    (root / "settings.py").write_text(SETTINGS + readme_blocks()["python"][0] + OVERRIDES)
    (root / "manage.py").write_text(
        "import os\nimport sys\n\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'settings')\n"
        "from django.core.management import execute_from_command_line\n\nexecute_from_command_line(sys.argv)\n"
    )
    conn = apsw.Connection(str(project.blue))
    conn.execute("PRAGMA journal_mode=WAL").get
    conn.execute("CREATE TABLE note(id INTEGER PRIMARY KEY, body TEXT); INSERT INTO note(body) VALUES ('n1')")
    conn.close()
    assert project.cli("init").code == 0
    (app / "models.py").write_text(MODELS)
    manage(root, "makemigrations", "shop", "-n", "initial")
    (app / "models.py").write_text(MODELS + TAG)
    manage(root, "makemigrations", "shop", "-n", "tag")
    return project


def showmigrations(root: Path) -> dict[str, bool]:
    found = re.findall(r"\[( |X)\] (\S+)", manage(root, "showmigrations", "shop").stdout)
    return {name: mark == "X" for mark, name in found}


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """The project made once (makemigrations is slow); each test copies it."""
    return django_project(tmp_path_factory.mktemp("django")).root


@pytest.fixture
def project(made: Path, tmp_path: Path) -> Project:
    subprocess.run(["cp", "-a", f"{made}/.", str(tmp_path)], check=True)
    return Project(tmp_path)


# -- serving --------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Load:
    """Threads that write (plainly and in atomic()) and read each write back, over HTTP."""

    def __init__(self, base: str, threads: int = 4):
        self.base = base
        self.acked: dict[int, str] = {}
        self.failed: list[str] = []
        self.files: dict[str, int] = {}
        self.requests = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)]

    def _get(self, path: str) -> dict | None:
        try:
            with urllib.request.urlopen(self.base + path, timeout=30) as response:
                body = json.loads(response.read())
                file = response.headers["X-File"]
        except Exception as exc:  # any failed request counts: that is what is measured
            with self._lock:
                self.failed.append(f"{path}: {exc}")
            return None
        with self._lock:
            self.requests += 1
            self.files[file] = self.files.get(file, 0) + 1
        return body

    def _run(self, n: int) -> None:
        count = 0
        while not self._stop.is_set():
            count += 1
            name = f"t{n}-{count}"
            written = self._get(f"/{'write-atomic' if count % 2 else 'write'}?name={name}")
            if written is None:
                continue
            with self._lock:
                self.acked[written["id"]] = name
            back = self._get(f"/read/{written['id']}")
            if back is not None and back["name"] != name:
                with self._lock:
                    self.failed.append(f"read {written['id']}: {back} instead of {name}")

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


def serve(project: Project, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks"],
        cwd=project.root,
        env={**environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            assert server.poll() is None, server.stderr.read()
            return False

    until(up, "runserver to listen", timeout=60)
    return server, base


def bluegreen(project: Project, *args: str) -> None:
    done = project.cli_process(*args)
    assert done.code == 0, done.err


# -- through a deploy and a revert ----------------------------------------------------------------
SERVERS = {  # settings as README says (a connection per request) with debug cursors, and persistent ones
    "per-request-debug": {"DJANGO_DEBUG": "1"},
    "persistent-atomic-requests": {"DJANGO_DEBUG": "0", "CONN_MAX_AGE": "-1", "ATOMIC_REQUESTS": "1"},  # -1: None
}


@pytest.mark.parametrize("server_env", SERVERS.values(), ids=list(SERVERS))
def test_a_django_site_serves_through_deploy_and_revert_with_no_failed_request(project: Project, server_env: dict):
    """migrate (0001) on the active generation through the backend; runserver and 4 client
    threads; README's block (sqlmigrate 0002, import, deploy, showmigrations) run as written and
    then a revert, as real processes while the load runs: 0 failed requests, requests served by
    both files, every acknowledged write on the active file with its name."""
    root = project.root
    migrated = manage(root, "migrate", "shop", "0001")
    assert "Applying shop.0001_initial... OK" in migrated.stdout
    assert rows(project.blue, "SELECT app, name FROM django_migrations") == [("shop", "0001_initial")]
    assert showmigrations(root) == {"0001_initial": True, "0002_tag": False}
    server, base = serve(project, server_env)
    try:
        with Load(base) as load:
            until(lambda: load.requests >= 40, "requests on blue", timeout=60)
            (block,) = readme_blocks()["sh"]
            done = run_sh(root, block)
            assert re.findall(r"\[( |X)\] 0002_tag", done.stdout) == ["X"], done.stdout
            before = load.requests
            until(lambda: load.files.get("app.gen2.db", 0) >= 40, "requests on green", timeout=60)
            bluegreen(project, "revert")
            until(lambda: load.requests >= before + 120, "requests after the revert", timeout=60)
        if "CONN_MAX_AGE" not in server_env:  # each request closes its connection (after its response)

            def on_green() -> list:
                clients = project.cli("status", "--json").json["clients"]
                return [f for c in clients if c["pid"] == server.pid for f in c["files"] if f["file"] == "app.gen2.db"]

            until(lambda: on_green() == [], "the idle server to let go of the retired green", timeout=10)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert load.failed == []
    assert set(load.files) == {"app.db", "app.gen2.db"}, load.files
    assert showmigrations(root) == {"0001_initial": True, "0002_tag": False}
    found = dict(rows(project.blue, "SELECT id, name FROM shop_item"))
    assert len(load.acked) >= 100
    assert {pk: found.get(pk) for pk in load.acked} == load.acked
    assert set(found) == set(load.acked)  # and nothing half-written ('pending' rows) either


def run_sh(root: Path, block: str) -> subprocess.CompletedProcess:
    """A README block in the project folder, this venv's python and bluegreen first on PATH."""
    environ = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "COMPATIBLE")}
    environ["PATH"] = BIN + os.pathsep + environ.get("PATH", "")
    done = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", block], cwd=root, env=environ, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, f"{block}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    return done


# -- what an application sees when the pointer cannot be used, or a fence lands mid-transaction ----
def shell(project: Project, code: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Python run inside the Django project (`manage.py shell -c`)."""
    return manage(project.root, "shell", "-v", "0", "-c", code, env=env, check=check)


def migrated(project: Project) -> Project:
    manage(project.root, "migrate", "shop", "0001")
    return project


def garble(project: Project) -> None:
    project.pointer.write_text(project.pointer.read_text().replace("generation = 1", "generation = one"))


BROKEN = {
    "pointer missing": (lambda p: p.pointer.unlink(), {}, 2, ["current.toml", "bluegreen init"]),
    "pointer garbled": (garble, {}, 2, ["current.toml", "not valid TOML"]),
    "file missing": (
        lambda p: p.pointer.write_text(p.pointer.read_text().replace('"app.db"', '"gone.db"')),
        {},
        1,
        ["gone.db", "not found"],
    ),
    "schema not accepted": (lambda p: None, {"COMPATIBLE": "2.*"}, 1, ["'unversioned'", "does not accept"]),
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_an_unusable_pointer_is_one_line_from_manage_py_and_changes_nothing(project: Project, case: str):
    """migrate and showmigrations print GenerationUnusable's one line naming the cause (no
    traceback), exit with bluegreen's code for it, and open or create nothing; in a view the
    same error is Django's OperationalError."""
    migrated(project)
    breaks, env, code, words = BROKEN[case]
    breaks(project)
    before = disk_state(project.data)
    for command in (["migrate"], ["showmigrations", "shop"]):
        done = manage(project.root, *command, env=env, check=False)
        assert done.returncode == code, done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith("GenerationUnusable: bluegreen: "), line
        assert all(word in line for word in words), line
    seen = shell(
        project,
        "from django.db import DatabaseError, connection\n"
        "try:\n    connection.ensure_connection()\nexcept DatabaseError as exc:\n    print(type(exc).__mro__[1].__name__, exc)",
        env=env,
    )
    assert seen.stdout.startswith("OperationalError bluegreen: "), seen.stdout
    assert disk_state(project.data) == before
    assert not (project.data / "gone.db").exists()


DEPLOY = "subprocess.run([sys.executable, '-m', 'bluegreen', '--config', 'config.toml', 'deploy'], check=True, capture_output=True)"


def test_a_fence_inside_the_applications_own_transaction_raises_and_the_next_one_follows(project: Project):
    """A BEGIN of the application's own, open across a deploy: its write meets the fence and
    raises FencedInTransaction (a Django OperationalError; nothing of it committed); after the
    rollback the next write runs on green."""
    migrated(project)
    bluegreen(project, "import", "django", "shop", "0002_tag", str(write_sqlmigrate(project)))
    done = shell(
        project,
        "import subprocess, sys\n"
        "from django.db import OperationalError, connection\n"
        "from bluegreen.django.errors import FencedInTransaction\n"
        "from shop.models import Item\n"
        "Item.objects.create(name='before')\n"
        "connection.cursor().execute('BEGIN')\n"
        f"{DEPLOY}\n"
        "try:\n    Item.objects.create(name='inside')\n"
        "except FencedInTransaction as exc:\n    print('raised', isinstance(exc, OperationalError), exc)\n"
        "connection.cursor().execute('ROLLBACK')\n"
        "Item.objects.create(name='after')\n"
        "print('on', connection.bluegreen_target.file)\n",
    )
    raised, on = done.stdout.strip().splitlines()
    assert raised.startswith("raised True bluegreen: ") and "app.db: retired" in raised, raised
    assert "roll it back and run it again" in raised
    assert on == "on app.gen2.db"
    assert rows(project.gen(2), "SELECT name FROM shop_item ORDER BY id") == [("before",), ("after",)]


def test_a_swap_to_a_schema_the_settings_refuse_keeps_reads_and_names_the_cause_at_the_next_write(project: Project):
    """compatible = the blue schema only: after a deploy the connection stays on blue (reads go
    on); a write meets the fence and raises GenerationUnusable naming the schema; nothing written."""
    migrated(project)
    bluegreen(project, "import", "django", "shop", "0002_tag", str(write_sqlmigrate(project)))
    done = shell(
        project,
        "import subprocess, sys\n"
        "from django.db import OperationalError, connection\n"
        "from shop.models import Item\n"
        "Item.objects.create(name='before')\n"
        f"{DEPLOY}\n"
        "print('read', Item.objects.count(), connection.bluegreen_target.file)\n"
        "try:\n    Item.objects.create(name='refused')\n"
        "except OperationalError as exc:\n    print('refused', type(exc).__name__, exc)\n",
        env={"COMPATIBLE": "unversioned"},
    )
    read, refused = done.stdout.strip().splitlines()
    assert read == "read 1 app.db"
    assert refused.startswith("refused GenerationUnusable bluegreen: ") and "does not accept" in refused, refused
    assert rows(project.gen(2), "SELECT name FROM shop_item") == [("before",)]


def write_sqlmigrate(project: Project) -> Path:
    out = project.root / "0002.sql"
    out.write_text(manage(project.root, "sqlmigrate", "shop", "0002_tag").stdout)
    return out


def test_a_thread_that_ends_holding_a_persistent_connection_gives_its_file_back(project: Project):
    """CONN_MAX_AGE None and a thread per request, as runserver does: once the threads are gone
    and collected, the heartbeat claims no file (status and finalize see nobody behind)."""
    migrated(project)
    done = shell(
        project,
        "import gc, os, threading, time\n"
        "from django.db import connection\n"
        "from bluegreen.files import registry\n"
        "from shop.models import Item\n"
        "def request():\n    Item.objects.create(name='x')\n"
        "def claimed():  # what this process's heartbeat file says it has open\n"
        "    users = registry.users_of(connection.settings_dict['NAME'], 'app.db')\n"
        "    return [f.connections for r in users if r.pid == os.getpid() for f in r.files]\n"
        "threads = [threading.Thread(target=request) for _ in range(5)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "print('open', claimed())\n"
        "del threads; gc.collect()\n"
        "deadline = time.monotonic() + 10\n"
        "while claimed() and time.monotonic() < deadline:\n    time.sleep(0.01)\n"
        "print('after', claimed())\n",
        env={"CONN_MAX_AGE": "-1"},
    )
    opened, after = done.stdout.strip().splitlines()
    assert re.fullmatch(r"open \[[1-5]\]", opened), opened  # the count in the file is rewritten every 2 s
    assert after == "after []", after


def test_djangos_test_runner_and_dbshell(project: Project):
    """`manage.py test` runs on Django's own in-memory test database (the pointer untouched);
    `manage.py dbshell` opens the active file."""
    migrated(project)
    (project.root / "shop" / "tests.py").write_text(
        "from django.db import connection\nfrom django.test import TestCase\n\nfrom shop.models import Item\n\n\n"
        "class T(TestCase):\n    def test_memory(self):\n        Item.objects.create(name='t')\n"
        "        self.assertEqual(Item.objects.count(), 1)\n        self.assertIsNone(connection.bluegreen_target)\n"
    )
    before = disk_state(project.data)
    tested = manage(project.root, "test", "shop")
    assert "Ran 1 test" in tested.stderr and "OK" in tested.stderr, tested.stderr
    assert disk_state(project.data) == before
    if shutil.which("sqlite3") is None:
        pytest.skip("no sqlite3 command-line shell for dbshell")
    shell_out = manage(project.root, "dbshell", "--", "SELECT file FROM pragma_database_list WHERE name = 'main'")
    assert shell_out.stdout.strip() == str(project.blue.resolve())


def test_a_cursor_still_being_read_keeps_the_connection_until_it_is_done(project: Project):
    """QuerySet.iterator() reads in chunks from an open cursor: a deploy in the middle, and other
    queries inside the loop, do not move the connection under it (moving would close it); the
    first query after the loop runs on green."""
    migrated(project)
    bluegreen(project, "import", "django", "shop", "0002_tag", str(write_sqlmigrate(project)))
    done = shell(
        project,
        "import subprocess, sys, time\n"
        "from django.db import connection\n"
        "from shop.models import Item\n"
        "Item.objects.bulk_create([Item(name=f'i{n}') for n in range(5)])\n"
        "seen = []\n"
        "for n, item in enumerate(Item.objects.order_by('id').iterator(chunk_size=1)):\n"
        "    seen.append(item.name)\n"
        "    if n == 1:\n"
        f"        {DEPLOY}\n"
        "        time.sleep(0.2)  # the watch has seen the swap\n"
        "    seen.append((Item.objects.filter(id=item.id).count(), connection.bluegreen_target.file))\n"
        "print(seen)\n"
        "print(Item.objects.count(), connection.bluegreen_target.file)\n",
    )
    loop, after = done.stdout.strip().splitlines()
    names = [f"i{n}" for n in range(5)]
    assert loop == repr([x for name in names for x in (name, (1, "app.db"))])
    assert after == "5 app.gen2.db"
