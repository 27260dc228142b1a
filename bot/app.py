"""The composition root: builds store, queue, service, worker and the front ends from a Config.

    app = App.from_config(load_config(None))
    await app.start()          # migrations, recovery, worker thread
    accepted = await app.service.draw(origin, DrawRequest("a castle at dusk"))
    await app.stop()           # running job finishes (or is re-queued), database closed

``start(worker=False)`` opens only the store (read-only CLI commands, admin tools), so torch is
not even imported. ``start(front_ends=True)`` (``easel serve``) also preloads the default model
and starts the configured front ends: the web server when ``web.enabled``, the Discord and
Telegram bots when their token variables are set.

Front ends get the App but use only ``app.config``, ``app.service`` (the one door into the
engine) and ``app.delivery`` (to register for their platform's results); the engine's parts
(``store``, ``images``, ``queue``, ``bus``, ``worker``) are the App's own and the tests'.

Stopping keeps every accepted job and every result that went out: admissions stop; the running
batch gets ``shutdown_grace_seconds`` to finish (else it is re-queued); deliveries under way
finish and are recorded (so a restart never sends a result twice); then the front ends stop,
then the database closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from bot.config import Config
from bot.logsetup import redactor
from generation.clock import Clock, SystemClock
from generation.delivery import DeliveryDispatcher
from generation.errors import EngineBusy, InvalidRequest
from generation.events import EventBus
from generation.lazy_backend import LazyBackend
from generation.model_sources import inspect_source, inspect_upscaler
from generation.queue import JobQueue
from generation.render import Backend, ModelSource
from generation.service import Service
from generation.worker import Worker, model_source
from generation.workers import EngineWorker
from storage.db import Database
from storage.images import ImageStore
from storage.repository import Store

if TYPE_CHECKING:
    from bot.discord import DiscordRunner
    from bot.telegram import TelegramApplication
    from bot.web.server import WebServer

log = logging.getLogger(__name__)


class EngineLock:
    """An exclusive lock on the data directory: one worker per database and GPU."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "engine.lock"
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise EngineBusy(
                f"Another Easel engine (pid {holder}) is already running on {self.path.parent}. "
                "Stop it first, or send your request to it (its web page or API)."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def diffusers_backend(config: Config, previews_wanted: Callable[[], bool] | None = None) -> Backend:
    """The diffusion backend ``[generation]`` describes (the engine's, or ``easel worker``'s).
    ``previews_wanted``: whether anyone looks at step previews now (None: always make them,
    when ``generation.previews`` is on)."""
    from generation.backend import DiffusersBackend  # imports torch: only when needed

    g = config.generation
    previews: bool | Callable[[], bool] = g.previews
    if g.previews and previews_wanted is not None:
        previews = previews_wanted
    return DiffusersBackend(
        data_dir=config.data_dir,
        device=g.device,
        dtype=g.dtype,
        resident_models=g.resident_models,
        previews=previews,
        allow_unsafe_weights=g.allow_unsafe_weights,
        cpu_threads=g.cpu_threads,
        compile_unet=g.compile,
        max_batch_images=g.max_batch * g.max_count,
        preview_decoder=g.preview_decoder.strip(),
        resident_memory_gb=g.resident_memory_gb,
        offload=g.offload,
    )


async def copy_store(config: Config, target_url: str) -> tuple[dict[str, int], str, str]:
    """``easel db copy``: everything in this Easel's database into another, empty one.
    Returns rows per table and both databases' names (without passwords)."""
    from sqlalchemy.exc import ArgumentError

    from storage.copy import copy_database

    try:
        target = Database(target_url)
    except (ValueError, ArgumentError) as error:
        raise InvalidRequest(f"--to: {error}") from None
    lock = EngineLock(config.data_dir)  # a running engine would go on writing the source
    lock.acquire()
    source = Database(config.database_url)
    try:
        for database in (source, target):
            await database.connect()
            if not await database.claim_engine():
                raise EngineBusy(
                    f"An Easel engine is running on {database.describe()}: stop it first."
                )
        counts = await copy_database(source, target)
    finally:
        await source.close()
        await target.close()
        lock.release()
    return counts, source.describe(), target.describe()


class App:
    def __init__(
        self, config: Config, *, backend: Backend | None = None, clock: Clock | None = None
    ) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.db = Database(config.database_url)
        self.store = Store(self.db, now=self.clock.now)
        self.images = ImageStore(config.data_dir / "images")
        self.bus = EventBus()
        self.queue = JobQueue(self.clock, config.generation.initial_job_seconds)
        self._backend = backend
        self._lock = EngineLock(config.data_dir)
        self.worker: EngineWorker | None = None
        self.delivery = DeliveryDispatcher(
            self.store,
            self.bus,
            redact=redactor(config.secret_env_vars),
            on_failure=lambda platform, permanent: self.service.metrics.delivery_failed(
                platform, permanent
            ),
        )
        self.service = Service(
            generation=config.generation,
            limits=config.limits,
            store=self.store,
            images=self.images,
            queue=self.queue,
            bus=self.bus,
            clock=self.clock,
            inspect_model=self._inspect_model,
            inspect_upscaler=self._inspect_upscaler,
            addon_folder=config.data_dir / "addons",
        )
        self.web_server: WebServer | None = None
        self.discord: DiscordRunner | None = None
        self.telegram: TelegramApplication | None = None
        self.started = False

    @classmethod
    def from_config(cls, config: Config, **kwargs: Any) -> App:
        return cls(config, **kwargs)

    # ------------------------------------------------------------------ backend

    @property
    def backend(self) -> Backend:
        """The diffusion backend, built on first use on the worker's thread (torch and
        diffusers import there, in the background: the front ends answer at once)."""
        if self._backend is None:
            self._backend = LazyBackend(
                lambda: diffusers_backend(self.config, self.bus.previews_wanted)
            )
        return self._backend

    def _inspect_model(self, name: str, source: str, config: str | None) -> ModelSource:
        unsafe = self.config.generation.allow_unsafe_weights
        return inspect_source(name, source, config, allow_unsafe_weights=unsafe)

    def _inspect_upscaler(self, name: str, path: str) -> ModelSource:
        unsafe = self.config.generation.allow_unsafe_weights
        return inspect_upscaler(name, path, allow_unsafe_weights=unsafe)

    # ------------------------------------------------------------------ lifecycle

    async def start(self, *, worker: bool = True, front_ends: bool = False) -> None:
        """Open the store; with ``worker`` also recover interrupted jobs and render; with
        ``front_ends`` also preload the default model and start the configured front ends."""
        if front_ends and self.config.web.enabled:
            from bot.web.auth import AuthPolicy

            AuthPolicy.from_config(self.config.web)  # refuse an unprotected public address first
        if worker:
            self._lock.acquire()
        try:
            self.config.data_dir.mkdir(parents=True, exist_ok=True)
            await self.db.connect()
            if worker and not await self.db.claim_engine():
                raise EngineBusy(
                    f"Another Easel engine is already running on {self.db.describe()}. "
                    "Stop it first: one engine per database (add GPUs with `easel worker`)."
                )
            await self._register_demo_model()
            await self.store.warm_up()  # the first requests do not compile the hot statements
            if worker:
                await self._start_worker()
        except BaseException:
            with contextlib.suppress(Exception):
                await self.db.close()
            self._lock.release()
            raise
        self.started = True
        if front_ends:
            try:
                await self._start_front_ends()
            except BaseException:
                await self.stop()
                raise

    async def _register_demo_model(self) -> None:
        from generation.demo_info import DEMO_DEFAULTS, DEMO_NAME, DEMO_REVISION, DEMO_SOURCE

        if await self.store.list_models():
            return
        await self.store.add_model(
            name=DEMO_NAME,
            source=DEMO_SOURCE,
            kind="builtin",
            revision=DEMO_REVISION,
            config=None,
            default_width=DEMO_DEFAULTS.width,
            default_height=DEMO_DEFAULTS.height,
            default_steps=DEMO_DEFAULTS.steps,
            default_cfg=DEMO_DEFAULTS.cfg,
            default_sampler=DEMO_DEFAULTS.sampler,
        )
        await self.store.set_default_model(DEMO_NAME)
        log.info("registered the built-in demo model as the default (its images look like noise)")

    async def _start_worker(self) -> None:
        self.bus.bind(asyncio.get_running_loop())
        # A kill mid-save leaves a temporary image file. Only the engine (which holds the lock)
        # writes images, so none of them is being written now; their jobs are re-queued below.
        removed = await asyncio.to_thread(self.images.remove_temp_files)
        if removed:
            log.warning("removed %d half-written image file(s) left by the last stop", removed)
        self.worker = self._make_worker()
        self.service.attach_workers(self.worker.statuses)
        await self.worker.recover()
        self.worker.start()
        self.service.progress.start()
        self.service.metrics.start()
        await self.delivery.start()

    def _make_worker(self) -> EngineWorker:
        """The engine's own worker thread, or, with ``[cluster]`` set, the dispatcher that
        hands batches to ``easel worker`` processes through Redis (no torch here then)."""
        g = self.config.generation
        broker_url = self.config.cluster.broker()
        if broker_url:
            from cluster.broker import Broker
            from cluster.dispatcher import ClusterWorker

            return ClusterWorker(
                store=self.store,
                images=self.images,
                queue=self.queue,
                bus=self.bus,
                broker=Broker(broker_url, self.config.cluster.prefix),
                config=self.config.cluster,
                max_batch=g.max_batch,
                max_attempts=g.max_attempts,
            )
        return Worker(
            store=self.store,
            images=self.images,
            queue=self.queue,
            bus=self.bus,
            backend=self.backend,
            max_batch=g.max_batch,
            max_attempts=g.max_attempts,
        )

    async def _start_front_ends(self) -> None:
        from bot.discord import start_discord
        from bot.telegram import start_telegram
        from bot.web.server import start_web

        default = await self.store.default_model()
        if default is not None and self.worker is not None:
            self.worker.preload(model_source(default))  # keep the default model resident
        if self.config.web.enabled:
            self.web_server = await start_web(self)
        self.discord = start_discord(self)  # when the token variable is set
        self.telegram = await start_telegram(self)  # likewise
        log.info(
            "Easel engine running (data dir %s, default model %s)",
            self.config.data_dir,
            default.name if default else "none",
        )
        if self.web_server is None and self.discord is None and self.telegram is None:
            log.warning("no front end is enabled: the engine only works through the queue")

    async def _stop_front_ends(self) -> None:
        from bot.telegram import stop_application

        if self.telegram is not None:
            await stop_application(self.telegram)
            self.telegram = None
        if self.discord is not None:
            await self.discord.stop()
            self.discord = None
        if self.web_server is not None:
            await self.web_server.stop()
            self.web_server = None

    async def stop(self) -> None:
        """Stop in the order that loses nothing (see the module's docstring)."""
        self.service.accepting = False
        grace = self.config.generation.shutdown_grace_seconds
        if self.worker is not None:
            await self.worker.stop(grace)
            self.worker = None
        await self.delivery.drain(timeout=max(grace, 5.0))
        await self._stop_front_ends()
        await self.delivery.stop()  # unsent results stay undelivered: sent at the next start
        await self.service.progress.stop()
        await self.service.metrics.stop()
        self.service.attach_workers(list)
        try:
            await self.db.close()
        except Exception:
            log.exception(
                "closing the database failed; SQLite recovers its journal at the next start"
            )
        self._lock.release()
        self.started = False
