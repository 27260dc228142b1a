"""Shared helpers for the storage tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import create_engine

from generation.spec import GenerationSpec, Mode
from storage.db import alembic_config
from storage.records import NewJob
from storage.repository import Store


class FakeClock:
    """An aware UTC clock that moves only when told (or by ``step`` on every read)."""

    def __init__(self, start: datetime | None = None, step: timedelta = timedelta(seconds=1)):
        self.current = start or datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
        self.step = step

    def __call__(self) -> datetime:
        value = self.current
        self.current += self.step
        return value


def db_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def downgrade(path: Path, revision: str) -> None:
    """Run the migrations' downgrades on the SQLite file ``path`` down to ``revision`` (as a
    database an older Easel wrote, to test the upgrades)."""
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, revision)
    finally:
        engine.dispose()


def make_spec(**overrides: Any) -> GenerationSpec:
    fields: dict[str, Any] = {
        "mode": Mode.TXT2IMG,
        "prompt": "a castle at dusk",
        "negative_prompt": "blurry",
        "model": "demo",
        "sampler": "DPM++ 2M Karras",
        "width": 512,
        "height": 768,
        "steps": 25,
        "cfg": 7.5,
        "seed": 1234,
        "count": 2,
    }
    fields.update(overrides)
    return GenerationSpec(**fields)


async def new_job(store: Store, user: str = "u1", **spec_overrides: Any) -> NewJob:
    u = await store.get_or_create_user("discord", user, display_name=user.upper())
    s = await store.get_or_create_scope("discord", "guild1", name="Guild")
    return NewJob(
        spec=make_spec(**spec_overrides),
        user_id=u.id,
        scope_id=s.id,
        platform="discord",
        reply_target={"channel_id": 42, "message_id": 7},
    )
