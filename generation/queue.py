"""The live queue shared by the Service (which admits jobs) and the Worker (which takes them).

It wraps the pure :class:`FairQueue` with an asyncio condition, the set of running jobs, stop
requests for running jobs, and the waiting times (:mod:`generation.estimate`): a queued job starts
when the batches running now are done (their time left) and every job ahead of it in the fair
queue's order has run (its estimated seconds), on as many lanes as batches render at once; a
running job's time left blends its estimate with its step progress. The database stays the
source of truth: at start-up the queue is rebuilt from the jobs found ``queued``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from generation.clock import Clock
from generation.estimate import DurationModel, job_work, start_times, time_left
from generation.scheduler import FairQueue, QueuedItem
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


@dataclass(frozen=True)
class JobSize:
    """What a job's estimate needs: its model and pixel-steps (:func:`job_work`)."""

    model: str
    work: float

    @classmethod
    def of(cls, job: JobRecord) -> JobSize:
        return cls(job.model, job_work(job.spec))


@dataclass
class _Taken:
    """A job out of the queue and not finished: its batch (``group``), when that started."""

    group: int
    started: float  # monotonic
    fraction: float | None = None  # steps done / steps, once the renderer said


class JobQueue:
    def __init__(self, clock: Clock, initial_job_seconds: float) -> None:
        self._fair = FairQueue()
        self._changed = asyncio.Condition()
        self._clock = clock
        self.durations = DurationModel(initial_job_seconds)
        self._sizes: dict[str, JobSize] = {}  # every queued or taken job
        self._running: dict[str, _Taken] = {}
        self._groups = itertools.count()
        # How many batches render at once: 1 for the engine's own worker; the cluster
        # dispatcher sets its live workers.
        self.lanes = 1
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
        self._sizes[job.id] = JobSize.of(job)
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
        removed = self._fair.remove(job_id)
        if removed:
            self._sizes.pop(job_id, None)
        return removed

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
        self.started([item.job_id for item in batch])
        return batch

    def mark_taken(self, job: JobRecord) -> None:
        """A job out of the queue but not finished (after a restart: still with a worker)."""
        self._sizes[job.id] = JobSize.of(job)
        self.started([job.id])

    def started(self, job_ids: Iterable[str]) -> None:
        """The jobs' batch starts rendering now (its time left counts from here)."""
        group, now = next(self._groups), self._clock.monotonic()
        for job_id in job_ids:
            self._running[job_id] = _Taken(group, now)

    def note_progress(self, job_id: str, step: int, total: int) -> None:
        """The renderer's step count of a running job (its time left follows the steps)."""
        taken = self._running.get(job_id)
        if taken is not None and total > 0:
            taken.fraction = min(1.0, max(0.0, step / total))

    def finished(self, job_id: str, seconds: float | None) -> None:
        """The job left the engine; ``seconds``: how long it rendered (None: it did not finish
        rendering, so it teaches the estimates nothing)."""
        self._running.pop(job_id, None)
        self._stop_requested.discard(job_id)
        size = self._sizes.pop(job_id, None)
        if seconds is not None and size is not None:
            self.durations.observe(size.model, size.work, seconds)

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

    # ------------------------------------------------------------------ waiting times

    def estimate(self, job_id: str) -> float:
        """Seconds the job should take to render (0 for a job the queue does not know)."""
        size = self._sizes.get(job_id)
        return 0.0 if size is None else self.durations.estimate(size.model, size.work)

    def _batches_left(self) -> dict[int, float]:
        """Seconds left of each running batch (group)."""
        now = self._clock.monotonic()
        totals: dict[int, float] = {}
        starts: dict[int, float] = {}
        fractions: dict[int, float | None] = {}
        for job_id, taken in self._running.items():
            totals[taken.group] = totals.get(taken.group, 0.0) + self.estimate(job_id)
            starts[taken.group] = taken.started
            if taken.fraction is not None:
                fractions[taken.group] = max(fractions.get(taken.group) or 0.0, taken.fraction)
            else:
                fractions.setdefault(taken.group, None)
        return {
            group: time_left(total, now - starts[group], fractions[group])
            for group, total in totals.items()
        }

    def _starts(self) -> Iterable[tuple[QueuedItem, float]]:
        """(queued job, seconds until it starts), in the order jobs leave the queue."""
        items, costed = itertools.tee(self._fair.iter_order())  # lazy: eta stops at its job
        ahead = (self.estimate(item.job_id) for item in costed)
        return zip(
            items, start_times(list(self._batches_left().values()), ahead, self.lanes), strict=True
        )

    def eta(self, job_id: str) -> float | None:
        """Seconds until ``job_id`` should start, or None when it is not queued. O(jobs ahead)."""
        if job_id not in self._fair:
            return None
        for item, start in self._starts():
            if item.job_id == job_id:
                return start
        return None  # not reached: a queued job is in the order

    def etas(self) -> dict[str, float]:
        """Seconds until each queued job should start, all in one pass. O(queue)."""
        return {item.job_id: start for item, start in self._starts()}

    def seconds_left(self, job_id: str) -> float | None:
        """Seconds until ``job_id`` should be done: a running job's time left (its batch's),
        a queued job's wait plus its own estimate; None for a job in neither."""
        taken = self._running.get(job_id)
        if taken is not None:
            return self._batches_left().get(taken.group, 0.0)
        start = self.eta(job_id)
        return None if start is None else start + self.estimate(job_id)
