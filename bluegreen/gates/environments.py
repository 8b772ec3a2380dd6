"""Which environment this run is for, and the rule its cutover must meet.

An environment (`[environments.NAME]` in config.toml, chosen with `--env` or $BLUEGREEN_ENV) says
how careful a release must be: how many distinct people approve the target version, whether a
verified backup of blue comes before prepare, and the daily window in which cutover may run.
This module only decides; the controller asks it before touching anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

from bluegreen.config import Config, EnvironmentConfig, Window
from bluegreen.errors import ApprovalMissing, ArgumentInvalid, OutsideWindow

ENV_VAR = "BLUEGREEN_ENV"


def chosen_name(cli_value: str | None) -> str | None:
    """--env wins, then $BLUEGREEN_ENV; None when neither is given."""
    return cli_value or os.environ.get(ENV_VAR) or None


def select(config: Config, name: str | None) -> EnvironmentConfig | None:
    """The chosen environment's rule; None only when the config defines no environments (as before
    environments existed). A config that defines some must be told which one: failing closed is
    safer than guessing development on a production machine."""
    configured = ", ".join(sorted(config.environments)) or "none"
    if name is None:
        if config.environments:
            raise ArgumentInvalid.with_hint(
                f"{config.path}: defines environments ({configured})", f"choose one with --env NAME or ${ENV_VAR}"
            )
        return None
    if name not in config.environments:
        raise ArgumentInvalid(
            f"{config.path}: no [environments.{name}] table for the environment {name!r} "
            f"(from --env or ${ENV_VAR}); configured: {configured}"
        )
    return config.environments[name]


@dataclass(frozen=True)
class WindowState:
    open: bool
    now: str  # the local time in the window's zone, "HH:MM ZONE"
    text: str  # "02:00-04:00 UTC"


def window_state(env: EnvironmentConfig, now: datetime | None = None) -> WindowState | None:
    """Is the cutover window open right now (in the environment's own time zone)?"""
    if env.window is None:
        return None
    local = (now or datetime.now(ZoneInfo("UTC"))).astimezone(ZoneInfo(env.timezone))
    return WindowState(
        _inside(env.window, local.time()), f"{local:%H:%M} {env.timezone}", f"{env.window.text} {env.timezone}"
    )


def _inside(window: Window, at: time) -> bool:
    if window.start < window.end:
        return window.start <= at < window.end
    return at >= window.start or at < window.end  # wraps past midnight


@dataclass(frozen=True)
class CutoverCheck:
    """What the environment still lacks for a cutover of `version`; empty fields mean met."""

    environment: str
    version: str
    approvers: tuple[str, ...]  # distinct names that approved `version`
    required: int
    window: WindowState | None

    @property
    def approvals_missing(self) -> str:
        if len(self.approvers) >= self.required:
            return ""
        have = f"have {len(self.approvers)}" + (f": {', '.join(self.approvers)}" if self.approvers else "")
        return f"{self.environment} needs {self.required} distinct approval(s) of v{self.version} ({have})"

    @property
    def window_closed(self) -> str:
        if self.window is None or self.window.open:
            return ""
        return f"cutover window {self.window.text} is closed (now {self.window.now})"

    def enforce(self, command: str, force: bool) -> None:
        """Refuse (exit 3) listing everything missing at once; ApprovalMissing when approvals are
        among it, else OutsideWindow. `force` overrides only the window:
        approvals are people, not a clock, and cannot be forced."""
        missing = [m for m in (self.approvals_missing, "" if force else self.window_closed) if m]
        if not missing:
            return
        fixes = []
        if self.approvals_missing:
            fixes.append(f"`bluegreen --env {self.environment} approve {self.version} --by NAME`")
        if self.window_closed and not force:
            again = "cutover" if command == "resume" else command  # resume has no --force
            fixes.append(
                f"run it inside the window, or `bluegreen --env {self.environment} {again} --force --reason TEXT`"
            )
        cause = ApprovalMissing if self.approvals_missing else OutsideWindow  # no --force lifts the first
        raise cause.with_hint(
            f"{command} refused: {'; '.join(missing)}. Nothing was changed",
            "; ".join(fixes),
            sep=": ",
            details={
                "environment": self.environment,
                "version": self.version,
                "missing": missing,
                "approvers": list(self.approvers),
                "required": self.required,
            },
        )


def check_cutover(
    env: EnvironmentConfig, version: str, approvers: list[str], now: datetime | None = None
) -> CutoverCheck:
    return CutoverCheck(env.name, version, tuple(approvers), env.approvals, window_state(env, now))
