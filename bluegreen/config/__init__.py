"""config.toml → frozen dataclasses (config/sections.py). Every bad value is named with its file and key."""

from __future__ import annotations

import math
import os
import re
import tomllib
import urllib.parse
import zoneinfo
from dataclasses import MISSING, dataclass, fields
from datetime import time
from pathlib import Path

from bluegreen.config.sections import (
    ENVIRONMENT_DEFAULTS,
    CaptureConfig,
    CheckConfig,
    Config,
    CutoverConfig,
    DatabaseConfig,
    DiskConfig,
    EnvironmentConfig,
    HooksConfig,
    MigrationsConfig,
    PerformanceConfig,
    ReplicationConfig,
    RetentionConfig,
    SnapshotConfig,
    ThrottleConfig,
    WatchConfig,
    Window,
)
from bluegreen.engine import namedsql
from bluegreen.errors import ConfigInvalid

DEFAULT_CONFIG = "config.toml"
CONFIG_ENV = "BLUEGREEN_CONFIG"


@dataclass(frozen=True)
class Int:
    """A whole number in [low, high]; `limit` says why high is the top, for the message."""

    low: int
    high: int
    limit: str


@dataclass(frozen=True)
class Float:
    """A finite number; low_open: low itself is refused (a ratio of 0 would refuse everything)."""

    low: float
    high: float
    limit: str
    low_open: bool = False


DAY_MS = 86_400_000
DAY_S = 86_400
# section name -> (dataclass, {key: kind}); every value is checked here, once, against its kind
# and bounds: "file"/"dir" paths resolve against the config's folder.
_SECTIONS = {
    "database": (DatabaseConfig, {"pointer": "file", "initial": "file"}),
    "migrations": (MigrationsConfig, {"dir": "dir"}),
    "snapshot": (
        SnapshotConfig,
        {
            "pages_per_step": Int(1, 1_048_576, "4 GiB of 4 KiB pages per step"),
            "flush_mb": Int(1, 65_536, "64 GiB between flushes"),
        },
    ),
    "capture": (CaptureConfig, {"guard_blob_writes": "bool"}),
    "cutover": (
        CutoverConfig,
        {
            "max_write_pause_ms": Int(1, 60_000, "one minute"),
            "lock_timeout_ms": Int(1, DAY_MS, "24 h"),
            "max_attempts": Int(1, 10_000, "ten thousand tries"),
            "wait_flag": "file",
            "wait_timeout_s": Int(0, DAY_S, "24 h; 0 waits without limit"),
        },
    ),
    "retention": (RetentionConfig, {"keep_days": Int(0, 36_500, "a hundred years")}),
    # TOML keys are the event names (pre-prepare); the dataclass fields spell them with "_".
    "hooks": (
        HooksConfig,
        {
            "pre-prepare": "command",
            "post-prepare": "command",
            "pre-cutover": "command",
            "post-cutover": "command",
            "post-revert": "command",
            "post-watch": "command",
            "on-failure": "command",
            "timeout_s": Int(1, DAY_S, "24 h"),
        },
    ),
    "performance": (
        PerformanceConfig,
        {
            "max_ratio": Float(0.0, 1_000.0, "a thousand times blue's time", True),
            "min_ms": Float(0.0, 3_600_000.0, "one hour"),
            "runs": Int(1, 1_000, "a thousand runs"),
            "queries": "named_sql",
        },
    ),
    "check": (CheckConfig, {"queries": "named_sql", "sample_rows": Int(1, 10_000, "ten thousand rows")}),
    "disk": (DiskConfig, {"min_free_mb": Int(0, 16 * 1024 * 1024, "16 TiB")}),
    "throttle": (
        ThrottleConfig,
        {
            "max_write_wait_ms": Int(0, 60_000, "one minute; 0 never throttles by the probe"),
            "probe_interval_ms": Int(10, 60_000, "one minute"),
            "max_throttled_s": Int(1, DAY_S, "24 h"),
            "flag_file": "file",
        },
    ),
    "watch": (
        WatchConfig,
        {
            "max_error_rate": Float(0.0, 1.0, "every statement failing"),
            "max_p95_ratio": Float(1.0, 1_000.0, "a thousand times the old p95", True),
            "min_p95_ms": Float(0.0, 3_600_000.0, "one hour"),
            "min_samples": Int(1, 10_000_000, "ten million statements"),
            "min_statements": Int(1, 10_000_000, "ten million statements"),
            "window_s": Int(1, 30 * DAY_S, "30 days"),
        },
    ),
    "replication": (
        ReplicationConfig,
        {
            "replica": "replica_url",
            "sync_interval_ms": Int(10, DAY_MS, "24 h"),
            "retention_h": Int(1, 24 * 3650, "ten years"),
            "wait_timeout_s": Int(0, DAY_S, "24 h; 0 does not wait"),
            "litestream": "file",
        },
    ),
}
_ENVIRONMENT_KINDS: dict[str, object] = {
    "approvals": None,
    "backup": "bool",
    "backup_dir": "dir",
    "window": "window",
    "timezone": "timezone",
    "watch": "watch",
}  # approvals: set below
_ENVIRONMENT_KINDS["approvals"] = Int(0, 100, "a hundred approvers")
_REQUIRED = {"database", "migrations"}
NAME_MAX = 255  # bytes in one path component (Linux, macOS)
PATH_MAX = 4096  # bytes in a whole path


