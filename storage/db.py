"""The database: SQLite (embedded, the default) or PostgreSQL, migrations, short transactions.

Rules (DESIGN.md §4), on both:

* One :class:`AsyncSession` per unit of work: ``async with db.write() as session: ...``; reads
  use ``db.read()``. The hot writes (adding a job, starting and finishing one) go through
  ``await db.write_sync(fn)``: ``fn(connection)`` runs the whole transaction with a synchronous
  connection, on SQLite on the database's own writer thread, so a transaction is one thread
  hop instead of one (or two) per statement through aiosqlite: ~0.3 ms instead of ~3 ms,
  which is GIL time the renderer gets back.
* Writes that read a row before changing it lock that row (``SELECT ... FOR UPDATE`` on
  PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` locks the whole file), so check-then-write
  sequences cannot race another writer on either.

SQLite:

* WAL journal, ``busy_timeout``, ``foreign_keys=ON``, ``synchronous=NORMAL`` on every connection.
* Every write transaction starts with ``BEGIN IMMEDIATE``: it takes the write lock up front
  (waiting up to ``busy_timeout`` for it) instead of failing with "database is locked" when a
  deferred transaction later tries to upgrade to a writer. Reads use a plain deferred ``BEGIN``.
* The sqlite3 driver's own transaction handling is switched off (``isolation_level = None``) and
  SQLAlchemy's ``begin`` event emits our BEGIN, as SQLAlchemy's SQLite documentation recommends.
  Writers of this process queue on an asyncio lock rather than in SQLite's busy handler.

PostgreSQL (``postgresql+asyncpg://...``; ``postgresql://`` means asyncpg):

* READ COMMITTED transactions side by side; job sequence numbers come from a sequence
  (migration 0005), row locks guard read-change-write; migrations run under an advisory lock,
  so two processes starting at once do not migrate twice;
* :meth:`Database.claim_engine` holds an advisory lock for the engine's lifetime: one engine
  per database, even when engines on several machines point at it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import StaticPool

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_MS = 10_000
SQLITE, POSTGRESQL = "sqlite", "postgresql"
# Advisory lock keys (PostgreSQL): one for migrations, one for "the engine of this database".
_MIGRATION_LOCK = 0x45A5E101
_ENGINE_LOCK = 0x45A5E102
_WRITE_OPTION = "easel_write"
_IN_WRITE: contextvars.ContextVar[bool] = contextvars.ContextVar("easel_in_write", default=False)
T = TypeVar("T")


def alembic_config() -> Config:
    """An Alembic config that works from a source checkout or an installed package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return config


