"""The pointer file: a small TOML document naming the active generation.

It changes only by write-temp → fsync → os.replace → fsync of the folder (invariant 1), so a
reader sees the old pointer or the new one, never a torn one, and a crash keeps one of them.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import tomli_w

from bluegreen.errors import InputError

FORMAT = 1


@dataclass(frozen=True)
class Pointer:
    active: str  # file name, relative to the pointer's folder
    generation: int
    schema_version: str
    previous: str = ""  # the file the last swap moved away from ("" if none)
    switched_at: str = ""  # ISO 8601, UTC

    def active_path(self, pointer_path: Path) -> Path:
        return Path(pointer_path).resolve().parent / self.active

    def previous_path(self, pointer_path: Path) -> Path | None:
        return Path(pointer_path).resolve().parent / self.previous if self.previous else None


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def read(path: Path) -> Pointer:
    """Read and check the pointer; any defect is one clear line naming the file."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: pointer file not found; run `bluegreen init` to adopt a database") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: pointer is not valid TOML ({exc}); restore it or re-run `bluegreen init`") from None
    active = raw.get("active")
    generation = raw.get("generation")
    if not isinstance(active, str) or not active:
        raise InputError(f"{path}: pointer key 'active' must be a file name")
    if isinstance(generation, bool) or not isinstance(generation, int) or generation < 1:
        raise InputError(f"{path}: pointer key 'generation' must be a positive integer")
    for name in (active, raw.get("previous", "")):
        _check_inside(path, name)
    return Pointer(
        active=active,
        generation=generation,
        schema_version=str(raw.get("schema_version", "")),
        previous=str(raw.get("previous", "")),
        switched_at=str(raw.get("switched_at", "")),
    )


def _check_inside(path: Path, name: object) -> None:
    if not isinstance(name, str):
        raise InputError(f"{path}: pointer names {name!r}, expected a file name")
    if name and (name != os.path.basename(name) or name in (".", "..")):
        raise InputError(
            f"{path}: pointer names {name!r}, outside the pointer's folder; "
            "generations must live beside the pointer (name the file only)"
        )


def write(path: Path, pointer: Pointer, mode: int = 0o644) -> None:
    """Atomically replace the pointer: temp file in the same folder, fsync, replace, fsync folder."""
    path = Path(path)
    _check_inside(path, pointer.active)
    _check_inside(path, pointer.previous)
    document = {
        "format": FORMAT,
        "active": pointer.active,
        "generation": pointer.generation,
        "schema_version": pointer.schema_version,
        "previous": pointer.previous,
        "switched_at": pointer.switched_at or now_iso(),
    }
    data = tomli_w.dumps(document).encode("utf-8")
    atomic_write(path, data, mode)


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write-temp → fsync → os.replace → fsync folder. Used for the pointer and controller state."""
    folder = path.parent
    temp = folder / f".{path.name}.{os.getpid()}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(temp)
        raise
    os.close(fd)
    os.replace(temp, path)
    fsync_dir(folder)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
