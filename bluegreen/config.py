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
class Config:
    path: Path
    database: DatabaseConfig
    migrations: MigrationsConfig
    snapshot: SnapshotConfig
    capture: CaptureConfig
    cutover: CutoverConfig
    hooks: HooksConfig

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
    # TOML keys are the event names (pre-prepare); the dataclass fields spell them with "_".
    "hooks": (HooksConfig, {"pre-prepare": "command", "post-prepare": "command", "pre-cutover": "command",
                            "post-cutover": "command", "post-revert": "command", "on-failure": "command",
                            "timeout_s": "positive_int"}),
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
        key = field.name if field.name in kinds else field.name.replace("_", "-")
        if key not in values:
            if field.default is MISSING:
                raise InputError(f"{path}: missing key {name}.{key}")
            continue
        out[field.name] = _convert(path, base, f"{name}.{key}", kinds[key], values[key])
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
            raise InputError(f"{path}: {where} must be a whole number of seconds, 0 or more, got {value!r}")
        return value
    if kind == "command":
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"{path}: {where} must be a non-empty shell command string, got {value!r}; "
                             "leave the key out for no hook")
        return value
    raise AssertionError(kind)
