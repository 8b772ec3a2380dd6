"""Throttling: the build of green gives way while the application's writes on blue wait too long.

What the application feels is what is measured: every `probe_interval_ms` a thread of the
controller (beside the build, which never waits for it) commits a
probe write on blue (a row put into bluegreen's own meta table and taken out again in the same
transaction, so nothing is left and capture never sees it: the meta table is not captured) at
`synchronous=FULL`, as an application commits, and times it, lock wait included. While it takes
longer than `[throttle] max_write_wait_ms`, or while the flag file exists (`bluegreen throttle
on`), every pause point of the build stops there: a snapshot copy chunk, a migration (SQLite's
progress handler, inside a statement), a catch-up batch, a gate query. Nothing is paused while
blue's write lock is held (the cutover's barrier is bounded by its own budget), and the probe
runs only where capture is installed on blue.

The bound: throttled time is counted per command. Past `[throttle] max_throttled_s`, a throttle
by the probe is lifted for the rest of the command (a busy application must not keep a deploy
from ever finishing; a note says so), and one by the flag file fails with `Throttled` (nothing
switched; remove the flag, then run the command again).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import apsw

from bluegreen.config import Config
from bluegreen.engine.db import open_db
from bluegreen.errors import ArgumentInvalid, Throttled
from bluegreen.files.contract import META_TABLE
from bluegreen.files.journal import Store
from bluegreen.results import Result, Timer

PROBE_KEY = "throttle_probe"
FLAG_NAME = "throttle"  # in .bluegreen/ unless [throttle] flag_file says where

Note = Callable[[str, dict], None]


def flag_path(config: Config, store: Store) -> Path:
    return config.throttle.flag_file or store.state_dir / FLAG_NAME


class Throttle:
    """Pause points for one command's work on green, judged by blue's probe and the flag file."""

    def __init__(self, config: Config, store: Store, blue: Path, note: Note | None = None):
        self.settings = config.throttle
        self.store = store
        self.blue = Path(blue)
        self.flag = flag_path(config, store)
        self.note = note or (lambda message, fields: None)
        self.throttled_s = 0.0  # this command's time paused so far
        self.pauses = 0
        self.lifted = False  # the bound was reached: the probe no longer throttles
        self._probe_conn: apsw.Connection | None = None
        self._prober: threading.Thread | None = None
        self._stop = threading.Event()
        self._latest: float | None = None  # the last probe's wait (ms), None: none yet, or none possible
        self._probing_since: float | None = None  # monotonic start of the probe in flight

    # -- the signals -----------------------------------------------------------------------------
    def probe_ms(self) -> float | None:
        """One probe write's commit on blue, lock wait included; None where there is nothing to
        probe (no meta table: capture not installed) or blue refuses it (fenced)."""
        conn = self._probe_conn
        if conn is None:
            conn = self._probe_conn = open_db(self.blue, busy_timeout_ms=max(1, 20 * self.settings.max_write_wait_ms))
            conn.execute("PRAGMA synchronous = FULL")
        clock = Timer()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(f"INSERT OR REPLACE INTO main.{META_TABLE}(key, value) VALUES (?, ?)", (PROBE_KEY, 1))
                conn.execute(f"DELETE FROM main.{META_TABLE} WHERE key = ?", (PROBE_KEY,))
                conn.execute("COMMIT")
            except BaseException:
                if not conn.getautocommit():
                    conn.execute("ROLLBACK")
                raise
        except apsw.BusyError:
            return clock.ms  # it waited out its busy timeout: far over the limit
        except apsw.Error:
            return None
        return clock.ms

    def _probe_loop(self) -> None:
        """The prober thread: a probe every probe_interval_ms, beside the build, so the build
        never waits for the probe's own commit (SQLite releases the GIL while it fsyncs)."""
        try:
            while not self._stop.is_set():
                self._probing_since = time.monotonic()
                waited = self.probe_ms()
                self._probing_since = None
                self._latest = waited
                self._stop.wait(self.settings.probe_interval_ms / 1000)
        finally:
            if self._probe_conn is not None:
                self._probe_conn.close()
                self._probe_conn = None

    def waited_ms(self) -> float | None:
        """What a write on blue waits now: the last probe's commit, or longer if the probe in
        flight has waited longer already (a lock the application holds)."""
        if self._prober is None:
            self._prober = threading.Thread(target=self._probe_loop, name="bluegreen-throttle-probe", daemon=True)
            self._prober.start()
        since = self._probing_since
        in_flight = (time.monotonic() - since) * 1000 if since is not None else None
        latest = self._latest
        if in_flight is not None and (latest is None or in_flight > latest):
            return in_flight
        return latest

    def reason(self) -> str:
        """Why to pause now, or "" (the flag first; then the prober's last word on blue)."""
        if self.flag.exists():
            return f"the flag file {self.flag} exists (`bluegreen throttle off` removes it)"
        limit = self.settings.max_write_wait_ms
        if not limit or self.lifted:
            return ""
        waited = self.waited_ms()
        if waited is not None and waited > limit:
            return f"a write on {self.blue.name} waited {waited:.1f} ms (over max_write_wait_ms = {limit})"
        return ""

    # -- the pause point -------------------------------------------------------------------------
    def point(self, phase: str) -> None:
        """Pause here while a signal says so; back as soon as none does (or the bound says go on)."""
        why = self.reason()
        if not why:
            return
        clock = Timer()
        self.pauses += 1
        self._tell("on", phase, why)
        interval = self.settings.probe_interval_ms / 1000
        while why:
            if self.throttled_s + clock.ms / 1000 >= self.settings.max_throttled_s:
                self.throttled_s += clock.ms / 1000
                if self.flag.exists():
                    self._tell("failed", phase, why)
                    raise Throttled(
                        f"throttled for {self.throttled_s:.0f} s in total ({why}), the limit "
                        f"[throttle] max_throttled_s = {self.settings.max_throttled_s}; nothing was switched: "
                        f"remove {self.flag} (`bluegreen throttle off`), then run the command again",
                        details={
                            "phase": str(phase),
                            "throttled_s": round(self.throttled_s, 1),
                            "flag": str(self.flag),
                        },
                    )
                self.lifted = True
                self._tell("lifted", phase, f"{why}; max_throttled_s = {self.settings.max_throttled_s} reached")
                return
            time.sleep(interval)
            why = self.reason()
        self.throttled_s += clock.ms / 1000
        self._tell("off", phase, f"paused {clock.ms / 1000:.1f} s")

    def _tell(self, state: str, phase: str, why: str) -> None:
        words = {
            "on": "throttled",
            "off": "throttle released",
            "lifted": "throttle lifted, going on at full speed",
            "failed": "throttled too long",
        }[state]
        fields = {"throttle": state, "phase": str(phase), "reason": why, "throttled_s": round(self.throttled_s, 2)}
        # under --json: {"event": "throttle", "message": ..., "throttle": "on"|"off"|"lifted"|"failed", ...}
        self.note(f"{words} during {phase}: {why}", {"event": "throttle", **fields})
        self.store.log("throttle", **fields)

    def close(self) -> None:
        """Stop the prober (its probe in flight, if any, ends within its busy timeout)."""
        self._stop.set()
        if self._prober is not None:
            self._prober.join()
            self._prober = None
        elif self._probe_conn is not None:
            self._probe_conn.close()
            self._probe_conn = None


