"""The live queue shared by the Service (which admits jobs) and the Worker (which takes them).

It wraps the pure :class:`FairQueue` with an asyncio condition, the set of running jobs, stop
requests for running jobs, and the job-duration estimate used for ETAs. The database stays the
source of truth: at start-up the queue is rebuilt from the jobs found ``queued``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence

from generation.clock import Clock
from generation.scheduler import FairQueue, JobTimer, QueuedItem, estimate_start
from storage.records import JobRecord


def queued_item(job: JobRecord) -> QueuedItem:
    """The job's place in the fair queue. A job that was running when the engine died
    (``attempt`` > 0 after crash recovery) runs alone: if it is what kills the engine, it then
    uses up only its own attempts, not those of every job batched with it."""
    batchable = job.spec.mode == "txt2img" and job.attempt == 0
    batch_key = job.spec.batch_key() if batchable else None
    return QueuedItem(
        job_id=job.id,
        user_key=str(job.user_id),
        seq=job.seq,
        batch_key=batch_key,
        model=job.model,
        scope=f"{job.platform}:{job.scope_id}",
    )


class JobQueue:
    def __init__(self, clock: Clock, initial_job_seconds: float) -> None:
        self._fair = FairQueue()
        self._changed = asyncio.Condition()
        self._clock = clock
        self.timer = JobTimer(initial_job_seconds)
        self._running: dict[str, float] = {}  # job id -> monotonic start
        self._stop_requested: set[str] = set()
        # Called with a job id when a stop is requested for a job no longer in the queue
        # (the cluster dispatcher forwards it to the worker holding the job).
        self.stop_listeners: list[Callable[[str], None]] = []
        # Called when jobs join the queue (the cluster dispatcher re-checks fairness).
        self.put_listeners: list[Callable[[], None]] = []

    def __len__(self) -> int:
        return len(self._fair)

    def __contains__(self, job_id: str) -> bool:
        return job_id in self._fair

    def waiting(self) -> list[QueuedItem]:
        """Every waiting job (a copy, in no particular order)."""
        return list(self._fair)

    async def put(self, job: JobRecord) -> None:
        self._fair.push(queued_item(job))
        await self._notify()

    async def return_items(self, items: Sequence[QueuedItem]) -> None:
        """Jobs taken but not started (a cluster batch taken back) go back to the front of
        their users' queues, in their order."""
        for item in reversed(items):
            self._running.pop(item.job_id, None)
            self._fair.push_front(item)
        await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()
        for listener in self.put_listeners:
            listener()

    def next_user(self, in_flight: Mapping[str, int] | None = None) -> str | None:
        return self._fair.next_user(in_flight)

    def remove(self, job_id: str) -> bool:
        return self._fair.remove(job_id)

    def user_count(self, user_key: str) -> int:
        return self._fair.user_count(user_key)

    async def take_batch(
        self, max_size: int, in_flight: Callable[[], Mapping[str, int]] | None = None
    ) -> list[QueuedItem]:
        """Wait until something is queued, then take the next fair batch (``in_flight``: see
        :meth:`generation.scheduler.FairQueue.next_user`, read when the batch is taken)."""
        async with self._changed:
            await self._changed.wait_for(lambda: len(self._fair) > 0)
            batch = self._fair.pop_batch(max_size, in_flight() if in_flight else None)
        now = self._clock.monotonic()
        for item in batch:
            self._running[item.job_id] = now
        return batch

    def mark_taken(self, job_id: str) -> None:
        """A job out of the queue but not finished (after a restart: still with a worker)."""
        self._running[job_id] = self._clock.monotonic()

    def finished(self, job_id: str, seconds: float | None) -> None:
        self._running.pop(job_id, None)
        self._stop_requested.discard(job_id)
        if seconds is not None:
            self.timer.observe("job", seconds)

    @property
    def running_count(self) -> int:
        return len(self._running)

    def is_running(self, job_id: str) -> bool:
        return job_id in self._running

    def request_stop(self, job_id: str) -> None:
        self._stop_requested.add(job_id)
        for listener in self.stop_listeners:
            listener(job_id)

    def stop_requested(self, job_id: str) -> bool:
        return job_id in self._stop_requested

    def position(self, job_id: str) -> int | None:
        return self._fair.position(job_id)

    def eta(self, job_id: str) -> float | None:
        """Seconds until ``job_id`` should start, or None when it is not queued."""
        position = self.position(job_id)
        if position is None:
            return None
        per_job = self.timer.estimate()
        now = self._clock.monotonic()
        remaining = max((per_job - (now - start) for start in self._running.values()), default=0.0)
        return estimate_start(position, max(remaining, 0.0), per_job)
