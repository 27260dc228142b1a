"""Job lifecycle, ids, listing and delivery tracking on a real SQLite file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from generation.errors import NotFound
from generation.spec import Action, Hires, Mode
from storage.records import JobStatus, NewImage, NewJob
from storage.repository import JOB_ID_ALPHABET, Store
from tests.storage.helpers import FakeClock, make_spec, new_job

SHA_A = "a" * 64
SHA_B = "b" * 64


async def test_full_lifecycle_round_trips_every_field(store: Store, clock: FakeClock) -> None:
    user = await store.get_or_create_user("telegram", "555", "Ann")
    scope = await store.get_or_create_scope("telegram", "-100", "Chat")
    parent = await store.add_job(await new_job(store))
    spec = make_spec(
        mode=Mode.IMG2IMG,
        prompt="a red fox",
        negative_prompt="",
        model="sd15",
        sampler="Euler a",
        width=640,
        height=448,
        steps=30,
        cfg=6.0,
        seed=2**32 - 2,
        count=2,
        strength=0.35,
        init_image=SHA_A,
    )
    new = NewJob(
        spec=spec,
        action=Action.VARY,
        model_revision="abc123",
        parent_id=parent.id.upper(),
        parent_index=1,
        user_id=user.id,
        scope_id=scope.id,
        platform="telegram",
        reply_target={"chat_id": -100, "reply_to": 9},
    )
    created_at = clock.current
    job = await store.add_job(new)
    assert job.status == JobStatus.QUEUED and job.attempt == 0
    assert job.created_at == created_at and job.created_at.tzinfo is UTC
    assert job.started_at is None and job.finished_at is None and job.images == ()

    running = await store.mark_running(job.id)
    assert running is not None and running.status == "running" and running.attempt == 1
    assert running.started_at is not None and running.started_at > job.created_at

    images = [
        NewImage(index=1, seed=spec.seed + 1, sha256=SHA_B, width=640, height=448),
        NewImage(index=0, seed=spec.seed, sha256=SHA_A, width=640, height=448),
    ]
    done = await store.mark_succeeded(job.id, images)
    assert done.status == JobStatus.SUCCEEDED and done.is_terminal
    assert [(i.index, i.seed, i.sha256) for i in done.images] == [
        (0, spec.seed, SHA_A),
        (1, spec.seed + 1, SHA_B),
    ]

    loaded = await store.get_job(job.id)
    assert loaded == done
    assert loaded.spec == spec
    assert loaded.seeds == [2**32 - 2, 2**32 - 1]
    assert loaded.mode is Mode.IMG2IMG and loaded.action is Action.VARY
    assert loaded.model_revision == "abc123"
    assert loaded.parent_id == parent.id and loaded.parent_index == 1
    assert loaded.user_id == user.id and loaded.scope_id == scope.id
    assert loaded.platform == "telegram"
    assert loaded.reply_target == {"chat_id": -100, "reply_to": 9}
    assert loaded.attempt == 1 and loaded.error is None
    assert loaded.finished_at is not None and loaded.finished_at.tzinfo is UTC
    assert loaded.delivered_at is None and loaded.delivery_attempts == 0
    assert loaded.seq == parent.seq + 1
    assert [c.id for c in await store.children(parent.id)] == [job.id]
    assert await store.children(job.id) == []


async def test_upscale_spec_round_trips(store: Store) -> None:
    spec = make_spec(mode=Mode.UPSCALE, count=1, upscaler="hires", strength=0.3, init_image=SHA_A)
    new = await new_job(store)
    job = await store.add_job(NewJob(**{**new.__dict__, "spec": spec, "action": Action.UPSCALE}))
    loaded = await store.get_job(job.id)
    assert loaded is not None and loaded.spec == spec and loaded.spec.to_dict() == spec.to_dict()


async def test_mark_failed(store: Store) -> None:
    job = await store.add_job(await new_job(store))
    await store.mark_running(job.id)
    failed = await store.mark_failed(job.id, "CUDA out of memory")
    assert failed.status == "failed" and failed.error == "CUDA out of memory"
    assert failed.finished_at is not None
    # A terminal job stays as it is.
    again = await store.mark_failed(job.id, "other")
    assert again.error == "CUDA out of memory"


async def test_cancel_queued_then_mark_running_returns_none(store: Store) -> None:
    job = await store.add_job(await new_job(store))
    cancelled = await store.cancel(f"  {job.id.upper()} ")
    assert cancelled is not None and cancelled.status == JobStatus.CANCELLED
    assert await store.mark_running(job.id) is None
    assert await store.cancel(job.id) is None  # already terminal
    # Finishing a job that was cancelled while it rendered leaves it cancelled.
    result = await store.mark_succeeded(
        job.id, [NewImage(index=0, seed=1, sha256=SHA_A, width=8, height=8)]
    )
    assert result.status == "cancelled" and result.images == ()


async def test_cancel_running(store: Store) -> None:
    job = await store.add_job(await new_job(store))
    await store.mark_running(job.id)
    cancelled = await store.cancel(job.id)
    assert cancelled is not None and cancelled.status == "cancelled"


async def test_unknown_job(store: Store) -> None:
    assert await store.get_job("zzzzzzzz") is None
    with pytest.raises(NotFound, match="zzzzzzzz"):
        await store.cancel("zzzzzzzz")
    with pytest.raises(NotFound):
        await store.mark_running("zzzzzzzz")
    base = await new_job(store)
    with pytest.raises(NotFound):
        await store.add_job(NewJob(**{**base.__dict__, "parent_id": "zzzzzzzz"}))


async def test_ids_are_short_unambiguous_and_typed_back_loosely(store: Store) -> None:
    base = await new_job(store)
    ids = [(await store.add_job(base)).id for _ in range(50)]
    assert len(set(ids)) == 50
    for job_id in ids:
        assert len(job_id) == 8 and set(job_id) <= set(JOB_ID_ALPHABET)
    assert not set("0o1li") & set(JOB_ID_ALPHABET)
    for variant in (ids[0].upper(), f"  {ids[0]}\n", f"\t{ids[0].upper()} "):
        found = await store.get_job(variant)
        assert found is not None and found.id == ids[0]


async def test_an_id_clash_draws_a_new_id_and_keeps_both_jobs(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = await new_job(store)
    first = await store.add_job(base)
    fresh = "zzzz2222"
    offered = iter([first.id, first.id, fresh])
    monkeypatch.setattr("storage.jobs.new_job_id", lambda: next(offered))
    second = await store.add_job(base)
    assert second.id == fresh and second.seq > first.seq  # (PostgreSQL's sequence may skip)
    stored = await store.get_job(fresh)
    assert stored is not None and stored.prompt == base.spec.prompt
    assert (await store.get_job(first.id)) == first  # the clash left the first job untouched


async def test_users_and_scopes_are_remembered_and_settings_changes_are_seen(
    store: Store,
) -> None:
    user = await store.get_or_create_user("discord", "42", "Ann")
    assert await store.get_or_create_user("discord", "42") == user
    renamed = await store.get_or_create_user("discord", "42", "Annie")
    assert renamed.id == user.id and renamed.display_name == "Annie"
    assert (await store.get_user(user.id)) == renamed
    scope = await store.get_or_create_scope("discord", "g1", "Guild")
    await store.update_scope_settings(scope.id, {"nsfw": "allow"})
    again = await store.get_or_create_scope("discord", "g1")
    assert again.id == scope.id and again.settings == {"nsfw": "allow"}


async def test_queue_order_and_counts(store: Store) -> None:
    a = await new_job(store, "alice")
    b = await new_job(store, "bob")
    j1 = await store.add_job(a)
    j2 = await store.add_job(b)
    j3 = await store.add_job(a)
    assert [j.id for j in await store.queued_jobs()] == [j1.id, j2.id, j3.id]
    assert j1.seq < j2.seq < j3.seq
    await store.mark_running(j1.id)
    assert [j.id for j in await store.queued_jobs()] == [j2.id, j3.id]
    assert await store.count_queued() == 2
    assert await store.count_queued(a.user_id) == 1
    assert await store.count_queued(a.user_id, include_running=True) == 2
    assert await store.count_queued(b.user_id) == 1


async def test_count_jobs_since(store: Store, clock: FakeClock) -> None:
    new = await new_job(store)
    start = clock.current
    for _ in range(3):
        await store.add_job(new)
        clock.current += timedelta(hours=1)
    assert await store.count_jobs_since(new.user_id, start) == 3
    assert await store.count_jobs_since(new.user_id, start + timedelta(minutes=30)) == 2
    assert await store.count_jobs_since(new.user_id, clock.current) == 0
    assert await store.count_jobs_since(new.user_id + 99, start) == 0


async def test_list_jobs_newest_first_per_user_query_and_paging(store: Store) -> None:
    alice = await new_job(store, "alice")
    bob = await new_job(store, "bob")
    prompts = ["a Red fox", "blue whale", "red 50%_off sign", "green frog", "RED rose"]
    alice_ids = []
    for prompt in prompts:
        alice_ids.append(
            (await store.add_job(NewJob(**{**alice.__dict__, "spec": make_spec(prompt=prompt)}))).id
        )
    bob_job = await store.add_job(bob)

    everyone = await store.list_jobs()
    assert [j.id for j in everyone] == [bob_job.id, *reversed(alice_ids)]

    mine = await store.list_jobs(user_id=alice.user_id)
    assert [j.id for j in mine] == list(reversed(alice_ids))

    red = await store.list_jobs(user_id=alice.user_id, query="red")
    assert [j.prompt for j in red] == ["RED rose", "red 50%_off sign", "a Red fox"]
    assert [j.prompt for j in await store.list_jobs(query="50%_")] == ["red 50%_off sign"]
    assert await store.list_jobs(query="%") == [j for j in everyone if "%" in j.prompt]
    assert await store.list_jobs(query="_") == [j for j in everyone if "_" in j.prompt]

    page1 = await store.list_jobs(user_id=alice.user_id, limit=2)
    page2 = await store.list_jobs(user_id=alice.user_id, limit=2, offset=2)
    page3 = await store.list_jobs(user_id=alice.user_id, limit=2, offset=4)
    assert [j.id for j in page1 + page2 + page3] == list(reversed(alice_ids))
    assert len(page3) == 1

    await store.mark_running(alice_ids[0])
    running = await store.list_jobs(statuses=["running"])
    assert [j.id for j in running] == [alice_ids[0]]
    assert len(await store.list_jobs(statuses=[JobStatus.QUEUED, JobStatus.RUNNING])) == 6


async def test_list_jobs_includes_images(store: Store) -> None:
    job = await store.add_job(await new_job(store))
    await store.mark_running(job.id)
    await store.mark_succeeded(
        job.id,
        [NewImage(index=i, seed=job.seed + i, sha256=SHA_A, width=512, height=768) for i in (0, 1)],
    )
    (listed,) = await store.list_jobs()
    assert [i.index for i in listed.images] == [0, 1]


async def test_delivery_tracking(store: Store) -> None:
    discord = await new_job(store)
    done = await store.add_job(discord)
    failed = await store.add_job(discord)
    queued = await store.add_job(discord)
    cancelled = await store.add_job(discord)
    web = await store.add_job(NewJob(**{**discord.__dict__, "platform": "web"}))
    for job in (done, failed, web):
        await store.mark_running(job.id)
    await store.mark_succeeded(done.id, [])
    await store.mark_failed(failed.id, "boom")
    await store.mark_succeeded(web.id, [])
    await store.cancel(cancelled.id)

    pending = await store.undelivered("discord")
    assert [j.id for j in pending] == [done.id, failed.id, cancelled.id]
    assert queued.id not in {j.id for j in pending}

    await store.record_delivery_failure(done.id, "HTTP 503")
    await store.record_delivery_failure(done.id, "HTTP 502")
    (retry,) = [j for j in await store.undelivered("discord") if j.id == done.id]
    assert retry.delivery_attempts == 2 and retry.delivery_error == "HTTP 502"

    await store.mark_delivered(done.id)
    delivered = await store.get_job(done.id)
    assert delivered is not None and delivered.delivered_at is not None
    assert delivered.delivery_error is None
    assert [j.id for j in await store.undelivered("discord")] == [failed.id, cancelled.id]
    assert [j.id for j in await store.undelivered("web")] == [web.id]
    assert await store.undelivered("telegram") == []


async def test_users_and_scopes(store: Store) -> None:
    first = await store.get_or_create_user("discord", "1", "Ann")
    again = await store.get_or_create_user("discord", "1")
    assert again == first
    renamed = await store.get_or_create_user("discord", "1", "Annie")
    assert renamed.id == first.id and renamed.display_name == "Annie"
    other = await store.get_or_create_user("telegram", "1")
    assert other.id != first.id
    assert await store.get_user(first.id) == renamed
    assert await store.get_user(999) is None

    scope = await store.get_or_create_scope("discord", "g1", "Guild")
    assert scope.settings == {}
    assert (await store.get_or_create_scope("discord", "g1")).id == scope.id
    settings = {"allowed_models": ["demo"], "blocklist": ["gore"], "limits": {"per_day": 5}}
    updated = await store.update_scope_settings(scope.id, settings)
    assert updated.settings == settings
    assert (await store.get_scope(scope.id)) == updated
    assert await store.get_scope(999) is None
    with pytest.raises(NotFound):
        await store.update_scope_settings(999, {})


async def test_naive_datetimes_are_refused(db: object) -> None:
    from storage.db import Database

    assert isinstance(db, Database)
    store = Store(db, now=lambda: datetime(2025, 1, 1))  # naive: a bug in the caller
    with pytest.raises(Exception, match="naive"):
        await store.get_or_create_user("cli", "x")


async def test_a_hires_fix_job_comes_back_with_its_hires_options(store: Store) -> None:
    """The hires fix is part of the spec the store keeps (both databases): a rerun of the
    stored job is the same job; a job without one reads back None."""
    hires = Hires(
        width=1024, height=768, upscaler="Latent (bicubic)", strength=0.5, steps=7, scale=2.0
    )
    new = await new_job(store, hires=hires, width=512, height=384)
    added = await store.add_job(new)
    stored = await store.get_job(added.id)
    assert stored is not None and stored.spec == new.spec
    assert stored.hires == hires.to_dict()
    plain = await store.get_job((await store.add_job(await new_job(store))).id)
    assert plain is not None and plain.hires is None and plain.spec.hires is None
