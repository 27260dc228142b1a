"""The event bus never drops a state change, however slow the reader."""

from __future__ import annotations

from datetime import UTC, datetime

from generation.events import EventBus, JobFinished, JobProgress
from generation.spec import Action, Mode
from storage.records import JobRecord, JobStatus


def finished_job(job_id: str) -> JobRecord:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return JobRecord(
        id=job_id,
        seq=1,
        mode=Mode.TXT2IMG,
        action=Action.DRAW,
        prompt="p",
        negative_prompt="",
        model="demo",
        model_revision=None,
        sampler="Euler a",
        width=64,
        height=64,
        steps=4,
        cfg=7.0,
        seed=1,
        count=1,
        strength=None,
        init_image=None,
        upscaler=None,
        parent_id=None,
        parent_index=None,
        user_id=1,
        scope_id=1,
        platform="cli",
        reply_target={},
        status=JobStatus.SUCCEEDED,
        attempt=1,
        error=None,
        created_at=now,
        started_at=now,
        finished_at=now,
        delivered_at=None,
        delivery_attempts=0,
        delivery_error=None,
    )


def test_slow_reader_loses_progress_but_never_a_finished_event() -> None:
    bus = EventBus()
    subscription = bus.subscribe(max_progress=3)
    for step in range(1, 11):
        bus.publish(JobProgress("job1", step, 10))
    bus.publish(JobFinished(finished_job("job1")))
    received = [subscription.get_nowait() for _ in range(subscription.queue.qsize())]
    assert [e.step for e in received if isinstance(e, JobProgress)] == [1, 2, 3]
    assert isinstance(received[-1], JobFinished)
    # Reading frees room for newer progress again.
    bus.publish(JobProgress("job1", 11, 11))
    assert subscription.get_nowait() == JobProgress("job1", 11, 11)


def test_job_filter_and_close() -> None:
    bus = EventBus()
    mine = bus.subscribe("job1")
    bus.publish(JobProgress("job2", 1, 4))
    bus.publish(JobProgress("job1", 1, 4))
    assert mine.queue.qsize() == 1 and mine.get_nowait().job_id == "job1"
    mine.close()
    bus.publish(JobProgress("job1", 2, 4))
    assert mine.queue.qsize() == 0
