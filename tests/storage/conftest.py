"""The store's tests run against SQLite and against a real PostgreSQL server (tests.servers):
every test that takes ``db`` or ``store`` runs once per database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from storage.db import Database
from storage.repository import Store
from tests.storage.helpers import FakeClock, db_url


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "easel.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, db_path: Path) -> str:
    if request.param == "sqlite":
        return db_url(db_path)
    postgres: Any = request.getfixturevalue("postgres")
    return str(postgres.create_database())


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.connect()
    yield database
    await database.close()


@pytest.fixture
async def sqlite_db(db_path: Path) -> AsyncIterator[Database]:
    """For what only SQLite does (BEGIN IMMEDIATE, the file)."""
    database = Database(db_url(db_path))
    await database.connect()
    yield database
    await database.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(db: Database, clock: FakeClock) -> Store:
    return Store(db, now=clock)
