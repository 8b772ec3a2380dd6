"""The example application (examples/sdm_service.py) serves requests through a deploy of the
shipped v1.2.1 → v2.0 migration and a revert: real processes, real HTTP, no failed request,
and every write the load tool was told succeeded reads back afterwards."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_service_serves_through_deploy_and_revert(shipped, tmp_path):
    project = shipped
    service = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "sdm_service.py"), str(project.pointer), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base = service.stdout.readline().split(" on ")[1].strip()
        stop = tmp_path / "load.stop"
        load = subprocess.Popen(
            [
                sys.executable,
                str(EXAMPLES / "load.py"),
                base,
                "--seconds",
                "120",
                "--threads",
                "3",
                "--json",
                "--stop-file",
                str(stop),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(0.5)  # some load on v1 first (not a timing assertion: the files answered are checked below)
        assert project.cli("deploy").code == 0
        time.sleep(0.5)
        assert project.cli("revert").code == 0
        time.sleep(0.5)
        stop.write_text("stop")
        out, _ = load.communicate(timeout=120)
        summary = json.loads(out.strip().splitlines()[-1])
    finally:
        service.send_signal(signal.SIGINT)
        service.wait(timeout=30)
    assert summary["failed"] == [] and summary["missing"] == [], summary
    assert summary["writes_checked"] > 0
    files = summary["files"]
    assert files.get("app.db (schema unversioned)") and files.get("app.gen2.db (schema 2.0.0)"), files
    assert load.returncode == 0
