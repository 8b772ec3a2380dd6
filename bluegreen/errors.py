"""Errors typed by cause, each carrying its exit code, so the CLI maps every failure to a
documented number and a caller (or a test) can tell a lock timeout from a lost capture without
reading the message.

Every error's `message` is the one line the CLI prints: what happened, naming the file, and what
to do. `hint` holds the "what to do" part alone (for programs that act on it); it never changes
what is printed. The exit-code classes (OperationFailed, InputError, GateRefused, Busy,
RevertRefused, AfterHookFailed) are the parents; raise the most specific cause.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_GATE = 3
EXIT_BUSY = 4
EXIT_REVERT_REFUSED = 5
EXIT_AFTER_HOOK = 6
EXIT_REGRESSED = 7  # the watch after the swap saw a regression (a finding in a Result, not an error)


class BluegreenError(Exception):
    """A failure the user can act on; the message is one line naming the file and the fix."""

    exit_code = EXIT_FAILED
    hint = ""  # what the user does about this cause; an instance may say it more precisely

    def __init__(self, message: str, *, details: object = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.details = details
        if hint is not None:
            self.hint = hint

    @classmethod
    def with_hint(cls, what: str, hint: str, *, sep: str = "; ", details: object = None):
        """The usual one line, `what; fix`, with the fix kept as the hint too: written once, the
        two cannot drift apart."""
        return cls(f"{what}{sep}{hint}", details=details, hint=hint)


# -- exit 1: the operation could not be done; what is on disk is still consistent ----------------


class OperationFailed(BluegreenError):
    exit_code = EXIT_FAILED


class LockTimeout(OperationFailed):
    """A database lock was not obtained in time (a long transaction of the application holds it);
    nothing was switched."""

    hint = "run the command again once the long transaction is done, or raise lock_timeout_ms"


class PauseBudgetExceeded(OperationFailed):
    """The write-pause budget could not be met: the lock was let go, nothing was switched, the
    active file is still active and the new generation stays prepared (invariant 3)."""

    hint = "run the command again at a quieter moment, or raise max_write_pause_ms"


class CaptureLost(OperationFailed):
    """The change capture a generation was built on is gone, was reinstalled, or was written by
    something other than bluegreen: green can no longer be caught up exactly (invariant 2)."""

    hint = "run `bluegreen abort`, then deploy again"


class SchemaDrift(OperationFailed):
    """A file's schema changed under bluegreen (DDL on the live file while green was built, or on a
    retired file after it was fenced)."""


class FenceTampered(OperationFailed):
    """A fence bluegreen installed is not where it left it (lifted, or both files take writes)."""

    hint = "stop the application's writers and inspect both files"


class NoSpace(OperationFailed):
    """A file could not be written: the disk is full, or the folder is not writable."""

    hint = "free space (or fix permissions), then run `bluegreen status` and the command again"


class MigrationFailed(OperationFailed):
    """A migration's SQL failed on green; green was discarded, the active file is untouched."""


class BackupFailed(OperationFailed):
    """The environment's backup could not be made or verified; prepare refused."""


class StillInUse(OperationFailed):
    """Live processes still have a file open that the command would retire or delete."""

    hint = "run the command again once they have moved (each moves at its next statement)"


class SnapshotFailed(OperationFailed):
    """Copying blue into green failed for a reason other than space."""


class Throttled(OperationFailed):
    """The build stayed throttled by the flag file ([throttle] flag_file, `bluegreen throttle on`)
    longer than [throttle] max_throttled_s; nothing was switched."""

    hint = "remove the flag (`bluegreen throttle off`), then run the command again"


class WriterFailed(OperationFailed):
    """A demo or rehearsal writer did not do its part (exited, made no progress, lost writes)."""


class ReplicationFailed(OperationFailed):
    """Litestream is missing, failed, or did not catch up within [replication] wait_timeout_s."""


# -- exit 2: bad input; nothing on disk was changed ------------------------------------------------


class InputError(BluegreenError):
    """Bad config, pointer, migration file or database: nothing on disk was changed."""

    exit_code = EXIT_USAGE


class ConfigInvalid(InputError):
    """config.toml is missing, unreadable, or holds a value bluegreen cannot use."""


