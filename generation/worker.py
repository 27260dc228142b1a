"""The single worker: takes fair batches from the queue and renders them on one thread.

The asyncio loop never blocks on diffusion: rendering runs on the worker's own thread; PNG
encoding and file writes on a second "recording" thread; database writes are short transactions
on the loop. On a GPU, recording a finished batch overlaps the rendering of the next one, so the
device does not wait for PNG encoding, fsync and the database between jobs (at most
``MAX_PENDING_RECORDINGS`` batches wait to be recorded). On a CPU the batch is recorded before
the next one starts: there the recording would compete with torch for the same cores, and
torch's worker threads stall whenever one of them loses its core (measured: each render ~25%
slower, no net gain on 2 cores). A failing job is marked ``failed`` with
its reason and the worker carries on; a batch that runs out of memory is retried job by job.
On stop, the running batch gets ``shutdown_grace_seconds`` to finish, then it is interrupted
and re-queued; finished batches are always recorded first.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from PIL import Image

from generation.errors import EaselError, JobInterrupted, OutOfMemory
from generation.events import EventBus, JobFinished, JobProgress, JobStarted
from generation.metadata import build_infotext, encode_png, short_hash
from generation.queue import JobQueue
from generation.render import Backend, ModelSource, RenderJob
from generation.spec import Mode
from storage.images import ImageStore
from storage.records import JobRecord, ModelRecord, NewImage
from storage.repository import Store

log = logging.getLogger(__name__)

MAX_PENDING_RECORDINGS = 2


@dataclass(frozen=True)
class EncodedImage:
    sha256: str
    width: int
    height: int
    seed: int


def model_source(record: ModelRecord) -> ModelSource:
    return ModelSource(
        name=record.name,
        source=record.source,
        kind=record.kind,
        revision=record.revision,
        config=record.config,
    )


class Worker:
    def __init__(
        self,
        *,
        store: Store,
        images: ImageStore,
        queue: JobQueue,
        bus: EventBus,
        backend: Backend,
        max_batch: int,
        overlap_recording: bool = True,
    ) -> None:
        self.store = store
        self.images = images
        self.queue = queue
        self.bus = bus
        self.backend = backend
        self.max_batch = max_batch
        self.overlap_recording = overlap_recording
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="easel-worker")
        self._recorder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="easel-record")
        self._recordings: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._busy = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._abort = False
        self._draining = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="easel-worker")

    def preload(self, model: ModelSource) -> asyncio.Future[None]:
        """Load ``model`` on the worker thread ahead of the first job (jobs queue behind it)."""

        def load() -> None:
            try:
                self.backend.preload(model)
            except Exception as error:  # the first job using it reports the reason
                log.warning("could not preload model %s: %s", model.name, error)

        return asyncio.get_running_loop().run_in_executor(self._executor, load)

    async def stop(self, grace_seconds: float) -> None:
        """Let the running batch finish within ``grace_seconds``, else interrupt and re-queue it."""
        self._draining = True
        if self._task is None:
            return
        if not self._idle.is_set():
            try:
                await asyncio.wait_for(self._idle.wait(), timeout=grace_seconds)
            except TimeoutError:
                log.warning("stopping: interrupting the running job; it will be re-queued")
                self._abort = True
                await self._idle.wait()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._recorded()
        self._executor.shutdown(wait=True)
        self._recorder.shutdown(wait=True)
        await asyncio.to_thread(self.backend.close)

    async def _loop(self) -> None:
        while not self._draining:
            batch = await self.queue.take_batch(self.max_batch)
            self._idle.clear()
            job_ids = [item.job_id for item in batch]
            try:
                await self._run_batch(job_ids)
            except Exception as error:  # never let one batch kill the worker, nor hang its jobs
                log.exception("worker: unexpected error around batch %s", job_ids)
                stuck = [job_id for job_id in job_ids if self.queue.is_running(job_id)]
                await self._fail_ids(stuck, f"internal error: {type(error).__name__}: {error}")
            finally:
                self._idle.set()

    async def _recorded(self, keep: int = 0) -> None:
        """Wait until at most ``keep`` finished batches are still being recorded."""
        while len(self._recordings) > keep:
            await asyncio.wait(self._recordings, return_when=asyncio.FIRST_COMPLETED)

    # ------------------------------------------------------------------ one batch

    async def _run_batch(self, job_ids: list[str]) -> None:
        started = time.monotonic()
        jobs: list[JobRecord] = []
        for job_id in job_ids:
            try:
                job = await self.store.mark_running(job_id)
            except Exception as error:  # the store failed: the job must not hang in between
                log.exception("worker: could not start job %s", job_id)
                await self._fail_ids([job_id], f"could not start: {error}")
                continue
            if job is None:  # cancelled while it was being taken: it ends here
                await self._taken_but_cancelled(job_id)
                continue
            self.bus.publish(JobStarted(job))
            jobs.append(job)
        if not jobs:
            return
        await self._render_and_record(jobs, started)

    async def _render_and_record(self, jobs: list[JobRecord], started: float) -> None:
        try:
            models: dict[str, ModelSource] = {}  # a batch shares its model: look it up once
            render_jobs = [await self._render_job(job, models) for job in jobs]
            loop = asyncio.get_running_loop()
            outputs = await loop.run_in_executor(self._executor, self._render, jobs, render_jobs)
        except JobInterrupted:
            await self._interrupted(jobs)
            return
        except OutOfMemory as error:
            if len(jobs) == 1:
                await self._fail(jobs, error.message)
                return
            # Together they did not fit in memory; each alone may. Each gets its own outcome.
            log.warning("worker: batch of %d ran out of memory; rendering one by one", len(jobs))
            for job in jobs:
                await self._render_and_record([job], time.monotonic())
            return
        except EaselError as error:
            await self._fail(jobs, error.message)
            return
        except Exception as error:
            log.exception("worker: job(s) %s failed", [job.id for job in jobs])
            await self._fail(jobs, f"{type(error).__name__}: {error}")
            return
        seconds = (time.monotonic() - started) / len(jobs)
        if not self.overlap_recording:
            await self._record(jobs, outputs, seconds)
            return
        await self._recorded(keep=MAX_PENDING_RECORDINGS - 1)
        task = asyncio.create_task(self._record(jobs, outputs, seconds), name="easel-record")
        self._recordings.add(task)
        task.add_done_callback(self._recordings.discard)

    async def _record(
        self, jobs: list[JobRecord], outputs: list[list[Image.Image]], seconds: float
    ) -> None:
        """Encode and store a rendered batch's images, then mark its jobs succeeded."""
        loop = asyncio.get_running_loop()
        for job, images in zip(jobs, outputs, strict=True):
            try:
                encoded = await loop.run_in_executor(self._recorder, self._encode, job, images)
            except Exception as error:  # e.g. the disk is full: the job fails with the reason
                log.exception("worker: could not store the images of job %s", job.id)
                await self._fail([job], f"could not store the images: {error}")
                continue
            try:
                await self._succeed(job, encoded, seconds)
            except Exception as error:  # e.g. the database is locked or gone
                log.exception("worker: could not record job %s as succeeded", job.id)
                await self._fail([job], f"could not record the result: {error}")

    async def _render_job(self, job: JobRecord, models: dict[str, ModelSource]) -> RenderJob:
        spec = job.spec
        init_image = None
        if spec.init_image is not None:
            init_image = await asyncio.to_thread(self._load_image, spec.init_image)
        upscaler = None
        if spec.mode == Mode.UPSCALE and spec.upscaler not in (None, "hires"):
            upscaler = await self._registered(str(spec.upscaler), models, "Upscaler")
        model = await self._registered(spec.model, models, "Model")
        return RenderJob(spec=spec, model=model, init_image=init_image, upscaler=upscaler)

    async def _registered(
        self, name: str, models: dict[str, ModelSource], what: str
    ) -> ModelSource:
        if name not in models:
            record = await self.store.get_model(name)
            if record is None:
                raise EaselError(f"{what} {name!r} is no longer registered.")
            models[name] = model_source(record)
        return models[name]

    def _load_image(self, sha256: str) -> Image.Image:
        return Image.open(io.BytesIO(self.images.read(sha256))).convert("RGB")

    def _render(
        self, jobs: list[JobRecord], render_jobs: list[RenderJob]
    ) -> list[list[Image.Image]]:
        """Runs on the worker thread."""
        job_ids = [job.id for job in jobs]

        progress_failed = False

        def progress(step: int, total: int, preview: bytes | None) -> None:
            nonlocal progress_failed
            try:
                for job_id in job_ids:
                    self.bus.publish_threadsafe(JobProgress(job_id, step, total, preview))
            except Exception:  # progress is a courtesy: never worth failing the render
                if not progress_failed:  # once per render, not once per step
                    log.warning("worker: cannot publish progress of %s", job_ids, exc_info=True)
                progress_failed = True

        def should_stop() -> bool:
            return self._abort or all(self.queue.stop_requested(j) for j in job_ids)

        if len(render_jobs) == 1:
            return [self.backend.render(render_jobs[0], progress, should_stop)]
        return self.backend.render_batch(render_jobs, progress, should_stop)

    def _encode(self, job: JobRecord, images: list[Image.Image]) -> list[EncodedImage]:
        """Runs on the recording thread."""
        encoded = []
        for seed, image in zip(job.spec.seeds, images, strict=True):
            spec = job.spec
            extra: dict[str, object] = {}
            if spec.mode == Mode.UPSCALE:
                extra["Hires upscaler"] = spec.upscaler or "hires"
            if job.parent_id:
                extra["Easel parent"] = f"{job.parent_id}/{(job.parent_index or 0) + 1}"
            text = build_infotext(
                prompt=spec.prompt,
                negative_prompt=spec.negative_prompt,
                steps=spec.steps,
                sampler=spec.sampler,
                cfg=spec.cfg,
                seed=seed,
                width=image.width,
                height=image.height,
                model=spec.model,
                model_hash=short_hash(job.model_revision),
                job_id=job.id,
                strength=spec.strength,
                extra=extra,
            )
            sha, _ = self.images.save(encode_png(image, text, job.id))
            encoded.append(EncodedImage(sha, image.width, image.height, seed))
        return encoded

    # ------------------------------------------------------------------ outcomes
    #
    # Every job taken from the queue ends with exactly one JobFinished (succeeded, failed or
    # cancelled) and leaves the queue's running set, whatever fails on the way; only a job the
    # store cannot even mark failed stays "running" there, and the next start re-queues it.

    async def _taken_but_cancelled(self, job_id: str) -> None:
        """The job was cancelled between leaving the queue and starting: the cancel found it
        neither queued (so it did not announce the end) nor running, so announce it here."""
        try:
            final = await self.store.get_job(job_id)
        finally:
            self.queue.finished(job_id, None)
        if final is not None and final.is_terminal:
            self.bus.publish(JobFinished(final))

    async def _succeed(self, job: JobRecord, encoded: list[EncodedImage], seconds: float) -> None:
        if self.queue.stop_requested(job.id):  # cancelled while its last steps ran
            await self._announce_final(job.id)
            return
        new_images = [
            NewImage(index, image.seed, image.sha256, image.width, image.height)
            for index, image in enumerate(encoded)
        ]
        record = await self.store.mark_succeeded(job.id, new_images)
        self.queue.finished(job.id, seconds)
        self.bus.publish(JobFinished(record))

    async def _fail(self, jobs: list[JobRecord], reason: str) -> None:
        await self._fail_ids([job.id for job in jobs], reason)

    async def _fail_ids(self, job_ids: list[str], reason: str) -> None:
        for job_id in job_ids:
            try:
                record = await self.store.mark_failed(job_id, reason)
            except Exception:
                log.exception(
                    "worker: could not record job %s as failed (%s); the next start takes it "
                    "up again",
                    job_id,
                    reason,
                )
                continue
            finally:
                self.queue.finished(job_id, None)
            self.bus.publish(JobFinished(record))

    async def _announce_final(self, job_id: str) -> None:
        """A cancelled job's final record (the cancel stored it) reaches the front ends."""
        try:
            final = await self.store.get_job(job_id)
        finally:
            self.queue.finished(job_id, None)
        if final is not None:
            self.bus.publish(JobFinished(final))

    async def _interrupted(self, jobs: list[JobRecord]) -> None:
        for job in jobs:
            if self.queue.stop_requested(job.id):
                await self._announce_final(job.id)
                continue
            self.queue.finished(job.id, None)
            # The engine is stopping: put it back for the next start.
            try:
                await self.store.requeue(job.id)
            except Exception:
                log.exception("worker: could not re-queue job %s; the next start does", job.id)
