"""The SQLAlchemy dialect: `create_engine("bluegreen+sqlite:///data/current.toml")`.

SQLAlchemy's own SQLite dialect (pysqlite: SQL, types, reflection, `dialect.name == "sqlite"`, so
Alembic, `with_variant` and `sqlite_*` options work unchanged) on the driver in
`bluegreen.sqlalchemy.dbapi`. The URL's path is the pointer file, not a database; its query
string and `connect_args` take the client's options. The pool is a QueuePool, as for any SQLite
file (the `sqlite://` URL the older `client.creator` recipe used gets a SingletonThreadPool, one
connection per thread, because SQLAlchemy takes it for an in-memory database).
"""

from __future__ import annotations

from sqlalchemy import exc, pool
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

from bluegreen.sqlalchemy import dbapi

# URL query keys and their types: the client's options, then the sqlite3.connect arguments
# SQLAlchemy's own dialect accepts there.
CLIENT_OPTIONS = {
    "compatible": str,
    "busy_timeout_ms": int,
    "fence_timeout_s": float,
    "watch": bool,
    "poll_interval": float,
    "heartbeat": bool,
    "read_only": bool,
    "sampling": bool,
}
SQLITE3_OPTIONS = {"detect_types": int, "cached_statements": int}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


class BluegreenDialect(SQLiteDialect_pysqlite):
    driver = "bluegreen"
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls):
        return dbapi

    @classmethod
    def get_pool_class(cls, url):
        return pool.QueuePool

    def create_connect_args(self, url):
        if url.username or url.password or url.host or url.port:
            raise exc.ArgumentError(f"{url}: a bluegreen URL names the pointer file only: bluegreen+sqlite:///PATH")
        if not url.database:
            raise exc.ArgumentError(
                f"{url}: no pointer file; write bluegreen+sqlite:///data/current.toml (relative) or "
                "bluegreen+sqlite:////abs/path/current.toml"
            )
        options: dict = {}
        sqlite3_kwargs: dict = {}
        for key, values in url.query.items():
            values = (values,) if isinstance(values, str) else tuple(values)
            kind = CLIENT_OPTIONS.get(key) or SQLITE3_OPTIONS.get(key)
            if kind is None:
                known = ", ".join([*CLIENT_OPTIONS, *SQLITE3_OPTIONS])
                raise exc.ArgumentError(f"{url}: unknown option {key!r} in the URL; the options are {known}")
            parsed = [_parse(url, key, value, kind) for value in values]
            if key == "compatible":
                options[key] = parsed  # ?compatible=1.2.1&compatible=2.*
            else:
                (options if key in CLIENT_OPTIONS else sqlite3_kwargs)[key] = parsed[-1]
        if sqlite3_kwargs:
            options["sqlite3_kwargs"] = sqlite3_kwargs
        return [url.database], options

    def connect(self, *cargs, **cparams):
        return dbapi.connect(*cargs, **cparams)


def _parse(url, key: str, value: str, kind: type):
    if kind is bool:
        if value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
    else:
        try:
            return kind(value)
        except ValueError:
            pass
    raise exc.ArgumentError(f"{url}: option {key}={value!r} is not a {kind.__name__}")


dialect = BluegreenDialect
