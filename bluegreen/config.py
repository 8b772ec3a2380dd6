"""config.toml → frozen dataclasses. Every bad value is named with its file and key."""

from __future__ import annotations

import os
import tomllib
from dataclasses import MISSING, dataclass, fields
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
                                "max_attempts": "positive_int"}),
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
        if section not in _SECTIONS:
            raise InputError(f"{path}: unknown section [{section}]; expected one of {', '.join(sorted(_SECTIONS))}")
    for section in sorted(_REQUIRED - raw.keys()):
        raise InputError(f"{path}: missing section [{section}]")
    built = {name: _section(path, base, name, raw.get(name, {})) for name in _SECTIONS}
    return Config(path=path.resolve(), **built)


def _section(path: Path, base: Path, name: str, values: object):
    cls, kinds = _SECTIONS[name]
    if not isinstance(values, dict):
        raise InputError(f"{path}: {name} must be a table ([{name}])")
    for key in values:
        if key not in kinds:
            raise InputError(f"{path}: unknown key {name}.{key}; expected one of {', '.join(kinds)}")
    out = {}
    for field in fields(cls):
        key = field.name
        if key not in values:
            if field.default is MISSING:
                raise InputError(f"{path}: missing key {name}.{key}")
            continue
        out[key] = _convert(path, base, f"{name}.{key}", kinds[key], values[key])
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
