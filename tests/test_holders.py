"""Issue 14, item 3: every process holding a generation open is seen, bluegreen client or not.

Real processes on real files: a plain sqlite3 process (the stdlib module in a Python process, and
the sqlite3 shell where it is installed) and a real Datasette server hold the retired file after a
deploy. `status` names them (pid and command), `finalize` and `prune` refuse (exit 1, nothing
changed on disk) until they let go, then succeed; `--force` goes ahead and says who was left.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import pytest
from conftest import disk_state, make_toy_database, write_config
from helpers import events, files_of, ok, refused, until

from bluegreen.reports import holders

pytestmark = pytest.mark.skipif(not holders.supported(), reason="naming other processes needs Linux /proc")

# A plain sqlite3 process: the Python standard library's module, no bluegreen in sight.
HOLD_PY = """\
import sqlite3, sys
conn = None
for line in sys.stdin:
    word, _, path = line.strip().partition(" ")
    if word == "open":
        conn = sqlite3.connect(path)
        conn.execute("SELECT count(*) FROM items").fetchall()
    elif word == "connect":  # opened, nothing read yet: no lock taken
        conn = sqlite3.connect(path)
    elif word == "close":
        conn.close()
        conn = None
    print(word, flush=True)
"""


class Sqlite3Process:
    """A process that opens a database when told and closes it when told, staying alive."""

    def __init__(self, kind: str, folder: Path):
        if kind == "python":
            script = folder / "hold_sqlite3.py"
            script.write_text(HOLD_PY)
            command = [sys.executable, str(script)]
        else:  # the sqlite3 shell: `.open` closes the database it had and opens the next
            command = [shutil.which("sqlite3"), ":memory:"]
        self.kind = kind
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.pid = self.proc.pid
        self.marker = "hold_sqlite3.py" if kind == "python" else "sqlite3 :memory:"

    def _say(self, python: str, shell: str, word: str) -> None:
        self.proc.stdin.write((python if self.kind == "python" else shell) + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == word

    def open(self, path: Path) -> None:
        self._say(f"open {path}", f".open {path}\nSELECT 'open' FROM items LIMIT 1;", "open")

    def close(self) -> None:
        self._say("close", ".open :memory:\nSELECT 'close';", "close")

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


KINDS = ["python", pytest.param("shell", marks=pytest.mark.skipif(not shutil.which("sqlite3"), reason="no sqlite3"))]


@pytest.fixture
def sqlite3_process(tmp_path, request):
    started = []

    def start(kind: str) -> Sqlite3Process:
        started.append(Sqlite3Process(kind, tmp_path))
        return started[-1]

    yield start
    for proc in started:
        proc.stop()


def behind(project) -> list[dict]:
    return ok(project.cli("status", "--json"))["processes_behind"]


def assert_named(project, pid: int, marker: str, file: str = "app.db") -> None:
    """status names the process, text and --json, on the file it holds."""
    text = project.cli("status")
    assert text.code == 0, text.err
    line = next(line for line in text.out.splitlines() if line.strip().startswith("holding"))
    assert f"pid {pid}" in line and marker in line and f"has {file} open" in line, line
    found = behind(project)
    assert [(p["pid"], p["files"]) for p in found] == [(pid, [file])]
    assert marker in found[0]["command"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_plain_sqlite3_process_on_the_retired_file_is_named_and_waited_for(toy_ready, sqlite3_process, kind):
    project = toy_ready
    assert project.cli("deploy").code == 0
    holder = sqlite3_process(kind)
    holder.open(project.blue)
    assert_named(project, holder.pid, holder.marker)
    assert sorted(behind(project)[0]["seen_by"]) == ["lock", "open file"]  # a WAL reader: both ways
    line = refused(project, "finalize", code=1)
    assert f"pid {holder.pid} `" in line and holder.marker in line and "finalize refused" in line
    assert "finalize --force" in line
    details = project.cli("finalize", "--json").json["details"]
    assert [(p["pid"], p["files"]) for p in details["processes"]] == [(holder.pid, ["app.db"])]
    assert details["clients"] == []  # not a bluegreen client: the registry alone saw nothing
    holder.close()  # it lets go (and lives on)
    assert behind(project) == []
    assert ok(project.cli("finalize", "--json"))["ok"]
    write_config(project.root, "[retention]\nkeep_days = 0\n")
    holder.open(project.blue)
    for args in (("--dry-run",), ("app.db",), ()):
        line = refused(project, "prune", *args, code=1)
        assert f"pid {holder.pid} `" in line and "prune refused" in line and "prune --force" in line, line
    holder.close()
    assert project.cli("prune").code == 0
    assert files_of(project.blue) == []


def test_prune_and_finalize_force_go_ahead_and_say_who_was_left(toy_ready, sqlite3_process):
    project = toy_ready
    write_config(project.root, "[retention]\nkeep_days = 0\n")
    assert project.cli("deploy").code == 0
    holder = sqlite3_process("python")
    holder.open(project.blue)
    assert project.cli("finalize", "--force").code == 0
    assert events(project, "finalize_forced")[-1]["processes"][0].startswith(f"pid {holder.pid} `")
    before = disk_state(project.data)
    dry = ok(project.cli("prune", "--force", "--dry-run", "--json"))
    assert [p["name"] for p in dry["pruned"]] == ["app.db"]
    assert dry["forced"]["app.db"]["processes"][0].startswith(f"pid {holder.pid} `")
    assert disk_state(project.data) == before
    assert project.cli("prune", "--force").code == 0
    assert files_of(project.blue) == []
    assert events(project, "prune_forced")[-1]["file"] == "app.db"
    holder.close()  # what --force means: it had read a file that is gone now


def test_what_each_way_sees_open_files_and_locks(toy_ready, sqlite3_process):
    """A connection that has read holds SQLite's locks (seen by every user); one that only opened
    the file holds none: only its open descriptors show it."""
    project = toy_ready
    idle, reader = sqlite3_process("python"), sqlite3_process("python")
    idle._say(f"connect {project.blue}", "", "connect")
    reader.open(project.blue)
    found = {h.pid: h for h in holders.scan([project.blue]).holders}
    assert found[idle.pid].seen_by == ("open file",)
    assert found[reader.pid].seen_by == ("lock", "open file")
    assert found[reader.pid].files == ("app.db",)
    targets = holders._targets([project.blue])
    assert {pid for pid, _ in holders._by_locks(targets, set())} >= {reader.pid}
    assert idle.pid not in {pid for pid, _ in holders._by_locks(targets, set())}


SCAN_AS_ANOTHER_USER = """\
import json, sys
from pathlib import Path
from bluegreen.reports import holders
print(json.dumps(holders.scan([Path(sys.argv[1])]).as_dict()))
"""


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv"
)
def test_another_users_process_is_seen_by_its_locks_alone(sqlite3_process):
    """Without root, another user's open descriptors are closed to us, but its SQLite locks are
    not: the reader is named (seen by `lock` only); a connection that has not read yet is not."""
    folder = Path(tempfile.mkdtemp(dir="/tmp", prefix="bluegreen-other-user-"))
    try:
        folder.chmod(0o755)
        db = folder / "app.db"
        make_toy_database(db)
        for path in folder.iterdir():
            path.chmod(0o644)
        reader, idle = sqlite3_process("python"), sqlite3_process("python")
        reader.open(db)
        idle._say(f"connect {db}", "", "connect")
        done = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", SCAN_AS_ANOTHER_USER]
            + [str(db)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        seen = json.loads(done.stdout)
        assert {p["pid"]: p["seen_by"] for p in seen["processes"]} == {reader.pid: ["lock"]}
        assert seen["not_inspected"] >= 2  # at least our two root processes: their fds are closed to nobody
        assert {h.pid for h in holders.scan([db]).holders} == {reader.pid, idle.pid}  # root sees both
    finally:
        shutil.rmtree(folder)


def test_the_controller_own_process_is_not_in_the_way(toy_ready):
    """The in-process CLI is the controller: its own connection on blue does not stop finalize;
    the same connection seen from a bluegreen process is another process's, and named."""
    project = toy_ready
    assert project.cli("deploy").code == 0
    conn = project.connect(project.blue)
    try:
        conn.execute("SELECT count(*) FROM items").fetchall()
        assert behind(project) == []
        outside = project.cli_process("status", "--json")
        assert [p["pid"] for p in json.loads(outside.out)["processes_behind"]] == [os.getpid()]
        assert project.cli("finalize").code == 0
    finally:
        conn.close()


