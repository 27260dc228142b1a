"""Who may see which job (generation.visibility): the rule, and event streams that follow it."""

from __future__ import annotations

import asyncio

from generation.events import (
    EventBus,
    JobFinished,
    JobProgress,
    JobQueued,
    JobStarted,
    event_job_id,
)
from generation.requests import Visibility
from generation.visibility import EVERYONE, EventWatch, Viewer
from storage.records import JobRecord
from tests.records import job_record


def job(job_id: str, user: int, scope: int) -> JobRecord:
    return job_record(job_id, user_id=user, scope_id=scope)


def test_own_scope_and_all() -> None:
    mine, neighbours, elsewhere = job("a", 1, 10), job("b", 2, 10), job("c", 3, 20)
    own = Viewer(Visibility.OWN, user_id=1, scope_id=10)
    scope = Viewer(Visibility.SCOPE, user_id=1, scope_id=10)
    assert [own.may_see(j) for j in (mine, neighbours, elsewhere)] == [True, False, False]
    assert [scope.may_see(j) for j in (mine, neighbours, elsewhere)] == [True, True, False]
    assert all(EVERYONE.may_see(j) for j in (mine, neighbours, elsewhere))
    newcomer = Viewer(Visibility.SCOPE)  # never asked for anything: no user, no scope yet
    assert not newcomer.resolved and not any(
        newcomer.may_see(j) for j in (mine, neighbours, elsewhere)
    )
    assert own.owns(mine) and not scope.owns(neighbours)


async def test_a_watch_passes_only_what_its_viewer_may_see() -> None:
    bus = EventBus()
    jobs = {j.id: j for j in (job("mine", 1, 10), job("theirs", 2, 20))}
    lookups: list[str] = []

    async def lookup(job_id: str) -> JobRecord | None:
        lookups.append(job_id)
        return jobs.get(job_id)

    watch = EventWatch(bus.subscribe(), Viewer(Visibility.OWN, 1, 10), lookup=lookup)
    for job_id in ("theirs", "mine"):
        bus.publish(JobQueued(jobs[job_id], 0, 1.0))
        bus.publish(JobStarted(jobs[job_id]))
        bus.publish(JobProgress(job_id, 1, 2))
        bus.publish(JobFinished(jobs[job_id]))
    seen = [await asyncio.wait_for(watch.get(), 5) for _ in range(4)]
    assert [type(e).__name__ for e in seen] == [
        "JobQueued",
        "JobStarted",
        "JobProgress",
        "JobFinished",
    ]
    assert {event_job_id(e) for e in seen} == {"mine"}
    assert lookups == []  # progress of a job seen queued needs no lookup
    bus.publish(JobProgress("unseen", 1, 2))  # a job that started before the watch: looked up
    bus.publish(JobFinished(jobs["mine"]))
    assert event_job_id(await asyncio.wait_for(watch.get(), 5)) == "mine"
    assert lookups == ["unseen"]
    watch.close()


async def test_a_newcomers_first_job_shows_up_in_a_stream_opened_before_it() -> None:
    bus = EventBus()
    theirs, mine = job("theirs", 2, 20), job("mine", 1, 10)
    refreshed: list[int] = []

    async def refresh() -> Viewer:  # the caller's user exists once they made a request
        refreshed.append(1)
        return Viewer(Visibility.OWN, 1, 10)

    async def nothing(job_id: str) -> JobRecord | None:
        return None

    watch = EventWatch(bus.subscribe(), Viewer(Visibility.OWN), lookup=nothing, refresh=refresh)
    bus.publish(JobQueued(mine, 0, 0.0))
    bus.publish(JobQueued(theirs, 0, 0.0))
    bus.publish(JobStarted(theirs))
    bus.publish(JobStarted(mine))
    assert event_job_id(await asyncio.wait_for(watch.get(), 5)) == "mine"
    event = await asyncio.wait_for(watch.get(), 5)
    assert isinstance(event, JobStarted) and event.job.id == "mine"
    assert len(refreshed) == 1  # resolved once, then the rule is plain
    watch.close()
