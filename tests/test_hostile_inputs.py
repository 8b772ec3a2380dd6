"""Hostile values and tampered files (issue 10, item 9) and the modes of the files bluegreen
writes (item 10), on real files and real processes.

Every hostile input is refused with exit 2, exactly one `bluegreen: error:` line naming the file
and the key, no traceback, and nothing changed on disk (`disk_state`). A full disk (a real tmpfs)
and a deleted generation get one line naming the file and what to do; `status` keeps working on a
full disk and writes nothing there.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import Project, disk_state, make_toy_database, make_toy_project, rows
from helpers import SIDE, assert_refused, remove_database, too_open

BASE = """\
[database]
pointer = "data/current.toml"
initial = "data/app.db"
[migrations]
dir = "schemas"
"""


def error_lines(result) -> list[str]:
    return [line for line in result.err.splitlines() if line.startswith("bluegreen: error:")]


def state_path(project: Project) -> Path:
    return project.data / ".bluegreen" / "state.json"


# ==================================================================================================
# config: every key, every kind of bad value
# ==================================================================================================
HUGE = 10**14
CONFIG_CASES = {
    # floats: NaN and infinity switch the performance gate off (every comparison is false)
    "max_ratio nan": ("[performance]\nmax_ratio = nan\n", ["performance.max_ratio", "finite", "nan"]),
    "max_ratio inf": ("[performance]\nmax_ratio = inf\n", ["performance.max_ratio", "finite", "inf"]),
    "max_ratio -inf": ("[performance]\nmax_ratio = -inf\n", ["performance.max_ratio", "-inf"]),
    "max_ratio huge": ("[performance]\nmax_ratio = 1e300\n", ["performance.max_ratio", "1,000"]),
    "min_ms nan": ("[performance]\nmin_ms = nan\n", ["performance.min_ms", "finite"]),
    "min_ms inf": ("[performance]\nmin_ms = inf\n", ["performance.min_ms", "finite"]),
    "runs huge": (f"[performance]\nruns = {HUGE}\n", ["performance.runs", "1,000"]),
    "runs float": ("[performance]\nruns = 2.5\n", ["performance.runs", "2.5"]),
    "perf query NUL": ('[performance.queries]\nq = "SELECT 1\\u0000"\n', ["performance.queries.q", "NUL"]),
    "perf query empty name": ('[performance.queries]\n"" = "SELECT 1"\n', ["performance.queries", "empty query name"]),
    # integers past what SQLite (a C int busy timeout) or the OS accept
    "lock_timeout_ms 1e14": (f"[cutover]\nlock_timeout_ms = {HUGE}\n", ["cutover.lock_timeout_ms", "24 h"]),
    "lock_timeout_ms 2^31": (f"[cutover]\nlock_timeout_ms = {2**31}\n", ["cutover.lock_timeout_ms", "86,400,000"]),
    "lock_timeout_ms float": ("[cutover]\nlock_timeout_ms = 1e3\n", ["cutover.lock_timeout_ms", "1000.0"]),
    "max_write_pause_ms huge": (f"[cutover]\nmax_write_pause_ms = {HUGE}\n", ["cutover.max_write_pause_ms", "minute"]),
    "max_write_pause_ms 0": ("[cutover]\nmax_write_pause_ms = 0\n", ["cutover.max_write_pause_ms", "positive"]),
    "max_attempts huge": (f"[cutover]\nmax_attempts = {HUGE}\n", ["cutover.max_attempts", "10,000"]),
    "max_attempts negative": ("[cutover]\nmax_attempts = -3\n", ["cutover.max_attempts", "-3"]),
    "wait_timeout_s huge": (f"[cutover]\nwait_timeout_s = {HUGE}\n", ["cutover.wait_timeout_s", "24 h"]),
    "wait_flag NUL": ('[cutover]\nwait_flag = "hold\\u0000me"\n', ["cutover.wait_flag", "NUL"]),
    "wait_flag a directory": ('[cutover]\nwait_flag = "schemas"\n', ["cutover.wait_flag", "is a directory"]),
    "wait_flag empty": ('[cutover]\nwait_flag = ""\n', ["cutover.wait_flag", "non-empty path"]),
    "pages_per_step huge": (f"[snapshot]\npages_per_step = {2**40}\n", ["snapshot.pages_per_step", "1,048,576"]),
    "pages_per_step 0": ("[snapshot]\npages_per_step = 0\n", ["snapshot.pages_per_step", "positive"]),
    "guard not bool": ('[capture]\nguard_blob_writes = "yes"\n', ["capture.guard_blob_writes", "true or false"]),
    "keep_days huge": (f"[retention]\nkeep_days = {HUGE}\n", ["retention.keep_days", "36,500"]),
    "keep_days negative": ("[retention]\nkeep_days = -1\n", ["retention.keep_days", "-1"]),
    "min_free_mb huge": (f"[disk]\nmin_free_mb = {2**62}\n", ["disk.min_free_mb", "16 TiB"]),
    "sample_rows huge": (f"[check]\nsample_rows = {HUGE}\n", ["check.sample_rows", "10,000"]),
    "check query NUL": ('[check.queries]\nq = "SELECT\\u0000 1"\n', ["check.queries.q", "NUL"]),
    "hook timeout huge": (f"[hooks]\ntimeout_s = {HUGE}\n", ["hooks.timeout_s", "24 h"]),
    "hook command NUL": ('[hooks]\npre-prepare = "true\\u0000"\n', ["hooks.pre-prepare", "NUL"]),
    "hook command blank": ('[hooks]\npre-cutover = "  "\n', ["hooks.pre-cutover", "non-empty"]),
    "approvals huge": (f"[environments.staging]\napprovals = {HUGE}\n", ["environments.staging.approvals", "100"]),
    "approvals negative": ("[environments.staging]\napprovals = -1\n", ["environments.staging.approvals", "-1"]),
    "backup_dir NUL": (
        '[environments.dev]\nbackup = true\nbackup_dir = "b\\u0000k"\n',
        ["environments.dev.backup_dir", "NUL"],
    ),
    "backup_dir a file": (
        '[environments.dev]\nbackup = true\nbackup_dir = "config.toml"\n',
        ["environments.dev.backup_dir", "not a directory"],
    ),
    "timezone NUL": ('[environments.dev]\ntimezone = "UTC\\u0000"\n', ["environments.dev.timezone", "NUL"]),
    "window NUL": ('[environments.dev]\nwindow = "02:00-04:00\\u0000"\n', ["environments.dev.window", "NUL"]),
    # paths
    "pointer NUL": (BASE.replace("data/current.toml", "data/cur\\u0000rent.toml"), ["database.pointer", "NUL"]),
    "initial NUL": (BASE.replace("data/app.db", "data/app\\u0000.db"), ["database.initial", "NUL"]),
    "migrations NUL": (BASE.replace('"schemas"', '"sch\\u0000emas"'), ["migrations.dir", "NUL"]),
    "pointer is a directory": (BASE.replace("data/current.toml", "data"), ["database.pointer", "is a directory"]),
    "initial is a directory": (BASE.replace("data/app.db", "schemas"), ["database.initial", "is a directory"]),
    "migrations is a file": (BASE.replace('"schemas"', '"config.toml"'), ["migrations.dir", "not a directory"]),
    "pointer is initial": (
        BASE.replace("data/current.toml", "data/app.db"),
        ["database.pointer and database.initial", "same file"],
    ),
    "pointer named like -wal": (
        BASE.replace("data/current.toml", "data/app.db-wal"),
        ["database.pointer", "side file"],
    ),
    "path too long": (BASE.replace("data/current.toml", "data/" + "x" * 300), ["database.pointer", "longer than"]),
}


def config_text(case: str) -> str:
    return case if case.startswith("[database]") else BASE + case


@pytest.mark.parametrize("command", ["deploy", "status"])
@pytest.mark.parametrize("case", list(CONFIG_CASES), ids=list(CONFIG_CASES))
def test_hostile_config_value_is_refused(toy_ready, case, command):
    project = toy_ready
    text, words = CONFIG_CASES[case]
    project.config.write_text(config_text(text))
    before = disk_state(project.data)

    result = project.cli(command)

    assert_refused(result, 2, str(project.config), *words)
    assert disk_state(project.data) == before


def test_lock_timeout_past_a_c_int_in_a_real_process_leaves_nothing_in_flight(toy_ready):
    """The case that wedged: a traceback from set_busy_timeout and a journal stuck in `preparing`."""
    project = toy_ready
    project.config.write_text(BASE + f"[cutover]\nlock_timeout_ms = {HUGE}\n")
    before = disk_state(project.data)
    assert_refused(project.cli_process("deploy"), 2, "cutover.lock_timeout_ms")
    assert disk_state(project.data) == before
    assert json.loads(state_path(project).read_text())["phase"] == "idle"


def test_nan_max_ratio_no_longer_switches_the_gate_off(toy_ready):
    """Directly at the parser: NaN > anything is false, so NaN would pass every benchmark."""
    from bluegreen import config
    from bluegreen.errors import InputError

    project = toy_ready
    for value in ("nan", "+nan", "-nan", "inf", "+inf"):
        project.config.write_text(BASE + f"[performance]\nmax_ratio = {value}\n")
        with pytest.raises(InputError, match="performance.max_ratio"):
            config.load(project.config)


def test_config_path_with_a_nul_byte(toy_ready):
    result = toy_ready.cli("--config", "conf\x00ig.toml", "status")
    assert_refused(result, 2, "NUL", "--config")


def test_config_path_that_is_a_directory(toy_ready):
    assert_refused(
        toy_ready.cli("--config", str(toy_ready.root), "status"), 2, str(toy_ready.root), "cannot read config"
    )


# ==================================================================================================
# the pointer: every field, and what it names on disk
# ==================================================================================================
def pointer_doc(project: Project) -> dict:
    import tomllib

    return tomllib.loads(project.pointer.read_text())


def write_pointer(project: Project, **changes) -> None:
    document = {**pointer_doc(project), **changes}
    document = {k: v for k, v in document.items() if v is not None}
    project.pointer.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in document.items()))


def _symlink_outside(project: Project) -> None:
    make_toy_database(project.root / "outside.db", rows=3)
    os.symlink(project.root / "outside.db", project.data / "app.gen2.db")
    write_pointer(project, active="app.gen2.db", generation=2)


def _directory_named_active(project: Project) -> None:
    (project.data / "app.gen2.db").mkdir()
    write_pointer(project, active="app.gen2.db", generation=2)


def _pointer_is_a_directory(project: Project) -> None:
    project.pointer.unlink()
    project.pointer.mkdir()


def _huge_pointer(project: Project) -> None:
    with open(project.pointer, "a") as out:
        out.write("# " + "x" * 100_000 + "\n")


def _copy_of_blue_as_generation_2(project: Project) -> None:
    shutil.copy(project.blue, project.gen(2))  # a real database, but the journal never made it
    write_pointer(project, active="app.gen2.db", generation=2)


POINTER_CASES = {
    "unknown format": (lambda p: write_pointer(p, format=2), ["'format'", "format 1"]),
    "format as a string": (lambda p: write_pointer(p, format="1"), ["'format'"]),
    "format missing": (lambda p: write_pointer(p, format=None), ["'format'"]),
    "active with NUL": (lambda p: write_pointer(p, active="app.db\x00x"), ["NUL"]),
    "active names the pointer itself": (lambda p: write_pointer(p, active="current.toml"), ["pointer itself"]),
    "active names bluegreen's folder": (lambda p: write_pointer(p, active=".bluegreen"), ["bluegreen's folder"]),
    "active names a side file": (lambda p: write_pointer(p, active="app.db-wal"), ["side file"]),
    "active names a directory": (_directory_named_active, ["'active'", "directory"]),
    "active names a FIFO": (
        lambda p: (os.mkfifo(p.data / "app.gen2.db"), write_pointer(p, active="app.gen2.db", generation=2)),
        ["not a regular file"],
    ),
    "active is a symlink leading outside": (_symlink_outside, ["symlink leading outside", "outside.db"]),
    "active name too long": (lambda p: write_pointer(p, active="x" * 300 + ".db"), ["longer than 255"]),
    "generation huge": (lambda p: write_pointer(p, generation=2**40), ["'generation'", str(2**31 - 1)]),
    "generation negative": (lambda p: write_pointer(p, generation=-1), ["'generation'"]),
    "generation float": (lambda p: write_pointer(p, generation=1.0), ["'generation'"]),
    "schema_version not a string": (lambda p: write_pointer(p, schema_version=5), ["'schema_version'"]),
    "previous outside": (lambda p: write_pointer(p, previous="../x.db"), ["outside the pointer's folder"]),
    "previous equals active": (lambda p: write_pointer(p, previous="app.db"), ["'previous'", "both name"]),
    "pointer is a directory": (_pointer_is_a_directory, ["is a directory"]),
    "pointer is huge": (_huge_pointer, ["larger than 64 KiB"]),
    "generation contradicts the journal": (
        _copy_of_blue_as_generation_2,
        ["contradicts the journal", "state.json", "generations up to 1"],
    ),
    "active is not generation's file": (
        lambda p: write_pointer(p, generation=3),
        ["contradicts the journal", "restore the pointer"],
    ),
}


@pytest.mark.parametrize("command", ["deploy", "status", "path", "prepare"])
@pytest.mark.parametrize("case", list(POINTER_CASES), ids=list(POINTER_CASES))
def test_tampered_pointer_is_refused(toy_ready, case, command):
    project = toy_ready
    tamper, words = POINTER_CASES[case]
    tamper(project)
    before = disk_state(project.data)
    outside = (project.root / "outside.db").read_bytes() if (project.root / "outside.db").exists() else None

    result = project.cli(command)

    assert_refused(result, 2, str(project.pointer), *words)
    assert disk_state(project.data) == before
    if outside is not None:  # the outside file was neither fenced nor captured
        assert (project.root / "outside.db").read_bytes() == outside
        assert rows(
            project.root / "outside.db",
            "SELECT count(*) FROM sqlite_schema WHERE name LIKE '\\_bluegreen%' ESCAPE '\\'",
        ) == [(0,)]


@pytest.fixture
def cut_over(toy_ready) -> Project:
    assert toy_ready.cli("deploy").code == 0
    return toy_ready


@pytest.mark.parametrize("command", ["revert", "finalize", "status", "deploy"])
def test_pointer_put_back_to_blue_during_the_revert_window_is_refused(cut_over, command):
    """An operator restoring an old pointer while green is active: revert would otherwise carry
    nothing and overwrite, finalize close the window on the wrong file."""
    project = cut_over
    write_pointer(project, active="app.db", generation=1, previous="")
    before = disk_state(project.data)
    assert_refused(project.cli(command), 2, "contradicts the journal", "phase cut_over", "app.gen2.db")
    assert disk_state(project.data) == before


def test_pointer_naming_a_reverted_generation_is_refused(cut_over):
    project = cut_over
    assert project.cli("revert").code == 0
    write_pointer(project, active="app.gen2.db", generation=2, previous="app.db")
    before = disk_state(project.data)
    assert_refused(project.cli("deploy"), 2, "contradicts the journal", "reverted")
    assert disk_state(project.data) == before


# ==================================================================================================
# the journal (.bluegreen/state.json)
# ==================================================================================================
def raw_disk_state(folder: Path) -> dict:
    """disk_state for a folder whose state.json is not JSON: that file by bytes, the rest as usual."""
    journal = folder / ".bluegreen" / "state.json"
    saved = journal.read_bytes() if journal.is_file() else None
    if saved is None:
        return disk_state(folder)
    journal.write_text("{}")
    try:
        return {**disk_state(folder), ".bluegreen/state.json": saved}
    finally:
        journal.write_bytes(saved)


def edit_state(project: Project, **changes) -> None:
    document = json.loads(state_path(project).read_text())
    document.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del document[key]
    state_path(project).write_text(json.dumps(document))


def _state_is_a_directory(project: Project) -> None:
    state_path(project).unlink()
    state_path(project).mkdir()


JOURNAL_CASES = {
    "unknown phase": (lambda p: edit_state(p, phase="exploded"), ["'phase'", "idle"]),
    "last_generation a string": (lambda p: edit_state(p, last_generation="7"), ["'last_generation'"]),
    "last_generation 0": (lambda p: edit_state(p, last_generation=0), ["'last_generation'"]),
    "last_generation huge": (lambda p: edit_state(p, last_generation=2**63), ["'last_generation'"]),
    "green_generation past last": (lambda p: edit_state(p, green_generation=9), ["'green_generation'", "past"]),
    "blue outside": (lambda p: edit_state(p, blue="../app.db"), ["'blue'", "plain file name"]),
    "base_name with NUL": (lambda p: edit_state(p, base_name="app\x00.db"), ["'base_name'", "NUL"]),
    "base_name missing": (lambda p: edit_state(p, base_name=None), ["base_name"]),
    "fences a list": (lambda p: edit_state(p, fences=["app.db"]), ["'fences'"]),
    "reverted a string": (lambda p: edit_state(p, reverted="app.gen2.db"), ["'reverted'"]),
    "unknown key": (lambda p: edit_state(p, surprise=1), ["unknown keys", "surprise"]),
    "not an object": (lambda p: state_path(p).write_text("[1, 2]"), ["damaged"]),
    "torn": (lambda p: state_path(p).write_text('{"base_name": "app.db", "pha'), ["damaged"]),
    "state is a directory": (_state_is_a_directory, ["cannot read the controller state"]),
    "in flight without blue": (lambda p: edit_state(p, phase="prepared", blue=""), ["'blue'", "prepared"]),
    "blue not its generation's file": (
        lambda p: edit_state(
            p,
            phase="prepared",
            blue="app.gen2.db",
            blue_generation=1,
            green="app.db",
            green_generation=2,
            last_generation=2,
        ),
        ["'blue'", "generation 1's file 'app.db'"],
    ),
}


@pytest.mark.parametrize("command", ["deploy", "status", "revert", "abort"])
@pytest.mark.parametrize("case", list(JOURNAL_CASES), ids=list(JOURNAL_CASES))
def test_tampered_journal_is_refused(toy_ready, case, command):
    project = toy_ready
    tamper, words = JOURNAL_CASES[case]
    tamper(project)
    before = raw_disk_state(project.data)
    assert_refused(project.cli(command), 2, "state.json", *words)
    assert raw_disk_state(project.data) == before


# ==================================================================================================
# deleted generation files
# ==================================================================================================
@pytest.mark.parametrize("command", ["deploy", "plan", "path", "history", "check"])
def test_deleted_active_file_is_named(toy_ready, command):
    project = toy_ready
    remove_database(project.blue)
    before = disk_state(project.data)
    assert_refused(project.cli(command), 2, str(project.blue), "active generation not found", "restore")
    assert disk_state(project.data) == before
    assert not project.blue.exists()


def test_status_reports_a_deleted_active_file_and_keeps_reporting(toy_ready):
    project = toy_ready
    remove_database(project.blue)
    before = disk_state(project.data)
    result = project.cli("status")
    assert_refused(result, 2, str(project.blue), "not found", "restore")
    assert "phase       idle" in result.out  # the rest of the report is still there
    assert disk_state(project.data) == before


@pytest.mark.parametrize("command", ["revert", "status"])  # finalize closes the window: test_leftovers_10
def test_deleted_blue_in_the_revert_window_is_named(cut_over, command):
    project = cut_over
    remove_database(project.blue)
    before = disk_state(project.data)
    assert_refused(project.cli(command), 2, str(project.blue), "not found", "restore it from a backup")
    assert disk_state(project.data) == before


@pytest.mark.parametrize("command", ["revert", "finalize", "status", "path"])
def test_deleted_green_in_the_revert_window_is_named(cut_over, command):
    project = cut_over
    remove_database(project.gen(2))
    before = disk_state(project.data)
    assert_refused(project.cli(command), 2, str(project.gen(2)), "not found", "restore")
    assert disk_state(project.data) == before


@pytest.mark.parametrize("command", ["cutover", "deploy"])
def test_deleted_prepared_generation_is_named_and_abort_recovers(toy_ready, command):
    project = toy_ready
    assert project.cli("prepare").code == 0
    remove_database(project.gen(2))
    before = disk_state(project.data)
    assert_refused(project.cli(command), 2, str(project.gen(2)), "not found", "bluegreen abort")
    assert disk_state(project.data) == before
    status = project.cli("status")
    assert_refused(status, 2, str(project.gen(2)), "bluegreen abort")
    path = project.cli("path")  # scripts still find the active file: it is there
    assert path.code == 0 and path.out.strip() == str(project.blue)
    assert project.cli("abort").code == 0  # the way out the message names works
    assert project.cli("deploy").code == 0
    assert rows(project.gen(3), "SELECT count(*) FROM names") == [(50,)]


# ==================================================================================================
# a full disk: a real, small tmpfs
# ==================================================================================================
@pytest.fixture
def small_disk(tmp_path):
    """A toy project on its own 4 MiB tmpfs; skipped where mounting is not permitted."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}): needs root and CAP_SYS_ADMIN"
        )
    try:
        yield make_toy_project(mount, "[disk]\nmin_free_mb = 0\n")
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


