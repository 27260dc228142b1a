"""Routes job events to the front end that owns each job, and records every delivery.

A front end (Discord, Telegram, ...) registers itself with its platform name. For each job of
that platform it receives the live events (queued, started, progress) best-effort, and the
finished job through :meth:`FrontEnd.deliver`. A delivery is recorded in the store only after
``deliver`` returns, so a crash between sending and recording can repeat one message (the
documented send-then-record window) but never lose one.

Failures are recorded on the job (``delivery_attempts``, ``delivery_error``) and are of two kinds:

* transient (rate limits, server errors, network errors): retried after ``retry_delays`` (each
  retry in the background, so one failing chat never holds up the others); whatever is still
  undelivered is retried at the next start, up to ``max_attempts`` failures in all;
* permanent (:class:`Undeliverable`: the channel or chat is gone, the bot was removed or
  blocked), and transient ones past ``max_attempts``: the job is marked undeliverable for good
  with its reason and an ERROR is logged; it is not retried at later starts.

Failure reasons pass the ``redact`` function the composition root gives (the log's redacting
filter: :func:`bot.logsetup.redact`) before they are stored or logged: exception texts may carry
webhook URLs or tokens.

Stopping: :meth:`DeliveryDispatcher.drain` lets deliveries that are under way finish and be
recorded (a result that went out is recorded as delivered, so a restart does not send it
again); :meth:`DeliveryDispatcher.stop` then cancels what is left (retries waiting for their
turn: they run again at the next start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from typing import Any, Protocol

from generation.events import EventBus, JobEvent, JobFinished, JobProgress, Subscription
from storage.records import JobRecord
from storage.repository import Store

log = logging.getLogger(__name__)

DEFAULT_RETRY_DELAYS: tuple[float, ...] = (5.0, 30.0, 120.0, 600.0)
# Failed attempts (over every start) after which a transient failure counts as permanent:
# four starts' worth of retries with the default delays.
DEFAULT_MAX_ATTEMPTS = 20
MAX_REASON_LENGTH = 500
MAX_REQUESTED_WAIT = 3600.0  # a platform asking for more than an hour is not taken literally


def requested_wait(error: BaseException) -> float:
    """Seconds the platform asked us to wait before trying again (python-telegram-bot's
    ``RetryAfter`` and discord.py's ``RateLimited`` carry ``retry_after``); 0 if it did not."""
    value = getattr(error, "retry_after", None)
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, int | float) and value > 0:
        return min(float(value), MAX_REQUESTED_WAIT)
    return 0.0


class Undeliverable(Exception):
    """Raised by :meth:`FrontEnd.deliver` when retrying can never help (the channel or chat
    was deleted, the bot was removed, blocked or lost its permission there)."""


class FrontEnd(Protocol):
    platform: str

    async def on_event(self, event: JobEvent) -> None:
        """Queue position, start and progress of one of this platform's jobs (best effort)."""

    async def deliver(self, job: JobRecord) -> None:
        """Send a finished job (succeeded, failed, cancelled) to its requester; raise on failure."""


