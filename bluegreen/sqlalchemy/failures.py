"""The client's errors as DB-API errors, so SQLAlchemy wraps them like any driver's.

SQLAlchemy turns an exception into `sqlalchemy.exc.OperationalError` (and rolls back, invalidates
or reports it the usual way) only when it is an instance of the driver's `Error`. Each error here
is both a `sqlite3.OperationalError` and the bluegreen cause it stands for, so an application
catches `sqlalchemy.exc.OperationalError` as it already does, and `err.orig` still says the cause
(`isinstance(err.orig, bluegreen.client.IncompatibleGeneration)`), its message and its hint.
"""

from __future__ import annotations

import sqlite3

from bluegreen import client, errors


class PointerInvalid(sqlite3.OperationalError, errors.PointerInvalid):
    """The pointer file is missing, unreadable, or names a file it may not name."""


class GenerationUnavailable(sqlite3.OperationalError, client.GenerationUnavailable):
    """The pointer names a file that is missing, or is not the generation the pointer says."""


class IncompatibleGeneration(sqlite3.OperationalError, client.IncompatibleGeneration):
    """The pointer names a schema version this application said (`compatible=`) it cannot handle."""


class FenceWaitTimeout(sqlite3.OperationalError, client.FenceWaitTimeout):
    """A statement met the fence and the pointer did not name a writable file in time."""


class FencedInTransaction(sqlite3.OperationalError, client.FencedInTransaction):
    """The file was retired under an open transaction and its reads could not be shown to be the
    same on the file the pointer names now: nothing of it was committed; run it again."""


class ClientError(sqlite3.OperationalError, client.ClientError):
    """Any other reason the client could not give this connection a usable file."""


_DUALS = (
    (errors.PointerInvalid, PointerInvalid),
    (client.GenerationUnavailable, GenerationUnavailable),
    (client.IncompatibleGeneration, IncompatibleGeneration),
    (client.FenceWaitTimeout, FenceWaitTimeout),
    (client.FencedInTransaction, FencedInTransaction),
    (client.ClientError, ClientError),
    (errors.BluegreenError, ClientError),
)

for _cls in (PointerInvalid, GenerationUnavailable, IncompatibleGeneration, FenceWaitTimeout, FencedInTransaction):
    _cls.__module__ = "bluegreen.sqlalchemy"  # SQLAlchemy prints "(module.Class) message"
ClientError.__module__ = "bluegreen.sqlalchemy"


def as_dbapi(exc: errors.BluegreenError) -> sqlite3.OperationalError:
    """The DB-API twin of a bluegreen error (the same message, details and hint)."""
    if isinstance(exc, sqlite3.Error):
        return exc
    for cause, dual in _DUALS:
        if isinstance(exc, cause):
            return dual(exc.message, details=exc.details, hint=exc.hint)
    raise TypeError(f"not a bluegreen error: {exc!r}")  # pragma: no cover
