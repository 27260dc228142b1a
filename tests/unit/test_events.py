"""The event bus never drops a state change, however slow the reader."""

from __future__ import annotations

from generation.events import EventBus, JobFinished, JobProgress
from storage.records import JobRecord
from tests.records import job_record


def finished_job(job_id: str) -> JobRecord:
    return job_record(job_id)


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
