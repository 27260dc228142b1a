"""The SQLite database: engine set-up, migrations and short read/write transactions.

Rules (DESIGN.md §4):

* WAL journal, ``busy_timeout``, ``foreign_keys=ON``, ``synchronous=NORMAL`` on every connection.
* Every write transaction starts with ``BEGIN IMMEDIATE``: it takes the write lock up front (waiting
  up to ``busy_timeout`` for it) instead of failing with "database is locked" when a deferred
  transaction later tries to upgrade to a writer. Reads use a plain deferred ``BEGIN``.
* The sqlite3 driver's own transaction handling is switched off (``isolation_level = None``) and
  SQLAlchemy's ``begin`` event emits our BEGIN, as SQLAlchemy's SQLite documentation recommends.
* One :class:`AsyncSession` per unit of work: ``async with db.write() as session: ...``.
* A write that is one statement (adding a job: the admission hot path) may use
  ``db.write_statement()`` instead: no BEGIN/COMMIT round trips, as SQLite runs a lone statement
  atomically in its own transaction (taking the write lock, within ``busy_timeout``).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_MS = 10_000
_WRITE_OPTION = "easel_write"
_SINGLE_STATEMENT_OPTION = "easel_single_statement"
_IN_WRITE: contextvars.ContextVar[bool] = contextvars.ContextVar("easel_in_write", default=False)


def alembic_config() -> Config:
    """An Alembic config that works from a source checkout or an installed package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return config


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy (the "begin" event below) decide when and how a transaction starts.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _on_begin(connection: Connection) -> None:
    options = connection.get_execution_options()
    if options.get(_SINGLE_STATEMENT_OPTION):
        return  # SQLite's own implicit transaction around the one statement
    if options.get(_WRITE_OPTION):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.exec_driver_sql("BEGIN")


class Database:
    """An async SQLite database at ``url`` (``sqlite+aiosqlite:////abs/path/easel.db``)."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        if parsed.get_backend_name() != "sqlite":
            raise ValueError(f"Easel stores its data in SQLite; got the database URL {url!r}")
        if parsed.get_driver_name() != "aiosqlite":
            parsed = parsed.set(drivername="sqlite+aiosqlite")
        self.url = parsed.render_as_string(hide_password=False)
        database = parsed.database or ""
        self.path: Path | None = (
            None if database in ("", ":memory:") or database.startswith("file:") else Path(database)
        )
        self._engine: AsyncEngine | None = None
        self._write_engine: AsyncEngine | None = None
        self._statement_engine: AsyncEngine | None = None
        self._read_sessions: async_sessionmaker[AsyncSession] | None = None
        self._write_sessions: async_sessionmaker[AsyncSession] | None = None
        # Writers of this process queue here instead of spinning in SQLite's busy handler;
        # BEGIN IMMEDIATE + busy_timeout still arbitrate between processes and engines.
        self._write_lock = asyncio.Lock()

    async def connect(self) -> None:
        """Create the folder, open the engine and migrate the schema to the newest revision.

        Safe to call on an existing database (and from two engines at once: the migration runs
        in one ``BEGIN IMMEDIATE`` transaction, so the second waits and then finds nothing to do).
        """
        if self._engine is not None:
            return
        if self.path is not None:
            await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)
        engine = create_async_engine(self.url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
        event.listen(engine.sync_engine, "connect", _on_connect)
        event.listen(engine.sync_engine, "begin", _on_begin)
        write_engine = engine.execution_options(**{_WRITE_OPTION: True})
        try:
            await _migrate(write_engine)
        except BaseException:
            await engine.dispose()
            raise
        self._engine = engine
        self._write_engine = write_engine
        self._statement_engine = engine.execution_options(**{_SINGLE_STATEMENT_OPTION: True})
        self._read_sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._write_sessions = async_sessionmaker(write_engine, expire_on_commit=False)

    async def close(self) -> None:
        """Close every pooled connection once this process's writes under way have ended (so
        a new engine on the same file never meets a half-finished one). The object can be
        connected again afterwards."""
        async with self._write_lock:
            engine, self._engine = self._engine, None
            self._write_engine = self._statement_engine = None
            self._read_sessions = self._write_sessions = None
            if engine is not None:
                await engine.dispose()

    async def __aenter__(self) -> Database:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("Database.connect() has not been called (or close() was)")
        return self._engine

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session in a deferred (read) transaction, ended (rolled back) on exit."""
        if self._read_sessions is None:
            raise RuntimeError("Database.connect() has not been called (or close() was)")
        async with self._read_sessions() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session in a ``BEGIN IMMEDIATE`` transaction: commits on exit, rolls back on error."""
        if self._write_sessions is None:
            raise RuntimeError("Database.connect() has not been called (or close() was)")
        if _IN_WRITE.get():
            raise RuntimeError("write() inside write(): finish one transaction before the next")
        token = _IN_WRITE.set(True)
        try:
            async with self._write_lock, self._write_sessions() as session, session.begin():
                yield session
        finally:
            _IN_WRITE.reset(token)

    @asynccontextmanager
    async def write_statement(self) -> AsyncIterator[AsyncConnection]:
        """A connection for exactly one writing statement, run in SQLite's implicit transaction.

        Callers must execute a single statement: there is no transaction around several.
        """
        if self._statement_engine is None:
            raise RuntimeError("Database.connect() has not been called (or close() was)")
        if _IN_WRITE.get():
            raise RuntimeError("write_statement() inside write(): use the open transaction")
        async with self._write_lock, self._statement_engine.connect() as connection:
            yield connection
            await connection.commit()  # ends SQLAlchemy's bookkeeping; SQLite already committed


def _upgrade_to_head(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def _migrate(write_engine: AsyncEngine, attempts: int = 5) -> None:
    """Upgrade to head; another process migrating the same fresh file at that very moment can
    outlast the busy timeout on a loaded machine, so a "locked" database is retried a few times."""
    for attempt in range(1, attempts + 1):
        try:
            async with write_engine.begin() as conn:
                await conn.run_sync(_upgrade_to_head)
            return
        except OperationalError as error:
            if "locked" not in str(error) or attempt == attempts:
                raise
            await asyncio.sleep(0.2 * attempt)
