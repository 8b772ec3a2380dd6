"""What the Django backend raises: Django's own OperationalError, which views, middleware and
`except DatabaseError` already handle, carrying bluegreen's message."""

from __future__ import annotations

from django.core.management.base import CommandError
from django.db.utils import OperationalError

from bluegreen.errors import BluegreenError


class GenerationUnusable(OperationalError, CommandError):
    """The pointer or the generation it names cannot be used: the pointer is missing or garbled,
    the file is missing or not the generation the pointer says, its schema is not one the
    settings' `compatible` accepts, or a write refused by a fence found no writable file in time.
    Nothing was opened or written. Also a CommandError, so `manage.py migrate` / `showmigrations`
    print the message and exit (with bluegreen's exit code for the cause) instead of a traceback.
    `cause` is the bluegreen error (bluegreen.errors.PointerInvalid, client.GenerationUnavailable,
    client.IncompatibleGeneration), or None."""

    def __init__(self, message: str, *, cause: BluegreenError | None = None):
        super().__init__(f"bluegreen: {message}", returncode=cause.exit_code if cause else 1)
        self.cause = cause

    @classmethod
    def of(cls, exc: BluegreenError) -> GenerationUnusable:
        return cls(exc.message, cause=exc)


class FencedInTransaction(OperationalError):
    """A write met the fence of a retired file inside a transaction that began before the fence
    (transaction_mode "DEFERRED", or a BEGIN of the application's own). Nothing of the transaction
    is committed; `atomic()` rolls it back. Run it again: the next transaction follows the pointer."""

    def __init__(self, message: str):
        super().__init__(f"bluegreen: {message}")
