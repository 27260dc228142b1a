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

from generation.addons import addon_files
from generation.errors import EaselError, JobInterrupted
from generation.events import EventBus, JobProgress, JobStarted
from generation.hires import builtin_upscaler
from generation.lazy_backend import LOADING
from generation.queue import JobQueue
from generation.recording import Recorder
from generation.render import Backend, ModelSource, RenderJob, loaded_models
from generation.rendering import Outcome, Rendered, RenderMeta, job_pngs, render_all
from generation.spec import GenerationSpec, Mode
from generation.workers import FinishedJobs, WorkerStatus
from storage.images import ImageStore
from storage.records import JobRecord, ModelRecord
from storage.repository import Store

log = logging.getLogger(__name__)

MAX_PENDING_RECORDINGS = 2


def model_source(record: ModelRecord) -> ModelSource:
    return ModelSource(
        name=record.name,
        source=record.source,
        kind=record.kind,
        revision=record.revision,
        config=record.config,
        dtype=record.dtype,
    )


@dataclass(frozen=True)
class Sources:
    """The registered models a job renders with (``RenderJob``'s model, upscaler, refiner)."""

    model: ModelSource
    upscaler: ModelSource | None = None
    refiner: ModelSource | None = None


async def render_sources(
    store: Store, spec: GenerationSpec, known: dict[str, ModelSource]
) -> Sources:
    """The job's model; for an upscale or a hires fix with a registered upscaler, that
    upscaler; for a refined job, its refiner; as the registry has them now. ``known`` caches
    them across a batch. Refused (``EaselError``) when one was removed since the job was
    queued."""

    async def registered(name: str, what: str) -> ModelSource:
        if name not in known:
            record = await store.get_model(name)
            if record is None:
                raise EaselError(f"{what} {name!r} is no longer registered.")
            known[name] = model_source(record)
        return known[name]

    upscaler = None
    if spec.mode == Mode.UPSCALE and spec.upscaler not in (None, "hires"):
        upscaler = await registered(str(spec.upscaler), "Upscaler")
    elif spec.hires is not None and builtin_upscaler(spec.hires.upscaler) is None:
        upscaler = await registered(spec.hires.upscaler, "Upscaler")
    refiner = None
    if spec.refiner is not None:
        refiner = await registered(spec.refiner.model, "Refiner")
    return Sources(await registered(spec.model, "Model"), upscaler, refiner)


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
        max_attempts: int = 3,
        overlap_recording: bool | None = None,
    ) -> None:
        self.store = store
        self.images = images
        self.queue = queue
        self.bus = bus
        self.backend = backend
        self.max_batch = max_batch
        self.max_attempts = max_attempts
        self.overlap_recording = overlap_recording
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="easel-worker")
        self._recorder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="easel-record")
        self.recorder = Recorder(
            store=store, images=images, queue=queue, bus=bus, executor=self._recorder
        )
        self._recordings: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._busy = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._abort = False
        self._draining = False
        self._current: tuple[str, ...] = ()  # the batch rendering now
        self._finished = FinishedJobs()
        self._preloading = 0  # models being loaded ahead of jobs (on the worker thread)
        self._preloads: set[asyncio.Future[None]] = set()

    # ------------------------------------------------------------------ lifecycle

    async def recover(self) -> None:
        """At start-up: see :meth:`generation.recording.Recorder.requeue_at_start`."""
        await self.recorder.requeue_at_start(self.max_attempts)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="easel-worker")

    def statuses(self) -> list[WorkerStatus]:
        """The engine's own worker thread, as ``easel workers`` shows it."""
        running = self._current
        return [
            WorkerStatus(
                name="local",
                state="rendering" if running else "loading" if self._preloading else "idle",
                device=self.backend.device_name,
                loaded=loaded_models(self.backend),
                current=running,
                jobs_per_minute=self._finished.per_minute(),
            )
        ]

    def preload(self, model: ModelSource) -> asyncio.Future[None]:
        """Load ``model`` on the worker thread ahead of the first job (jobs queue behind it)."""

        def load() -> None:
            self._preloading += 1
            try:
                self.backend.preload(model)
            except Exception as error:  # the first job using it reports the reason
                log.warning("could not preload model %s: %s", model.name, error)
            finally:
                self._preloading -= 1

        future = asyncio.get_running_loop().run_in_executor(self._executor, load)
        self._preloads.add(future)
        future.add_done_callback(self._preloads.discard)
        return future

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
            if self._preloads:  # a model is loading: the jobs wait in the queue, in their place
                await self.queue.return_items(batch)
                await asyncio.wait(set(self._preloads))
                continue
            self._idle.clear()
            job_ids = [item.job_id for item in batch]
            self._current = tuple(job_ids)
            try:
                await self._run_batch(job_ids)
            except Exception as error:  # never let one batch kill the worker, nor hang its jobs
                log.exception("worker: unexpected error around batch %s", job_ids)
                stuck = [job_id for job_id in job_ids if self.queue.is_running(job_id)]
                await self.recorder.failed(
                    stuck, f"internal error: {type(error).__name__}: {error}"
                )
            finally:
                self._current = ()
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
                await self.recorder.failed([job_id], f"could not start: {error}")
                continue
            if job is None:  # cancelled while it was being taken: it ends here
                await self.recorder.taken_but_cancelled(job_id)
                continue
            self.bus.publish(JobStarted(job))
            jobs.append(job)
        if not jobs:
            return
        await self._render_and_record(jobs, started)

    async def _render_and_record(self, jobs: list[JobRecord], started: float) -> None:
        job_ids = [job.id for job in jobs]
        try:
            models: dict[str, ModelSource] = {}  # a batch shares its model: look it up once
            render_jobs = [await self._render_job(job, models) for job in jobs]
            loop = asyncio.get_running_loop()
            outcomes = await loop.run_in_executor(self._executor, self._render, jobs, render_jobs)
        except JobInterrupted:
            await self.recorder.interrupted(job_ids)
            return
        except EaselError as error:
            await self.recorder.failed(job_ids, error.message)
            return
        except Exception as error:
            log.exception("worker: job(s) %s failed", job_ids)
            await self.recorder.failed(job_ids, f"{type(error).__name__}: {error}")
            return
        seconds = (time.monotonic() - started) / len(jobs)
        if not self._overlaps_recording():
            await self._record(jobs, outcomes, seconds)
            return
        await self._recorded(keep=MAX_PENDING_RECORDINGS - 1)
        task = asyncio.create_task(self._record(jobs, outcomes, seconds), name="easel-record")
        self._recordings.add(task)
        task.add_done_callback(self._recordings.discard)

    def _overlaps_recording(self) -> bool:
        """Record batch k while batch k+1 renders: on a GPU. On a CPU the recorder would take
        a core from torch (measured: renders ~25% slower, no net gain). ``None`` (the default)
        decides by the device once the backend is built."""
        if self.overlap_recording is not None:
            return self.overlap_recording
        return self.backend.device_name not in ("cpu", LOADING, "")

    async def _record(self, jobs: list[JobRecord], outcomes: list[Outcome], seconds: float) -> None:
        """Encode and store a rendered batch's images, then mark its jobs succeeded."""
        loop = asyncio.get_running_loop()
        for job, outcome in zip(jobs, outcomes, strict=True):
            if not isinstance(outcome, Rendered):
                await self.recorder.failed([job.id], outcome.reason)
                continue
            try:
                pngs = await loop.run_in_executor(
                    self._recorder, job_pngs, RenderMeta.of(job), outcome.images
                )
            except Exception as error:
                log.exception("worker: could not encode the images of job %s", job.id)
                await self.recorder.failed([job.id], f"could not store the images: {error}")
                continue
            await self.recorder.succeeded(job, pngs, seconds)
            self._finished.add()

    async def _render_job(self, job: JobRecord, models: dict[str, ModelSource]) -> RenderJob:
        spec = job.spec
        init_image = None
        if spec.init_image is not None:
            init_image = await asyncio.to_thread(self._load_image, spec.init_image)
        mask = None
        if spec.mask_image is not None:
            mask = await asyncio.to_thread(self._load_image, spec.mask_image, "L")
        sources = await render_sources(self.store, spec, models)
        return RenderJob(
            spec=spec,
            model=sources.model,
            init_image=init_image,
            upscaler=sources.upscaler,
            refiner=sources.refiner,
            mask_image=mask,
            addon_files=await addon_files(self.store, spec),
        )

    def _load_image(self, sha256: str, mode: str = "RGB") -> Image.Image:
        return Image.open(io.BytesIO(self.images.read(sha256))).convert(mode)

    def _render(self, jobs: list[JobRecord], render_jobs: list[RenderJob]) -> list[Outcome]:
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

        return render_all(self.backend, render_jobs, progress, should_stop)
