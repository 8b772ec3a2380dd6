"""What the disk under a folder was doing around a write's wait (Linux: /proc/diskstats).

A long wait in which all writers wait together is either the disk's queue (the build's writes ahead
of the writers' commit fsyncs) or the device itself taking long over one request with nothing else
queued (a virtual disk's host flushing, say): the idle writers see the second kind too. So the
benchmark samples the device every SAMPLE_S and says, for each of its longest waits, how much the
machine wrote in the second before it and during it, and how many requests were in flight.
"""

from __future__ import annotations

import os
import threading
import time
from bisect import bisect_left
from pathlib import Path

SAMPLE_S = 0.02
SECTOR = 512


def _device_of(folder: Path) -> tuple[int, int]:
    dev = os.stat(folder).st_dev
    return os.major(dev), os.minor(dev)


def _read(device: tuple[int, int]) -> tuple[int, int] | None:
    """(sectors written, requests in flight) of the device, or None (not Linux, not found)."""
    try:
        with open("/proc/diskstats") as stats:
            for line in stats:
                fields = line.split()
                if (int(fields[0]), int(fields[1])) == device:
                    return int(fields[9]), int(fields[11])
    except (OSError, ValueError, IndexError):
        return None
    return None


class DiskWatch:
    """Samples the device under `folder` in a thread from start() to stop()."""

    def __init__(self, folder: Path):
        self.device = _device_of(folder)
        self.samples: list[tuple[float, int, int]] = []  # (time.time(), sectors written, in flight)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="diskwatch", daemon=True)

    def start(self) -> DiskWatch:
        if _read(self.device) is not None:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            found = _read(self.device)
            if found is not None:
                self.samples.append((time.time(), *found))
            self._stop.wait(SAMPLE_S)

    def _written_mb(self, start: float, end: float) -> float:
        times = [s[0] for s in self.samples]
        i, j = bisect_left(times, start), bisect_left(times, end)
        if not self.samples or i >= len(self.samples) or i == j:
            return 0.0
        j = min(j, len(self.samples) - 1)
        return (self.samples[j][1] - self.samples[i][1]) * SECTOR / 1e6

    def around(self, began: float, wait_ms: float) -> dict | None:
        """The disk around one wait: MB written in the second before and during it, and the most
        requests in flight during it; None without samples."""
        if not self.samples:
            return None
        ended = began + wait_ms / 1000
        inflight = [s[2] for s in self.samples if began <= s[0] <= ended]
        return {
            "mb_before": round(self._written_mb(began - 1.0, began), 1),
            "mb_during": round(self._written_mb(began, ended), 1),
            "in_flight": max(inflight, default=0),
        }


def described(disk: dict | None) -> str:
    if disk is None:
        return ""
    return f"; disk: {disk['mb_before']} MB written in the second before, {disk['mb_during']} MB during, up to {disk['in_flight']} in flight"