class DeliveryDispatcher:
    def __init__(
        self,
        store: Store,
        bus: EventBus,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        redact: Callable[[str], str] = lambda text: text,
        on_failure: Callable[[str, bool], None] = lambda platform, permanent: None,
    ) -> None:
        self.store = store
        self.redact = redact
        self.on_failure = on_failure  # (platform, permanent): counted for /metrics
        self.bus = bus
        self.retry_delays = tuple(retry_delays)
        self.max_attempts = max_attempts
        self._in_flight: set[str] = set()  # job ids being delivered or waiting for a retry
        self._front_ends: dict[str, FrontEnd] = {}
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        # Tasks that send a result and record it (the part drain() lets finish).
        self._sending: set[asyncio.Task[None]] = set()
        self._closing = False  # drain() began: no new delivery starts
        self._platform_of: dict[str, str] = {}  # job id -> platform, learned from events

    @property
    def started(self) -> bool:
        return self._task is not None

    def is_delivering(self, job_id: str) -> bool:
        """Whether ``job_id`` is being delivered or waits for a retry in this process."""
        return job_id in self._in_flight

    def register(self, front_end: FrontEnd) -> None:
        self._front_ends[front_end.platform] = front_end
        if self.started:
            self._spawn(self._redeliver(front_end.platform))

    def unregister(self, platform: str) -> None:
        self._front_ends.pop(platform, None)

    async def start(self) -> None:
        self._closing = False
        self._subscription = self.bus.subscribe(max_progress=4096)
        self._task = asyncio.create_task(self._run(), name="easel-delivery")
        for platform in list(self._front_ends):
            self._spawn(self._redeliver(platform))

    async def drain(self, timeout: float) -> None:
        """Let deliveries under way finish and be recorded (at most ``timeout`` seconds).

        Finished jobs already announced are picked up first; after that no new delivery
        starts (retries and results found at a start wait for the next start).
        """
        subscription, task = self._subscription, self._task
        while subscription is not None and not subscription.queue.empty():
            if task is None or task.done():
                break
            await asyncio.sleep(0)  # the dispatcher picks up what was announced
        self._closing = True
        sending = set(self._sending)
        if not sending:
            return
        _, late = await asyncio.wait(sending, timeout=timeout)
        if late:
            log.warning(
                "stopping: %d delivery(ies) still under way after %.0f s; they are sent again "
                "at the next start",
                len(late),
                timeout,
            )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
        tasks = [*self._pending, *self._sending]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._in_flight.clear()

    # ------------------------------------------------------------------ internals

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _send(self, front_end: FrontEnd, job: JobRecord, attempt: int) -> asyncio.Task[None]:
        """Deliver ``job`` in a task of its own, tracked so that drain() can wait for it."""
        task = asyncio.create_task(self._deliver(front_end, job, attempt))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
        return task

    async def _run(self) -> None:
        assert self._subscription is not None
        while True:
            event = await self._subscription.get()
            platform = self._platform(event)
            front_end = self._front_ends.get(platform) if platform else None
            if front_end is None:
                continue
            if isinstance(event, JobFinished):
                self._platform_of.pop(event.job.id, None)
                self._send(front_end, event.job, attempt=0)
            else:
                self._spawn(self._notify(front_end, event))

    def _platform(self, event: JobEvent) -> str | None:
        if isinstance(event, JobProgress):
            return self._platform_of.get(event.job_id)
        self._platform_of[event.job.id] = event.job.platform
        return event.job.platform

    async def _notify(self, front_end: FrontEnd, event: JobEvent) -> None:
        try:
            await front_end.on_event(event)
        except Exception:
            log.exception("%s: could not show progress", front_end.platform)

    async def _deliver(self, front_end: FrontEnd, job: JobRecord, attempt: int) -> None:
        if attempt == 0:
            if job.id in self._in_flight:
                return  # already on its way (e.g. found at a start and announced by an event)
            self._in_flight.add(job.id)
        try:
            await front_end.deliver(job)
        except asyncio.CancelledError:
            self._in_flight.discard(job.id)
            raise
        except Exception as error:
            await self._failed(front_end, job, attempt, error)
            return
        try:
            await self.store.mark_delivered(job.id)
        finally:
            self._in_flight.discard(job.id)
        # One line per recorded delivery: the crash campaign counts them to find duplicates.
        log.debug("%s: delivered job %s", front_end.platform, job.id)

    async def _failed(
        self, front_end: FrontEnd, job: JobRecord, attempt: int, error: Exception
    ) -> None:
        permanent = isinstance(error, Undeliverable)
        self.on_failure(front_end.platform, permanent)
        text = str(error) if permanent else f"{type(error).__name__}: {error}"
        reason = self.redact(text)[:MAX_REASON_LENGTH]
        try:
            gave_up = await self.store.record_delivery_failure(
                job.id, reason, give_up=permanent, max_attempts=self.max_attempts
            )
        except Exception:
            self._in_flight.discard(job.id)
            raise
        if gave_up:
            self._in_flight.discard(job.id)
            log.error(
                "%s: job %s cannot be delivered (%s); recorded as undeliverable, not retried",
                front_end.platform,
                job.id,
                reason,
            )
            return
        if attempt >= len(self.retry_delays):
            self._in_flight.discard(job.id)
            log.error(
                "%s: giving up delivering job %s for now (%s); it is retried at the next start",
                front_end.platform,
                job.id,
                reason,
            )
            return
        delay = max(self.retry_delays[attempt], requested_wait(error))
        log.warning(
            "%s: delivering job %s failed (%s); retrying in %.1f s",
            front_end.platform,
            job.id,
            reason,
            delay,
        )
        self._spawn(self._retry(front_end, job, attempt + 1, delay))

    async def _retry(self, front_end: FrontEnd, job: JobRecord, attempt: int, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            self._in_flight.discard(job.id)
            raise
        if self._closing:  # stopping: the next start delivers it
            self._in_flight.discard(job.id)
            return
        await self._send(front_end, job, attempt)

    async def _redeliver(self, platform: str) -> None:
        front_end = self._front_ends.get(platform)
        if front_end is None:
            return
        jobs = await self.store.undelivered(platform)
        if jobs:
            log.info("%s: delivering %d result(s) finished while it was away", platform, len(jobs))
        for job in jobs:
            if self._closing or self._front_ends.get(platform) is not front_end:
                return  # stopping, or unregistered meanwhile: the next start begins again
            current = await self.store.get_job(job.id)
            if current is None or current.delivered_at is not None:
                continue  # a live delivery got there first
            await self._send(front_end, current, attempt=0)
