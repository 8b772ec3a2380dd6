"""config.toml → frozen dataclasses. Every bad value is named with its file and key."""

from __future__ import annotations

import os
import re
import tomllib
import zoneinfo
from dataclasses import MISSING, dataclass, field, fields
from datetime import time
from pathlib import Path

from bluegreen.errors import InputError

DEFAULT_CONFIG = "config.toml"
CONFIG_ENV = "BLUEGREEN_CONFIG"


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


@dataclass(frozen=True)
class CaptureConfig:
    # Refuse incremental BLOB writes (they bypass triggers) on the file being captured or fenced.
    # Building the guard reads each table once under the write lock at prepare.
    guard_blob_writes: bool = True


@dataclass(frozen=True)
class CutoverConfig:
    max_write_pause_ms: int = 100  # the pause budget writers may see at cutover
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
class EnvironmentConfig:
    """One `[environments.NAME]` table; keys left out take the defaults of a well-known name."""

    name: str
    approvals: int = 0  # distinct approvers of the target version cutover needs
    backup: bool = False  # a verified backup of blue before prepare
    backup_dir: Path | None = None  # where backups go (default: backups/ beside the config)
    window: Window | None = None  # cutover refuses outside it, unless forced with a reason
    timezone: str = "UTC"  # the window's IANA time zone


# Well-known names: what an environment of that name means when its table leaves a key out.
ENVIRONMENT_DEFAULTS = {
    "development": {},
    "staging": {"approvals": 1},
    "production": {"approvals": 2, "backup": True},
}
_ENVIRONMENT_KINDS = {"approvals": "non_negative_int", "backup": "bool", "backup_dir": "path", "window": "window",
                      "timezone": "timezone"}


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

    @property
    def data_dir(self) -> Path:
        return self.database.pointer.parent


# section name -> (dataclass, {key: kind}); kind "path" resolves against the config's folder.
_SECTIONS = {
    "database": (DatabaseConfig, {"pointer": "path", "initial": "path"}),
    "migrations": (MigrationsConfig, {"dir": "path"}),
    "snapshot": (SnapshotConfig, {"pages_per_step": "positive_int"}),
    "capture": (CaptureConfig, {"guard_blob_writes": "bool"}),
    "cutover": (CutoverConfig, {"max_write_pause_ms": "positive_int", "lock_timeout_ms": "positive_int",
                                "max_attempts": "positive_int",
                                "wait_flag": "path", "wait_timeout_s": "non_negative_int"}),
    "retention": (RetentionConfig, {"keep_days": "non_negative_int"}),
    # TOML keys are the event names (pre-prepare); the dataclass fields spell them with "_".
    "hooks": (HooksConfig, {"pre-prepare": "command", "post-prepare": "command", "pre-cutover": "command",
                            "post-cutover": "command", "post-revert": "command", "on-failure": "command",
                            "timeout_s": "positive_int"}),
    "performance": (PerformanceConfig, {"max_ratio": "positive_float", "min_ms": "non_negative_float",
                                        "runs": "positive_int", "queries": "named_sql"}),
    "check": (CheckConfig, {"queries": "named_sql", "sample_rows": "positive_int"}),
    "disk": (DiskConfig, {"min_free_mb": "non_negative_int"}),
}
_REQUIRED = {"database", "migrations"}


def config_path(cli_value: str | None) -> Path:
    """--config wins, then $BLUEGREEN_CONFIG, then ./config.toml."""
    return Path(cli_value or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def load(path: Path) -> Config:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: config file not found; pass --config PATH or set {CONFIG_ENV}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid TOML ({exc}); fix the syntax") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read config ({exc.strerror})") from None
    base = path.resolve().parent
    for section in raw:
        if section not in _SECTIONS and section != "environments":
            raise InputError(f"{path}: unknown section [{section}]; expected one of "
                             f"{', '.join(sorted([*_SECTIONS, 'environments']))}")
    for section in sorted(_REQUIRED - raw.keys()):
        raise InputError(f"{path}: missing section [{section}]")
    built = {name: _section(path, base, name, raw.get(name, {})) for name in _SECTIONS}
    return Config(path=path.resolve(), **built, environments=_environments(path, base, raw.get("environments", {})))


