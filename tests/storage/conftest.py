from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.db import Database
from storage.repository import Store
from tests.storage.helpers import FakeClock, db_url


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "easel.db"


@pytest.fixture
async def db(db_path: Path) -> AsyncIterator[Database]:
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
