"""The file half of the fast snapshot: runs in a child process, never in the controller.

Why a child: the controller must not open() blue's files itself. Closing any descriptor of a file
drops every POSIX lock the process holds on it (hazard 8), including the read lock that pins the
snapshot. A child process has its own locks, none of them on blue, so it may read freely.

Protocol (one line each way, on stdin/stdout):
  header              -> the first 96 bytes of BLUE-shm (both copies of the WAL-index header) in hex, or none
  copy HEX CHUNK [FLUSH] -> copy BLUE into the new TARGET as of that header; prints `progress DONE TOTAL` (pages)
                         after each CHUNK pages and waits for a line back; then `done PAGES PAGE_SIZE FRAMES DBONLY`
                         or `fail ERRNO MESSAGE`. FLUSH: fdatasync the target every FLUSH bytes copied (0: once,
                         at the end), so the disk never queues the whole copy at once (engine/flush.py)
Why the result is exact is explained in snapshot.py, next to the code that pins the header.
"""

from __future__ import annotations

import os
import struct
import sys

WAL_HEADER = 32
FRAME_HEADER = 24
SHM_HEADER = 48  # one copy of the WAL-index header; the shm starts with two


class WalIndexHeader:
    """The fields of SQLite's WalIndexHdr (native byte order) that say what a reader sees."""

    def __init__(self, raw: bytes):
        self.raw = raw
        (self.version, _, self.change, self.is_init, _, size, self.max_frame, self.pages) = struct.unpack_from(
            "=IIIBBHII", raw
        )
        self.page_size = 65536 if size == 1 else size
        self.salt = raw[32:40]

    def valid(self) -> bool:
        """Both copies equal, initialised, and the checksum over the first 40 bytes holds."""
        first, second = self.raw[:SHM_HEADER], self.raw[SHM_HEADER : 2 * SHM_HEADER]
        return (
            len(self.raw) >= 2 * SHM_HEADER
            and first == second
            and self.is_init == 1
            and self.version == 3007000
            and wal_index_checksum(first[:40]) == first[40:48]
        )


def wal_index_checksum(data: bytes) -> bytes:
    """SQLite's walChecksumBytes in native order, as walIndexWriteHdr computes it."""
    s1 = s2 = 0
    words = struct.unpack(f"={len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s1 = (s1 + words[i] + s2) & 0xFFFFFFFF
        s2 = (s2 + words[i + 1] + s1) & 0xFFFFFFFF
    return struct.pack("=II", s1, s2)


def read_header(blue: str) -> bytes | None:
    try:
        with open(f"{blue}-shm", "rb") as shm:
            return shm.read(2 * SHM_HEADER)
    except FileNotFoundError:
        return None


def wal_pages(blue: str, header: WalIndexHeader) -> dict[int, bytes] | None:
    """The latest version of each page in WAL frames 1..max_frame, or None when the WAL no longer
    holds them (only possible when the reader reads the database file alone: see snapshot.py)."""
    if header.max_frame == 0:
        return {}
    frame_size = FRAME_HEADER + header.page_size
    try:
        with open(f"{blue}-wal", "rb") as wal:
            first = wal.read(WAL_HEADER)
            data = wal.read(header.max_frame * frame_size)
            wal.seek(0)
            again = wal.read(WAL_HEADER)  # re-read after the frames: a restart rewrites this first
    except FileNotFoundError:
        return None
    if (
        len(data) < header.max_frame * frame_size
        or first != again
        or first[16:24] != header.salt
        or struct.unpack(">I", first[8:12])[0] != header.page_size
    ):
        return None
    pages: dict[int, bytes] = {}
    for frame in range(header.max_frame):
        at = frame * frame_size
        page = struct.unpack_from(">I", data, at)[0]
        if data[at + 8 : at + 16] != header.salt:
            raise ValueError(f"WAL frame {frame + 1} has another salt than its header")
        pages[page] = data[at + FRAME_HEADER : at + frame_size]
    if struct.unpack_from(">I", data, (header.max_frame - 1) * frame_size + 4)[0] != header.pages:
        raise ValueError("the last WAL frame of the snapshot is not its commit")
    return pages


def page_size_of(fd: int) -> int:
    """The page size in the database file's header (bytes 16-17, big-endian; 1 means 65536)."""
    size = struct.unpack(">H", os.pread(fd, 2, 16))[0]
    return 65536 if size == 1 else size


def copy(
    blue: str, target: str, mode: int, header: WalIndexHeader, chunk_pages: int, ask, flush_bytes: int = 0
) -> tuple[int, int, int, bool]:
    """Copy BLUE's database file, then lay the snapshot's WAL frames over it. Returns
    (pages, page size, frames applied, database file only)."""
    source = os.open(blue, os.O_RDONLY)
    out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(out, mode)  # whatever the umask: SQLite gives -wal/-shm the main file's mode
        db_size = os.fstat(source).st_size
        page_size = header.page_size if header.max_frame else page_size_of(source)
        total = header.pages * page_size if header.max_frame else db_size  # reading the file alone: its size
        done, end = 0, min(db_size, total)
        step = chunk_pages * page_size
        piece = min(step, flush_bytes) if flush_bytes > 0 else step
        reported = unflushed = 0
        while done < end:
            copied = os.copy_file_range(source, out, min(piece, end - done), done, done)
            if copied == 0:
                break
            done += copied
            unflushed += copied
            if flush_bytes > 0 and unflushed >= flush_bytes:
                os.fdatasync(out)  # at most flush_bytes of green queued for the disk at a time
                unflushed = 0
            if done - reported >= step or done >= end:
                reported = done
                ask(done // page_size, total // page_size)
        pages = wal_pages(blue, header) if header.max_frame else {}  # after: so tests can restart the WAL meanwhile
        if pages is None and done < total:
            raise ValueError("the WAL moved on and the database file is shorter than the snapshot")
        missing = [p for p in range(done // page_size + 1, total // page_size + 1) if p not in (pages or {})]
        if missing:
            raise ValueError(f"{len(missing)} page(s) of the snapshot are neither in the file nor the WAL")
        for page, content in (pages or {}).items():
            if page <= total // page_size:
                os.pwrite(out, content, (page - 1) * page_size)
        os.ftruncate(out, total)
        os.fsync(out)
    finally:
        os.close(out)
        os.close(source)
    ask(total // page_size, total // page_size)
    return total // page_size, page_size, len(pages or {}), pages is None


def serve(blue: str, target: str, mode: int) -> None:
    def reply(text: str) -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def ask(done: int, total: int) -> None:
        reply(f"progress {done} {total}")
        if not sys.stdin.readline():  # the controller's go-ahead; none: it is gone, stop copying
            raise SystemExit(1)

    for line in sys.stdin:
        command = line.split()
        if command[0] == "header":
            raw = read_header(blue)
            reply(raw.hex() if raw else "none")
        elif command[0] == "copy":
            try:
                header = WalIndexHeader(bytes.fromhex(command[1]))
                flush = int(command[3]) if len(command) > 3 else 0
                pages, page_size, frames, db_only = copy(blue, target, mode, header, int(command[2]), ask, flush)
                reply(f"done {pages} {page_size} {frames} {int(db_only)}")
            except OSError as exc:
                reply(f"fail {exc.errno or 0} {exc}")
            except ValueError as exc:
                reply(f"fail 0 {exc}")
            return


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2], int(sys.argv[3], 8))