FILLER = "filler.bin"


def fill(project: Project) -> None:
    """Write until the disk refuses: first large blocks, then small ones for the last bytes."""
    with open(project.root / FILLER, "wb", buffering=0) as out:
        for size in (1 << 20, 1 << 12, 1 << 9):
            try:
                while True:
                    out.write(b"\0" * size)
            except OSError:
                pass
    assert os.statvfs(project.root).f_bavail == 0


def free(project: Project) -> None:
    (project.root / FILLER).unlink()


def files_in(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def test_init_on_a_full_disk(small_disk):
    project = small_disk
    before = disk_state(project.data)  # read before: reading a WAL database needs room for its -shm
    fill(project)
    result = project.cli_process("init")
    assert_refused(result, 2, str(project.blue), "full", "free space")
    assert not project.pointer.exists()
    free(project)
    assert disk_state(project.data) == before
    assert project.cli_process("init").code == 0


def test_status_works_on_a_full_disk_and_writes_nothing(small_disk):
    project = small_disk
    assert project.cli_process("init").code == 0
    assert project.cli_process("deploy").code == 0  # a real process: every connection closed at its exit
    assert not any(Path(f"{project.gen(2)}{side}").exists() for side in SIDE)  # SQLite would need a new -shm
    before, names = disk_state(project.data), files_in(project.data)
    fill(project)

    result = project.cli_process("status", "--json")

    assert result.code == 0, result.err
    assert "Traceback" not in result.err and not error_lines(result)
    report = result.json
    assert report["phase"] == "cut_over" and report["generation"] == 2
    assert report["pending"] == [] and "pending_error" not in report  # read although SQLite cannot make a -shm
    assert files_in(project.data) == names  # not even an empty -wal/-shm
    free(project)  # reading the databases to compare them needs a -shm
    assert disk_state(project.data) == before


@pytest.mark.parametrize("command", ["finalize", "revert"])
def test_finalize_and_revert_on_a_full_disk_then_again_once_freed(small_disk, command):
    project = small_disk
    assert project.cli("init").code == 0
    assert project.cli("deploy").code == 0
    app = project.connect(project.gen(2))
    app.execute("INSERT INTO items(id, name) VALUES (1000, 'written on green')")
    app.close()
    fill(project)

    result = project.cli_process(command)

    assert_refused(result, 1, "no space left", str(project.data), "free space", f"bluegreen {command}")
    status = project.cli_process("status")
    assert status.code == 0, status.err  # the on-call's first command still answers
    free(project)
    assert project.cli_process(command).code == 0
    expected_active = project.gen(2) if command == "finalize" else project.blue
    assert rows(expected_active, "SELECT name FROM items WHERE id = 1000") == [("written on green",)]
    if command == "revert":  # green's write was carried back, row by row
        assert rows(project.blue, "SELECT * FROM items ORDER BY id") == rows(
            project.gen(2), "SELECT * FROM items ORDER BY id"
        )


def test_event_log_torn_by_a_full_disk_is_still_read(toy_ready):
    """A partial last line (the disk filled mid-append) does not break status or generations."""
    project = toy_ready
    with open(project.data / ".bluegreen" / "events.jsonl", "a") as out:
        out.write('{"at": "2026-01-01T00:00:00Z", "event": "sw')
    assert project.cli("generations").code == 0
    assert project.cli("deploy").code == 0


# ==================================================================================================
# item 10: nothing bluegreen writes is more readable than blue
# ==================================================================================================
CLIENT = textwrap.dedent("""\
    import sys, time
    from bluegreen import client
    conn = client.connect(sys.argv[1])
    conn.execute("INSERT INTO items(name) VALUES ('from a client')")
    print("ready", flush=True)
    sys.stdin.readline()
    conn.close()
""")


def test_every_file_bluegreen_writes_is_at_most_blues_mode(toy, monkeypatch):
    project = toy
    os.chmod(project.blue, 0o600)
    old_umask = os.umask(0o022)
    try:
        project.config.write_text(
            project.config.read_text()
            + textwrap.dedent("""\
            [environments.staging]
            approvals = 1
            backup = true
            backup_dir = "backups"
        """)
        )
        monkeypatch.setenv("BLUEGREEN_ENV", "staging")
        assert project.cli("init").code == 0
        assert project.cli("approve", "2.0.0", "--by", "alice").code == 0
        deployed = project.cli("deploy", "--json")
        assert deployed.code == 0, deployed.err
        child = subprocess.Popen(
            [sys.executable, "-c", CLIENT, str(project.pointer)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        try:
            assert child.stdout.readline().strip() == "ready"
            heartbeats = list((project.data / ".bluegreen" / "clients").glob("*.json"))
            assert heartbeats, "the client wrote no heartbeat"
            assert too_open(project.data, 0o600, 0o700) == []
        finally:
            child.communicate("\n", timeout=30)
        app = project.connect(project.gen(2))
        app.execute("UPDATE names SET upper_name = 'ONLY IN V2' WHERE id = 1")  # cannot be carried back
        app.close()
        reverted = project.cli("revert", "--accept-loss", "--json")
        assert reverted.code == 0, reverted.err
        exported = Path(reverted.json["exported"])
        assert rows(exported, "SELECT upper_name FROM names") == [("ONLY IN V2",)]
    finally:
        os.umask(old_umask)
    backups = project.root / "backups"
    assert list(backups.glob("app.backup-*.db"))
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600
    assert too_open(project.data, 0o600, 0o700) == []
    assert too_open(backups, 0o600, 0o700) == []
    made = files_in(project.data)
    for name in (
        ".bluegreen/state.json",
        ".bluegreen/events.jsonl",
        ".bluegreen/lock",
        ".bluegreen/approvals.json",
        ".bluegreen/approvals.lock",
        "current.toml",
    ):
        assert name in made, name


def test_a_0640_blue_gives_0640_files_and_0750_folders(toy):
    """ "At most blue's mode", not always 0600: the group that may read blue may read its journal."""
    project = toy
    os.chmod(project.blue, 0o640)
    old_umask = os.umask(0o002)
    try:
        assert project.cli("init").code == 0
        assert project.cli("deploy").code == 0
    finally:
        os.umask(old_umask)
    assert too_open(project.data, 0o640, 0o750) == []
    assert stat.S_IMODE(project.pointer.stat().st_mode) == 0o640
    assert stat.S_IMODE((project.data / ".bluegreen" / "events.jsonl").stat().st_mode) == 0o640


def test_init_on_a_full_disk_while_the_application_has_blue_open(small_disk):
    """Blue's -wal/-shm exist (the application is running), so blue can be read: the journal or
    the pointer is what cannot be written. Named, nothing half-written, and init works once freed."""
    project = small_disk
    app = project.connect()
    try:
        app.execute("SELECT count(*) FROM items").get
        before = disk_state(project.data)
        fill(project)
        result = project.cli_process("init")
        assert_refused(result, 1, "cannot write", "No space left on device", "free space")
        assert not project.pointer.exists()
        assert not [p for p in project.data.rglob("*.tmp")]  # no temp file left behind
        free(project)
        assert disk_state(project.data) == before
        assert project.cli_process("init").code == 0
        assert project.cli_process("status").code == 0
    finally:
        app.close()


@pytest.mark.parametrize(
    "args, words",
    [
        (["rehearse", "--into", "/tmp/x\x00y"], ["into", "NUL"]),
        (["prune", "app\x00.db"], ["files", "NUL"]),
        (["approve", "2.0.0", "--by", "al\x00ice"], ["by", "NUL"]),
        (["approve", "2.0.0", "--by", "a" * 1000], ["--by", "at most 200"]),
        (["approve", "2.0.0", "--by", "alice", "--note", "x\x1b[2Jy"], ["--note", "control characters"]),
    ],
)
def test_hostile_command_line_arguments(toy_ready, args, words):
    project = toy_ready
    before = disk_state(project.data)
    result = project.cli(*args)
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    assert all(word in result.err for word in words), result.err
    assert disk_state(project.data) == before


# ==================================================================================================
# other files bluegreen reads: approvals, heartbeats, the event log
# ==================================================================================================
def _symlink_to_pointer(project: Project) -> None:
    os.symlink("current.toml", project.data / "app.gen2.db")
    write_pointer(project, active="app.gen2.db", generation=2)


def test_symlink_to_the_pointer_itself_is_refused(toy_ready):
    project = toy_ready
    _symlink_to_pointer(project)
    before = disk_state(project.data)
    assert_refused(project.cli("deploy"), 2, "symlink", "no generation")
    assert disk_state(project.data) == before


@pytest.mark.parametrize(
    "approval",
    [
        {"version": "2.0.0", "by": 5, "at": "x", "environment": "staging"},
        {"version": "2.0.0", "by": "al\u0000ice", "at": "x", "environment": "staging"},
        {"version": ["2.0.0"], "by": "alice", "at": "x", "environment": "staging"},
    ],
)
def test_tampered_approvals_file_is_refused(toy_ready, monkeypatch, approval):
    project = toy_ready
    project.config.write_text(project.config.read_text() + "[environments.staging]\napprovals = 1\n")
    monkeypatch.setenv("BLUEGREEN_ENV", "staging")
    (project.data / ".bluegreen" / "approvals.json").write_text(json.dumps({"format": 1, "approvals": [approval]}))
    before = disk_state(project.data)
    assert_refused(project.cli("deploy"), 2, "approvals.json", "damaged")
    assert_refused(project.cli("approve", "2.0.0", "--by", "bob"), 2, "approvals.json", "damaged")
    assert disk_state(project.data) == before


@pytest.mark.parametrize(
    "field, value",
    [
        ("heartbeat_at", "NaN"),
        ("expires_after_s", "Infinity"),
        ("expires_after_s", 1e12),
        ("heartbeat_at", "Infinity"),
        ("heartbeat_at", 1e12),
    ],
)
def test_a_heartbeat_that_would_live_for_ever_does_not_block_finalize(toy_ready, field, value):
    """A record from another host (its pid cannot be checked) that promises NaN or infinity would
    keep finalize refused for ever."""
    import time

    project = toy_ready
    assert project.cli("deploy").code == 0
    clients = project.data / ".bluegreen" / "clients"
    clients.mkdir(parents=True, exist_ok=True)
    record = {
        "format": 1,
        "host": "elsewhere",
        "pid": 1,
        "program": "x",
        "started_at": "",
        "heartbeat_at": time.time(),
        "expires_after_s": 10.0,
        "files": [{"file": "app.db", "generation": 1, "connections": 1}],
    }
    record[field] = value
    (clients / "elsewhere-1.json").write_text(json.dumps(record))
    assert project.cli("finalize").code == 0


def test_event_with_a_bad_time_is_skipped(toy_ready):
    project = toy_ready
    assert project.cli("deploy").code == 0
    assert project.cli("finalize").code == 0
    with open(project.data / ".bluegreen" / "events.jsonl", "a") as out:
        out.write(
            json.dumps({"at": "yesterday", "event": "swap", "active": "app.gen2.db", "previous": "app.db"}) + "\n"
        )
        out.write(json.dumps({"at": 5, "event": "swap"}) + "\n")
        out.write("[1, 2]\n")
    for command in ("status", "generations", "prune"):
        result = project.cli(command)
        assert result.code == 0, result.err


def test_files_an_older_bluegreen_left_wider_are_narrowed_before_data_is_written(toy):
    """A data folder from before: .bluegreen 0755, events.jsonl and lock 0644 beside a 0600 blue."""
    project = toy
    os.chmod(project.blue, 0o600)
    assert project.cli("init").code == 0
    state_dir = project.data / ".bluegreen"
    os.chmod(state_dir, 0o755)
    for name in ("events.jsonl", "lock", "state.json"):
        os.chmod(state_dir / name, 0o644)
    assert project.cli("deploy").code == 0
    assert too_open(project.data, 0o600, 0o700) == []
