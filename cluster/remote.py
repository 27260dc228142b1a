"""``easel worker``: renders batches the engine sends through Redis, on this machine's GPU.

    worker = RemoteWorker(name="gpu1", broker=Broker(url), backend=backend, config=cluster)
    await worker.run(stop_event)

It needs no database: each batch carries everything (the spec, the model's source, the
starting image), and the finished PNG files go back to the engine, which records them. Loop:

* heartbeat every ``heartbeat_seconds`` (name, device, memory, the registered models it can
  load, the ones loaded now, what it renders, jobs per minute), expiring after
  ``heartbeat_timeout_seconds``: a worker that stops beating is taken for dead;
* take the next batch from its stream (first one it read before a restart and never finished),
  *claim* it (a batch the engine took back or gave to another worker is skipped), render it on
  a thread with the same backend code as the engine's own worker, send each job's outcome, then
  acknowledge the batch;
* stops: a cancelled job stops at the next step; on SIGTERM/Ctrl-C the running batch gets
  ``shutdown_grace_seconds``, then it is interrupted and goes back to the engine's queue.

Redis going away (a restart) only pauses it: every call is retried until Redis answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image

from cluster.addon_share import ReceivedAddOns
from cluster.broker import REDIS_DOWN, RETRY_PAUSE, Broker, until_redis
from cluster.config import ClusterConfig
from cluster.protocol import BatchOrder, Outcome, Ticket, WorkerInfo, progress_message
from generation.errors import JobInterrupted
from generation.render import Backend, ModelSource, RenderJob, loaded_models, memory_gb
from generation.rendering import Outcome as RenderOutcome
from generation.rendering import Rendered, job_pngs, render_all
from generation.workers import FinishedJobs

log = logging.getLogger(__name__)

PROGRESS_EVERY = 0.25  # seconds between two progress messages of one batch
T = TypeVar("T")


def loadable(models: list[ModelSource], offline: bool) -> tuple[str, ...]:
    """The registered models this machine could load: files and folders that exist here, Hub
    models in the local cache (or any, when it may download), and the built-in demo."""
    names = []
    for model in models:
        if model.kind == "builtin":
            ok = True
        elif model.kind == "folder":
            ok = Path(model.source).is_dir()
        elif model.kind in ("single_file", "upscaler"):
            ok = Path(model.source).is_file()
        elif model.kind == "hub":
            ok = not offline or _in_hub_cache(model)
        else:
            ok = False
        if ok:
            names.append(model.name)
    return tuple(names)


def _in_hub_cache(model: ModelSource) -> bool:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(model.source, "model_index.json", revision=model.revision)
    return isinstance(found, str)


class RemoteWorker:
    def __init__(
        self,
        *,
        name: str,
        broker: Broker,
        backend: Backend,
        config: ClusterConfig,
        addon_folder: Path,
        grace_seconds: float = 20.0,
    ) -> None:
        """``addon_folder``: where LoRA and embedding files received from the engine are kept
        (by hash: each is fetched once)."""
        self.name = name
        self.broker = broker
        self.backend = backend
        self.config = config
        self.grace_seconds = grace_seconds
        self._render_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="easel-render")
        self._encode_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="easel-encode")
        self._cancelled: set[str] = set()
        self._current: tuple[str, ...] = ()
        self._finished = FinishedJobs()
        self._abort = False  # interrupt the running batch now
        self._started_at = time.time()
        self._beat = 0
        self._can_load: tuple[str, ...] | None = None
        self._addons = ReceivedAddOns(addon_folder)

    # ------------------------------------------------------------------ lifecycle

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set; then finish (or, past the grace, interrupt) the batch."""
        await self._until_redis(lambda: self.broker.join(self.name))
        device = self.backend.device_name or "the device chosen at the first batch"
        log.info("worker %s: ready on %s", self.name, device)
        beats = asyncio.create_task(self._heartbeats(), name="easel-heartbeat")
        cancels = asyncio.create_task(self._cancels(), name="easel-cancels")
        work = asyncio.create_task(self._work(stop), name="easel-work")
        try:
            await stop.wait()
            log.info("worker %s: stopping", self.name)
            try:
                await asyncio.wait_for(asyncio.shield(work), timeout=self.grace_seconds)
            except TimeoutError:
                log.warning("worker %s: interrupting the running batch", self.name)
                self._abort = True
                await work
        finally:
            for task in (beats, cancels, work):
                task.cancel()
            await asyncio.gather(beats, cancels, work, return_exceptions=True)
            with contextlib.suppress(*REDIS_DOWN):
                await self.broker.forget_worker(self.name)
            self._render_thread.shutdown(wait=True)
            self._encode_thread.shutdown(wait=True)
            await asyncio.to_thread(self.backend.close)

    async def _until_redis(self, call: Callable[[], Awaitable[T]]) -> T:
        return await until_redis(call, f"worker {self.name}")

    # ------------------------------------------------------------------ heartbeats

    def info(self) -> WorkerInfo:
        total, free = memory_gb(self.backend)
        return WorkerInfo(
            name=self.name,
            device=self.backend.device_name,
            memory_gb=total,
            free_memory_gb=free,
            can_load=self._can_load,
            loaded=loaded_models(self.backend),
            state="rendering" if self._current else "idle",
            current=self._current,
            jobs_per_minute=self._finished.per_minute(),
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=self._started_at,
            beat=self._beat,
        )

    async def _heartbeats(self) -> None:
        ttl = self.config.heartbeat_timeout_seconds
        while True:
            try:
                if self._beat % 10 == 0:  # the registry changes rarely
                    models = await self.broker.models()
                    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
                    self._can_load = None if models is None else loadable(models, offline)
                await self.broker.heartbeat(self.info(), ttl)
                self._beat += 1
            except REDIS_DOWN as error:
                log.debug("worker %s: heartbeat failed (%s)", self.name, error)
            await asyncio.sleep(self.config.heartbeat_seconds)

    async def _cancels(self) -> None:
        while True:
            try:
                pubsub = self.broker.redis.pubsub()
                await pubsub.subscribe(self.broker.keys.cancel)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._cancelled.update(json.loads(message["data"]))
            except REDIS_DOWN:
                await asyncio.sleep(RETRY_PAUSE)

    # ------------------------------------------------------------------ work

    async def _work(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                item = await self.broker.next_work(self.name, block_ms=500)
            except REDIS_DOWN:
                await asyncio.sleep(RETRY_PAUSE)
                continue
            if item is None:
                continue
            entry_id, order = item
            try:
                await self._process(order)
            except Exception:
                log.exception("worker %s: batch %s failed unexpectedly", self.name, order.batch_id)
            finally:
                await self._until_redis(partial(self.broker.ack_work, self.name, entry_id))

    async def _process(self, order: BatchOrder) -> None:
        job_ids = [ticket.job_id for ticket in order.tickets]
        if not await self._until_redis(lambda: self.broker.claim(order.batch_id, self.name)):
            log.info("worker %s: batch %s was taken back; skipped", self.name, order.batch_id)
            return
        self._cancelled |= await self._until_redis(lambda: self.broker.cancelled_among(job_ids))
        started = time.monotonic()
        self._current = tuple(job_ids)
        loop = asyncio.get_running_loop()
        try:
            render_jobs = [
                replace(
                    _render_job(ticket),
                    addon_files=await self._addons.local_files(self.broker, ticket.addons),
                )
                for ticket in order.tickets
            ]
            outcomes = await loop.run_in_executor(
                self._render_thread, self._render, order.batch_id, job_ids, render_jobs, loop
            )
        except JobInterrupted:
            for job_id in job_ids:
                await self._send(Outcome(order.batch_id, job_id, self.name, "interrupted"))
            return
        except Exception as error:
            log.exception("worker %s: batch %s failed", self.name, order.batch_id)
            reason = f"{type(error).__name__}: {error}"
            for job_id in job_ids:
                await self._send(Outcome(order.batch_id, job_id, self.name, "failed", error=reason))
            return
        finally:
            self._current = ()
            self._cancelled.difference_update(job_ids)
        seconds = (time.monotonic() - started) / len(job_ids)
        for ticket, outcome in zip(order.tickets, outcomes, strict=True):
            await self._send(await self._outcome(order.batch_id, ticket, outcome, seconds))
            self._finished.add()

    async def _outcome(
        self, batch_id: str, ticket: Ticket, outcome: RenderOutcome, seconds: float
    ) -> Outcome:
        if not isinstance(outcome, Rendered):
            return Outcome(batch_id, ticket.job_id, self.name, "failed", error=outcome.reason)
        loop = asyncio.get_running_loop()
        pngs = await loop.run_in_executor(
            self._encode_thread, job_pngs, ticket.meta, outcome.images
        )
        return Outcome(batch_id, ticket.job_id, self.name, "succeeded", seconds, pngs=tuple(pngs))

    async def _send(self, outcome: Outcome) -> None:
        await self._until_redis(lambda: self.broker.send_outcome(outcome))

    def _render(
        self,
        batch_id: str,
        job_ids: list[str],
        render_jobs: list[RenderJob],
        loop: asyncio.AbstractEventLoop,
    ) -> list[RenderOutcome]:
        """Runs on the render thread; progress goes out at most every PROGRESS_EVERY s."""
        last = [0.0]

        def progress(step: int, total: int, preview: bytes | None) -> None:
            now = time.monotonic()
            if step < total and now - last[0] < PROGRESS_EVERY:
                return
            last[0] = now
            message = progress_message(batch_id, job_ids, step, total, preview)
            future = asyncio.run_coroutine_threadsafe(self.broker.publish_progress(message), loop)
            future.add_done_callback(_ignore_errors)

        def should_stop() -> bool:
            return self._abort or all(job_id in self._cancelled for job_id in job_ids)

        return render_all(self.backend, render_jobs, progress, should_stop)


def _render_job(ticket: Ticket) -> RenderJob:
    init = None
    if ticket.init_png is not None:
        init = Image.open(io.BytesIO(ticket.init_png)).convert("RGB")
    mask = None
    if ticket.mask_png is not None:
        mask = Image.open(io.BytesIO(ticket.mask_png)).convert("L")
    return RenderJob(
        spec=ticket.meta.spec,
        model=ticket.model,
        init_image=init,
        upscaler=ticket.upscaler,
        refiner=ticket.refiner,
        mask_image=mask,
    )


def _ignore_errors(future: Any) -> None:
    with contextlib.suppress(Exception):  # progress is a courtesy: Redis may be restarting
        future.result()
