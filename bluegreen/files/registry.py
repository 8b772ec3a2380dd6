"""Who is still on which file: one heartbeat file per client process, beside the pointer.

A process that opens generations through `bluegreen.client` keeps
`<pointer folder>/.bluegreen/clients/<host>-<pid>.json` up to date: which files it has open, with
their generation. It is rewritten at once when that set changes and refreshed by a daemon thread
every few seconds while anything is open, so an idle process still counts as using its file. A
record is live while its heartbeat is fresh (and, on this host, its pid exists); stale records
are ignored and deleted by the next process that beats. `status` lists the processes still on
another file; `finalize` (and the future `prune`) ask `users_of()` before retiring a file.

Heartbeats are plain files written with write-temp → rename, never fsynced: they only say
"alive"; losing one to a power cut just makes the process look gone until its next beat.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import socket
import sys
import threading
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from bluegreen.files.layout import STATE_DIR, file_mode, folder_mode, make_dirs
from bluegreen.files.pointer import now_iso

FORMAT = 1
CLIENTS_DIR = "clients"
DEFAULT_INTERVAL_S = 2.0
MAX_EXPIRY_S = 3600.0  # no honest client promises to stay silent longer than an hour
EXPIRE_AFTER_BEATS = 5  # a record older than 5 intervals is stale: the process is gone or hung


@dataclass(frozen=True)
class OpenFile:
    file: str  # file name, relative to the pointer's folder
    generation: int
    connections: int


@dataclass(frozen=True)
class ClientRecord:
    host: str
    pid: int
    program: str
    started_at: str
    heartbeat_at: float  # Unix time of the last beat
    expires_after_s: float  # the writer's own promise: it beats again well before this
    files: tuple[OpenFile, ...]

    @property
    def name(self) -> str:
        return f"{self.host}-{self.pid}"

    def uses(self, file_name: str) -> bool:
        return any(f.file == file_name for f in self.files)

    def alive(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        if now - self.heartbeat_at > self.expires_after_s:
            return False
        return self.host != _HOST or _pid_exists(self.pid)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["name"] = self.name
        data["files"] = [asdict(f) for f in self.files]
        return data


def clients_dir(pointer_path: Path) -> Path:
    return Path(pointer_path).resolve().parent / STATE_DIR / CLIENTS_DIR


def live_clients(pointer_path: Path) -> list[ClientRecord]:
    """Every live client process of this pointer, by name."""
    now = time.time()
    return sorted((r for _, r in _records(clients_dir(pointer_path)) if r.alive(now)), key=lambda r: r.name)


def users_of(pointer_path: Path, file_name: str) -> list[ClientRecord]:
    """Live processes that have `file_name` open: what finalize (and prune) must not retire under."""
    return [r for r in live_clients(pointer_path) if r.uses(file_name)]


def expire(pointer_path: Path) -> list[str]:
    """Delete stale records (dead or silent processes); returns their names."""
    return _expire(clients_dir(pointer_path))


# -- reading --------------------------------------------------------------------------------------
def _records(folder: Path) -> list[tuple[Path, ClientRecord]]:
    try:
        entries = [e for e in os.scandir(folder) if e.name.endswith(".json") and not e.name.startswith(".")]
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for entry in entries:
        record = _parse(Path(entry.path))
        if record is not None:
            found.append((Path(entry.path), record))
    return found


def _parse(path: Path) -> ClientRecord | None:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        record = ClientRecord(
            host=str(raw["host"]),
            pid=int(raw["pid"]),
            program=str(raw.get("program", "")),
            started_at=str(raw.get("started_at", "")),
            heartbeat_at=float(raw["heartbeat_at"]),
            expires_after_s=float(raw["expires_after_s"]),
            files=tuple(OpenFile(str(f["file"]), int(f["generation"]), int(f["connections"])) for f in raw["files"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None  # vanished while we listed, or not ours: ignore
    if not (
        math.isfinite(record.heartbeat_at)
        and record.heartbeat_at <= time.time() + MAX_EXPIRY_S
        and 0 < record.expires_after_s <= MAX_EXPIRY_S
    ):
        return None  # NaN, inf or a far future would keep a record alive, and finalize refused, for ever
    return record


def _expire(folder: Path) -> list[str]:
    now = time.time()
    gone = []
    for path, record in _records(folder):
        if not record.alive(now):
            try:
                os.unlink(path)
                gone.append(record.name)
            except OSError:
                pass
    return gone


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


_HOST = socket.gethostname()


# -- writing: this process's heartbeat ------------------------------------------------------------
class Heartbeat:
    """This process's record in one clients folder. Thread-safe; one per folder per process."""

    def __init__(self, folder: Path, interval_s: float = DEFAULT_INTERVAL_S, pointer_path: Path | None = None):
        self.folder = folder
        self.pointer_path = pointer_path  # its mode (blue's) is the most a heartbeat may have
        self.interval_s = interval_s
        self.pid = os.getpid()
        self.path = folder / f"{_safe(_HOST)}-{self.pid}.json"
        self._open: Counter[tuple[str, int]] = Counter()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned = False
        self._started_at = now_iso()

    def acquire(self, file_name: str, generation: int) -> None:
        with self._lock:
            new = (file_name, generation) not in self._open
            self._open[(file_name, generation)] += 1
            if new:  # the set of files changed: say so now, not at the next beat
                self._write()
            self._start()

    def release(self, file_name: str, generation: int) -> None:
        with self._lock:
            key = (file_name, generation)
            if self._open[key] <= 0:
                return
            self._open[key] -= 1
            if self._open[key] == 0:
                del self._open[key]
                self._write()

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="bluegreen-heartbeat", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._wake.wait(self.interval_s):
            with self._lock:
                if self._open:
                    self._write()
            _expire(self.folder)

    def _write(self) -> None:
        """Call with the lock held. Nothing open: remove the record (the process uses no file)."""
        if os.getpid() != self.pid:  # a forked child closing its parent's connections: not ours
            return
        try:
            if not self._open:
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass
                return
            record = {
                "format": FORMAT,
                "host": _HOST,
                "pid": os.getpid(),
                "program": " ".join(sys.argv)[:200],
                "started_at": self._started_at,
                "heartbeat_at": time.time(),
                "expires_after_s": self.interval_s * EXPIRE_AFTER_BEATS,
                "files": [{"file": f, "generation": g, "connections": n} for (f, g), n in sorted(self._open.items())],
            }
            mode = self._mode()
            make_dirs(self.folder, folder_mode(mode))
            temp = self.folder / f".{self.path.name}.tmp"
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            try:
                os.fchmod(fd, mode)  # a temp left by a crash keeps its old mode: narrow it before writing
                os.write(fd, json.dumps(record).encode("utf-8"))
            finally:
                os.close(fd)
            os.replace(temp, self.path)
        except OSError as exc:  # a read-only folder must not break the application
            if not self._warned:
                self._warned = True
                warnings.warn(
                    f"bluegreen: cannot write the client heartbeat {self.path} ({exc}); "
                    "`bluegreen status` will not see this process",
                    RuntimeWarning,
                    stacklevel=3,
                )

    def _mode(self) -> int:
        try:
            return file_mode(self.pointer_path) & 0o666 if self.pointer_path else 0o600
        except OSError:
            return 0o600

    def remove(self) -> None:
        with self._lock:
            self._open.clear()
            self._write()


_BEATS: dict[Path, Heartbeat] = {}
_BEATS_LOCK = threading.Lock()


def heartbeat_for(pointer_path: Path) -> Heartbeat:
    folder = clients_dir(pointer_path)
    with _BEATS_LOCK:
        beat = _BEATS.get(folder)
        if beat is None:
            beat = _BEATS[folder] = Heartbeat(folder, pointer_path=Path(pointer_path).resolve())
        return beat


def _safe(host: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in host) or "host"


@atexit.register
def _remove_all() -> None:
    for beat in list(_BEATS.values()):
        beat.remove()


def _forget_after_fork() -> None:
    """A forked child has none of its parent's connections open (nor its threads)."""
    _BEATS.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
