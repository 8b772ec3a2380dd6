"""What the controller and the application's client agree on inside a database file.

The controller writes these; the client (bluegreen.client) reads them and never imports the
controller: the meta table stamps a file with its generation, a fenced file's triggers call a
function whose name tells writers which generation to use instead, and the client's busy timeout
is at least the cutover's default write pause.
"""

from __future__ import annotations

import re

import apsw

META_TABLE = "_bluegreen_meta"
FENCE_PREFIX = "_bluegreen_fence_"
FENCE_FUNCTION = "bluegreen_fenced_use_generation_{generation}"
FENCE_MARK = FENCE_FUNCTION.split("{")[0]  # "bluegreen_fenced_use_generation_"
_FENCE_CALL = re.compile(re.escape(FENCE_MARK) + r"(\d+)")
DEFAULT_MAX_WRITE_PAUSE_MS = 100  # [cutover] max_write_pause_ms when the config does not say


def fenced_generation(conn: apsw.Connection) -> int | None:
    """The generation a fenced file tells writers to use, or None if it is not fenced."""
    row = conn.execute(
        "SELECT sql FROM sqlite_schema WHERE type = 'trigger' AND substr(name, 1, ?) = ? LIMIT 1",
        (len(FENCE_PREFIX), FENCE_PREFIX),
    ).fetchall()
    if not row:
        return None
    match = _FENCE_CALL.search(row[0][0])
    return int(match.group(1)) if match else None
