"""The database engine: SQLite (aiosqlite) by default, PostgreSQL (asyncpg) in production."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SQLITE_BUSY_TIMEOUT_MS = 10_000
WRITE = "shopcast_write"


def create_engine(url: str) -> AsyncEngine:
    """An engine tuned for the URL's backend."""
    # aiosqlite logs every statement with its parameters (password hashes, token hashes) at
    # DEBUG: a debug log level must not copy them into the logs.
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
        event.listen(engine.sync_engine, "do_connect", _connect_or_unavailable)
        return engine
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    event.listen(engine.sync_engine, "connect", _sqlite_connect)
    event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


def _connect_or_unavailable(
    dialect: Dialect, _record: object, cargs: tuple[Any, ...], cparams: dict[str, Any]
) -> Any:
    # asyncpg lets a refused connection through as a bare OSError, and a server starting up or
    # shutting down ("cannot connect now") as a generic driver error: both mean the database is
    # unavailable, so raise them as the driver's OperationalError for SQLAlchemy to wrap.
    dbapi = dialect.loaded_dbapi
    try:
        return dialect.connect(*cargs, **cparams)
    except (dbapi.OperationalError, dbapi.InterfaceError):
        raise
    except (OSError, dbapi.Error) as exc:
        raise dbapi.OperationalError(str(exc), exc) from exc


def _sqlite_connect(dbapi_connection: Any, _record: object) -> None:
    # WAL lets readers run beside the one writer; foreign keys are off by default in SQLite.
    # The driver's own implicit transactions are turned off: ``_sqlite_begin`` starts ours.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    # A transaction that will write takes the write lock up front (BEGIN IMMEDIATE): a deferred
    # one that read first could not upgrade once another writer committed (SQLITE_BUSY).
    immediate = connection.get_execution_options().get(WRITE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def session_factory(engine: AsyncEngine, *, write: bool = True) -> async_sessionmaker[AsyncSession]:
    """Sessions for transactions that write (the default) or only read."""
    bind = engine.execution_options(**{WRITE: True}) if write else engine
    return async_sessionmaker(bind, expire_on_commit=False)
