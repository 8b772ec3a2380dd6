"""Which processes hold a generation file open, bluegreen clients or not (issue 14, item 3).

The heartbeat registry (`files/registry.py`) only knows processes that open files through
`bluegreen.client`. A Datasette, a `sqlite3` shell or a backup script reading a retired file is
invisible to it, so `finalize` and `prune` would retire or delete that file under them. On Linux
the kernel knows better, two ways, and this module asks both:

- **open files** (`/proc/<pid>/fd`): every process with a descriptor on the database, its `-wal`,
  `-shm` or `-journal`, whether it has read anything yet or not: a descriptor whose path ends in
  one of those names (a symlink shows its target; nothing else is stat'ed, so a hung mount cannot
  hang status), then matched by device and inode. Only processes this user may inspect: other
  users' processes need root (or `CAP_SYS_PTRACE`); they are counted as not inspected.
- **locks** (`/proc/locks`): the POSIX locks SQLite keeps. A WAL connection holds a read lock on
  the `-shm` file (and a shared lock on the database) from its first read until it closes, so an
  idle reader that has read once is seen, for every user, without root. A connection that opened
  the file but never read it, or a rollback-journal connection between transactions, holds no lock.

Neither sees processes on other hosts (a database on NFS: their locks live on the server), nor
processes in another PID namespace (a container: its pids are not ours to name); on overlay file
systems the device in `/proc/locks` may differ from the one `stat` reports, so only the open-files
way matches there. On macOS and other systems neither exists and only the registry speaks.
The calling process (the controller) is never listed: its own connections are not in the way.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from bluegreen.errors import StillInUse
from bluegreen.files import registry
from bluegreen.files.layout import SIDE_FILES
from bluegreen.replication import state as replication_state

PROC = Path("/proc")
OPEN_FILES = "open file"
LOCKS = "lock"
COMMAND_LIMIT = 200


def supported() -> bool:
    """Can this system name the processes holding a file (Linux with /proc)?"""
    return sys.platform.startswith("linux") and (PROC / "locks").is_file() and (PROC / "self" / "fd").is_dir()


@dataclass(frozen=True)
class Holder:
    """One process that has one or more generation files open."""

    pid: int
    command: str  # its command line, as /proc says it (shortened), or "?" if it could not be read
    files: tuple[str, ...]  # the database file names it holds (a -wal/-shm counts as its database)
    seen_by: tuple[str, ...]  # OPEN_FILES and/or LOCKS

    def describe(self) -> str:
        return f"pid {self.pid} `{self.command}`"

    def as_dict(self) -> dict:
        return {"pid": self.pid, "command": self.command, "files": list(self.files), "seen_by": list(self.seen_by)}


@dataclass
class Scan:
    """What the kernel says about a set of database files."""

    holders: list[Holder] = field(default_factory=list)
    supported: bool = True
    not_inspected: int = 0  # processes whose open files this user may not read (other users')

    def of(self, name: str) -> list[Holder]:
        return [h for h in self.holders if name in h.files]

    def as_dict(self) -> dict:
        return {
            "supported": self.supported,
            "processes": [h.as_dict() for h in self.holders],
            "not_inspected": self.not_inspected,
        }


def scan(databases: Iterable[Path], exclude: Iterable[int] = ()) -> Scan:
    """Every process (but this one and `exclude`) holding one of `databases` or its side files."""
    if not supported():
        return Scan(supported=False)
    targets = _targets(databases)
    if not targets:
        return Scan()
    skip = {os.getpid(), *exclude}
    found: dict[int, dict[str, set[str]]] = {}  # pid -> database name -> seen_by
    not_inspected = 0
    for pid, name in _by_open_files(targets, skip):
        if name is None:
            not_inspected += 1
        else:
            found.setdefault(pid, {}).setdefault(name, set()).add(OPEN_FILES)
    for pid, name in _by_locks(targets, skip):
        found.setdefault(pid, {}).setdefault(name, set()).add(LOCKS)
    holders = [
        Holder(
            pid,
            _command(pid),
            tuple(sorted(files)),
            tuple(sorted({how for hows in files.values() for how in hows})),
        )
        for pid, files in sorted(found.items())
    ]
    return Scan(holders, True, not_inspected)


def _targets(databases: Iterable[Path]) -> dict[tuple[int, int], str]:
    """(device, inode) of each database and its existing side files -> the database's name."""
    targets = {}
    for db in databases:
        for candidate in [Path(db)] + [Path(f"{db}{side}") for side in SIDE_FILES]:
            try:
                st = os.stat(candidate)
            except OSError:
                continue
            targets[(st.st_dev, st.st_ino)] = Path(db).name
    return targets


