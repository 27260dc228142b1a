"""Options HTTP clients set (``client_options``, migration 0006): kept per scope as sent."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from storage.db import Database
from storage.repository import Store
from tests.storage.helpers import db_url, downgrade


async def test_options_merge_and_come_back_unchanged(store: Store) -> None:
    api = await store.get_or_create_scope("api", "api")
    web = await store.get_or_create_scope("web", "web")
    assert await store.client_options(api.id) == {}
    sent = {"send_seed": False, "samples_format": "jpg", "nested": {"a": [1, 2.5, None, "x"]}}
    assert await store.set_client_options(api.id, sent) == sent
    stored = await store.set_client_options(api.id, {"samples_format": "webp", "eta": 1})
    assert stored == {**sent, "samples_format": "webp", "eta": 1}
    assert await store.client_options(api.id) == stored
    assert await store.client_options(web.id) == {}  # per scope


async def test_concurrent_changes_both_stay(store: Store) -> None:
    api = await store.get_or_create_scope("api", "api")
    await asyncio.gather(*(store.set_client_options(api.id, {f"key{i}": i}) for i in range(10)))
    assert await store.client_options(api.id) == {f"key{i}": i for i in range(10)}


async def test_options_survive_a_restart_and_the_upgrade_adds_the_table(db_path: Path) -> None:
    async with Database(db_url(db_path)) as db:
        store = Store(db)
        scope = await store.get_or_create_scope("api", "api")
        await store.set_client_options(scope.id, {"CLIP_stop_at_last_layers": 2})
    async with Database(db_url(db_path)) as db:
        assert await Store(db).client_options(scope.id) == {"CLIP_stop_at_last_layers": 2}
    downgrade(db_path, "0006")
    with sqlite3.connect(db_path) as conn:  # as a database written by Easel before 0006
        conn.execute("DROP TABLE client_options")
        conn.execute("UPDATE alembic_version SET version_num = '0005'")
    async with Database(db_url(db_path)) as db:
        store = Store(db)
        assert await store.client_options(scope.id) == {}
        assert await store.set_client_options(scope.id, {"send_seed": True}) == {"send_seed": True}
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0011",)
