"""Small things a newcomer met (issue 12, item 6): `bluegreen path` failing prints nothing on
stdout and the README's shell example stops there instead of opening an empty temporary database;
on a terminal the last progress line is ended before the final message; validation reports its
progress like snapshot, migrate and catch-up do.
"""

from __future__ import annotations

import io
import json
import os
import pty
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import error_line

from bluegreen.reports.progress import ProgressReporter

REPO = Path(__file__).resolve().parent.parent
BLUEGREEN = Path(sys.executable).parent / "bluegreen"  # the console script of the venv running the tests


def readme_path_examples() -> list[str]:
    """Every shell line of the README (in ```sh blocks) that runs `bluegreen path`."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", text, re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if "bluegreen path" in line]


def stand_in_sqlite3(folder: Path) -> Path:
    """A `sqlite3` first on PATH that records that it was started (and with what), then runs the
    real one when the machine has it: whether sqlite3 is started is what the guard decides."""
    real = shutil.which("sqlite3")
    marker = folder / "sqlite3-was-started"
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    script = bin_dir / "sqlite3"
    script.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$@" > "{marker}"\n' + (f'exec "{real}" "$@"\n' if real else "exit 0\n")
    )
    script.chmod(0o755)
    return marker


def shell(line: str, cwd: Path, bin_dir: Path) -> subprocess.CompletedProcess:
    """The line in sh, with the stand-in sqlite3 first on PATH and bluegreen's own scripts next (the
    README's later sections say `bluegreen`, for a user whose virtual environment is active)."""
    scripts = Path(BLUEGREEN).parent
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{scripts}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("BLUEGREEN_CONFIG", None)
    return subprocess.run(["sh", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def checkout_like(folder: Path) -> None:
    """A folder laid out as the README's examples expect (`.venv/bin/bluegreen`)."""
    (folder / ".venv" / "bin").mkdir(parents=True)
    (folder / ".venv" / "bin" / "bluegreen").symlink_to(BLUEGREEN)


# ==================================================================================================
# bluegreen path
# ==================================================================================================
@pytest.mark.parametrize("broken", ["no-config", "missing-active-file", "garbled-pointer"])
def test_path_failing_prints_nothing_on_stdout(toy_ready, tmp_path_factory, broken):
    project = toy_ready
    cwd = project.root
    if broken == "no-config":
        cwd = tmp_path_factory.mktemp("elsewhere")
        args = [str(BLUEGREEN), "path"]
    else:
        if broken == "missing-active-file":
            project.blue.unlink()
        else:
            project.pointer.write_text("this is not = [toml")
        args = [str(BLUEGREEN), "--config", str(project.config), "path"]
    env = {k: v for k, v in os.environ.items() if k != "BLUEGREEN_CONFIG"}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""  # not even a newline: "$(bluegreen path)" is the empty string
    assert error_line(SimpleNamespace(err=done.stderr))  # one error line, no traceback


def test_the_readmes_path_examples_are_guarded_and_stop_before_sqlite3(tmp_path):
    examples = readme_path_examples()
    assert examples, "the README shows `bluegreen path` in a shell block"
    for line in examples:
        assert '"$(' not in line, f"unguarded: {line}"  # the value is checked before sqlite3 gets it
    broken = tmp_path / "broken"
    broken.mkdir()
    checkout_like(broken)
    (broken / "config.toml").write_text(
        '[database]\npointer = "data/current.toml"\ninitial = "data/app.db"\n[migrations]\ndir = "schemas"\n'
    )
    marker = stand_in_sqlite3(tmp_path)
    for line in examples:
        done = shell(line, broken, tmp_path / "bin")
        assert done.returncode == 2, (line, done.stdout, done.stderr)
        assert not marker.exists(), f"sqlite3 was started by: {line}"
        assert done.stdout == "" and "bluegreen: error:" in done.stderr
        assert not list(broken.rglob("*.db"))

    # the form the README used to show does start sqlite3, on the empty string: what the guard prevents
    done = shell("sqlite3 \"$(.venv/bin/bluegreen path)\" 'SELECT 1'", broken, tmp_path / "bin")
    assert marker.exists() and marker.read_text().splitlines()[0] == ""


def test_the_readmes_path_example_opens_the_active_file_when_path_works(toy_ready, tmp_path):
    project = toy_ready
    checkout_like(project.root)
    marker = stand_in_sqlite3(tmp_path)
    line = readme_path_examples()[0].replace("content_v1", "items")  # the toy project's table
    done = shell(line, project.root, tmp_path / "bin")
    assert marker.read_text().splitlines()[0] == str(project.blue.resolve())
    if shutil.which("sqlite3"):
        assert done.returncode == 0 and done.stdout.strip() == "50", done.stderr


# ==================================================================================================
# the terminal: the final message starts at a line's start
# ==================================================================================================
def on_a_terminal(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run a real process with stdout and stderr on one pseudo-terminal; what the terminal got."""
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "BLUEGREEN_CONFIG"}
    process = subprocess.Popen(args, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    received = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the process closed its side
            break
        if not chunk:
            break
        received += chunk
    os.close(master)
    return process.wait(timeout=60), received.decode("utf-8", "replace")


def screen(text: str) -> list[str]:
    """The lines a terminal shows: `\\r` returns to the line's start, ESC[K clears to its end."""
    shown = []
    for raw in text.split("\n"):
        line: list[str] = []
        col = 0
        for token in re.split(r"(\r|\x1b\[K)", raw):
            if token == "\r":
                col = 0
            elif token == "\x1b[K":
                del line[col:]
            else:
                for char in token:
                    if col < len(line):
                        line[col] = char
                    else:
                        line.append(char)
                    col += 1
        shown.append("".join(line))
    return shown


def test_on_a_terminal_the_final_message_starts_a_line(toy_ready):
    project = toy_ready
    code, received = on_a_terminal([str(BLUEGREEN), "--config", str(project.config), "deploy"], project.root)
    assert code == 0, received
    assert "\r" in received and "%" in received  # progress was shown on the terminal
    lines = screen(received)
    final = next(i for i, line in enumerate(lines) if "generation 2 is active" in line)
    assert lines[final].startswith("generation 2 is active"), lines[final]
    assert not any("%" in line for line in lines[final:]), lines[final:]


def test_on_a_terminal_an_error_after_unfinished_progress_starts_a_line(toy):
    """The second migration fails on green's rows (it passes the dry run on a schema with no rows,
    so the deploy gets that far): migrate's line stops at 1/2 and the error comes next."""
    project = toy
    (project.schemas / "003_v3.0.0_broken.sql").write_text(
        "CREATE TABLE one_name(name TEXT UNIQUE);\nINSERT INTO one_name SELECT 'same' FROM names;\n"
    )
    assert project.cli("init").code == 0
    code, received = on_a_terminal([str(BLUEGREEN), "--config", str(project.config), "deploy"], project.root)
    assert code == 1, received
    lines = screen(received)
    error = next(i for i, line in enumerate(lines) if "bluegreen: error:" in line)
    assert lines[error].startswith("bluegreen: error:") and "003_v3.0.0_broken.sql" in lines[error]
    assert "migrate" in received  # its progress line was on the terminal, unfinished, before the error


def test_end_clears_a_line_left_open_and_only_then():
    stream = io.StringIO()
    report = ProgressReporter("tty", stream)
    report("catch_up", 10, 100)
    report.end()
    assert stream.getvalue().endswith("\r\x1b[K")
    report("snapshot", 100, 100)  # finished: its line ended with a newline already
    written = stream.getvalue()
    report.end()
    report("snapshot", 100, 100)  # told again that it is done: not shown twice
    assert stream.getvalue() == written
    for mode in ("json", "quiet"):
        quiet = io.StringIO()
        ProgressReporter(mode, quiet).end()
        assert quiet.getvalue() == ""


# ==================================================================================================
# validate shows progress
# ==================================================================================================
def test_deploy_json_reports_validate_progress_per_check(tmp_path):
    from helpers import make_project

    project = make_project(
        tmp_path,
        "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO items(name) VALUES ('a'), ('b');",
        {
            "001_v1.0.0_items.sql": "CREATE TABLE IF NOT EXISTS items(id INTEGER PRIMARY KEY, name TEXT);\n",
            "002_v2.0.0_index.sql": "CREATE INDEX items_name ON items(name);\n",
            "002_v2.0.0_index_validate.sql": textwrap.dedent(
                """\
                SELECT 'items kept', 2, (SELECT count(*) FROM items),
                       CASE WHEN (SELECT count(*) FROM items) = 2 THEN 'PASS' ELSE 'FAIL' END;
                """
            ),
        },
        config="[performance.queries]\nby_name = \"SELECT id FROM items WHERE name = 'a'\"\n",
    )
    done = project.cli_process("deploy", "--json")
    assert done.code == 0, done.err
    assert json.loads(done.out)["ok"] is True
    events = [json.loads(line) for line in done.err.splitlines()]
    validate = [e for e in events if e["event"] == "progress" and e["phase"] == "validate"]
    # integrity, foreign keys, the _validate.sql, the performance query: 4 steps, at prepare and at cutover
    assert validate and {e["total"] for e in validate} == {4}
    assert [e for e in validate if e["done"] == 4 and e["percent"] == 100.0]
    assert len([e for e in validate if e["done"] == 0]) == 2  # once at prepare, once again at cutover
    assert all(0 <= e["done"] <= e["total"] for e in validate)
