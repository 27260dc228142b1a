"""What SQLite serializes and PostgreSQL runs side by side: writes that race each other.

Every test runs on both databases (tests/storage/conftest.py). On PostgreSQL the writes really
overlap (READ COMMITTED, a connection pool), so these would lose updates, clash on sequence
numbers or overwrite a finished job without the row locks and the sequence of migration 0005.
"""

from __future__ import annotations

import asyncio

from storage.db import Database
from storage.records import NewImage
from storage.repository import Store
from tests.storage.helpers import new_job


async def test_jobs_added_at_once_get_distinct_sequence_numbers(store: Store) -> None:
    base = await new_job(store)
    jobs = await asyncio.gather(*(store.add_job(base) for _ in range(40)))
    assert len({job.seq for job in jobs}) == 40 and len({job.id for job in jobs}) == 40
    queued = await store.queued_jobs()
    assert [job.seq for job in queued] == sorted(job.seq for job in jobs)


async def test_a_cancel_racing_a_finish_never_overwrites_the_outcome(store: Store) -> None:
    base = await new_job(store)
    jobs = [await store.add_job(base) for _ in range(20)]
    for job in jobs:
        await store.mark_running(job.id)
    image = NewImage(0, 1, "a" * 64, 64, 64)

    async def finish(job_id: str) -> None:
        await store.mark_succeeded(job_id, [image])

    async def cancel(job_id: str) -> None:
        await store.cancel(job_id)

    await asyncio.gather(*(f(job.id) for job in jobs for f in (finish, cancel)))
    for job in jobs:
        final = await store.get_job(job.id)
        assert final is not None
        # One of the two won, whole: succeeded with its image, or cancelled without any.
        assert (final.status, len(final.images)) in (("succeeded", 1), ("cancelled", 0))


async def test_delivery_failures_counted_at_once_are_all_counted(store: Store) -> None:
    job = await store.add_job(await new_job(store))
    await asyncio.gather(*(store.record_delivery_failure(job.id, f"e{i}") for i in range(20)))
    final = await store.get_job(job.id)
    assert final is not None and final.delivery_attempts == 20


async def test_settings_changed_at_once_keep_every_change(store: Store) -> None:
    scope = await store.get_or_create_scope("discord", "guild")

    def adder(word: str):  # type: ignore[no-untyped-def]
        return lambda settings: {**settings, "blocklist": [*settings.get("blocklist", []), word]}

    await asyncio.gather(
        *(store.change_scope_settings(scope.id, adder(f"w{i}")) for i in range(15))
    )
    final = await store.find_scope("discord", "guild")
    assert final is not None and sorted(final.settings["blocklist"]) == sorted(
        f"w{i}" for i in range(15)
    )


async def test_two_stores_creating_the_same_user_get_one_row(database_url: str) -> None:
    async with Database(database_url) as a, Database(database_url) as b:
        first, second = await asyncio.gather(
            Store(a).get_or_create_user("web", "ada"), Store(b).get_or_create_user("web", "ada")
        )
        assert first.id == second.id


async def test_one_engine_per_database(database_url: str) -> None:
    async with Database(database_url) as a, Database(database_url) as b:
        assert await a.claim_engine()
        if a.is_sqlite:  # the engine's file lock next to the database does this on SQLite
            return
        assert not await b.claim_engine()  # a second engine, maybe on another machine
        await a.release_engine()
        assert await b.claim_engine()
        await b.release_engine()
