"""Leftovers of issue 10: each test fails without its fix.

NUL bytes in WITHOUT ROWID text keys, finalize with blue gone, the rehearsal's scratch file modes,
`_bluegreen_*` in config queries, `check` on an FK whose parent is not unique, the offline
deploy's one-edit fence, and the `next` line of `status` on every phase.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from conftest import disk_state, rows
from test_hostile_inputs import too_open


# ==================================================================================================
# 3. the rehearsal's scratch config.toml and writer log are never more readable than blue
# ==================================================================================================
def test_rehearsal_scratch_files_keep_blues_mode(toy_ready, tmp_path_factory):
    project = toy_ready
    os.chmod(project.blue, 0o600)
    scratch = tmp_path_factory.mktemp("elsewhere") / "rehearsal"
    old_umask = os.umask(0o022)
    try:
        result = project.cli("rehearse", "--json", "--into", str(scratch), "--keep", "--writer")
    finally:
        os.umask(old_umask)
    assert result.code == 0, result.err
    assert (scratch / "config.toml").exists() and (scratch / "writer.log").exists()
    assert stat.S_IMODE((scratch / "config.toml").stat().st_mode) == 0o600
    assert stat.S_IMODE((scratch / "writer.log").stat().st_mode) == 0o600
    assert too_open(scratch, 0o600, 0o777) == []
