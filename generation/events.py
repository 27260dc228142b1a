"""Job events and the in-process bus that carries them from the worker to the front ends.

Publishing is thread-safe (the worker thread calls :meth:`EventBus.publish_threadsafe`);
subscribers are asyncio queues read on the event loop. A slow subscriber never blocks the
worker: progress events are dropped for it when its queue is full, state changes never are.

Step previews cost the renderer time (a device copy and a PNG encode per preview), so they are
made only while someone looks at them: a subscriber that asked for previews (the web page's
event stream) or a recent ``/sdapi/v1/progress`` poll (:meth:`EventBus.want_previews`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from storage.records import JobRecord


@dataclass(frozen=True)
class JobQueued:
    """``eta_seconds``: until the job should start; ``seconds_left``: until it should be done."""

    job: JobRecord
    position: int
    eta_seconds: float
    seconds_left: float = 0.0


@dataclass(frozen=True)
class JobStarted:
    job: JobRecord


@dataclass(frozen=True)
class JobProgress:
    job_id: str
    step: int
    total: int
    preview_png: bytes | None = None


@dataclass(frozen=True)
class JobFinished:
    """The job reached succeeded, failed or cancelled; ``job`` is its final record."""

    job: JobRecord


JobEvent = JobQueued | JobStarted | JobProgress | JobFinished


def event_job_id(event: JobEvent) -> str:
    return event.job_id if isinstance(event, JobProgress) else event.job.id


class Subscription:
    """Events for one job id, or for every job when ``job_id`` is None.

    State changes (queued, started, finished) are always kept; at most ``max_progress``
    progress events wait at once, and newer ones are dropped for a slow reader.
    """

    def __init__(
        self, bus: EventBus, job_id: str | None, max_progress: int, previews: bool
    ) -> None:
        self._bus = bus
        self.job_id = job_id
        self.max_progress = max_progress
        self.previews = previews
        self.queue: asyncio.Queue[JobEvent] = asyncio.Queue()
        self._progress_waiting = 0

    def offer(self, event: JobEvent) -> None:
        if self.job_id is not None and event_job_id(event) != self.job_id:
            return
        if isinstance(event, JobProgress):
            if self._progress_waiting >= self.max_progress:
                return  # progress is disposable; state changes are not
            self._progress_waiting += 1
        self.queue.put_nowait(event)

    def _took(self, event: JobEvent) -> JobEvent:
        if isinstance(event, JobProgress):
            self._progress_waiting -= 1
        return event

    async def get(self) -> JobEvent:
        return self._took(await self.queue.get())

    def get_nowait(self) -> JobEvent:
        return self._took(self.queue.get_nowait())

    def close(self) -> None:
        self._bus._unsubscribe(self)

    async def __aiter__(self) -> AsyncIterator[JobEvent]:
        while True:
            yield await self.get()


class EventBus:
    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._preview_watchers = 0  # open subscriptions that asked for previews
        self._previews_until = 0.0  # monotonic time until which a poller wants them

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscribe(
        self, job_id: str | None = None, max_progress: int = 256, previews: bool = False
    ) -> Subscription:
        """``previews``: this reader shows step previews (they are made while one is open)."""
        subscription = Subscription(self, job_id, max_progress, previews)
        self._subscriptions.add(subscription)
        self._preview_watchers += previews
        return subscription

    def _unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.discard(subscription)
            self._preview_watchers -= subscription.previews

    def want_previews(self, seconds: float) -> None:
        """A poller looks at previews (``/sdapi/v1/progress``): make them for ``seconds``."""
        self._previews_until = max(self._previews_until, time.monotonic() + seconds)

    def previews_wanted(self) -> bool:
        """Whether anyone looks at step previews now (any thread: the renderer asks)."""
        return self._preview_watchers > 0 or time.monotonic() < self._previews_until

    def publish(self, event: JobEvent) -> None:
        """Deliver on the event loop's thread."""
        for subscription in list(self._subscriptions):
            subscription.offer(event)

    def publish_threadsafe(self, event: JobEvent) -> None:
        """Deliver from any thread (the worker thread uses this)."""
        if self._loop is None:
            raise RuntimeError("EventBus.bind(loop) was not called")
        self._loop.call_soon_threadsafe(self.publish, event)


class Follower:
    """Hands every event of ``bus`` to ``handle`` (on the loop) from :meth:`start` to
    :meth:`stop`: what the progress tracker and the metrics keep up to date with."""

    def __init__(
        self, bus: EventBus, handle: Callable[[JobEvent], None], name: str, max_progress: int
    ) -> None:
        self._bus = bus
        self._handle = handle
        self._name = name
        self._max_progress = max_progress
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        subscription = self._bus.subscribe(max_progress=self._max_progress)
        self._task = asyncio.create_task(self._follow(subscription), name=self._name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _follow(self, subscription: Subscription) -> None:
        try:
            while True:
                self._handle(await subscription.get())
        finally:
            subscription.close()
