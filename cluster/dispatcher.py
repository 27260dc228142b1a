"""The engine's side of the cluster: hands fair batches to ``easel worker`` processes through
Redis and records what comes back, exactly as the engine's own worker would.

Four loops while the engine runs:

* **dispatch**: when a live worker has a free slot (:data:`cluster.routing.SLOTS`: the batch it
  renders and one behind it), take the next fair batch — the user with the fewest jobs in
  flight across the cluster first — and give it to the best worker for its model
  (:func:`cluster.routing.choose_worker`). When every slot is taken and a newcomer waits, one
  batch not started yet goes back to the queue (:func:`cluster.routing.recall_candidate`).
* **results**: a worker's "started" marks the batch's jobs running (``JobStarted``); each
  outcome is recorded by :class:`generation.recording.Recorder` (PNG files saved here, the
  store updated, ``JobFinished`` published). A result for a batch the engine no longer holds
  (taken back, or re-run elsewhere after its worker went silent) is ignored: one result per job.
* **watch**: heartbeats. A worker silent past ``heartbeat_timeout_seconds``, or a batch held
  past ``job_timeout_seconds``, loses its batches: their jobs go back to the queue (a started
  one counts an attempt; after ``max_attempts`` it fails with the reason).
* **progress**: workers' step progress and previews become ``JobProgress`` events.

A cancel of a job that left the queue takes its batch back if nobody started it, else tells the
worker, which stops at the next step. Stopping the engine leaves batches with their workers:
their results wait in Redis, and :meth:`ClusterWorker.recover` takes them up at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from cluster.addon_share import share
from cluster.broker import REDIS_DOWN, RETRY_PAUSE, Broker, until_redis
from cluster.config import ClusterConfig
from cluster.protocol import (
    STARTED,
    BatchOrder,
    Outcome,
    Started,
    Ticket,
    WorkerInfo,
    parse_progress,
)
from cluster.routing import (
    BatchView,
    WorkerView,
    can_ever_render,
    choose_worker,
    recall_candidate,
)
from generation.addons import addon_files
from generation.events import EventBus, JobFinished, JobProgress, JobStarted
from generation.queue import JobQueue, queued_item
from generation.recording import Recorder
from generation.render import ModelSource
from generation.rendering import RenderMeta
from generation.scheduler import QueuedItem
from generation.worker import model_source, render_sources
from generation.workers import WorkerStatus
from storage.images import ImageStore
from storage.records import JobRecord
from storage.repository import Store

log = logging.getLogger(__name__)

MODELS_EVERY = 10.0  # seconds between two copies of the registry for the workers
T = TypeVar("T")


@dataclass
class Batch:
    batch_id: str
    worker: str
    items: list[QueuedItem]
    order: int
    sent_wall: float  # unix time it was assigned
    started: bool = False
    started_at: float = 0.0  # monotonic
    pending: set[str] = field(default_factory=set)  # jobs without an outcome yet

    @property
    def job_ids(self) -> list[str]:
        return [item.job_id for item in self.items]

    @property
    def users(self) -> frozenset[str]:
        return frozenset(item.user_key for item in self.items if item.job_id in self.pending)


class ClusterWorker:
    def __init__(
        self,
        *,
        store: Store,
        images: ImageStore,
        queue: JobQueue,
        bus: EventBus,
        broker: Broker,
        config: ClusterConfig,
        max_batch: int,
        max_attempts: int,
    ) -> None:
        self.store = store
        self.images = images
        self.queue = queue
        self.bus = bus
        self.broker = broker
        self.config = config
        self.max_batch = max_batch
        self.max_attempts = max_attempts
        self.recorder = Recorder(store=store, images=images, queue=queue, bus=bus)
        self.batches: dict[str, Batch] = {}
        self.workers: dict[str, WorkerInfo | None] = {}
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._warned_models: set[str] = set()
        self.late_results = 0  # results ignored: their batch was taken back or re-run
        self._models_sent = 0.0

    # ------------------------------------------------------------------ lifecycle

    async def recover(self) -> None:
        """Take up what the last run left: batches still with workers stay theirs (their
        results wait in Redis); running jobs nobody holds go back to the queue (or fail after
        ``max_attempts``); every other queued job joins the fair queue."""
        await self._until_redis(self.broker.open_results)
        in_flight = await self._until_redis(self.broker.batches)
        kept: set[str] = set()
        for batch_id, stored in in_flight.items():
            jobs = [job for job in [await self.store.get_job(j) for j in stored["jobs"]] if job]
            live = [job for job in jobs if not job.is_terminal]
            if not live:
                await self._until_redis(partial(self.broker.drop, batch_id))
                continue
            batch = Batch(
                batch_id=batch_id,
                worker=stored["worker"],
                items=[queued_item(job) for job in live],
                order=next(self._order),
                sent_wall=stored["sent_at"],
                started=stored["state"] == STARTED,
                started_at=time.monotonic(),
                pending={job.id for job in live},
            )
            self.batches[batch_id] = batch
            kept |= batch.pending
            for job in live:
                self.queue.mark_taken(job)
        await self.recorder.requeue_at_start(self.max_attempts, keep=frozenset(kept))
        if self.batches:
            log.info("%d batch(es) still with their workers", len(self.batches))

    def start(self) -> None:
        self.queue.stop_listeners.append(self._on_stop_request)
        self.queue.put_listeners.append(self._wake.set)
        for loop, name in (
            (self._dispatch, "easel-dispatch"),
            (self._results, "easel-results"),
            (self._watch, "easel-watch"),
            (self._progress, "easel-progress-relay"),
        ):
            self._tasks.append(asyncio.create_task(loop(), name=name))

    async def stop(self, grace_seconds: float) -> None:
        """Stop handing out work; batches stay with their workers (results wait in Redis)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        with contextlib.suppress(ValueError):
            self.queue.stop_listeners.remove(self._on_stop_request)
        with contextlib.suppress(ValueError):
            self.queue.put_listeners.remove(self._wake.set)
        await self.broker.close()

    def preload(self, model: ModelSource) -> None:
        """Workers load models when a batch needs one (the engine holds no GPU)."""

    def statuses(self) -> list[WorkerStatus]:
        out = []
        for name, info in sorted(self.workers.items()):
            if info is None:
                out.append(WorkerStatus(name=name, state="down"))
                continue
            out.append(
                WorkerStatus(
                    name=name,
                    state=info.state,
                    device=info.device,
                    loaded=info.loaded,
                    can_load=info.can_load,
                    current=info.current,
                    jobs_per_minute=info.jobs_per_minute,
                    memory_gb=info.memory_gb,
                    free_memory_gb=info.free_memory_gb,
                    host=info.host,
                )
            )
        return out

    async def _until_redis(self, call: Callable[[], Awaitable[T]]) -> T:
        return await until_redis(call, "cluster")

    # ------------------------------------------------------------------ views

    def _in_flight(self) -> Counter[str]:
        return Counter(
            item.user_key
            for batch in self.batches.values()
            for item in batch.items
            if item.job_id in batch.pending
        )

    def _worker_views(self) -> list[WorkerView]:
        held = Counter(batch.worker for batch in self.batches.values())
        now = time.monotonic()
        busy_since: dict[str, float] = {}  # a batch not started yet starts now
        for batch in self.batches.values():
            since = batch.started_at if batch.started else now
            busy_since[batch.worker] = min(busy_since.get(batch.worker, since), since)
        return [
            WorkerView(
                name=name,
                alive=info is not None,
                held=held[name],
                loaded=frozenset(info.loaded) if info else frozenset(),
                can_load=frozenset(info.can_load) if info and info.can_load is not None else None,
                busy_since=busy_since.get(name, 0.0),
            )
            for name, info in self.workers.items()
        ]

    def _batch_views(self) -> list[BatchView]:
        return [
            BatchView(b.batch_id, b.worker, b.users, b.started, b.order)
            for b in self.batches.values()
            if b.pending
        ]

    # ------------------------------------------------------------------ dispatch

    async def _dispatch(self) -> None:
        while True:
            if not any(view.free for view in self._worker_views()):
                await self._maybe_recall()
                await self._idle()
                continue
            items = await self.queue.take_batch(self.max_batch, self._in_flight)
            model = items[0].model
            views = self._worker_views()
            worker = choose_worker(views, model)
            if worker is None:  # no free worker can load it (yet): it waits in the queue
                await self.queue.return_items(items)
                if not can_ever_render(views, model) and model not in self._warned_models:
                    log.warning("cluster: no live worker can load model %r; its jobs wait", model)
                    self._warned_models.add(model)
                await self._idle()
                continue
            try:
                await self._assign(worker, items)
            except Exception:
                log.exception("cluster: could not hand batch %s to %s", items, worker)
                await self.queue.return_items(items)
                await asyncio.sleep(RETRY_PAUSE)

    async def _idle(self) -> None:
        """Until something changes (a slot frees, a worker beats, a job is queued)."""
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=self.config.heartbeat_seconds)

    async def _assign(self, worker: str, items: list[QueuedItem]) -> None:
        jobs: list[JobRecord] = []
        for item in items:
            job = await self.store.get_job(item.job_id)
            if job is None or job.is_terminal:  # cancelled while it was being taken
                await self.recorder.taken_but_cancelled(item.job_id)
                continue
            jobs.append(job)
        if not jobs:
            return
        try:
            models: dict[str, ModelSource] = {}  # a batch shares its model: look it up once
            tickets = tuple([await self._ticket(job, models) for job in jobs])
        except Exception as error:  # a model removed meanwhile, an unreadable init image
            await self.recorder.failed([job.id for job in jobs], str(error))
            return
        kept = [item for item in items if item.job_id in {job.id for job in jobs}]
        batch = Batch(
            batch_id=uuid.uuid4().hex[:16],
            worker=worker,
            items=kept,
            order=next(self._order),
            sent_wall=time.time(),
            pending={job.id for job in jobs},
        )
        self.batches[batch.batch_id] = batch  # before Redis: a fast "started" finds it
        try:
            await self._until_redis(
                lambda: self.broker.assign(worker, BatchOrder(batch.batch_id, tickets))
            )
        except BaseException:
            self.batches.pop(batch.batch_id, None)
            raise
        log.debug("cluster: batch %s (%s) to %s", batch.batch_id, batch.job_ids, worker)

    async def _ticket(self, job: JobRecord, models: dict[str, ModelSource]) -> Ticket:
        spec = job.spec
        sources = await render_sources(self.store, spec, models)
        addons = await addon_files(self.store, spec)  # LoRA / embeddings: bytes via Redis
        await self._until_redis(partial(share, self.broker, addons))
        init = None
        if spec.init_image is not None:
            init = await asyncio.to_thread(self.images.read, spec.init_image)
        mask = None
        if spec.mask_image is not None:
            mask = await asyncio.to_thread(self.images.read, spec.mask_image)
        return Ticket(
            RenderMeta.of(job), sources.model, sources.upscaler, init, mask, sources.refiner, addons
        )

    async def _maybe_recall(self) -> None:
        next_user = self.queue.next_user(self._in_flight())
        if next_user is None:
            return
        while (candidate := self._recall_candidate(next_user)) is not None:
            if await self._until_redis(partial(self.broker.recall, candidate)):
                break
            # Its worker started it a moment ago (the "started" notice is on its way): say so
            # here already, and take back the next candidate instead.
            recalled = self.batches[candidate]
            recalled.started, recalled.started_at = True, time.monotonic()
        else:
            return
        batch = self.batches.pop(candidate)
        await self.queue.return_items([i for i in batch.items if i.job_id in batch.pending])
        log.debug(
            "cluster: batch %s taken back from %s for a waiting user", candidate, batch.worker
        )

    def _recall_candidate(self, next_user: str) -> str | None:
        busy_since = {view.name: view.busy_since for view in self._worker_views()}
        return recall_candidate(next_user, self._batch_views(), busy_since)

    def _on_stop_request(self, job_id: str) -> None:
        if any(job_id in batch.pending for batch in self.batches.values()):
            asyncio.get_running_loop().create_task(self._stop_job(job_id))

    async def _stop_job(self, job_id: str) -> None:
        """A job that left the queue was cancelled: take its batch back if nobody started it,
        else tell its worker (it stops at the next step and says "interrupted")."""
        batch = next((b for b in self.batches.values() if job_id in b.pending), None)
        if batch is None:
            return
        if not batch.started and await self._until_redis(
            lambda: self.broker.recall(batch.batch_id)
        ):
            self.batches.pop(batch.batch_id, None)
            others = [i for i in batch.items if i.job_id in batch.pending and i.job_id != job_id]
            await self.queue.return_items(others)
            await self.recorder.announce_final(job_id)
            self._wake.set()
            return
        await self._until_redis(lambda: self.broker.cancel([job_id]))

    # ------------------------------------------------------------------ results

    async def _results(self) -> None:
        while True:
            try:
                entries = await self.broker.read_results(block_ms=1000)
            except REDIS_DOWN:
                await asyncio.sleep(RETRY_PAUSE)
                continue
            for entry_id, entry in entries:
                try:
                    if isinstance(entry, Started):
                        await self._started(entry)
                    else:
                        await self._outcome(entry)
                except Exception:
                    log.exception("cluster: could not take up a result (%s)", entry)
                await self._until_redis(partial(self.broker.ack_result, entry_id))

    def _holds(self, batch_id: str, worker: str) -> Batch | None:
        batch = self.batches.get(batch_id)
        return batch if batch is not None and batch.worker == worker else None

    async def _started(self, entry: Started) -> None:
        batch = self._holds(entry.batch_id, entry.worker)
        if batch is None:
            return
        batch.started, batch.started_at = True, time.monotonic()
        self.queue.started(batch.pending)  # its time left counts from now, not from dispatch
        for job_id in list(batch.pending):
            job = await self.store.mark_running(job_id)
            if job is not None:
                self.bus.publish(JobStarted(job))
                continue
            current = await self.store.get_job(job_id)
            if current is not None and current.status == "running":
                continue  # the engine restarted after marking it: nothing changed
            batch.pending.discard(job_id)  # cancelled while it waited on the worker
            await self.recorder.taken_but_cancelled(job_id)
            await self._until_redis(partial(self.broker.cancel, [job_id]))
        await self._maybe_finished(batch)

    async def _outcome(self, outcome: Outcome) -> None:
        batch = self._holds(outcome.batch_id, outcome.worker)
        if batch is None or outcome.job_id not in batch.pending:
            self.late_results += 1
            log.info(
                "cluster: ignored a late result of job %s from %s (it was taken back or re-run)",
                outcome.job_id,
                outcome.worker,
            )
            return
        batch.pending.discard(outcome.job_id)
        try:
            await self._record(outcome)
        except asyncio.CancelledError:
            # The engine is stopping mid-record: the batch stays (here and in Redis) and the
            # unacknowledged result is taken up again by the next engine.
            batch.pending.add(outcome.job_id)
            raise
        except Exception:
            await self._maybe_finished(batch)
            raise
        await self._maybe_finished(batch)

    async def _record(self, outcome: Outcome) -> None:
        job = await self.store.get_job(outcome.job_id)
        if job is None:
            self.queue.finished(outcome.job_id, None)
            return
        if job.is_terminal:  # cancelled meanwhile, or recorded before an engine restart
            if self.queue.stop_requested(job.id):
                await self.recorder.announce_final(job.id)
            else:
                self.queue.finished(job.id, None)
            return
        if outcome.status == "succeeded":
            await self.recorder.succeeded(job, outcome.pngs, outcome.seconds)
        elif outcome.status == "failed":
            await self.recorder.failed([job.id], outcome.error or "the worker failed")
        elif self.queue.stop_requested(job.id):  # interrupted: cancelled
            await self.recorder.announce_final(job.id)
        else:  # interrupted: the worker is stopping; render it elsewhere
            await self._requeue(job.id, "its worker stopped", None)

    async def _maybe_finished(self, batch: Batch) -> None:
        if batch.pending or self.batches.get(batch.batch_id) is not batch:
            return
        del self.batches[batch.batch_id]
        await self._until_redis(lambda: self.broker.drop(batch.batch_id))
        await self._until_redis(lambda: self.broker.forget_cancelled(batch.job_ids))
        self._wake.set()

    async def _requeue(self, job_id: str, reason: str, item: QueuedItem | None) -> None:
        """A job whose batch was lost goes back to the fair queue: one never started to the
        front of its user's queue (``item``), a started one counting an attempt (it fails once
        ``max_attempts`` runs were lost)."""
        job = await self.store.get_job(job_id)
        if job is None or job.is_terminal:
            self.queue.finished(job_id, None)
            return
        if job.status == "queued" and item is not None:
            await self.queue.return_items([item])
            return
        if job.status == "running":
            job = await self.store.requeue_lost(job_id, self.max_attempts, reason)
        self.queue.finished(job_id, None)
        if job.is_terminal:
            self.bus.publish(JobFinished(job))
        else:
            await self.queue.put(job)

    # ------------------------------------------------------------------ watch

    async def _watch(self) -> None:
        while True:
            try:
                self.workers = await self.broker.workers()
                # Waiting times: as many batches render at once as workers are alive.
                self.queue.lanes = max(1, sum(info is not None for info in self.workers.values()))
                await self._publish_models()
            except REDIS_DOWN:
                await asyncio.sleep(RETRY_PAUSE)
                continue
            self._wake.set()
            await self._reap()
            await asyncio.sleep(self.config.heartbeat_seconds)

    async def _publish_models(self) -> None:
        now = time.monotonic()
        if now - self._models_sent < MODELS_EVERY:
            return
        models = [model_source(m) for m in await self.store.list_models()]
        await self.broker.publish_models(models)
        self._models_sent = now

    async def _reap(self) -> None:
        """Batches whose worker went silent, or that a worker held too long, run elsewhere."""
        now = time.time()
        silent = {name for name, info in self.workers.items() if info is None}
        for batch in list(self.batches.values()):
            if batch.worker in silent or batch.worker not in self.workers:
                reason = "its worker stopped responding"
            elif now - batch.sent_wall > self.config.job_timeout_seconds:
                reason = f"its worker held it over {self.config.job_timeout_seconds:g} s"
            else:
                continue
            log.warning(
                "cluster: batch %s of %s: %s; rendering it elsewhere",
                batch.batch_id,
                batch.worker,
                reason,
            )
            await self._lose(batch, reason)
        for name in silent:
            if not any(b.worker == name for b in self.batches.values()):
                with contextlib.suppress(*REDIS_DOWN):
                    await self.broker.purge_work(name)
                    await self.broker.forget_worker(name)

    async def _lose(self, batch: Batch, reason: str) -> None:
        self.batches.pop(batch.batch_id, None)
        await self._until_redis(lambda: self.broker.drop(batch.batch_id))
        for item in batch.items:
            if item.job_id in batch.pending:
                await self._requeue(item.job_id, reason, item)
        self._wake.set()

    # ------------------------------------------------------------------ progress

    async def _progress(self) -> None:
        while True:
            try:
                pubsub = self.broker.redis.pubsub()
                await pubsub.subscribe(self.broker.keys.progress)
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    batch_id, job_ids, step, total, preview = parse_progress(message["data"])
                    batch = self.batches.get(batch_id)
                    if batch is None:
                        continue
                    for job_id in job_ids:
                        if job_id in batch.pending:
                            self.bus.publish(JobProgress(job_id, step, total, preview))
            except REDIS_DOWN:
                await asyncio.sleep(RETRY_PAUSE)