class PointerInvalid(InputError):
    """The pointer file is missing, unreadable, or names a file it may not name."""

    hint = "restore the pointer (the last `swap` line of .bluegreen/events.jsonl says which file is active)"


class JournalInvalid(InputError):
    """A record bluegreen keeps in .bluegreen/ (the journal state.json, the approvals) is missing,
    unreadable or was edited into an impossible state."""

    hint = "restore it from a backup of the data folder (events.jsonl records each step)"


class MigrationInvalid(InputError):
    """A migration file (or a companion) is misnamed, unreadable, changed since it ran, or reaches
    where a migration may not."""


class ArgumentInvalid(InputError):
    """A command-line argument (or the environment variable standing for it) names something the
    command cannot use: an environment the config does not define, an empty approver, a prune
    target that is no removable generation, a rehearsal folder inside the data folder."""


class WrongPhase(InputError):
    """The command does not fit the phase the journal is in (nothing prepared to cut over, an
    operation interrupted, a generation in its revert window); nothing was changed."""

    hint = "`bluegreen status` says what the phase allows next"


class FileInTheWay(InputError):
    """A file already stands where bluegreen would create one (a stray generation or its -wal/-shm,
    a folder it did not make); bluegreen never writes over a file it does not own."""

    hint = "move the file away if it is not needed"


class DatabaseInvalid(InputError):
    """A database file is missing, not SQLite, unreadable or damaged."""


class SchemaUnsupported(InputError):
    """The schema holds something bluegreen cannot capture exactly (an index only the application
    can evaluate, a table without a usable key)."""


# -- exit 3: a gate said no --------------------------------------------------------------------------


class GateRefused(BluegreenError):
    """A validation gate said no; details hold the failed checks."""

    exit_code = EXIT_GATE


class ReplayConflict(GateRefused):
    """A row the source holds breaks a constraint of the target's schema (a UNIQUE index, CHECK or
    NOT NULL a migration added): replay cannot carry it. details name each table, key, constraint
    and the row's values; nothing was committed, the source stays active."""


class ValidationRefused(GateRefused):
    """Green failed a validation check (row counts, integrity, foreign keys, a named check, the
    performance gate); blue stays active. details hold every check."""

    hint = "fix the migration or the check, then deploy again"


class OutsideWindow(GateRefused):
    """The environment's cutover window is closed."""

    hint = "run it inside the window, or with --force --reason TEXT"


class ApprovalMissing(GateRefused):
    """The environment asks for approvals the release does not have yet (when the window is
    closed too, this is the cause: no --force lifts it)."""

    hint = "`bluegreen --env ENV approve VERSION --by NAME`"


class HookRefused(GateRefused):
    """A hook acting as a gate (a pre-* hook, or deploy's post-prepare) failed or timed out: the
    operation stopped there; details hold the hook's run."""

    hint = "fix what the hook reports, then run the command again"


class CompanionMissing(GateRefused):
    """A pending migration needs a companion it lacks (a `_sync.sql` for what replay cannot keep
    exact, hazard 3): prepare and deploy would refuse it; `plan` says so before anything is built,
    naming the file to create. Nothing was changed."""

    hint = "create the companion the message names, or use `bluegreen deploy --offline`"


class NotYetDue(GateRefused):
    """A pending migration declares `-- bluegreen: not-before QUERY` and today (UTC) is before the
    date that query reads from the active file, or it reads none: plan says so, prepare and deploy
    refuse before anything is built; nothing was changed."""


class Held(GateRefused):
    """A hold file ([cutover] wait_flag) stops cutovers until it is removed."""

    hint = "remove the hold file, or run the command with --wait"


# -- exit 4, 5, 6 ------------------------------------------------------------------------------------


class Busy(BluegreenError):
    """Another controller holds the lock."""

    exit_code = EXIT_BUSY
    hint = "wait for it to finish"


class RevertRefused(BluegreenError):
    """Reverting would drop writes made on the active generation."""

    exit_code = EXIT_REVERT_REFUSED
    hint = "`bluegreen revert --accept-loss` saves them to a file first"


class AfterHookFailed(BluegreenError):
    """The operation was done, but its post-* hook failed: do not run the operation again."""

    exit_code = EXIT_AFTER_HOOK
    hint = "do the hook's job by hand; the operation stands"