def test_where_the_kernel_cannot_say_status_says_so(toy_ready, monkeypatch):
    monkeypatch.setattr(holders, "supported", lambda: False)
    result = toy_ready.cli("status")
    assert "not visible on this system (Linux only)" in result.out
    assert ok(toy_ready.cli("status", "--json"))["processes"] == {
        "supported": False,
        "processes": [],
        "not_inspected": 0,
    }


# -- Datasette ------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except OSError:
        return None


@contextlib.contextmanager
def datasette(path: Path, *extra: str):
    """A real Datasette serving `path` on 127.0.0.1, stopped when the block ends; yields its pid and
    the rows it served from `items`."""
    pytest.importorskip("datasette")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "datasette", "serve", str(path), "-h", "127.0.0.1", "-p", str(port), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/{path.stem}/items.json?_shape=array&_size=max"
        until(lambda: proc.poll() is not None or _get(url) is not None, "Datasette serving", timeout=60, interval=0.1)
        assert proc.poll() is None, "Datasette exited"
        yield proc.pid, _get(url), f"http://127.0.0.1:{port}/{path.stem}.json"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_a_datasette_serving_the_retired_file_is_named_and_waited_for(toy_ready):
    project = toy_ready
    assert project.cli("deploy").code == 0
    served_blue = [(r["id"], r["name"]) for r in _items(project.blue)]
    with datasette(project.blue) as (pid, served, _):
        assert [(r["id"], r["name"]) for r in served] == served_blue  # it really serves the retired file
        assert_named(project, pid, "datasette serve")
        line = refused(project, "finalize", code=1)
        assert f"pid {pid} `" in line and "datasette serve" in line
    assert behind(project) == []
    assert project.cli("finalize").code == 0
    write_config(project.root, "[retention]\nkeep_days = 0\n")
    with datasette(project.blue) as (pid, _, _):
        for args in (("--dry-run",), ("app.db",)):
            line = refused(project, "prune", *args, code=1)
            assert f"pid {pid} `" in line and "datasette serve" in line and "prune refused" in line
    assert project.cli("prune", "app.db").code == 0
    assert files_of(project.blue) == []


def _items(path: Path) -> list[dict]:
    from conftest import rows

    return [{"id": i, "name": n} for i, n in rows(path, "SELECT id, name FROM items ORDER BY id")]


README_DATASETTE_METADATA = (
    '{"databases": {"app": {"tables": {"_bluegreen_meta": {"hidden": true},\n"_bluegreen_capture": {"hidden": true}}}}}'
)


def test_the_readme_datasette_metadata_hides_bluegreens_tables(toy_ready, tmp_path):
    """The README's metadata, as written, hides bluegreen's two tables in a real Datasette."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert f"`{README_DATASETTE_METADATA}`" in readme
    metadata = tmp_path / "metadata.json"
    metadata.write_text(README_DATASETTE_METADATA)
    assert toy_ready.cli("prepare").code == 0  # blue now holds both (capture for the deploy)
    with datasette(toy_ready.blue, "--metadata", str(metadata)) as (_, served, database_url):
        assert len(served) == 50
        tables = {t["name"]: t["hidden"] for t in _get(database_url)["tables"]}
    assert tables == {"items": False, "_bluegreen_meta": True, "_bluegreen_capture": True}
