"""Engine creation per dialect: the only place with SQLite- or MySQL-specific code.

SQLite gets foreign keys and WAL (file databases) through connect listeners, and a static pool for
in-memory databases so that every thread sees the same data. MySQL/MariaDB gets pre-ping and a
recycle interval, plus the error codes that mean "retry this transaction". `db_now()` is the
database's own clock, in whole seconds since the epoch, for every age that several management
servers compare (heartbeats, how long a job has run): their local clocks may disagree.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

# MySQL error numbers after which the same transaction may be run again: deadlock, lock wait timeout,
# a connection lost, or none to be had (the server is restarting or the network is cut).
MYSQL_RETRYABLE = frozenset({1205, 1213, 2002, 2003, 2006, 2013, 2014, 2045, 2055})
# Seconds to wait for the server to accept a new connection before the attempt counts as failed.
MYSQL_CONNECT_TIMEOUT = 10


class db_now(FunctionElement[int]):  # noqa: N801 (used like an SQL function)
    """The database server's current time in whole seconds since the epoch (UTC)."""

    type = sa.Integer()
    inherit_cache = True


@compiles(db_now)
def _db_now_default(_element: db_now, _compiler: SQLCompiler, **_kw: Any) -> str:
    return "CAST(strftime('%s', 'now') AS INTEGER)"


@compiles(db_now, "mysql")
def _db_now_mysql(_element: db_now, _compiler: SQLCompiler, **_kw: Any) -> str:
    # UNIX_TIMESTAMP() is a DECIMAL with sub-seconds when the session's timestamp has them
    return "CAST(UNIX_TIMESTAMP() AS SIGNED)"


def expand_url(url: str, basedir: str) -> str:
    """Replace `%(basedir)s` in a database URL."""
    return url.replace("%(basedir)s", basedir)


def is_sqlite_memory(url: str) -> bool:
    return url in ("sqlite://", "sqlite:///:memory:")


def create_engine(url: str, basedir: str = ".") -> Engine:
    """Create an engine for `url` with the settings its dialect needs."""
    url = expand_url(url, basedir)
    kwargs: dict[str, Any] = {"future": True}
    if url.startswith("sqlite"):
        if is_sqlite_memory(url):
            kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
        else:
            kwargs.update(connect_args={"check_same_thread": False, "timeout": 30})
        engine = sa.create_engine(url, **kwargs)
        memory = is_sqlite_memory(url)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # The driver would only open a transaction at the first write, leaving the reads before it
            # (a check that a name is free) outside the transaction; cloudd begins transactions itself.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys = ON")
            if not memory:
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # A deferred BEGIN: reads run concurrently; a write after a read whose snapshot another writer
            # has since changed fails with "database is locked", and the pool runs the function again.
            conn.exec_driver_sql("BEGIN")

        return engine
    if url.startswith("mysql"):
        kwargs.update(pool_pre_ping=True, pool_recycle=3600, pool_size=10, max_overflow=10,
                      connect_args={"connect_timeout": MYSQL_CONNECT_TIMEOUT})
        if "charset=" not in url:
            url += ("&" if "?" in url else "?") + "charset=utf8mb4"
        return sa.create_engine(url, **kwargs)
    return sa.create_engine(url, **kwargs)


def should_retry(exc: BaseException) -> bool:
    """True when `exc` is a disconnect, deadlock or lock timeout worth retrying."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa.exc.OperationalError):
        orig = getattr(exc, "orig", None)
        args = getattr(orig, "args", ())
        if args and isinstance(args[0], int) and args[0] in MYSQL_RETRYABLE:
            return True
        if "database is locked" in str(orig):
            return True
    return False
