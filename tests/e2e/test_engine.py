"""The whole engine on the demo model: service -> store -> queue -> worker -> PNG -> store."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from generation.events import JobFinished, JobProgress, JobQueued, JobStarted, Subscription
from generation.metadata import job_id_from_png, parse_infotext, read_png_text
from generation.queue import JobQueue
from generation.scheduler import QueuedItem
from generation.spec import Action, Mode
from storage.records import JobRecord
from tests.e2e.engine_helpers import max_diff, origin, pixels, small, wait_finished


async def test_draw_produces_images_with_metadata_and_records(app_factory) -> None:
    app = await app_factory()
    accepted = await app.service.draw(origin(), small(negative_prompt="blurry", count=2))
    # The job row exists, queued, before the caller learns it was accepted.
    assert accepted.job.status == "queued"
    assert accepted.position == 0
    job = await wait_finished(app, accepted.job.id)

    assert job.status == "succeeded", job.error
    assert [image.seed for image in job.images] == [42, 43]
    assert all((image.width, image.height) == (64, 64) for image in job.images)
    assert job.model == "demo" and job.model_revision
    assert job.started_at and job.finished_at and job.attempt == 1

    data = app.images.read(job.images[1].sha256)
    assert job_id_from_png(data) == job.id
    info = parse_infotext(read_png_text(data)["parameters"])
    assert info["Prompt"] == "a castle at dusk"
    assert info["Negative prompt"] == "blurry"
    assert info["Seed"] == "43"
    assert info["Steps"] == "4"
    assert info["Size-1"] == "64" and info["Size-2"] == "64"
    assert info["Model"] == "demo"


async def test_progress_events_reach_subscribers_in_order(app_factory) -> None:
    app = await app_factory()
    subscription = app.bus.subscribe()
    accepted = await app.service.draw(origin(), small(steps=5))
    job = await wait_finished(app, accepted.job.id)
    assert job.status == "succeeded"
    events = []
    while not subscription.queue.empty():
        events.append(subscription.get_nowait())
    kinds = [type(event) for event in events]
    assert kinds[0] is JobQueued
    assert JobStarted in kinds
    steps = [e.step for e in events if isinstance(e, JobProgress)]
    assert steps == sorted(steps) and steps[-1] == 5
    assert all(e.total == 5 for e in events if isinstance(e, JobProgress))


async def _previews_of(app, subscription: Subscription, job_id: str) -> list[bytes | None]:
    await wait_finished(app, job_id)
    previews = []
    while not subscription.queue.empty():
        event = subscription.get_nowait()
        if isinstance(event, JobProgress) and event.job_id == job_id:
            previews.append(event.preview_png)
    return previews


async def test_step_previews_are_made_only_while_someone_looks_at_them(app_factory) -> None:
    app = await app_factory(generation={"previews": True})
    nobody_looks = app.bus.subscribe()  # e.g. a chat bot: step numbers, no pictures
    first = await app.service.draw(origin(), small(steps=3))
    previews = await _previews_of(app, nobody_looks, first.job.id)
    assert len(previews) == 3 and previews == [None, None, None]

    async with await app.service.watch(origin(), previews=True):  # the web page's stream
        second = await app.service.draw(origin(), small(steps=3, seed=2))
        previews = await _previews_of(app, nobody_looks, second.job.id)
    assert previews[0] is not None and previews[0].startswith(b"\x89PNG")

    third = await app.service.draw(origin(), small(steps=3, seed=3))  # the page closed
    assert await _previews_of(app, nobody_looks, third.job.id) == [None, None, None]

    await app.service.running(origin(), previews=True)  # a /sdapi/v1/progress poll
    fourth = await app.service.draw(origin(), small(steps=3, seed=4))
    assert (await _previews_of(app, nobody_looks, fourth.job.id))[0] is not None


async def test_rerun_reproduces_pixels_and_negative_prompt_matters(app_factory) -> None:
    app = await app_factory()
    first = await wait_finished(app, (await app.service.draw(origin(), small())).job.id)
    rerun = await wait_finished(app, (await app.service.rerun(origin(), first.id)).job.id)
    other = await wait_finished(
        app, (await app.service.draw(origin(), small(negative_prompt="ugly"))).job.id
    )
    assert rerun.action == Action.RERUN and rerun.parent_id == first.id
    assert rerun.seeds == first.seeds
    assert max_diff(pixels(app, first), pixels(app, rerun)) == 0
    assert max_diff(pixels(app, first), pixels(app, other)) > 0


async def test_count_images_equal_single_jobs_with_consecutive_seeds(app_factory) -> None:
    app = await app_factory()
    batch = await wait_finished(
        app, (await app.service.draw(origin(), small(count=3, seed=7))).job.id
    )
    single = await wait_finished(app, (await app.service.draw(origin(), small(seed=9))).job.id)
    assert max_diff(pixels(app, batch, 2), pixels(app, single)) <= 1


async def test_reroll_upscale_and_vary_create_child_jobs(app_factory) -> None:
    app = await app_factory()
    parent = await wait_finished(app, (await app.service.draw(origin(), small(count=2))).job.id)

    reroll = await wait_finished(app, (await app.service.reroll(origin(), parent.id)).job.id)
    assert reroll.action == Action.REROLL and reroll.parent_id == parent.id
    assert reroll.prompt == parent.prompt and reroll.steps == parent.steps
    assert reroll.seed != parent.seed

    upscale = await wait_finished(app, (await app.service.upscale(origin(), parent.id, 1)).job.id)
    assert upscale.status == "succeeded", upscale.error
    assert upscale.mode == Mode.UPSCALE and upscale.action == Action.UPSCALE
    assert (upscale.parent_id, upscale.parent_index) == (parent.id, 1)
    assert upscale.seed == parent.images[1].seed
    assert upscale.init_image == parent.images[1].sha256
    assert (upscale.images[0].width, upscale.images[0].height) == (128, 128)

    vary = await wait_finished(
        app, (await app.service.vary(origin(), parent.id, 0, "strong")).job.id
    )
    assert vary.status == "succeeded", vary.error
    assert vary.mode == Mode.IMG2IMG and vary.strength == 0.7
    assert vary.init_image == parent.images[0].sha256
    assert max_diff(pixels(app, vary), pixels(app, parent)) > 0
    children = {job.id for job in await app.store.children(parent.id)}
    assert children == {reroll.id, upscale.id, vary.id}


async def test_image_to_image_from_an_upload(app_factory) -> None:
    app = await app_factory()
    parent = await wait_finished(app, (await app.service.draw(origin(), small())).job.id)
    upload = app.images.read(parent.images[0].sha256)
    job = await wait_finished(
        app, (await app.service.draw(origin(), small(init_image=upload, strength=0.5))).job.id
    )
    assert job.status == "succeeded", job.error
    assert job.mode == Mode.IMG2IMG and job.strength == 0.5 and job.init_image


async def test_a_failing_job_is_marked_failed_and_the_worker_carries_on(
    app_factory, tmp_path
) -> None:
    app = await app_factory()
    broken = tmp_path / "broken-model"
    shutil.copytree(app.config.data_dir / "models" / "demo", broken)
    await app.service.add_model(origin(admin=True), "broken", str(broken))
    shutil.rmtree(broken)  # the files vanish after registration
    bad = await wait_finished(app, (await app.service.draw(origin(), small(model="broken"))).job.id)
    good = await wait_finished(app, (await app.service.draw(origin(), small())).job.id)
    assert bad.status == "failed" and bad.error
    assert good.status == "succeeded"


async def test_a_full_disk_fails_that_job_with_the_reason_and_the_next_one_succeeds(
    app_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = await app_factory()
    real_save = app.images.save
    calls = {"n": 0}

    def save_once_full(data: bytes):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(28, "No space left on device")
        return real_save(data)

    monkeypatch.setattr(app.images, "save", save_once_full)
    first = await app.service.draw(origin(), small())
    second = await app.service.draw(origin("bob"), small(seed=7))
    bad = await wait_finished(app, first.job.id)
    good = await wait_finished(app, second.job.id)
    assert bad.status == "failed" and "No space left on device" in (bad.error or "")
    assert good.status == "succeeded" and len(good.images) == 1


async def test_overlapped_recording_as_on_a_gpu_records_every_job_even_across_a_stop(
    app_factory,
) -> None:
    app = await app_factory()
    assert app.worker is not None
    app.worker.overlap_recording = True  # what a CUDA backend gets; CPUs record in line
    accepted = [
        await app.service.draw(origin(f"user{i}"), small(seed=100 + i, steps=2)) for i in range(4)
    ]
    first = await wait_finished(app, accepted[0].job.id)
    assert first.status == "succeeded" and len(first.images) == 1
    await app.stop()  # waits for batches still being recorded
    reopened = await app_factory(worker=False)
    for a in accepted:  # each job either finished completely or waits for the next start
        job = await reopened.store.get_job(a.job.id)
        assert job is not None and job.status in ("succeeded", "queued")
        if job.status == "succeeded":
            assert reopened.images.read(job.images[0].sha256).startswith(b"\x89PNG")
    assert (await reopened.store.get_job(accepted[0].job.id)) == first


async def test_cancel_a_queued_job_and_refuse_other_users(app_factory) -> None:
    app = await app_factory(worker=False)
    accepted = await app.service.draw(origin("alice"), small())
    with pytest.raises(Exception, match="belongs to someone else"):
        await app.service.cancel(origin("bob"), accepted.job.id)
    cancelled = await app.service.cancel(origin("alice"), accepted.job.id)
    assert cancelled.status == "cancelled"
    assert accepted.job.id not in app.queue
    with pytest.raises(Exception, match="already finished"):
        await app.service.cancel(origin("alice"), accepted.job.id)


async def test_cancel_a_running_job_stops_it(app_factory) -> None:
    app = await app_factory(generation={"max_steps": 500})
    subscription = app.bus.subscribe()
    accepted = await app.service.draw(origin(), small(steps=400))
    while not isinstance(await subscription.get(), JobProgress):
        pass
    await app.service.cancel(origin(), accepted.job.id)
    job = await wait_finished(app, accepted.job.id)
    assert job.status == "cancelled" and not job.images


async def test_fair_queue_positions_between_users(app_factory) -> None:
    app = await app_factory(worker=False, limits={"max_queued_per_user": 50, "burst": 50})
    for _ in range(5):
        await app.service.draw(origin("heavy"), small())
    light = await app.service.draw(origin("light"), small())
    assert light.position == 1  # behind at most one of heavy's jobs
    status = await app.service.queue_status(origin("light"))
    assert status.length == 6 and status.your_jobs[0][:2] == (light.job.id, 1)


async def test_job_left_running_by_a_crash_is_requeued_and_finished(app_factory) -> None:
    app = await app_factory(worker=False)
    job_id = (await app.service.draw(origin(), small())).job.id
    await app.store.mark_running(job_id)  # the process "dies" mid-render
    await app.stop()
    app2 = await app_factory()
    job = await wait_finished(app2, job_id)
    assert job.status == "succeeded" and job.attempt == 2


async def test_jobs_a_crash_interrupted_run_alone_so_a_poison_job_burns_only_its_attempts(
    app_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = await app_factory(worker=False)
    ids = [(await app.service.draw(origin(f"u{i}"), small(seed=i))).job.id for i in range(4)]
    for job_id in ids[:2]:  # the engine "died" while these two rendered together
        await app.store.mark_running(job_id)
    await app.stop()
    batches: list[list[str]] = []
    take_batch = JobQueue.take_batch

    async def noting_batches(queue: JobQueue, max_size: int) -> list[QueuedItem]:
        batch = await take_batch(queue, max_size)
        batches.append(sorted(item.job_id for item in batch))
        return batch

    monkeypatch.setattr(JobQueue, "take_batch", noting_batches)
    app2 = await app_factory(generation={"max_batch": 4})
    for job_id in ids:
        assert (await wait_finished(app2, job_id)).status == "succeeded"
    # The two survivors of the crash come back one per batch; the untouched two still batch.
    assert [ids[0]] in batches and [ids[1]] in batches
    assert sorted(ids[2:]) in batches


async def test_stop_interrupts_the_running_job_and_requeues_it(app_factory) -> None:
    app = await app_factory(generation={"max_steps": 500, "shutdown_grace_seconds": 0.0})
    subscription = app.bus.subscribe()
    accepted = await app.service.draw(origin(), small(steps=400))
    while not isinstance(await subscription.get(), JobProgress):
        pass
    await app.stop()
    app2 = await app_factory(worker=False)
    job = await app2.store.get_job(accepted.job.id)
    # a clean stop does not use up one of the job's attempts
    assert job is not None and job.status == "queued" and job.attempt == 0


async def test_two_hundred_users_at_once_lose_nothing(app_factory) -> None:
    app = await app_factory(worker=False)
    results = await asyncio.gather(
        *(app.service.draw(origin(f"user{i}"), small()) for i in range(200))
    )
    ids = {accepted.job.id for accepted in results}
    assert len(ids) == 200
    assert await app.store.count_queued() == 200
    assert len(app.queue) == 200


async def finished_events(
    subscription: Subscription, job_ids: set[str], until: str, timeout: float = 60.0
) -> list[str]:
    """Ids of the JobFinished events for ``job_ids`` that arrive until ``until`` finished."""
    seen: list[str] = []
    async with asyncio.timeout(timeout):
        while True:
            event = await subscription.get()
            if isinstance(event, JobFinished):
                if event.job.id in job_ids:
                    seen.append(event.job.id)
                if event.job.id == until:
                    return seen


async def test_a_job_cancelled_while_the_worker_takes_it_ends_with_one_finished_event(
    app_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cancel commits after the worker took the job from the queue and before it marked
    it running: the cancel finds it neither queued nor running. It used to end with no
    finished event at all (status messages never said "cancelled", event streams never ended)."""
    app = await app_factory()
    start_job = app.store.mark_running
    cancelled: list[str] = []

    async def cancel_then_start(job_id: str) -> JobRecord | None:  # the race, made certain
        if not cancelled:
            cancelled.append((await app.service.cancel(origin(), job_id)).id)
        return await start_job(job_id)

    monkeypatch.setattr(app.store, "mark_running", cancel_then_start)
    subscription = app.bus.subscribe()
    try:
        first = (await app.service.draw(origin(), small("raced"))).job
        assert await finished_events(subscription, {first.id}, until=first.id) == [first.id]
        assert cancelled == [first.id]
        assert (await app.store.get_job(first.id)).status == "cancelled"
        # Exactly one: nothing more about it arrives before the next job finishes.
        second = (await app.service.draw(origin(), small("after"))).job
        assert await finished_events(subscription, {first.id}, until=second.id) == []
    finally:
        subscription.close()
    assert not app.queue.is_running(first.id) and app.queue.running_count == 0


async def test_finished_jobs_teach_the_waiting_times(app_factory) -> None:
    # A start value far off (100,000 s for 512x512, 20 steps: 2,500 s for these jobs): what
    # the engine says after three jobs comes from what they took.
    app = await app_factory(generation={"initial_job_seconds": 100_000.0})
    request = small(width=128, height=128, steps=8)
    assert app.queue.durations.estimate("demo", 128 * 128 * 8) == pytest.approx(2500.0)
    took = []
    for _ in range(3):
        job = await wait_finished(app, (await app.service.draw(origin(), request)).job.id)
        assert job.status == "succeeded" and job.started_at and job.finished_at
        took.append((job.finished_at - job.started_at).total_seconds())
    assert app.queue.durations.known("demo")
    estimate = app.queue.durations.estimate("demo", 128 * 128 * 8)
    # Within what the jobs took (a busy machine makes single jobs slow: compare with the
    # range, not one of them), and nowhere near the start value.
    assert min(took) / 3 < estimate < max(took) * 3 + 0.05, (estimate, took)
    # A bigger job is estimated longer than a smaller one of the same model.
    assert app.queue.durations.estimate("demo", 256 * 256 * 8) > estimate