def _pids() -> list[int]:
    try:
        return sorted(int(e.name) for e in os.scandir(PROC) if e.name.isdigit())
    except OSError:
        return []


def _by_open_files(targets: dict, skip: set[int]):
    """(pid, database name) per open descriptor on a target; (pid, None) for a process whose
    descriptors this user may not read."""
    names = set()
    for db in set(targets.values()):
        names |= {db, *(f"{db}{side}" for side in SIDE_FILES)}
    for pid in _pids():
        if pid in skip:
            continue
        try:
            fds = list(os.scandir(PROC / str(pid) / "fd"))
        except PermissionError:
            yield pid, None
            continue
        except OSError:  # gone meanwhile, or a kernel thread
            continue
        seen = set()
        for fd in fds:
            try:
                # only a descriptor whose path ends in one of our file names is stat'ed: never a
                # socket, a pipe, or a file on some other (maybe hung) mount
                if os.path.basename(os.readlink(fd.path)) not in names:
                    continue
                st = os.stat(fd.path)  # follows the link to the open file itself
            except OSError:
                continue
            name = targets.get((st.st_dev, st.st_ino))
            if name is not None and name not in seen:
                seen.add(name)
                yield pid, name


def _by_locks(targets: dict, skip: set[int]):
    """(pid, database name) per POSIX or flock lock (held or waited for) on a target."""
    try:
        lines = (PROC / "locks").read_text().splitlines()
    except OSError:
        return
    for line in lines:
        parts = [p for p in line.split() if p != "->"]  # "->" marks a process waiting for the lock
        if len(parts) < 6:
            continue
        try:
            pid = int(parts[4])
            major, minor, inode = parts[5].split(":")
            key = (os.makedev(int(major, 16), int(minor, 16)), int(inode))
        except ValueError:
            continue
        if pid <= 0 or pid in skip:  # -1: an open-file-description lock, owned by no one process
            continue
        name = targets.get(key)
        if name is not None:
            yield pid, name


def _command(pid: int) -> str:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
        text = " ".join(part.decode("utf-8", "replace") for part in raw.split(b"\0") if part)
        if not text:
            text = "[" + (PROC / str(pid) / "comm").read_text().strip() + "]"
    except OSError:
        return "?"
    return text if len(text) <= COMMAND_LIMIT else text[: COMMAND_LIMIT - 3] + "..."


# -- the refusal finalize and prune share ---------------------------------------------------------
@dataclass
class Users:
    """Everyone still on one file: bluegreen clients (the registry) and other processes (the kernel)."""

    clients: list  # registry.ClientRecord
    processes: list[Holder]

    def __bool__(self) -> bool:
        return bool(self.clients or self.processes)

    def names(self) -> str:
        return ", ".join([c.name for c in self.clients] + [p.describe() for p in self.processes])

    def count(self) -> int:
        return len(self.clients) + len(self.processes)

    def details(self) -> dict:
        return {"clients": [c.as_dict() for c in self.clients], "processes": [p.as_dict() for p in self.processes]}


def users_of(pointer_path: Path, database: Path) -> Users:
    """Who still has `database` (in the pointer's folder) open. A process on this host that is a
    registered client is named once, as a client."""
    clients = registry.users_of(pointer_path, database.name)
    here = {c.pid for c in clients if c.host == socket.gethostname()}
    here |= replication_state.litestream_pids(pointer_path)  # `bluegreen replicate`'s Litestream reads, no user
    return Users(clients, scan([database], exclude=here).of(database.name))


def refuse_if_used(users: Users, database: Path, refused: str, again: str) -> None:
    """StillInUse (exit 1) naming each process; `refused` says what was refused ("prune refused"),
    `again` what to do instead."""
    if not users:
        return
    moves = "; a bluegreen client moves at its next statement outside a transaction" if users.clients else ""
    raise StillInUse.with_hint(
        f"{database}: {users.count()} live process(es) still have it open: {users.names()}{moves}; "
        f"{refused}, nothing was changed",
        again,
        sep=": ",
        details=users.details(),
    )
