"""The database engine: SQLite (aiosqlite) by default, PostgreSQL (asyncpg) in production."""

from __future__ import annotations

import logging
from dataclasses import dataclass
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
SQLITE_WRITE_QUEUE_SECONDS = 60
WRITE = "shopcast_write"


@dataclass(frozen=True)
class Database:
    """A process's sessions: ``sessions`` may write, ``reads`` only read."""

    sessions: async_sessionmaker[AsyncSession]
    reads: async_sessionmaker[AsyncSession]
    engines: tuple[AsyncEngine, ...]

    async def dispose(self) -> None:
        for engine in self.engines:
            await engine.dispose()


def open_database(url: str) -> Database:
    """The sessions for ``url``.

    SQLite lets one transaction write at a time. The writers of this process take turns on one
    connection, queueing for it in order of arrival, rather than each taking a connection and
    waiting in SQLite's busy handler, which polls, serves no one first, and gives up after its
    timeout: a thousand buyers at once ran some of them past it. Readers keep a pool of their
    own, reading beside the writer (WAL).
    """
    reads = create_engine(url)
    if not _sqlite_file(url):
        return Database(session_factory(reads), session_factory(reads, write=False), (reads,))
    writes = create_engine(url, serial=True)
    return Database(session_factory(writes), session_factory(reads, write=False), (writes, reads))


def create_engine(url: str, *, serial: bool = False) -> AsyncEngine:
    """An engine tuned for the URL's backend; ``serial``: one SQLite connection, waited for
    in order (see ``open_database``)."""
    # aiosqlite logs every statement with its parameters (password hashes, token hashes) at
    # DEBUG: a debug log level must not copy them into the logs.
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
        event.listen(engine.sync_engine, "do_connect", _connect_or_unavailable)
        return engine
    if _sqlite_file(url):
        Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)
    queue: dict[str, Any] = (
        {"pool_size": 1, "max_overflow": 0, "pool_timeout": SQLITE_WRITE_QUEUE_SECONDS}
        if serial
        else {}
    )
    engine = create_async_engine(
        url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **queue
    )
    event.listen(engine.sync_engine, "connect", _sqlite_connect)
    event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


def _sqlite_file(url: str) -> bool:
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")


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
