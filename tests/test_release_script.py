"""The README's release script, run as written with bash against a real project: a refusal
changes nothing, a good release stays, a failed smoke test reverts. examples/release.sh is the
same text."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, disk_state, rows, write_config

STAGING = "[environments.staging]\napprovals = 1\n"


def readme_script() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return re.search(r"<!-- release-script -->\n```bash\n(.*?)```\n<!-- /release-script -->", text, re.S).group(1)


def release(project, smoke: str) -> subprocess.CompletedProcess:
    script = project.root / "release.sh"
    script.write_text(readme_script())
    env = {
        **os.environ,
        "BLUEGREEN_CONFIG": str(project.config),
        "BLUEGREEN_ENV": "staging",
        "SMOKE_TEST": smoke,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    return subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=120, cwd=project.root)


def test_examples_release_sh_is_the_readme_script():
    assert (REPO / "examples" / "release.sh").read_text(encoding="utf-8") == readme_script()


def test_without_the_approval_the_release_stops_with_exit_3_and_changes_nothing(toy_ready):
    write_config(toy_ready.root, STAGING)
    before = disk_state(toy_ready.data)
    done = release(toy_ready, "true")
    assert done.returncode == 3, done.stderr
    assert "refused, blue still active, nothing changed" in done.stderr and "1 distinct approval" in done.stderr
    assert disk_state(toy_ready.data) == before


def test_an_approved_release_with_a_passing_smoke_test_stays(toy_ready):
    write_config(toy_ready.root, STAGING)
    assert toy_ready.cli("--env", "staging", "approve", "2.0.0", "--by", "alice").code == 0
    done = release(toy_ready, f"test -s '{toy_ready.data}/app.gen2.db'")
    assert done.returncode == 0, done.stderr
    assert "deployed: generation 2 is active" in done.stderr and "released" in done.stderr
    assert toy_ready.cli("status", "--json").json["phase"] == "cut_over"
    assert rows(toy_ready.gen(2), "SELECT count(*) FROM names") == rows(toy_ready.blue, "SELECT count(*) FROM items")


@pytest.mark.parametrize("smoke", ["false", "exit 7"])
def test_a_failing_smoke_test_reverts(toy_ready, smoke):
    write_config(toy_ready.root, STAGING)
    assert toy_ready.cli("--env", "staging", "approve", "2.0.0", "--by", "alice").code == 0
    done = release(toy_ready, smoke)
    assert done.returncode == 1, done.stderr
    assert "smoke test failed: reverting" in done.stderr and "reverted: the previous generation" in done.stderr
    status = toy_ready.cli("status", "--json").json
    assert status["phase"] == "idle" and status["active"] == str(toy_ready.blue)
    assert rows(toy_ready.blue, "SELECT count(*) FROM sqlite_schema WHERE name = 'names'") == [(0,)]