def _environments(path: Path, base: Path, tables: object) -> dict[str, EnvironmentConfig]:
    """`[environments.NAME]` tables, each completed with its well-known name's defaults."""
    if not isinstance(tables, dict) or not all(isinstance(v, dict) for v in tables.values()):
        raise InputError(f"{path}: environments must hold tables such as [environments.production]")
    found = {}
    for name, values in tables.items():
        for key in values:
            if key not in _ENVIRONMENT_KINDS:
                raise InputError(f"{path}: unknown key environments.{name}.{key}; expected one of "
                                 f"{', '.join(_ENVIRONMENT_KINDS)}")
        merged = {**ENVIRONMENT_DEFAULTS.get(name, {}), **values}
        out = {k: _convert(path, base, f"environments.{name}.{k}", _ENVIRONMENT_KINDS[k], v) for k, v in merged.items()}
        if name == "production" and "window" not in out:
            raise InputError(f"{path}: environments.production.window is required (a production cutover needs a "
                             'maintenance window); add e.g. window = "02:00-04:00" and timezone = "UTC"')
        if out.get("backup") and "backup_dir" not in out:
            out["backup_dir"] = base / "backups"
        found[name] = EnvironmentConfig(name=name, **out)
    return found


def _section(path: Path, base: Path, name: str, values: object):
    cls, kinds = _SECTIONS[name]
    if not isinstance(values, dict):
        raise InputError(f"{path}: {name} must be a table ([{name}])")
    for key in values:
        if key not in kinds:
            raise InputError(f"{path}: unknown key {name}.{key}; expected one of {', '.join(kinds)}")
    out = {}
    for spec in fields(cls):
        key = spec.name if spec.name in kinds else spec.name.replace("_", "-")
        if key not in values:
            if spec.default is MISSING:
                raise InputError(f"{path}: missing key {name}.{key}")
            continue
        out[spec.name] = _convert(path, base, f"{name}.{key}", kinds[key], values[key])
    return cls(**out)


def _convert(path: Path, base: Path, where: str, kind: str, value: object):
    if kind == "path":
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"{path}: {where} must be a non-empty path string, got {value!r}")
        return (base / value).resolve() if not os.path.isabs(value) else Path(value).resolve()
    if kind == "bool":
        if not isinstance(value, bool):
            raise InputError(f"{path}: {where} must be true or false, got {value!r}")
        return value
    if kind == "positive_int":
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise InputError(f"{path}: {where} must be a positive integer, got {value!r}")
        return value
    if kind == "window":
        return _window(path, where, value)
    if kind == "timezone":
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
            raise InputError(f"{path}: {where} must be an IANA time zone such as \"UTC\" or "
                             f"\"Europe/Berlin\", got {value!r}") from None
        return value
    if kind == "non_negative_int":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InputError(f"{path}: {where} must be a whole number, 0 or more, got {value!r}")
        return value
    if kind == "command":
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"{path}: {where} must be a non-empty shell command string, got {value!r}; "
                             "leave the key out for no hook")
        return value
    if kind == "non_negative_int":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InputError(f"{path}: {where} must be an integer >= 0, got {value!r}")
        return value
    if kind in ("positive_float", "non_negative_float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (
                kind == "positive_float" and value <= 0):
            raise InputError(f"{path}: {where} must be a number {'> 0' if kind == 'positive_float' else '>= 0'}, "
                             f"got {value!r}")
        return float(value)
    if kind == "named_sql":  # a table of name = "SQL"
        if not isinstance(value, dict):
            raise InputError(f'{path}: {where} must be a table of name = "SELECT ...", got {value!r}')
        for name, sql in value.items():
            if not isinstance(sql, str) or not sql.strip():
                raise InputError(f'{path}: {where}.{name} must be a non-empty SQL string, got {sql!r}')
        return tuple(value.items())
    raise AssertionError(kind)


_WINDOW = re.compile(r"^(\d\d):(\d\d)-(\d\d):(\d\d)$")


def _window(path: Path, where: str, value: object) -> Window:
    match = _WINDOW.match(value.strip()) if isinstance(value, str) else None
    bad = f"{path}: {where} must be \"HH:MM-HH:MM\" (24-hour, may wrap past midnight), got {value!r}"
    if not match:
        raise InputError(bad)
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
        raise InputError(bad)
    start, end = time(h1, m1), (time.max if h2 == 24 else time(h2, m2))
    if start == end:
        raise InputError(f"{path}: {where} is empty ({value!r}: start equals end); give a window such as \"02:00-04:00\"")
    return Window(start, end, value.strip())
