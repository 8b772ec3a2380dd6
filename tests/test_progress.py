"""Progress: JSON lines on stderr under --json, nothing when stderr is not a terminal, a line
with an ETA on a terminal."""

from __future__ import annotations

import io
import json

from conftest import make_toy_database, write_config

from bluegreen.reports.progress import ProgressReporter


def test_json_progress_lines_on_stderr_and_one_object_on_stdout(toy):
    write_config(toy.root, "[snapshot]\npages_per_step = 1\n")
    toy.blue.unlink()
    make_toy_database(toy.blue, rows=3000)
    assert toy.cli("init").code == 0
    done = toy.cli_process("prepare", "--json")
    assert done.code == 0, done.err
    assert json.loads(done.out)["ok"] is True  # stdout: exactly one object
    events = [json.loads(line) for line in done.err.splitlines()]
    snapshot = [e for e in events if e["phase"] == "snapshot"]
    assert snapshot and snapshot[-1]["done"] == snapshot[-1]["total"] and snapshot[-1]["percent"] == 100.0
    assert all(e["event"] == "progress" and 0 <= e["done"] <= e["total"] for e in events)
    assert {"snapshot", "migrate"} <= {e["phase"] for e in events}


def test_quiet_when_not_a_terminal_and_not_asked(toy_ready):
    done = toy_ready.cli_process("prepare")
    assert done.code == 0
    assert done.err == ""


def test_terminal_line_shows_percent_and_eta():
    stream = io.StringIO()
    report = ProgressReporter("tty", stream)
    report("snapshot", 0, 100)
    report.last = 0  # do not wait out the throttle
    report("snapshot", 50, 100)
    report("snapshot", 100, 100)
    text = stream.getvalue()
    assert " 50%" in text and "ETA" in text and "100%" in text and text.endswith("\n")
