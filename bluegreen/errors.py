"""Errors that carry their exit code, so the CLI maps every failure to a documented number."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_GATE = 3
EXIT_BUSY = 4
EXIT_REVERT_REFUSED = 5
EXIT_AFTER_HOOK = 6


class BluegreenError(Exception):
    """A failure the user can act on; the message is one line naming the file and the fix."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, details: object = None):
        super().__init__(message)
        self.message = message
        self.details = details


class OperationFailed(BluegreenError):
    exit_code = EXIT_FAILED


class PauseBudgetExceeded(OperationFailed):
    """The write-pause budget could not be met: the lock was let go, nothing was switched, the
    active file is still active and the new generation stays prepared (invariant 3)."""

    exit_code = EXIT_FAILED


class InputError(BluegreenError):
    """Bad config, pointer, migration file or database: nothing on disk was changed."""

    exit_code = EXIT_USAGE


class GateRefused(BluegreenError):
    """A validation gate said no; details hold the failed checks."""

    exit_code = EXIT_GATE


class ReplayConflict(GateRefused):
    """A row the source holds breaks a constraint of the target's schema (a UNIQUE index, CHECK or
    NOT NULL a migration added): replay cannot carry it. details name each table, key, constraint
    and the row's values; nothing was committed, the source stays active."""


class Busy(BluegreenError):
    """Another controller holds the lock."""

    exit_code = EXIT_BUSY


class RevertRefused(BluegreenError):
    """Reverting would drop writes made on the active generation."""

    exit_code = EXIT_REVERT_REFUSED


class AfterHookFailed(BluegreenError):
    """The operation was done, but its post-* hook failed: do not run the operation again."""

    exit_code = EXIT_AFTER_HOOK
