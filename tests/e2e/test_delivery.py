"""Results reach the front end that owns the job, and every delivery is recorded."""

from __future__ import annotations

import asyncio

from generation.events import JobEvent, JobProgress, JobQueued
from generation.requests import Origin
from storage.records import JobRecord
from tests.e2e.engine_helpers import small, wait_finished


class RecordingFrontEnd:
    """A front end for platform "chat" that records what it was asked to send."""

    platform = "chat"

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.events: list[JobEvent] = []
        self.delivered: list[JobRecord] = []
        self.arrived = asyncio.Event()

    async def on_event(self, event: JobEvent) -> None:
        self.events.append(event)

    async def deliver(self, job: JobRecord) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("network unreachable")
        self.delivered.append(job)
        self.arrived.set()


def chat_origin(user: str = "carol") -> Origin:
    return Origin(platform="chat", scope_id="room", user_id=user, reply_target={"message": 7})


async def wait_delivered(app, job_id: str) -> JobRecord:
    async with asyncio.timeout(30):
        while True:
            job = await app.store.get_job(job_id)
            if job is not None and job.delivered_at is not None:
                return job
            await asyncio.sleep(0.02)


async def test_front_end_gets_progress_and_the_result(app_factory) -> None:
    app = await app_factory()
    front = RecordingFrontEnd()
    app.delivery.register(front)
    accepted = await app.service.draw(chat_origin(), small())
    other = await app.service.draw(Origin("cli", "local", "dave"), small())
    job = await wait_delivered(app, accepted.job.id)
    await wait_finished(app, other.job.id)
    assert [d.id for d in front.delivered] == [job.id]
    assert front.delivered[0].status == "succeeded"
    assert front.delivered[0].reply_target == {"message": 7}
    assert isinstance(front.events[0], JobQueued)
    assert any(isinstance(e, JobProgress) for e in front.events)
    # Events of other platforms' jobs never reach this front end.
    assert all(getattr(e, "job_id", None) != other.job.id for e in front.events)


async def test_failed_delivery_is_recorded_and_retried(app_factory) -> None:
    app = await app_factory()
    app.delivery.retry_delays = (0.01, 0.01)
    front = RecordingFrontEnd(failures=1)
    app.delivery.register(front)
    accepted = await app.service.draw(chat_origin(), small())
    job = await wait_delivered(app, accepted.job.id)
    assert job.delivery_attempts == 1  # the failure was recorded, then it went through
    assert len(front.delivered) == 1


class RateLimited(Exception):
    """What a platform client raises on HTTP 429: it says how long to wait."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited, retry in {retry_after} s")
        self.retry_after = retry_after


async def test_a_rate_limited_delivery_waits_as_long_as_the_platform_asked(app_factory) -> None:
    app = await app_factory()
    app.delivery.retry_delays = (0.01,)
    front = RecordingFrontEnd()
    failed_at: list[float] = []
    deliver = front.deliver

    async def limited_once(job: JobRecord) -> None:
        if not failed_at:
            failed_at.append(asyncio.get_running_loop().time())
            raise RateLimited(retry_after=0.5)
        await deliver(job)

    front.deliver = limited_once  # type: ignore[method-assign]
    app.delivery.register(front)
    accepted = await app.service.draw(chat_origin(), small())
    job = await wait_delivered(app, accepted.job.id)
    waited = asyncio.get_running_loop().time() - failed_at[0]
    assert waited >= 0.5 and job.delivery_attempts == 1 and len(front.delivered) == 1


async def test_results_finished_while_the_front_end_was_away_are_sent_at_start(
    app_factory,
) -> None:
    app = await app_factory()
    accepted = await app.service.draw(chat_origin(), small())
    finished = await wait_finished(app, accepted.job.id)
    assert finished.delivered_at is None  # nobody could take it
    await app.stop()

    app2 = await app_factory()
    front = RecordingFrontEnd()
    app2.delivery.register(front)
    job = await wait_delivered(app2, accepted.job.id)
    assert [d.id for d in front.delivered] == [job.id]
    assert await app2.store.undelivered("chat") == []


async def test_giving_up_leaves_the_job_undelivered_for_the_next_start(app_factory) -> None:
    app = await app_factory()
    app.delivery.retry_delays = (0.01,)
    front = RecordingFrontEnd(failures=5)
    app.delivery.register(front)
    accepted = await app.service.draw(chat_origin(), small())
    await wait_finished(app, accepted.job.id)
    async with asyncio.timeout(30):
        while (job := await app.store.get_job(accepted.job.id)) and job.delivery_attempts < 2:
            await asyncio.sleep(0.02)
    assert job is not None and job.delivered_at is None
    assert "network unreachable" in (job.delivery_error or "")
    assert [j.id for j in await app.store.undelivered("chat")] == [accepted.job.id]
