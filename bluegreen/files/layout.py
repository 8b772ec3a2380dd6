"""The files beside the pointer: the state folder's name, database side files, and how bluegreen
creates files and folders (with the database's own permission bits from the first byte)."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from bluegreen.errors import NoSpace
from bluegreen.files.pointer import atomic_write

STATE_DIR = ".bluegreen"
SIDE_FILES = ("-wal", "-shm", "-journal")


def remove_database_files(path: Path) -> None:
    """Delete a database and its side files. Call only after every connection to it is closed."""
    for candidate in [Path(path)] + [Path(f"{path}{side}") for side in SIDE_FILES]:
        try:
            os.unlink(candidate)
        except FileNotFoundError:
            pass
    # Litestream's local LTX files beside it (`bluegreen replicate`), gone with the file they follow
    shutil.rmtree(Path(path).parent / f".{Path(path).name}-litestream", ignore_errors=True)


def file_mode(path: Path) -> int:
    """Permission bits; green and the pointer get blue's, so a 0600 database stays 0600."""
    return stat.S_IMODE(os.stat(path).st_mode)


FULL_BELOW_BYTES = 1024 * 1024  # less free than this: SQLite cannot even create a -shm (32 KiB) reliably


def disk_full(folder: Path) -> bool:
    try:
        found = os.statvfs(folder)
    except OSError:
        return False
    return found.f_bavail * found.f_frsize < FULL_BELOW_BYTES


def space_hint(folder: Path) -> str:
    """ "; the disk of FOLDER is full" when it is: SQLite says only "disk I/O error" when it cannot
    create a -shm file."""
    return f"; the disk of {folder} is full: free space there" if disk_full(folder) else ""


def folder_mode(mode: int) -> int:
    """A folder for files of `mode`: the same bits, plus x for each class that may read or write."""
    mode &= 0o666
    return mode | sum(0o111 & (0o700 >> (3 * i)) for i in range(3) if mode & (0o600 >> (3 * i)))


def make_dirs(folder: Path, mode: int) -> None:
    """mkdir -p with `mode` on every folder it creates (Path.mkdir gives parents the default)."""
    folder = Path(folder)
    if folder.is_dir():
        return
    if folder.parent != folder:
        make_dirs(folder.parent, mode)
    try:
        os.mkdir(folder, mode)
    except FileExistsError:
        if not folder.is_dir():
            raise


def open_file(path: Path, flags: int, mode: int) -> int:
    """os.open that also narrows an existing file's mode before anything is written to it."""
    fd = os.open(path, flags, mode)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) & ~mode:
            os.fchmod(fd, stat.S_IMODE(os.fstat(fd).st_mode) & mode)
    except OSError:
        os.close(fd)
        raise
    return fd


def create_file(path: Path, mode: int) -> None:
    """Create an empty file with `mode` from the start (fails if it exists): SQLite then opens it
    as a new database and gives its -wal/-shm/-journal the same mode."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))


def write_file(path: Path, data: bytes, mode: int, kept: str) -> None:
    """atomic_write, with a failure (a full disk, a read-only folder) told as one line naming the
    file; `kept` says what is still true on disk."""
    try:
        atomic_write(path, data, mode)
    except OSError as exc:
        raise NoSpace.with_hint(
            f"{path}: cannot write ({exc.strerror}); {kept}",
            f"free space on {path.parent} (or fix its permissions), then run `bluegreen status` and the command again",
            sep=": ",
        ) from None
