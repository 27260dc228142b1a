"""Use cases: draw, rerun, reroll, upscale, vary, cancel, history and model administration.

Every request goes through :meth:`Service._admit`: policy checks, then the job row is written
(status ``queued``) *before* the caller is told it was accepted, then it enters the fair queue.
Rejections are raised as :class:`generation.errors.Rejected` subclasses with readable messages.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from bot.config import Config
from generation.clock import Clock
from generation.errors import (
    InvalidRequest,
    NotFound,
    PermissionDenied,
    Rejected,
    shown,
)
from generation.events import EventBus, JobFinished, JobQueued
from generation.limits import RateLimiter
from generation.policy import AdmissionPolicy, ScopeSettings, check_text, check_valid_text
from generation.queue import JobQueue
from generation.requests import DrawRequest, Origin
from generation.spec import MAX_SEED, VARY_STRENGTHS, Action, GenerationSpec, Mode
from generation.uploads import load_upload, reencode_png, upload_limit
from storage.images import ImageStore
from storage.records import (
    ImageRecord,
    JobRecord,
    ModelRecord,
    NewJob,
    ScopeRecord,
    UserRecord,
)
from storage.repository import Store

# Called at registration to classify a model source and compute its revision (backend.py).
ModelInspector = Callable[[str, str, str | None], Any]
UpscalerInspector = Callable[[str, str], Any]


@dataclass(frozen=True)
class Accepted:
    job: JobRecord
    position: int  # 0 = next to run
    eta_seconds: float


class Caller(NamedTuple):
    """Who is asking, as stored: looked up once per request."""

    user: UserRecord
    scope: ScopeRecord


@dataclass(frozen=True)
class QueueStatus:
    length: int
    running: int
    your_jobs: tuple[tuple[str, int, float], ...]  # (job id, position, eta seconds)


def random_seed() -> int:
    return secrets.randbelow(MAX_SEED + 1)


class Service:
    def __init__(
        self,
        *,
        config: Config,
        store: Store,
        images: ImageStore,
        queue: JobQueue,
        bus: EventBus,
        clock: Clock,
        inspect_model: ModelInspector | None = None,
        inspect_upscaler: UpscalerInspector | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.images = images
        self.queue = queue
        self.bus = bus
        self.clock = clock
        self._inspect_model = inspect_model
        self._inspect_upscaler = inspect_upscaler
        self._policy = AdmissionPolicy(config.generation)
        self._rate_limiters: dict[tuple[float, int], RateLimiter] = {}
        self._user_locks: dict[int, asyncio.Lock] = {}
        self.accepting = True
        self._admitting = 0  # admissions past the queue check, not yet in the queue

    # ------------------------------------------------------------------ identity

    async def _identify(self, origin: Origin) -> tuple[UserRecord, ScopeRecord]:
        user = await self.store.get_or_create_user(
            origin.platform, origin.user_id, origin.user_name
        )
        scope = await self.store.get_or_create_scope(
            origin.platform, origin.scope_id, origin.scope_name
        )
        return user, scope

    # ------------------------------------------------------------------ use cases

    async def draw(self, origin: Origin, request: DrawRequest) -> Accepted:
        check_text(request)  # before any of it reaches the database
        user, scope = await self._identify(origin)
        settings = ScopeSettings.from_dict(scope.settings)
        model = await self._choose_model(request.model, settings)
        init_sha = None
        if request.init_image is not None:
            limit = upload_limit(self.config, origin.platform)
            image = load_upload(request.init_image, max_bytes=limit)
            init_sha, _ = await asyncio.to_thread(self.images.save, reencode_png(image))
        spec = self._policy.build_spec(request, model, settings, init_sha, random_seed())
        return await self._admit(origin, user, scope, spec, Action.DRAW, model)

    async def rerun(self, origin: Origin, job_id: str) -> Accepted:
        parent, caller = await self._job_and_caller(origin, job_id)
        return await self._child(origin, caller, parent, parent.spec, Action.RERUN, None)

    async def reroll(self, origin: Origin, job_id: str) -> Accepted:
        parent, caller = await self._job_and_caller(origin, job_id)
        spec = parent.spec.with_seed(random_seed())
        return await self._child(origin, caller, parent, spec, Action.REROLL, None)

    async def upscale(self, origin: Origin, job_id: str, index: int = 0) -> Accepted:
        parent, caller = await self._job_and_caller(origin, job_id)
        image = self._parent_image(parent, index)
        upscaler = await self._latest_upscaler()
        spec = replace(
            parent.spec,
            mode=Mode.UPSCALE,
            width=image.width * 2,
            height=image.height * 2,
            seed=image.seed,
            count=1,
            strength=self.config.generation.upscale_strength,
            init_image=image.sha256,
            upscaler=upscaler.name if upscaler else "hires",
        )
        self._policy.check_upscale(spec)
        return await self._child(origin, caller, parent, spec, Action.UPSCALE, index)

    async def vary(
        self, origin: Origin, job_id: str, index: int = 0, strength: str = "subtle"
    ) -> Accepted:
        if strength not in VARY_STRENGTHS:
            raise InvalidRequest(
                f"Unknown variation strength {strength!r}: use {' or '.join(VARY_STRENGTHS)}."
            )
        parent, caller = await self._job_and_caller(origin, job_id)
        image = self._parent_image(parent, index)
        spec = replace(
            parent.spec,
            mode=Mode.IMG2IMG,
            width=image.width,
            height=image.height,
            seed=random_seed(),
            count=1,
            strength=VARY_STRENGTHS[strength],
            init_image=image.sha256,
            upscaler=None,
        )
        return await self._child(origin, caller, parent, spec, Action.VARY, index)

    async def cancel(self, origin: Origin, job_id: str) -> JobRecord:
        job, caller = await self._job_and_caller(origin, job_id)
        if job.user_id != caller.user.id and not origin.is_admin:
            raise PermissionDenied(
                f"Job {job.id} belongs to someone else; only they can cancel it."
            )
        if job.is_terminal:
            raise InvalidRequest(f"Job {job.id} has already finished ({job.status}).")
        cancelled = await self.store.cancel(job.id)
        if cancelled is None:  # finished while we were looking
            raise InvalidRequest(f"Job {job.id} has already finished.")
        if self.queue.remove(job.id):
            self.bus.publish(JobFinished(cancelled))
        else:
            self.queue.request_stop(job.id)  # the worker publishes when it stops rendering
        return cancelled

    async def job_for(self, origin: Origin, job_id: str) -> JobRecord:
        """A job the caller may act on: their own, or one from the same server/chat/page.

        The machine's owner (the CLI, a web admin) sees every job; to anyone else a job of
        another scope does not exist, so ids cannot be probed across servers.
        """
        job, _ = await self._job_and_caller(origin, job_id)
        return job

    async def _job_and_caller(self, origin: Origin, job_id: str) -> tuple[JobRecord, Caller]:
        job = await self.get_job(job_id)
        caller = Caller(*await self._identify(origin))
        owner = origin.platform == "cli" or (origin.platform == "web" and origin.is_admin)
        if not owner and caller.scope.id != job.scope_id and caller.user.id != job.user_id:
            raise NotFound(f"No job with id {job_id.strip()!r}.")
        return job, caller

    async def get_job(self, job_id: str) -> JobRecord:
        job = await self.store.get_job(job_id)
        if job is None:
            raise NotFound(f"No job with id {job_id.strip()!r}.")
        return job

    async def history(
        self,
        origin: Origin | None,
        *,
        limit: int = 20,
        offset: int = 0,
        query: str | None = None,
    ) -> list[JobRecord]:
        """The origin user's jobs, newest first; ``origin=None`` lists everyone's (CLI, admin)."""
        if query:
            check_valid_text("search text", query)
        user_id = None
        if origin is not None:
            # A read never creates the user (anyone may ask; only requests make rows).
            user = await self.store.find_user(origin.platform, origin.user_id)
            if user is None:
                return []
            user_id = user.id
        limit = max(1, min(limit, 200))
        return await self.store.list_jobs(user_id=user_id, limit=limit, offset=offset, query=query)

    async def queue_status(self, origin: Origin) -> QueueStatus:
        user = await self.store.find_user(origin.platform, origin.user_id)  # a read: no row
        mine = []
        queued = []
        if user is not None:
            queued = await self.store.list_jobs(user_id=user.id, limit=50, statuses=["queued"])
        for job in queued:
            position = self.queue.position(job.id)
            eta = self.queue.eta(job.id)
            if position is not None and eta is not None:
                mine.append((job.id, position, eta))
        mine.sort(key=lambda item: item[1])
        return QueueStatus(
            length=len(self.queue), running=self.queue.running_count, your_jobs=tuple(mine)
        )

    # ------------------------------------------------------------------ models (admin)

    async def list_models(self) -> list[ModelRecord]:
        return await self.store.list_models()

    async def add_model(
        self,
        origin: Origin,
        name: str,
        source: str,
        *,
        upscaler: bool = False,
        config_source: str | None = None,
        defaults: dict[str, Any] | None = None,
    ) -> ModelRecord:
        self._require_admin(origin)
        name = name.strip()
        if not name or any(ch.isspace() for ch in name) or len(name) > 64:
            raise InvalidRequest("A model name is 1-64 characters without spaces.")
        if await self.store.get_model(name) is not None:
            raise InvalidRequest(f"A model named {name!r} is already registered.")
        if upscaler:
            if self._inspect_upscaler is None:
                raise InvalidRequest("This Easel instance cannot inspect upscalers.")
            inspected = await asyncio.to_thread(self._inspect_upscaler, name, source)
        else:
            if self._inspect_model is None:
                raise InvalidRequest("This Easel instance cannot inspect models.")
            inspected = await asyncio.to_thread(self._inspect_model, name, source, config_source)
        checked = self._policy.model_defaults(defaults or {})
        return await self.store.add_model(
            name=name,
            source=inspected.source,
            kind=inspected.kind,
            revision=inspected.revision,
            config=inspected.config,
            **checked,
        )

    async def remove_model(self, origin: Origin, name: str) -> None:
        self._require_admin(origin)
        await self.store.remove_model(name)

    async def set_default_model(self, origin: Origin, name: str) -> ModelRecord:
        self._require_admin(origin)
        model = await self.store.get_model(name)
        if model is None:
            raise NotFound(f"No model named {name!r}. Known: {await self._model_names()}.")
        if model.kind == "upscaler":
            raise InvalidRequest(f"{name!r} is an upscaler; the default must be a diffusion model.")
        await self.store.set_default_model(name)
        return model

    # ------------------------------------------------------------------ scope settings (admin)

    async def scope_settings(self, origin: Origin) -> ScopeSettings:
        _, scope = await self._identify(origin)
        return ScopeSettings.from_dict(scope.settings)

    async def update_scope_settings(self, origin: Origin, **changes: Any) -> ScopeSettings:
        """Change this scope's limits, blocklist or models; ``None`` restores a default."""
        self._require_admin(origin)
        _, scope = await self._identify(origin)
        settings = ScopeSettings.from_dict(scope.settings).updated(changes)
        for name in [settings.default_model, *(settings.allowed_models or ())]:
            if name is not None and await self.store.get_model(name) is None:
                raise InvalidRequest(
                    f"Unknown model {name!r}. Available: {await self._model_names()}."
                )
        await self.store.update_scope_settings(scope.id, settings.to_dict())
        return settings

    async def block_words(self, origin: Origin, words: list[str]) -> ScopeSettings:
        current = await self.scope_settings(origin)
        return await self.update_scope_settings(origin, blocklist=[*current.blocklist, *words])

    async def unblock_words(self, origin: Origin, words: list[str]) -> ScopeSettings:
        current = await self.scope_settings(origin)
        drop = {word.lower() for word in words}
        kept = [word for word in current.blocklist if word.lower() not in drop]
        return await self.update_scope_settings(origin, blocklist=kept)

    # ------------------------------------------------------------------ internals

    def _require_admin(self, origin: Origin) -> None:
        if not origin.is_admin:
            raise PermissionDenied("Only an admin of this server can do that.")

    async def _latest_upscaler(self) -> ModelRecord | None:
        """The most recently registered ESRGAN-family upscaler, if any."""
        upscalers = [m for m in await self.store.list_models() if m.kind == "upscaler"]
        return max(upscalers, key=lambda m: m.created_at, default=None)

    async def _model_names(self) -> str:
        models = await self.store.list_models()
        return ", ".join(m.name for m in models if m.kind != "upscaler") or "none"

    async def _choose_model(self, requested: str | None, settings: ScopeSettings) -> ModelRecord:
        name = requested or settings.default_model
        if name is None:
            default = await self.store.default_model()
            if default is None:
                raise InvalidRequest(
                    "No model is registered. An admin can add one: easel models add."
                )
            return default
        model = await self.store.get_model(name)
        if model is None or model.kind == "upscaler":
            available = await self._model_names()
            raise InvalidRequest(f"Unknown model {shown(name)}. Available: {available}.")
        if settings.allowed_models is not None and model.name not in settings.allowed_models:
            allowed = ", ".join(settings.allowed_models)
            raise InvalidRequest(f"Model {shown(name)} is not allowed here. Allowed: {allowed}.")
        return model

    def _parent_image(self, parent: JobRecord, index: int) -> ImageRecord:
        if parent.status != "succeeded" or not parent.images:
            raise InvalidRequest(
                f"Job {parent.id} has no images yet ({parent.status}); wait until it finishes."
            )
        if not 0 <= index < len(parent.images):
            raise InvalidRequest(
                f"Job {parent.id} has {len(parent.images)} image(s); choose 1-{len(parent.images)}."
            )
        return parent.images[index]

    async def _child(
        self,
        origin: Origin,
        caller: Caller,
        parent: JobRecord,
        spec: GenerationSpec,
        action: Action,
        index: int | None,
    ) -> Accepted:
        model = await self.store.get_model(spec.model)
        if model is None:
            raise InvalidRequest(
                f"Job {parent.id} used model {spec.model!r}, which is no longer registered."
            )
        return await self._admit(
            origin,
            caller.user,
            caller.scope,
            spec,
            action,
            model,
            parent_id=parent.id,
            parent_index=index,
        )

    async def _admit(
        self,
        origin: Origin,
        user: UserRecord,
        scope: ScopeRecord,
        spec: GenerationSpec,
        action: Action,
        model: ModelRecord,
        *,
        parent_id: str | None = None,
        parent_index: int | None = None,
    ) -> Accepted:
        if not self.accepting:
            raise Rejected("Easel is shutting down; try again in a minute.")
        settings = ScopeSettings.from_dict(scope.settings)
        self._policy.check_prompt(spec.prompt, settings)
        lock = self._user_locks.setdefault(user.id, asyncio.Lock())
        async with lock:
            await self._check_limits(user, settings)  # on success, a queue slot is reserved
            try:
                job = await self.store.add_job(
                    NewJob(
                        spec=spec,
                        action=action,
                        model_revision=model.revision,
                        parent_id=parent_id,
                        parent_index=parent_index,
                        user_id=user.id,
                        scope_id=scope.id,
                        platform=origin.platform,
                        reply_target=dict(origin.reply_target),
                    )
                )
                await self.queue.put(job)
            finally:
                self._admitting -= 1
        position = self.queue.position(job.id) or 0
        eta = self.queue.eta(job.id) or 0.0
        self.bus.publish(JobQueued(job, position, eta))
        return Accepted(job, position, eta)

    async def _check_limits(self, user: UserRecord, settings: ScopeSettings) -> None:
        """Refuse over a limit; else reserve a queue slot (the caller releases it).

        Nothing awaits between the queue check and the reservation, so admissions of different
        users running concurrently cannot together overshoot ``max_queue``.
        """
        limits = settings.limits(self.config.limits)
        if limits.daily_quota:
            now = self.clock.now()
            used = await self.store.count_jobs_since(user.id, self._policy.day_start(now))
            self._policy.check_quota(used, limits.daily_quota, now)
        self._policy.check_queue(
            queued_total=len(self.queue) + self._admitting,
            queued_for_user=self.queue.user_count(str(user.id)),
            limits=limits,
        )
        key = (limits.rate_per_minute, limits.burst)
        limiter = self._rate_limiters.setdefault(key, RateLimiter(*key))
        self._policy.check_rate(limiter, str(user.id), self.clock.monotonic())
        self._admitting += 1
