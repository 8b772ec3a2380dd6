"""Who approved which version, for which environment.

Approvals are kept in the data folder's store (`.bluegreen/approvals.json`), not in a database:
people approve before prepare, when green does not exist yet. At cutover the approvers of the
target version are written into green's `schema_migrations` rows (approved_by, approved_at), so
the history inside the file says who let it in.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from bluegreen.engine import barrier
from bluegreen.engine.db import open_db
from bluegreen.engine.migrations import HISTORY_TABLE
from bluegreen.errors import ArgumentInvalid, JournalInvalid
from bluegreen.files.layout import folder_mode, make_dirs, write_file
from bluegreen.files.pointer import now_iso

MAX_NAME = 200  # an approver's name, as shown by status and stamped into green's history
MAX_NOTE = 2000


@dataclass(frozen=True)
class Approval:
    version: str
    by: str
    at: str
    environment: str  # "" when the config defines no environments
    note: str = ""


def normalize_version(text: str) -> str:
    """`v2.0.0` and `2.0.0` name the same version, as in migration file names."""
    text = text.strip()
    return text[1:] if text[:1] in ("v", "V") and text[1:2].isdigit() else text


class Approvals:
    """The approvals file of one data folder. Its own short lock, not the controller's: approving
    must work while a long cutover holds the controller lock."""

    def __init__(self, state_dir: Path, mode: int = 0o600):
        self.path = Path(state_dir) / "approvals.json"
        self.lock_path = Path(state_dir) / "approvals.lock"
        self.mode = mode  # blue's (Store.file_mode): who may read blue may read who approved it

    def of(self, version: str, environment: str) -> list[Approval]:
        """Distinct approvers of a version in an environment, first approval of each."""
        found: dict[str, Approval] = {}
        for a in self._read():
            if a.version == version and a.environment == environment:
                found.setdefault(a.by.casefold(), a)
        return list(found.values())

    def record(self, version: str, by: str, environment: str, note: str = "") -> tuple[Approval, bool]:
        """Add an approval; the same name approving the same version again counts once.
        Returns the approval that counts and whether it is new."""
        by = " ".join(by.split())
        if not by:
            raise ArgumentInvalid("approve: --by needs a name (who approves)")
        for option, text, limit in (("--by", by, MAX_NAME), ("--note", note, MAX_NOTE)):
            if len(text) > limit or any(ord(c) < 32 and c not in "\t\n" for c in text):
                raise ArgumentInvalid(
                    f"approve: {option} must be at most {limit} characters without control characters, "
                    f"got {text[:40]!r}{'...' if len(text) > 40 else ''}; nothing was recorded"
                )
        self._read()  # a damaged file is refused before the lock file is made: nothing changes
        with self._locked():
            known = self._read()
            for a in known:
                if a.version == version and a.environment == environment and a.by.casefold() == by.casefold():
                    return a, False
            approval = Approval(version, by, now_iso(), environment, note)
            document = {"format": 1, "approvals": [asdict(a) for a in [*known, approval]]}
            write_file(
                self.path,
                (json.dumps(document, indent=2) + "\n").encode("utf-8"),
                self.mode,
                "the approval was not recorded",
            )
            return approval, True

    def _read(self) -> list[Approval]:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
            found = [Approval(**a) for a in document["approvals"]]
            for a in found:
                if not all(isinstance(v, str) and "\x00" not in v for v in asdict(a).values()):
                    raise ValueError(f"every field of an approval must be a string, got {asdict(a)!r}")
            return found
        except FileNotFoundError:
            return []
        except (ValueError, TypeError, KeyError, OSError) as exc:
            raise JournalInvalid.with_hint(
                f"{self.path}: approvals file is damaged ({exc})",
                "restore it from the event log (events.jsonl lists every approval) or remove it and approve again",
            ) from None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        make_dirs(self.path.parent, folder_mode(self.mode))
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, self.mode)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # held for a read and a rename: wait for it
            yield
        finally:
            os.close(fd)


def stamp(green: Path, files: list[str], approvals: list[Approval], busy_timeout_ms: int) -> None:
    """Write the approvers into green's history rows for `files`, in one small transaction.

    Triggers are off on this connection, so green's change capture does not record the update:
    a revert carries back only the application's writes, never these rows (blue has no history
    row for a version it never had)."""
    if not approvals or not files:
        return
    by = ", ".join(a.by for a in approvals)
    at = max(a.at for a in approvals)  # when the rule was met
    conn = open_db(green, triggers=False, busy_timeout_ms=busy_timeout_ms)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            f"UPDATE {HISTORY_TABLE} SET approved_by = ?, approved_at = ? WHERE file = ?",
            [(by, at, f) for f in files],
        )
        conn.execute("COMMIT")
    finally:
        barrier.rollback(conn)
        conn.close()
