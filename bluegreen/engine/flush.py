"""Green made durable in small steps, never in one fsync of hundreds of MB.

Green is built with `synchronous=OFF`: SQLite never fsyncs it, so nothing the build writes makes
the disk's queue hold hundreds of MB at the instant an application's commit on blue asks for its
own fsync (issue 17). Instead the builder calls `Flusher.maybe()` at its pause points (a copy
chunk, every few thousand VM steps of a migration, a catch-up batch, a gate query): once this
process has written `flush_mb` since the last flush, green's file and WAL are fdatasync'ed, so
each flush carries at most about that much. `durable()` is the last flush before anything trusts
green (the journal's `validated`, the offline fence): green's files and their folder synced.

A green interrupted between flushes is half-durable, and nothing trusts it: resume discards a
generation whose build did not finish (lifecycle/controller.py, resume).

The fdatasync runs in a child process (this file, run as a script): the controller must not
open() green's files itself, since closing that descriptor would drop every POSIX lock its SQLite
connections hold on them (hazard 8). The child holds no lock; it opens, syncs and closes.

Green's files are not all the build writes: SQLite sorts (CREATE INDEX, ORDER BY) into unlinked
temporary files. Each flush also writes those out, in the same steps (Linux, through the
builder's /proc/PID/fd): otherwise the kernel sends their pages out 30 s after they were written,
hundreds of MB in one burst that blue's writers' commits queue behind.

Protocol (one line each way): `sync` -> `ok` (green, its -wal and its -journal written out and
fdatasync'ed); `durable` -> `ok` (the same, then the folder fsync'ed); `fail MESSAGE` on an OS
error. On Linux the child writes the files out in STEP_BYTES ranges first (sync_file_range,
waiting for each), so even a checkpoint that dirtied hundreds of MB of green at once reaches the
disk a few MB at a time.
How much was written is this process's `wchar` (/proc/self/io, Linux); where it cannot be read,
a flush every FALLBACK_S of build time stands in for it.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

FALLBACK_S = 0.25  # without /proc/self/io: flush this often


def written_bytes() -> int | None:
    """Bytes this process passed to write()/pwrite() so far (Linux), or None."""
    try:
        with open("/proc/self/io", "rb") as io:
            for line in io:
                if line.startswith(b"wchar:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


class Flusher:
    """fdatasync green every `flush_mb` written; `durable()` once at the end of the build."""

    def __init__(self, green, flush_mb: int, log=None):
        self.green = str(green)
        self.limit = max(1, flush_mb) * 1024 * 1024
        self.log = log  # store.log-like: (event, **fields)
        self.flushes = 0
        self.longest_ms = 0.0
        self._mark = written_bytes()
        self._last = time.monotonic()
        self._proc: subprocess.Popen | None = None

    def maybe(self) -> bool:
        """Flush when this process has written `flush_mb` since the last flush; True if it did."""
        now = written_bytes()
        if now is None:
            due = time.monotonic() - self._last >= FALLBACK_S
        else:
            due = self._mark is None or now - self._mark >= self.limit
        if due:
            self._ask("sync")
        return due

    def durable(self) -> None:
        """The final flush: green's file, its WAL and its folder on disk before the journal trusts it."""
        self._ask("durable")
        if self.log:
            self.log(
                "green_durable",
                file=os.path.basename(self.green),
                flushes=self.flushes,
                longest_flush_ms=round(self.longest_ms, 2),
            )

    def _ask(self, command: str) -> None:
        started = time.perf_counter()
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                [sys.executable, "-S", "-I", __file__, self.green],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                bufsize=1,
            )
        self._proc.stdin.write(command + "\n")
        self._proc.stdin.flush()
        answer = self._proc.stdout.readline().strip()
        if not answer.startswith("ok"):
            raise OSError(f"{self.green}: could not flush green ({answer or 'the flusher exited'})")
        self.flushes += 1
        self.longest_ms = max(self.longest_ms, (time.perf_counter() - started) * 1000)
        self._mark, self._last = written_bytes(), time.monotonic()

    def close(self) -> None:
        if self._proc is not None:
            self._proc.stdin.close()
            self._proc.wait()
            self._proc.stdout.close()
            self._proc = None

    def __enter__(self) -> Flusher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


STEP_BYTES = 8 * 1024 * 1024
_WAIT_WRITE_WAIT = 1 | 2 | 4  # SYNC_FILE_RANGE_WAIT_BEFORE | _WRITE | _WAIT_AFTER


def _ranged():
    """libc's sync_file_range (Linux), or None."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        call = libc.sync_file_range
        call.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
        return call
    except (OSError, AttributeError, ImportError):
        return None


def _sync(path: str, ranged) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # a WAL the last connection checkpointed and deleted
        return
    try:
        if ranged is not None:
            size = os.fstat(fd).st_size
            for start in range(0, size, STEP_BYTES):
                ranged(fd, start, STEP_BYTES, _WAIT_WRITE_WAIT)
        os.fdatasync(fd)
    finally:
        os.close(fd)


def _write_out_temp_files(builder: int, ranged) -> None:
    """Start and wait for the writeback of the builder's unlinked files, SQLite's temp files (a
    sort's runs, CREATE INDEX), in STEP_BYTES ranges: no path names them but /proc/PID/fd. Left
    alone, their pages go out only once they are 30 s old (dirty_expire), in one burst of hundreds
    of MB: at 1 GB, blue's writers waited 134 ms behind one, 60 s into the migration. No
    fdatasync: nothing needs them durable, only written out a few MB at a time. Reopening them
    here holds no lock of the builder's (they have none: hazard 8 is about green)."""
    folder = f"/proc/{builder}/fd"
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for entry in entries:
        try:  # "/var/tmp/etilqs_... (deleted)", or "/var/tmp/#1534 (deleted)" where made with O_TMPFILE
            if not os.readlink(f"{folder}/{entry}").endswith(" (deleted)"):
                continue
            fd = os.open(f"{folder}/{entry}", os.O_RDONLY)
        except OSError:
            continue
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                continue
            size = info.st_size
            for start in range(0, size, STEP_BYTES):
                ranged(fd, start, STEP_BYTES, _WAIT_WRITE_WAIT)
        except OSError:
            pass
        finally:
            os.close(fd)


def serve(green: str) -> None:
    ranged, builder = _ranged(), os.getppid()
    for line in sys.stdin:
        command = line.strip()
        try:
            _sync(green, ranged)
            _sync(green + "-wal", ranged)
            _sync(green + "-journal", ranged)  # the migrations' rollback journal (lifecycle/builder.py)
            if ranged is not None:
                _write_out_temp_files(builder, ranged)
            if command == "durable":
                folder = os.open(os.path.dirname(os.path.abspath(green)), os.O_RDONLY)
                try:
                    os.fsync(folder)
                finally:
                    os.close(folder)
            reply = "ok"
        except OSError as exc:
            reply = f"fail {exc}"
        sys.stdout.write(reply + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve(sys.argv[1])
