"""Restarts and contention: nothing accepted is lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

from storage.db import Database
from storage.records import JobStatus, NewJob
from storage.repository import JOB_ID_ALPHABET, Store
from tests.storage.helpers import FakeClock, db_url, make_spec, new_job

GAVE_UP = "gave up after 3 attempts (the engine stopped while rendering it each time)"


async def test_running_job_survives_restart_until_max_attempts(db_path: Path) -> None:
    clock = FakeClock()
    db = Database(db_url(db_path))
    await db.connect()
    store = Store(db, now=clock)
    job = await store.add_job(await new_job(store))
    other = await store.add_job(await new_job(store))
    assert (await store.mark_running(job.id)) is not None
    await db.close()  # the engine "crashes" while rendering

    for attempt in (1, 2):
        db = Database(db_url(db_path))
        await db.connect()
        store = Store(db, now=clock)
        requeued, failed = await store.recover_interrupted(max_attempts=3)
        assert (requeued, failed) == ([job.id], [])
        back = await store.get_job(job.id)
        assert back is not None and back.status == JobStatus.QUEUED
        assert back.attempt == attempt and back.started_at is None
        assert [j.id for j in await store.queued_jobs()] == [job.id, other.id]  # keeps its place
        running = await store.mark_running(job.id)
        assert running is not None and running.attempt == attempt + 1
        await db.close()

    db = Database(db_url(db_path))
    await db.connect()
    store = Store(db, now=clock)
    assert await store.recover_interrupted(max_attempts=3) == ([], [job.id])
    gone = await store.get_job(job.id)
    assert gone is not None and gone.status == JobStatus.FAILED
    assert gone.error == GAVE_UP and gone.finished_at is not None
    assert [j.id for j in await store.undelivered("discord")] == [job.id]  # the user is told
    assert await store.recover_interrupted(max_attempts=3) == ([], [])
    await db.close()


async def test_clean_shutdown_requeue_does_not_use_up_an_attempt(store: Store) -> None:
    job = await store.add_job(await new_job(store))
    await store.mark_running(job.id)
    await store.requeue(job.id)
    back = await store.get_job(job.id)
    assert back is not None and back.status == "queued" and back.attempt == 0
    await store.requeue(job.id)  # not running: nothing happens
    assert (await store.get_job(job.id)) == back


async def test_200_concurrent_users_lose_nothing(db_path: Path) -> None:
    databases = [Database(db_url(db_path)) for _ in range(3)]
    for db in databases:
        await db.connect()
    stores = [Store(db) for db in databases]
    try:
        scope = await stores[0].get_or_create_scope("discord", "guild")

        async def submit(n: int) -> str:
            store = stores[n % len(stores)]
            user = await store.get_or_create_user("discord", f"user-{n % 150}", f"User {n}")
            job = await store.add_job(
                NewJob(
                    spec=make_spec(prompt=f"prompt {n}", seed=n),
                    user_id=user.id,
                    scope_id=scope.id,
                    platform="discord",
                    reply_target={"n": n},
                )
            )
            return job.id

        ids = await asyncio.gather(*(submit(n) for n in range(200)))
        assert len(set(ids)) == 200
        assert all(len(i) == 8 and set(i) <= set(JOB_ID_ALPHABET) for i in ids)
        queued = await stores[1].queued_jobs()
        assert len(queued) == 200 and {j.id for j in queued} == set(ids)
        assert sorted(j.prompt for j in queued) == sorted(f"prompt {n}" for n in range(200))
        seqs = [j.seq for j in queued]
        assert seqs == sorted(seqs) and len(set(seqs)) == 200
        assert len({j.user_id for j in queued}) == 150
        assert await stores[2].count_queued() == 200
    finally:
        for db in databases:
            await db.close()