# -- the flag file (`bluegreen throttle on|off|status`) ---------------------------------------------
def command(config: Config, store: Store, state: str, reason: str = "") -> Result:
    """`bluegreen throttle on|off|status`: the flag file, as gh-ost's throttle flag. It takes no
    lock: a running prepare, deploy or cutover sees the flag at its next pause point."""
    flag = flag_path(config, store)
    if state == "status":
        on = flag.exists()
        why = flag.read_text(encoding="utf-8", errors="replace").strip() if on else ""
        message = f"throttle is on ({why}): {flag} exists" if on else f"throttle is off: {flag} does not exist"
        return Result("throttle", message, data={"throttle": "on" if on else "off", "flag": str(flag), "reason": why})
    _, changed = set_flag(config, store, state == "on", reason)
    store.log("throttle_flag", state=state, changed=changed, flag=str(flag))
    if state == "on":
        message = (
            f"throttle on: {flag} {'created' if changed else 'was there already'}; a running build pauses at its "
            f"next pause point until `bluegreen throttle off` (at most [throttle] max_throttled_s = "
            f"{config.throttle.max_throttled_s} s, then it fails with nothing switched)"
        )
    else:
        message = f"throttle off: {flag} {'removed' if changed else 'was not there'}; a paused build goes on"
    return Result("throttle", message, data={"throttle": state, "flag": str(flag), "changed": changed})


def set_flag(config: Config, store: Store, on: bool, reason: str = "") -> tuple[Path, bool]:
    """Create or remove the flag file; returns (its path, whether anything changed)."""
    flag = flag_path(config, store)
    if not on:
        try:
            flag.unlink()
        except FileNotFoundError:
            return flag, False
        return flag, True
    existed = flag.exists()
    if existed and not reason.strip():
        return flag, False  # keep the reason it was turned on with
    if flag.parent == store.state_dir:
        store.make_state_dir()
    if not flag.parent.is_dir():
        raise ArgumentInvalid.with_hint(
            f"{flag}: the throttle flag's folder does not exist; nothing was changed",
            "create it, or point [throttle] flag_file somewhere that exists",
            sep=": ",
        )
    text = (" ".join(reason.split()) or "throttled by hand") + "\n"
    tmp = flag.with_name(f".{flag.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, flag)
    return flag, not existed