def config_path(cli_value: str | None) -> Path:
    """--config wins, then $BLUEGREEN_CONFIG, then ./config.toml."""
    return Path(cli_value or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def load(path: Path) -> Config:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigInvalid.with_hint(
            f"{path}: config file not found",
            f"pass --config PATH or set {CONFIG_ENV} (no project yet? `bluegreen init --database YOUR.db` writes one)",
        ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigInvalid.with_hint(f"{path}: not valid TOML ({exc})", "fix the syntax") from None
    except OSError as exc:
        raise ConfigInvalid.with_hint(
            f"{path}: cannot read config ({exc.strerror})", "pass --config PATH of a readable file"
        ) from None
    except ValueError:  # a NUL byte in --config or $BLUEGREEN_CONFIG
        raise ConfigInvalid.with_hint(
            f"{path!r}: the config path holds a NUL byte", "pass --config PATH without it"
        ) from None
    base = path.resolve().parent
    for section in raw:
        if section not in _SECTIONS and section != "environments":
            raise ConfigInvalid(
                f"{path}: unknown section [{section}]; expected one of "
                f"{', '.join(sorted([*_SECTIONS, 'environments']))}"
            )
    for section in sorted(_REQUIRED - raw.keys()):
        raise ConfigInvalid(f"{path}: missing section [{section}]")
    built = {name: _section(path, base, name, raw.get(name, {})) for name in _SECTIONS}
    _check_database_paths(path, built["database"])
    if "replication" in raw and not built["replication"].replica:
        raise ConfigInvalid.with_hint(
            f"{path}: missing key replication.replica", 'name the replica, e.g. replica = "file:///srv/replicas/app"'
        )
    environments = _environments(path, base, raw.get("environments", {}), raw.get("watch", {}))
    return Config(path=path.resolve(), **built, environments=environments)


def _environments(path: Path, base: Path, tables: object, watch: object) -> dict[str, EnvironmentConfig]:
    """`[environments.NAME]` tables, each completed with its well-known name's defaults."""
    if not isinstance(tables, dict) or not all(isinstance(v, dict) for v in tables.values()):
        raise ConfigInvalid(f"{path}: environments must hold tables such as [environments.production]")
    found = {}
    for name, values in tables.items():
        for key in values:
            if key not in _ENVIRONMENT_KINDS:
                raise ConfigInvalid(
                    f"{path}: unknown key environments.{name}.{key}; expected one of {', '.join(_ENVIRONMENT_KINDS)}"
                )
        merged = {**ENVIRONMENT_DEFAULTS.get(name, {}), **values}
        if isinstance(merged.get("watch"), dict) and isinstance(watch, dict):
            merged["watch"] = {**watch, **merged["watch"]}  # the environment's keys over [watch]'s
        out = {k: _convert(path, base, f"environments.{name}.{k}", _ENVIRONMENT_KINDS[k], v) for k, v in merged.items()}
        if name == "production" and "window" not in out:
            raise ConfigInvalid.with_hint(
                f"{path}: environments.production.window is required (a production cutover needs a maintenance window)",
                'add e.g. window = "02:00-04:00" and timezone = "UTC"',
            )
        if out.get("backup") and "backup_dir" not in out:
            out["backup_dir"] = base / "backups"
        found[name] = EnvironmentConfig(name=name, **out)
    return found


def _section(path: Path, base: Path, name: str, values: object, where: str = ""):
    cls, kinds = _SECTIONS[name]
    where = where or name
    if not isinstance(values, dict):
        raise ConfigInvalid(f"{path}: {where} must be a table ([{where}])")
    for key in values:
        if key not in kinds:
            raise ConfigInvalid(f"{path}: unknown key {where}.{key}; expected one of {', '.join(kinds)}")
    out = {}
    for spec in fields(cls):
        key = spec.name if spec.name in kinds else spec.name.replace("_", "-")
        if key not in values:
            if spec.default is MISSING:
                raise ConfigInvalid(f"{path}: missing key {name}.{key}")
            continue
        out[spec.name] = _convert(path, base, f"{where}.{key}", kinds[key], values[key])
    return cls(**out)


def _check_database_paths(path: Path, database: DatabaseConfig) -> None:
    """The pointer is rewritten by rename: naming the database itself would replace it."""
    if database.pointer == database.initial:
        raise ConfigInvalid(
            f"{path}: database.pointer and database.initial name the same file ({database.pointer}); "
            'the pointer is a small TOML file of its own, e.g. pointer = "data/current.toml"'
        )
    if database.pointer.name.endswith(("-wal", "-shm", "-journal")):
        raise ConfigInvalid.with_hint(
            f"{path}: database.pointer ({database.pointer.name}) is named like a SQLite side file",
            "give it a name of its own, e.g. current.toml",
        )


def _convert(path: Path, base: Path, where: str, kind: object, value: object):
    if isinstance(kind, Int):
        return _int(path, where, kind, value)
    if isinstance(kind, Float):
        return _float(path, where, kind, value)
    if kind in ("file", "dir"):
        return _path(path, base, where, kind, value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigInvalid(f"{path}: {where} must be true or false, got {value!r}")
        return value
    if kind == "window":
        _no_nul(path, where, value)
        return _window(path, where, value)
    if kind == "timezone":
        _no_nul(path, where, value)
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError, OSError):
            raise ConfigInvalid(
                f'{path}: {where} must be an IANA time zone such as "UTC" or "Europe/Berlin", got {value!r}'
            ) from None
        return value
    if kind == "watch":
        if not isinstance(value, dict):
            raise ConfigInvalid(f"{path}: {where} must be a table ([{where}]), got {value!r}")
        return _section(path, base, "watch", value, where)
    if kind == "command":
        if not isinstance(value, str) or not value.strip():
            raise ConfigInvalid.with_hint(
                f"{path}: {where} must be a non-empty shell command string, got {value!r}",
                "leave the key out for no hook",
            )
        _no_nul(path, where, value)
        return value
    if kind == "replica_url":
        return _replica_url(path, where, value)
    if kind == "named_sql":  # a table of name = "SQL"
        if not isinstance(value, dict):
            raise ConfigInvalid(f'{path}: {where} must be a table of name = "SELECT ...", got {value!r}')
        for name, sql in value.items():
            if not name.strip():
                raise ConfigInvalid.with_hint(
                    f"{path}: {where} has an empty query name", 'name each query, e.g. orders_by_day = "..."'
                )
            _no_nul(path, f"{where}.{name}", name)
            if not isinstance(sql, str) or not sql.strip():
                raise ConfigInvalid(f"{path}: {where}.{name} must be a non-empty SQL string, got {sql!r}")
            _no_nul(path, f"{where}.{name}", sql)
            _no_internal(path, f"{where}.{name}", sql)
        return tuple(value.items())
    raise AssertionError(kind)


def _no_internal(path: Path, where: str, sql: str) -> None:
    """A benchmark or check query reading bluegreen's own objects (capture, fences, replay
    positions) would depend on bookkeeping that comes and goes with each deploy: refused like a
    migration's reference (hazard 15)."""
    found = namedsql.references_internal(sql)
    if found is not None:
        raise ConfigInvalid.with_hint(
            f"{path}: {where} refers to {found.written}, one of bluegreen's own objects ({namedsql.INTERNAL_PREFIX}* "
            "tables, triggers and indexes hold change capture, fences and replay positions); a benchmark or check "
            "query must not read them",
            "remove that reference",
            sep=": ",
        )


def _int(path: Path, where: str, kind: Int, value: object) -> int:
    """Whole numbers only, within bounds SQLite and the OS accept (a busy timeout is a C int)."""
    if isinstance(value, bool) or not isinstance(value, int) or not kind.low <= value <= kind.high:
        which = "a positive integer" if kind.low == 1 else f"a whole number, {kind.low} or more,"
        raise ConfigInvalid(
            f"{path}: {where} must be {which} up to {kind.high:,} (at most {kind.limit}), got {value!r}"
        )
    return value


def _float(path: Path, where: str, kind: Float, value: object) -> float:
    """Finite numbers only: NaN compares false with everything, so `max_ratio = nan` would pass
    every benchmark, and inf would switch the gate off the same way."""
    number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
    low_ok = number > kind.low if kind.low_open else number >= kind.low
    if not (math.isfinite(number) and low_ok and number <= kind.high):
        low = f"> {kind.low:g}" if kind.low_open else f">= {kind.low:g}"
        raise ConfigInvalid(
            f"{path}: {where} must be a number {low}, finite, up to {kind.high:,g} "
            f"(at most {kind.limit}), got {value!r}"
        )
    return number


def _no_nul(path: Path, where: str, value: object) -> None:
    if isinstance(value, str) and "\x00" in value:
        raise ConfigInvalid.with_hint(f"{path}: {where} holds a NUL byte ({value!r})", "remove it")


def _path(path: Path, base: Path, where: str, kind: str, value: object) -> Path:
    """A path string, resolved against the config's folder; an existing one must be of its kind
    (a directory where a file is written would fail midway, a file flag that is a folder would hold
    cutover for ever)."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigInvalid(f"{path}: {where} must be a non-empty path string, got {value!r}")
    _no_nul(path, where, value)
    encoded = os.fsencode(value)
    if len(encoded) > PATH_MAX or any(len(part) > NAME_MAX for part in encoded.split(b"/")):
        raise ConfigInvalid.with_hint(
            f"{path}: {where} is longer than the OS accepts ({PATH_MAX} bytes, {NAME_MAX} per name)",
            "give a shorter path",
        )
    try:
        resolved = (base / value).resolve() if not os.path.isabs(value) else Path(value).resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise ConfigInvalid.with_hint(
            f"{path}: {where} ({value!r}) cannot be resolved ({exc})", "fix the path"
        ) from None
    if kind == "file" and resolved.is_dir():
        raise ConfigInvalid.with_hint(f"{path}: {where} ({resolved}) is a directory", "name a file")
    if kind == "dir" and resolved.exists() and not resolved.is_dir():
        raise ConfigInvalid.with_hint(f"{path}: {where} ({resolved}) is not a directory", "name a folder")
    return resolved


# The replica types Litestream 0.5 reads from a URL.
REPLICA_SCHEMES = ("file", "s3", "gs", "abs", "sftp", "webdav", "nats", "oss")


def _replica_url(path: Path, where: str, value: object) -> str:
    """A Litestream replica URL: a known scheme, and for file:// an absolute path (a relative one
    would land wherever Litestream happens to run)."""
    _no_nul(path, where, value)
    example = 'e.g. "file:///srv/replicas/app" or "s3://bucket/app"'
    if not isinstance(value, str) or "://" not in value:
        raise ConfigInvalid(f"{path}: {where} must be a replica URL ({example}), got {value!r}")
    scheme, rest = value.split("://", 1)
    if scheme not in REPLICA_SCHEMES:
        raise ConfigInvalid(
            f"{path}: {where} has the scheme {scheme!r}, which Litestream does not replicate to; "
            f"expected one of {', '.join(REPLICA_SCHEMES)} ({example})"
        )
    if scheme == "file" and not rest.startswith("/"):
        raise ConfigInvalid.with_hint(
            f"{path}: {where} ({value!r}) must name an absolute folder",
            'write three slashes: "file:///srv/replicas/app"',
        )
    if not rest.strip("/"):
        raise ConfigInvalid(f"{path}: {where} ({value!r}) names no folder or bucket")
    split = urllib.parse.urlsplit(value)  # a query (?endpoint=...) stays; the path loses a trailing /
    return urllib.parse.urlunsplit(split._replace(path=split.path.rstrip("/")))


_WINDOW = re.compile(r"^(\d\d):(\d\d)-(\d\d):(\d\d)$")


def _window(path: Path, where: str, value: object) -> Window:
    match = _WINDOW.match(value.strip()) if isinstance(value, str) else None
    bad = f'{path}: {where} must be "HH:MM-HH:MM" (24-hour, may wrap past midnight), got {value!r}'
    if not match:
        raise ConfigInvalid(bad)
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
        raise ConfigInvalid(bad)
    start, end = time(h1, m1), (time.max if h2 == 24 else time(h2, m2))
    if start == end:
        raise ConfigInvalid.with_hint(
            f"{path}: {where} is empty ({value!r}: start equals end)", 'give a window such as "02:00-04:00"'
        )
    return Window(start, end, value.strip())