def normalize_url(url: str) -> tuple[str, str]:
    """(dialect, the URL with Easel's async driver): aiosqlite for SQLite, asyncpg for
    PostgreSQL unless another async driver (psycopg) is named. Anything else is refused."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == SQLITE:
        if parsed.get_driver_name() != "aiosqlite":
            parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend == POSTGRESQL:
        named = parsed.drivername.partition("+")[2]  # "" when the URL names no driver
        if named not in ("asyncpg", "psycopg"):
            parsed = parsed.set(drivername="postgresql+asyncpg")
    else:
        raise ValueError(
            f"Easel stores its data in SQLite or PostgreSQL; got a {backend!r} database URL "
            "(use sqlite:///path/easel.db or postgresql+asyncpg://user@host/db)"
        )
    return backend, parsed.render_as_string(hide_password=False)


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
    if options.get(_WRITE_OPTION):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.exec_driver_sql("BEGIN")


class Database:
    """An async database at ``url``: ``sqlite+aiosqlite:////abs/path/easel.db`` or
    ``postgresql+asyncpg://user:password@host:port/dbname``."""

    def __init__(self, url: str) -> None:
        self.dialect, self.url = normalize_url(url)
        database = make_url(self.url).database or ""
        self.path: Path | None = None
        if self.dialect == SQLITE and database not in ("", ":memory:"):
            self.path = None if database.startswith("file:") else Path(database)
        self._engine: AsyncEngine | None = None
        self._write_engine: AsyncEngine | None = None
        self._read_sessions: async_sessionmaker[AsyncSession] | None = None
        self._write_sessions: async_sessionmaker[AsyncSession] | None = None
        # SQLite file: write_sync's and read_sync's own connection (a synchronous engine and
        # its writing variant) and the one thread that uses it.
        self._sync_engine: Engine | None = None
        self._sync_writer: Engine | None = None
        self._sync_thread: ThreadPoolExecutor | None = None
        # SQLite: writers of this process queue here instead of spinning in SQLite's busy
        # handler (BEGIN IMMEDIATE + busy_timeout still arbitrate between processes).
        # PostgreSQL runs writers side by side; close() still waits for them through it.
        self._write_lock = asyncio.Lock()
        self._engine_lock: AsyncConnection | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == SQLITE

    def describe(self) -> str:
        """Where the data is, without any password: for logs and messages."""
        return make_url(self.url).render_as_string(hide_password=True)

    async def connect(self) -> None:
        """Open the engine and migrate the schema to the newest revision (creating the SQLite
        file's folder first).

        Safe to call on an existing database, and from two processes at once: SQLite runs the
        migration in one ``BEGIN IMMEDIATE`` transaction, PostgreSQL under an advisory lock, so
        the second waits and then finds nothing to do.
        """
        if self._engine is not None:
            return
        if self.is_sqlite:
            if self.path is not None:
                await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)
            engine = create_async_engine(self.url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
            event.listen(engine.sync_engine, "connect", _on_connect)
            event.listen(engine.sync_engine, "begin", _on_begin)
        else:
            engine = create_async_engine(self.url, pool_size=10, max_overflow=20)
        write_engine = engine.execution_options(**{_WRITE_OPTION: True})
        try:
            await _migrate(write_engine, self.dialect)
        except BaseException:
            await engine.dispose()
            raise
        self._engine = engine
        self._write_engine = write_engine
        self._read_sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._write_sessions = async_sessionmaker(write_engine, expire_on_commit=False)
        if self.is_sqlite and self.path is not None:
            sync_engine = self._sync_engine = _sqlite_sync_engine(self.url)
            self._sync_writer = sync_engine.execution_options(**{_WRITE_OPTION: True})
            thread = self._sync_thread = ThreadPoolExecutor(1, thread_name_prefix="easel-db-writer")
            # Opened now, not by the first request after a start (the pragmas cost ~2 ms).
            await asyncio.get_running_loop().run_in_executor(
                thread, lambda: sync_engine.connect().close()
            )

    async def close(self) -> None:
        """Close every pooled connection once this process's writes under way have ended (so
        a new engine on the same database never meets a half-finished one). The object can be
        connected again afterwards."""
        async with self._write_lock:
            await self.release_engine()
            engine, self._engine = self._engine, None
            self._write_engine = None
            self._read_sessions = self._write_sessions = None
            sync_engine, self._sync_engine = self._sync_engine, None
            self._sync_writer = None
            thread, self._sync_thread = self._sync_thread, None
            if sync_engine is not None and thread is not None:
                await asyncio.get_running_loop().run_in_executor(thread, sync_engine.dispose)
                thread.shutdown(wait=True)
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

    def _serialized(self) -> contextlib.AbstractAsyncContextManager[Any]:
        return self._write_lock if self.is_sqlite else contextlib.nullcontext()

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session in a read transaction, ended (rolled back) on exit."""
        if self._read_sessions is None:
            raise RuntimeError("Database.connect() has not been called (or close() was)")
        async with self._read_sessions() as session:
            yield session

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session in a write transaction (``BEGIN IMMEDIATE`` on SQLite): commits on exit,
        rolls back on error."""
        if self._write_sessions is None:
            raise RuntimeError("Database.connect() has not been called (or close() was)")
        if _IN_WRITE.get():
            raise RuntimeError("write() inside write(): finish one transaction before the next")
        token = _IN_WRITE.set(True)
        try:
            async with self._serialized(), self._write_sessions() as session, session.begin():
                yield session
        finally:
            _IN_WRITE.reset(token)

    async def write_sync(self, fn: Callable[[Connection], T]) -> T:
        """``fn(connection)`` in one write transaction (committed when it returns, rolled back
        when it raises), with a synchronous SQLAlchemy connection: Core statements only, no
        awaiting inside. A SQLite file runs it on its own writer thread and connection (after
        this process's other writers, as ``write()`` does); otherwise it runs through
        ``AsyncConnection.run_sync``."""
        if self._write_engine is None:
            raise RuntimeError("Database.connect() has not been called (or close() was)")
        if _IN_WRITE.get():
            raise RuntimeError("write_sync() inside write(): finish one transaction first")
        writer, thread = self._sync_writer, self._sync_thread
        async with self._serialized():
            if writer is None or thread is None:
                async with self._write_engine.begin() as connection:
                    return await connection.run_sync(fn)

            def transaction() -> T:
                with writer.begin() as connection:
                    return fn(connection)

            return await asyncio.get_running_loop().run_in_executor(thread, transaction)

    async def read_sync(self, fn: Callable[[Connection], T]) -> T:
        """``fn(connection)`` in one read transaction, like :meth:`write_sync` (on a SQLite
        file: the writer thread's connection, a deferred BEGIN, not after this process's
        writers): for reads on the hot path, ~0.2 ms instead of ~1.5 ms through aiosqlite."""
        sync_engine, thread = self._sync_engine, self._sync_thread
        if sync_engine is None or thread is None:
            async with self.engine.connect() as connection:
                return await connection.run_sync(fn)

        def transaction() -> T:
            with sync_engine.connect() as connection:
                try:
                    return fn(connection)
                finally:
                    connection.rollback()

        return await asyncio.get_running_loop().run_in_executor(thread, transaction)

    # ------------------------------------------------------------------ one engine per database

    async def claim_engine(self) -> bool:
        """PostgreSQL: hold the "engine" advisory lock until :meth:`release_engine` (or the
        connection ends). False when another engine holds it. SQLite: True (the engine's file
        lock next to the database does this job)."""
        if self.is_sqlite:
            return True
        if self._engine_lock is not None:
            return True
        connection = await self.engine.connect()
        claimed = (
            await connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": _ENGINE_LOCK}
            )
        ).scalar()
        if not claimed:
            await connection.close()
            return False
        await connection.commit()
        self._engine_lock = connection
        return True

    async def release_engine(self) -> None:
        connection, self._engine_lock = self._engine_lock, None
        if connection is not None:
            with contextlib.suppress(Exception):  # closing the connection releases it anyway
                await connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": _ENGINE_LOCK}
                )
            await connection.close()


def _sqlite_sync_engine(async_url: str) -> Engine:
    """A synchronous engine on the same SQLite file (the standard library's driver) holding
    one connection, with the same pragmas and BEGINs as the async one."""
    url = make_url(async_url).set(drivername="sqlite")
    engine = create_engine(
        url,
        poolclass=StaticPool,
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _on_begin)
    return engine


def _upgrade_to_head(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def _migrate(write_engine: AsyncEngine, dialect: str, attempts: int = 5) -> None:
    """Upgrade to head. SQLite: another process migrating the same fresh file at that very
    moment can outlast the busy timeout on a loaded machine, so a "locked" database is retried
    a few times. PostgreSQL: an advisory lock makes concurrent starts take turns."""
    for attempt in range(1, attempts + 1):
        try:
            async with write_engine.begin() as conn:
                if dialect == POSTGRESQL:
                    await conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK}
                    )
                await conn.run_sync(_upgrade_to_head)
            return
        except OperationalError as error:
            if "locked" not in str(error) or attempt == attempts:
                raise
            await asyncio.sleep(0.2 * attempt)
