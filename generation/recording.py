"""Recording what a worker did: PNG files into the image store, states into the store, events.

The engine's own worker and the cluster dispatcher (results from ``easel worker`` processes)
both end every job here, so the rule holds for both: every job taken from the queue ends with
exactly one :class:`JobFinished` (succeeded, failed or cancelled) and leaves the queue's
running set, whatever fails on the way; only a job the store cannot even mark failed stays
"running" there, and the next start takes it up again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

from generation.events import EventBus, JobFinished
from generation.queue import JobQueue
from generation.rendering import EncodedPng
from storage.images import ImageStore
from storage.records import JobRecord, NewImage
from storage.repository import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredImage:
    sha256: str
    width: int
    height: int
    seed: int


class Recorder:
    def __init__(
        self,
        *,
        store: Store,
        images: ImageStore,
        queue: JobQueue,
        bus: EventBus,
        executor: Executor | None = None,
    ) -> None:
        self.store = store
        self.images = images
        self.queue = queue
        self.bus = bus
        self._executor = executor  # where files are written (None: asyncio's default pool)

    async def save(self, pngs: Sequence[EncodedPng]) -> list[StoredImage]:
        """Write the files (content-addressed, fsynced) off the event loop."""

        def write() -> list[StoredImage]:
            stored = []
            for png in pngs:
                sha, _ = self.images.save(png.data)
                stored.append(StoredImage(sha, png.width, png.height, png.seed))
            return stored

        return await asyncio.get_running_loop().run_in_executor(self._executor, write)

    async def succeeded(
        self, job: JobRecord, pngs: Sequence[EncodedPng], seconds: float | None
    ) -> None:
        """Store the files and mark the job succeeded; on any failure the job fails with the
        reason instead (the disk is full, the database refused the write...)."""
        try:
            stored = await self.save(pngs)
        except Exception as error:
            log.exception("could not store the images of job %s", job.id)
            await self.failed([job.id], f"could not store the images: {error}")
            return
        try:
            await self._succeed(job, stored, seconds)
        except Exception as error:  # e.g. the database is locked or gone
            log.exception("could not record job %s as succeeded", job.id)
            await self.failed([job.id], f"could not record the result: {error}")

    async def _succeed(
        self, job: JobRecord, stored: list[StoredImage], seconds: float | None
    ) -> None:
        if self.queue.stop_requested(job.id):  # cancelled while its last steps ran
            await self.announce_final(job.id)
            return
        new_images = [
            NewImage(index, image.seed, image.sha256, image.width, image.height)
            for index, image in enumerate(stored)
        ]
        record = await self.store.mark_succeeded(job.id, new_images)
        self.queue.finished(job.id, seconds)
        self.bus.publish(JobFinished(record))

    async def requeue_at_start(self, max_attempts: int, keep: frozenset[str] = frozenset()) -> None:
        """At start-up: jobs a crash left running go back to the queue (or fail after
        ``max_attempts``), except those in ``keep`` (a cluster worker still renders them);
        every other queued job joins the fair queue in order."""
        requeued, failed = await self.store.recover_interrupted(max_attempts, keep=keep)
        if requeued:
            log.warning("re-queued %d interrupted job(s): %s", len(requeued), requeued)
        if failed:
            log.error("gave up on %d job(s) after repeated interruptions: %s", len(failed), failed)
        for job in await self.store.queued_jobs():
            if job.id not in keep:
                await self.queue.put(job)
        if len(self.queue):
            log.info("%d job(s) waiting in the queue", len(self.queue))

    async def failed(self, job_ids: Sequence[str], reason: str) -> None:
        for job_id in job_ids:
            try:
                record = await self.store.mark_failed(job_id, reason)
            except Exception:
                log.exception(
                    "could not record job %s as failed (%s); the next start takes it up again",
                    job_id,
                    reason,
                )
                continue
            finally:
                self.queue.finished(job_id, None)
            self.bus.publish(JobFinished(record))

    async def taken_but_cancelled(self, job_id: str) -> None:
        """The job was cancelled between leaving the queue and starting: the cancel found it
        neither queued (so it did not announce the end) nor running, so announce it here."""
        try:
            final = await self.store.get_job(job_id)
        finally:
            self.queue.finished(job_id, None)
        if final is not None and final.is_terminal:
            self.bus.publish(JobFinished(final))

    async def announce_final(self, job_id: str) -> None:
        """A cancelled job's final record (the cancel stored it) reaches the front ends."""
        try:
            final = await self.store.get_job(job_id)
        finally:
            self.queue.finished(job_id, None)
        if final is not None:
            self.bus.publish(JobFinished(final))

    async def interrupted(self, job_ids: Sequence[str]) -> None:
        """Rendering stopped: a cancelled job ends cancelled; any other goes back to the queue
        for the next start (the engine is stopping)."""
        for job_id in job_ids:
            if self.queue.stop_requested(job_id):
                await self.announce_final(job_id)
                continue
            self.queue.finished(job_id, None)
            try:
                await self.store.requeue(job_id)
            except Exception:
                log.exception("could not re-queue job %s; the next start does", job_id)
