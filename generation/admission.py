"""Admission: limits, then the job row, then the fair queue — in that order, every time.

A job is written (status ``queued``) *before* anyone is told it was accepted, and enters the
queue right after. Limits per user (rate, queued cap, daily quota) and the global queue cap are
checked under a per-user lock, and a queue slot is reserved before the first write, so
concurrent admissions cannot overshoot ``max_queue``.

Memory: the per-user locks live only while an admission of that user is under way (a weak
table), so the table holds at most the number of admissions running at once, however many
users have ever asked. The rate limiters are one per distinct (rate, burst) setting, each
bounded by :class:`generation.limits.RateLimiter`. The daily quota's counts are one number per
user who asked today (:class:`DailyUse`).
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, replace
from datetime import datetime
from typing import NamedTuple

from generation.addons import checked_addons
from generation.clock import Clock
from generation.config import LimitsConfig
from generation.errors import InvalidRequest, Rejected, shown
from generation.events import EventBus, JobQueued
from generation.families import check_spec
from generation.hires import LATENT_MODES, PIXEL_UPSCALERS, builtin_upscaler
from generation.limits import RateLimiter
from generation.model_sources import model_family
from generation.policy import AdmissionPolicy, ScopeSettings, who_allows
from generation.queue import JobQueue
from generation.requests import Origin
from generation.spec import Action, GenerationSpec
from storage.records import JobRecord, ModelRecord, NewJob, ScopeRecord, UserRecord
from storage.repository import Store


@dataclass(frozen=True)
class Accepted:
    job: JobRecord
    position: int  # 0 = next to run
    eta_seconds: float  # until it should start
    seconds_left: float = 0.0  # until it should be done (the wait plus its own estimate)


class Caller(NamedTuple):
    """Who is asking, as stored: looked up once per request."""

    user: UserRecord
    scope: ScopeRecord


class DailyUse:
    """Jobs each user created since the start of the day: counted in the store once per user
    and day, then here. This engine admits every job of its database (one engine per
    database, jobs are never deleted), so the count stays true without a query per request."""

    def __init__(self) -> None:
        self._day: datetime | None = None
        self._used: dict[int, int] = {}

    async def used(self, store: Store, user_id: int, day_start: datetime) -> int:
        if day_start != self._day:  # a new day: yesterday's counts are of no use
            self._day, self._used = day_start, {}
        if user_id not in self._used:
            self._used[user_id] = await store.count_jobs_since(user_id, day_start)
        return self._used[user_id]

    def add(self, user_id: int) -> None:
        if user_id in self._used:
            self._used[user_id] += 1


class Admission:
    def __init__(
        self,
        *,
        policy: AdmissionPolicy,
        limits: LimitsConfig,
        store: Store,
        queue: JobQueue,
        bus: EventBus,
        clock: Clock,
    ) -> None:
        self._policy = policy
        self._limits = limits
        self._store = store
        self._queue = queue
        self._bus = bus
        self._clock = clock
        self._rate_limiters: dict[tuple[float, int], RateLimiter] = {}
        self._daily = DailyUse()
        self._user_locks: weakref.WeakValueDictionary[int, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self.accepting = True
        self._admitting = 0  # admissions past the queue check, not yet in the queue

    @property
    def users_being_admitted(self) -> int:
        """Users with an admission under way (the size of the per-user lock table)."""
        return len(self._user_locks)

    def _lock_for(self, user_id: int) -> asyncio.Lock:
        lock = self._user_locks.get(user_id)
        if lock is None:
            lock = asyncio.Lock()
            self._user_locks[user_id] = lock
        return lock

    async def admit(
        self,
        origin: Origin,
        caller: Caller,
        spec: GenerationSpec,
        action: Action,
        model: ModelRecord,
        *,
        parent_id: str | None = None,
        parent_index: int | None = None,
    ) -> Accepted:
        if not self.accepting:
            raise Rejected("Easel is shutting down; try again in a minute.")
        spec = await self._hires_upscaler_checked(spec)
        check_spec(model_family(model), spec)  # options the model's family has no use for
        if spec.refiner is not None and await self._store.get_model(spec.refiner.model) is None:
            raise InvalidRequest(  # a rerun of a job whose refiner was removed since
                f"The refiner {shown(spec.refiner.model)} is no longer registered."
            )
        settings = ScopeSettings.from_dict(caller.scope.settings)
        spec = await checked_addons(
            self._store, spec, action, model, settings.allowed_loras, parent_id
        )
        self._policy.check_prompt(spec.prompt, settings, platform=origin.platform)
        exempt = origin.is_admin and self._limits.exempt_admins
        async with self._lock_for(caller.user.id):
            # on success, a queue slot is reserved
            await self._check_limits(caller.user, settings, origin.platform, exempt=exempt)
            try:
                job = await self._store.add_job(
                    NewJob(
                        spec=spec,
                        action=action,
                        model_revision=model.revision,
                        parent_id=parent_id,
                        parent_index=parent_index,
                        user_id=caller.user.id,
                        scope_id=caller.scope.id,
                        platform=origin.platform,
                        reply_target=dict(origin.reply_target),
                    )
                )
                self._daily.add(caller.user.id)
                await self._queue.put(job)
            finally:
                self._admitting -= 1
        position = self._queue.position(job.id) or 0
        eta = self._queue.eta(job.id) or 0.0
        left = eta + self._queue.estimate(job.id)
        self._bus.publish(JobQueued(job, position, eta, left))
        return Accepted(job, position, eta, left)

    async def _hires_upscaler_checked(self, spec: GenerationSpec) -> GenerationSpec:
        """A hires fix naming a registered upscaler: that upscaler's own spelling, or a
        refusal listing what there is (the policy knows only the built-in ones)."""
        hires = spec.hires
        if hires is None or builtin_upscaler(hires.upscaler) is not None:
            return spec
        registered = [m.name for m in await self._store.list_models() if m.kind == "upscaler"]
        wanted = hires.upscaler.lower()
        name = next((n for n in registered if n.lower() == wanted), None)
        if name is None:
            choices = ", ".join([*LATENT_MODES, *PIXEL_UPSCALERS, *registered])
            raise InvalidRequest(
                f"Hires upscaler {shown(hires.upscaler)} not found. Available: {choices}."
            )
        return replace(spec, hires=replace(hires, upscaler=name))

    async def _check_limits(
        self, user: UserRecord, settings: ScopeSettings, platform: str, *, exempt: bool
    ) -> None:
        """Refuse over a limit; else reserve a queue slot (the caller releases it). ``exempt``
        (an admin, with ``limits.exempt_admins``): only the global queue cap applies.

        Nothing awaits between the queue check and the reservation, so admissions of different
        users running concurrently cannot together overshoot ``max_queue``.
        """
        limits = settings.limits(self._limits)
        if limits.daily_quota and not exempt:
            now = self._clock.now()
            used = await self._daily.used(self._store, user.id, self._policy.day_start(now))
            self._policy.check_quota(used, limits, now, platform)
        self._policy.check_queue(
            queued_total=len(self._queue) + self._admitting,
            queued_for_user=0 if exempt else self._queue.user_count(str(user.id)),
            limits=limits,
            platform=platform,
        )
        if not exempt:
            key = (limits.rate_per_minute, limits.burst)
            limiter = self._rate_limiters.setdefault(key, RateLimiter(*key))
            by_scope = {"rate_per_minute", "burst"} & limits.by_scope
            who = who_allows(platform, by_scope=bool(by_scope))
            self._policy.check_rate(limiter, str(user.id), self._clock.monotonic(), who=who)
        self._admitting += 1
