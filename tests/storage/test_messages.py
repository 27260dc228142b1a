"""The message map (platform_messages): migration from 0001, round trips, restarts."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, insert
from sqlalchemy.exc import IntegrityError

from storage.db import Database, alembic_config
from storage.models import JobRow, ScopeRow, UserRow
from storage.repository import Store
from tests.storage.helpers import FakeClock, db_url, new_job


def _make_0001_database(path: Path) -> None:
    """A database at revision 0001 holding one user, one scope and one finished job."""
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{path}")
    when = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    try:
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, "0001")
            conn.execute(
                insert(UserRow.__table__).values(
                    id=1, platform="telegram", platform_user_id="7", display_name="",
                    created_at=when,
                )
            )  # fmt: skip
            conn.execute(
                insert(ScopeRow.__table__).values(
                    id=1, platform="telegram", platform_scope_id="-100", name="", settings={},
                    created_at=when,
                )
            )  # fmt: skip
            conn.execute(
                insert(JobRow.__table__).values(
                    id="oldjob22", seq=1, mode="txt2img", action="draw", prompt="a castle",
                    negative_prompt="", model="demo", sampler="Euler", width=512, height=512,
                    steps=20, cfg=7.0, seed=1, count=1, user_id=1, scope_id=1,
                    platform="telegram", reply_target={"chat_id": -100}, status="succeeded",
                    attempt=1, created_at=when, delivery_attempts=0,
                )
            )  # fmt: skip
    finally:
        engine.dispose()


async def test_upgrade_from_0001_keeps_data_and_adds_the_map(db_path: Path) -> None:
    _make_0001_database(db_path)
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0001",)
    db = Database(db_url(db_path))
    await db.connect()  # migrates to head
    try:
        store = Store(db, now=FakeClock())
        job = await store.get_job("oldjob22")
        assert job is not None and job.prompt == "a castle"
        await store.remember_messages("telegram", "-100", job.id, [("55", 0)])
        found = await store.find_message("telegram", "-100", "55")
        assert found is not None and (found.job_id, found.image_index) == ("oldjob22", 0)
    finally:
        await db.close()
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0011",)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


async def test_results_round_trip(store: Store, clock: FakeClock) -> None:
    job = await store.add_job(await new_job(store))
    other = await store.add_job(await new_job(store))
    await store.remember_messages("telegram", "-100", job.id, [("10", 0), ("11", 1), ("12", 0)])
    found = await store.find_message("telegram", "-100", "11")
    assert found is not None
    assert (found.platform, found.chat_id, found.message_id) == ("telegram", "-100", "11")
    assert (found.job_id, found.image_index, found.role) == (job.id, 1, "result")
    assert found.created_at.tzinfo is not None
    # Other chats, platforms and roles are separate.
    assert await store.find_message("telegram", "-101", "11") is None
    assert await store.find_message("discord", "-100", "11") is None
    assert await store.find_message("telegram", "-100", "11", role="status") is None
    # A message remembered again points at the newer job (INSERT OR REPLACE).
    await store.remember_message("telegram", "-100", "12", other.id.upper(), 1)
    again = await store.find_message("telegram", "-100", "12")
    assert again is not None and (again.job_id, again.image_index) == (other.id, 1)
    listed = await store.job_messages("telegram", job.id, role="result")
    assert [(m.message_id, m.image_index) for m in listed] == [("10", 0), ("11", 1)]
    assert await store.job_messages("discord", job.id) == []


async def test_status_message_replaced_and_forgotten(store: Store) -> None:
    job = await store.add_job(await new_job(store))
    await store.remember_messages("telegram", "-100", job.id, [("10", 0)])
    await store.remember_message("telegram", "-100", "5", job.id, role="status", replace=True)
    await store.remember_message("telegram", "-100", "6", job.id, role="status", replace=True)
    statuses = await store.job_messages("telegram", job.id, role="status")
    assert [(m.message_id, m.image_index) for m in statuses] == [("6", None)]
    assert await store.forget_messages("telegram", job.id, role="status") == 1
    assert await store.job_messages("telegram", job.id, role="status") == []
    assert await store.find_message("telegram", "-100", "10") is not None  # results stay
    assert await store.forget_messages("telegram", job.id) == 1
    assert await store.job_messages("telegram", job.id) == []


async def test_refuses_unknown_roles_and_jobs(store: Store) -> None:
    with pytest.raises(ValueError, match="role"):
        await store.remember_message("telegram", "1", "2", "nosuchjb", role="other")
    with pytest.raises(IntegrityError):
        await store.remember_message("telegram", "1", "2", "nosuchjb")
    assert await store.find_message("telegram", "1", "2") is None  # rolled back


async def test_map_survives_restart(db_path: Path) -> None:
    clock = FakeClock()
    db = Database(db_url(db_path))
    await db.connect()
    store = Store(db, now=clock)
    job = await store.add_job(await new_job(store))
    await store.remember_messages("telegram", "-100", job.id, [("10", 0), ("11", 1)])
    await store.remember_message("telegram", "-100", "5", job.id, role="status", replace=True)
    await db.close()

    db = Database(db_url(db_path))
    await db.connect()
    try:
        store = Store(db, now=clock)
        found = await store.find_message("telegram", "-100", "11")
        assert found is not None and (found.job_id, found.image_index) == (job.id, 1)
        statuses = await store.job_messages("telegram", job.id, role="status")
        assert [m.message_id for m in statuses] == ["5"]
    finally:
        await db.close()
