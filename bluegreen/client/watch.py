"""Noticing that the pointer (or the controller's journal) was replaced, in another process.

The controller swaps the pointer with write-temp → os.replace, which watchdog reports as a move
onto the pointer's name, within about a millisecond. On file systems where watchdog sees nothing
(network mounts, some containers), a daemon thread also stats the files every `poll_interval`.
Either way the watch only bumps a counter: connections compare it at their next statement and
re-read the pointer themselves, in their own thread. It never opens a database file (hazard 8).

One watch per pointer per process, shared by all its connections.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from pathlib import Path

from bluegreen.files.layout import STATE_DIR

DEFAULT_POLL_INTERVAL_S = 1.0


class PointerWatch:
    def __init__(self, pointer_path: Path, use_watchdog: bool = True, poll_interval: float = DEFAULT_POLL_INTERVAL_S):
        self.pointer_path = Path(pointer_path).resolve()
        self.state_path = self.pointer_path.parent / STATE_DIR / "state.json"
        self.poll_interval = poll_interval
        self.mode = "polling"
        self._changed = threading.Condition()
        self._version = 0
        self._identity = self._stat()
        self._observer = None
        if use_watchdog:
            self._start_watchdog()
        threading.Thread(target=self._poll, name="bluegreen-pointer-poll", daemon=True).start()

    @property
    def version(self) -> int:
        """Bumped every time the pointer or the journal was seen to change."""
        return self._version

    def wait(self, seen: int, timeout: float) -> int:
        """Sleep until the version moves past `seen`, or `timeout` seconds pass; returns it."""
        with self._changed:
            self._changed.wait_for(lambda: self._version != seen, timeout=max(0.0, timeout))
            return self._version

    def poll_at_least_every(self, seconds: float) -> None:
        self.poll_interval = min(self.poll_interval, seconds)

    def check(self) -> None:
        """Compare the files' identity with the last one seen; bump the version if it moved.
        os.replace gives the pointer a new inode, so the identity changes on every swap."""
        identity = self._stat()
        with self._changed:
            if identity != self._identity:
                self._identity = identity
                self._version += 1
                self._changed.notify_all()

    def _stat(self) -> tuple:
        found = []
        for path in (self.pointer_path, self.state_path):
            try:
                st = os.stat(path)
                found.append((st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size))
            except OSError:
                found.append(None)
        return tuple(found)

    def _poll(self) -> None:
        while True:
            time.sleep(self.poll_interval)
            self.check()

    def _start_watchdog(self) -> None:
        try:
            from watchdog.events import FileCreatedEvent, FileMovedEvent, FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:  # pragma: no cover - watchdog is a dependency
            return
        watch = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event) -> None:
                watch.check()

        try:
            observer = Observer()
            # Only moves and creations: a modify filter would wake us for every WAL write.
            only = [FileMovedEvent, FileCreatedEvent]
            observer.schedule(Handler(), str(self.pointer_path.parent), event_filter=only)
            if self.state_path.parent.is_dir():
                observer.schedule(Handler(), str(self.state_path.parent), event_filter=only)
            observer.daemon = True
            observer.start()
        except OSError as exc:  # inotify limits and the like: polling still covers us
            warnings.warn(
                f"bluegreen: cannot watch {self.pointer_path.parent} ({exc}); polling every "
                f"{self.poll_interval} s instead",
                RuntimeWarning,
                stacklevel=3,
            )
            return
        self._observer = observer
        self.mode = "watchdog"


_WATCHES: dict[tuple[Path, bool], PointerWatch] = {}
_LOCK = threading.Lock()


def watch_for(
    pointer_path: Path, *, use_watchdog: bool = True, poll_interval: float = DEFAULT_POLL_INTERVAL_S
) -> PointerWatch:
    """The process-wide watch of this pointer (created on first use)."""
    key = (Path(pointer_path).resolve(), use_watchdog)
    with _LOCK:
        watch = _WATCHES.get(key)
        if watch is None:
            watch = _WATCHES[key] = PointerWatch(key[0], use_watchdog, poll_interval)
        watch.poll_at_least_every(poll_interval)
        return watch


os.register_at_fork(after_in_child=_WATCHES.clear)  # threads do not survive a fork
