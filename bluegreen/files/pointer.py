"""The pointer file: a small TOML document naming the active generation.

It changes only by write-temp → fsync → os.replace → fsync of the folder (invariant 1), so a
reader sees the old pointer or the new one, never a torn one, and a crash keeps one of them.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import tomli_w

from bluegreen.errors import NoSpace, PointerInvalid

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
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


MAX_POINTER_BYTES = 64 * 1024  # a pointer is a few lines; anything bigger is not one
MAX_GENERATION = 2**31 - 1  # generation numbers name SQL functions and fit SQLite's 32-bit ints
SIDE_SUFFIXES = ("-wal", "-shm", "-journal")
STATE_DIR_NAME = ".bluegreen"


def read(path: Path) -> Pointer:
    """Read and check the pointer; any defect is one clear line naming the file, the key and the fix."""
    path = Path(path)
    raw = _load(path)
    fmt = raw.get("format")
    if isinstance(fmt, bool) or fmt != FORMAT:
        raise PointerInvalid(
            f"{path}: pointer key 'format' is {fmt!r}; this bluegreen reads format {FORMAT} only "
            f"(restore the pointer, or use the bluegreen that wrote it)"
        )
    active = raw.get("active")
    generation = raw.get("generation")
    if not isinstance(active, str) or not active:
        raise PointerInvalid(f"{path}: pointer key 'active' must be a file name")
    if isinstance(generation, bool) or not isinstance(generation, int) or not 1 <= generation <= MAX_GENERATION:
        raise PointerInvalid(
            f"{path}: pointer key 'generation' must be a positive integer up to {MAX_GENERATION}, got {generation!r}"
        )
    for key in ("schema_version", "previous", "switched_at"):
        value = raw.get(key, "")
        if not isinstance(value, str) or "\x00" in value or len(value) > 1000:
            raise PointerInvalid.with_hint(
                f"{path}: pointer key {key!r} must be a short string, got {value!r}", "restore the pointer"
            )
    previous = raw.get("previous", "")
    for key, name in (("active", active), ("previous", previous)):
        _check_inside(path, name)
        _check_on_disk(path, key, name)
    if previous == active:
        raise PointerInvalid.with_hint(
            f"{path}: pointer keys 'active' and 'previous' both name {active!r}",
            "restore the pointer (`previous` is the file the last swap moved away from)",
        )
    return Pointer(
        active=active,
        generation=generation,
        schema_version=raw.get("schema_version", ""),
        previous=previous,
        switched_at=raw.get("switched_at", ""),
    )


def _load(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_POINTER_BYTES + 1)
    except FileNotFoundError:
        raise PointerInvalid.with_hint(
            f"{path}: pointer file not found", "run `bluegreen init` to adopt a database"
        ) from None
    except IsADirectoryError:
        raise PointerInvalid.with_hint(
            f"{path}: the pointer is a directory", "database.pointer must name the pointer file"
        ) from None
    except OSError as exc:
        raise PointerInvalid.with_hint(
            f"{path}: cannot read the pointer ({exc.strerror})", "fix its permissions"
        ) from None
    if len(data) > MAX_POINTER_BYTES:
        raise PointerInvalid.with_hint(
            f"{path}: pointer is larger than {MAX_POINTER_BYTES // 1024} KiB, so not one bluegreen wrote",
            "restore it or re-run `bluegreen init`",
        )
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PointerInvalid.with_hint(
            f"{path}: pointer is not valid TOML ({exc})", "restore it or re-run `bluegreen init`"
        ) from None


def _check_inside(path: Path, name: object) -> None:
    """A generation is a plain file name in the pointer's folder, and not one of bluegreen's own."""
    if not isinstance(name, str):
        raise PointerInvalid(f"{path}: pointer names {name!r}, expected a file name")
    if not name:
        return
    if "\x00" in name:
        raise PointerInvalid.with_hint(f"{path}: pointer names {name!r}, which holds a NUL byte", "restore the pointer")
    if name != os.path.basename(name) or name in (".", ".."):
        raise PointerInvalid.with_hint(
            f"{path}: pointer names {name!r}, outside the pointer's folder",
            "generations must live beside the pointer (name the file only)",
        )
    if len(os.fsencode(name)) > 255:
        raise PointerInvalid.with_hint(
            f"{path}: pointer names a file name longer than 255 bytes", "restore the pointer"
        )
    if name == path.name or name == STATE_DIR_NAME or name.endswith(SIDE_SUFFIXES):
        raise PointerInvalid.with_hint(
            f"{path}: pointer names {name!r}, which is the pointer itself, bluegreen's "
            "folder or a SQLite side file, not a generation",
            "restore the pointer",
        )


def _check_on_disk(path: Path, key: str, name: str) -> None:
    """What the name is on disk: a directory is no database, and a symlink must not lead out of the
    folder (deploy would fence, and revert write, a file that is not a generation of this pointer)."""
    if not name:
        return
    folder = path.resolve().parent
    entry = folder / name
    if entry.is_symlink():
        try:
            target = entry.resolve(strict=False)
        except (OSError, RuntimeError):
            raise PointerInvalid.with_hint(
                f"{path}: pointer key {key!r} names {name!r}, a symlink loop", "restore the file"
            ) from None
        if target.parent != folder or target.name in (path.name, STATE_DIR_NAME) or target.name.endswith(SIDE_SUFFIXES):
            raise PointerInvalid.with_hint(
                f"{path}: pointer key {key!r} names {name!r}, a symlink leading outside the "
                f"pointer's folder or to a file that is no generation (to {target}); "
                "generations must live beside the pointer",
                "replace the link with the file itself",
                sep=": ",
            )
    if entry.is_dir():
        raise PointerInvalid.with_hint(
            f"{path}: pointer key {key!r} names {name!r}, which is a directory, not a database file",
            "restore the pointer",
        )
    if entry.exists() and not entry.is_file():  # a FIFO would hang the first open, a device worse
        raise PointerInvalid.with_hint(
            f"{path}: pointer key {key!r} names {name!r}, which is not a regular file (a FIFO, socket or device)",
            "restore the pointer",
        )


def write(path: Path, pointer: Pointer, mode: int = 0o600) -> None:
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
    try:
        atomic_write(path, data, mode)
    except OSError as exc:
        raise NoSpace.with_hint(
            f"{path}: cannot write the pointer ({exc.strerror}); it still names the file it named before",
            f"free space on {path.parent} (or fix its permissions), then run "
            "`bluegreen status`, which says what is left to do",
            sep=": ",
        ) from None


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write-temp → fsync → os.replace → fsync folder. Used for the pointer and controller state."""
    folder = path.parent
    temp = folder / f".{path.name}.{os.getpid()}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
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
