"""Load: many users drawing at once through the real service and the real HTTP API.

Nothing accepted is lost (every accepted job is a ``queued`` row *and* in the live queue),
nothing refused leaves a trace, every user stays within their limits, and every refusal says
what to do. Admission latency is printed (noisy: the machine is shared).

CI runs a scaled-down campaign; ``EASEL_FULL_CAMPAIGN=1`` runs the full one (1,000 requests from
200 users within 10 s) and prints its figures:

    EASEL_FULL_CAMPAIGN=1 .venv/bin/python -m pytest -s tests/reliability/test_load.py
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.app import App
from bot.chat.texts import describe_error
from bot.config import LimitsConfig
from bot.web.server import start_web
from generation.errors import QuotaExceeded, RateLimited, Rejected, TooManyQueued
from generation.policy import EffectiveLimits, ScopeSettings
from generation.requests import DrawRequest, Origin
from generation.service import Accepted
from storage.models import ScopeRow, UserRow
from tests.conftest import AppFactory

FULL = os.environ.get("EASEL_FULL_CAMPAIGN") == "1"
REQUESTS, USERS, WINDOW = (1000, 200, 10.0) if FULL else (300, 60, 3.0)
DEFAULTS = LimitsConfig()  # bot/config.py: rate 6/min, burst 3, 5 waiting per user
ADMIN = Origin("cli", "local", "root", is_admin=True)

# Four communities with different per-scope limits, so every kind of refusal happens:
# (platform, scope id, scope settings on top of the server's defaults).
SCOPES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("discord", "guild-1", {}),  # the defaults: the token bucket refuses first
    ("telegram", "-100200", {"max_queued_per_user": 2}),  # the per-user queue cap
    ("web", "web", {"daily_quota": 2}),  # the daily quota
    ("api", "api", {"rate_per_minute": 30.0, "burst": 1}),  # a fast, narrow bucket
)
# What each refusal must tell the user to do.
ADVICE = {
    RateLimited: re.compile(r"try again in \d+ s"),
    QuotaExceeded: re.compile(r"resets in \d+ (h|min|s)"),
    TooManyQueued: re.compile(r"wait for one to finish or cancel one|try again in a few minutes"),
}


@dataclass
class Outcome:
    user: int
    started: float  # time.monotonic(), the clock the rate limiter uses
    ended: float
    accepted: Accepted | None = None
    refused: Rejected | None = None

    @property
    def ms(self) -> float:
        return (self.ended - self.started) * 1000


@dataclass
class Campaign:
    outcomes: list[Outcome] = field(default_factory=list)
    wall: float = 0.0

    def by_user(self) -> dict[int, list[Outcome]]:
        grouped: dict[int, list[Outcome]] = defaultdict(list)
        for outcome in self.outcomes:
            grouped[outcome.user].append(outcome)
        return grouped


def origin_of(user: int) -> Origin:
    platform, scope, _ = SCOPES[user % len(SCOPES)]
    return Origin(platform, scope, f"user-{user}", user_name=f"User {user}")


def limits_of(user: int, base: LimitsConfig) -> EffectiveLimits:
    return ScopeSettings.from_dict(SCOPES[user % len(SCOPES)][2]).limits(base)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)]


def arrivals(requests: int, users: int, window: float, seed: int = 7) -> list[tuple[float, int]]:
    """(offset in seconds, user) pairs: every user asks at least once, a few heavy users ask
    often (Zipf-like), arrivals are spread over the window, and some users double-click (a
    second request 50 ms after their first)."""
    rng = random.Random(seed)
    weights = [1 / (rank + 1) ** 0.8 for rank in range(users)]
    chosen = list(range(users)) + rng.choices(range(users), weights, k=requests - users)
    times: dict[int, list[float]] = defaultdict(list)
    for user in chosen:
        times[user].append(rng.uniform(0, window * 0.99))
    for mine in times.values():
        mine.sort()
        if len(mine) > 1 and rng.random() < 0.3:
            mine[1] = mine[0] + 0.05
    return sorted((at, user) for user, mine in times.items() for at in mine)


async def at_their_times(
    offsets: list[float], start_one: Callable[[int], Coroutine[Any, Any, None]]
) -> float:
    """Start ``start_one(i)`` at ``offsets[i]`` seconds (sorted) from now, each as its own task
    created when due, and wait for all; returns the wall time. (Creating all the tasks up
    front, each sleeping until its time, put ~40 ms of task start-up in front of the first
    requests: harness time that the admission figures must not include.)"""
    start = time.monotonic()
    tasks = []
    for i, at in enumerate(offsets):
        delay = start + at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(start_one(i)))
    await asyncio.gather(*tasks)
    return time.monotonic() - start


async def run_campaign(app: App, plan: list[tuple[float, int]]) -> Campaign:
    campaign = Campaign()

    async def one(n: int) -> None:
        user = plan[n][1]
        request = DrawRequest(f"load test {n} by {user}", seed=n, count=1 + n % 2)
        outcome = Outcome(user, time.monotonic(), 0.0)
        try:
            outcome.accepted = await app.service.draw(origin_of(user), request)
        except Rejected as refusal:  # anything else fails the test
            outcome.refused = refusal
        outcome.ended = time.monotonic()
        campaign.outcomes.append(outcome)

    campaign.wall = await at_their_times([at for at, _ in plan], one)
    return campaign


def report(title: str, campaign: Campaign, extra: str = "") -> None:
    ms = [o.ms for o in campaign.outcomes]
    accepted = sum(o.accepted is not None for o in campaign.outcomes)
    reasons = Counter(reason(o.refused) for o in campaign.outcomes if o.refused is not None)
    print(
        f"\n[{title}] requests={len(campaign.outcomes)} users={len(campaign.by_user())} "
        f"accepted={accepted} refused={len(campaign.outcomes) - accepted} {dict(reasons)} "
        f"admission ms p50={percentile(ms, 50):.1f} p99={percentile(ms, 99):.1f} "
        f"max={max(ms):.1f} wall={campaign.wall:.2f}s {extra}"
    )


def reason(refusal: Rejected | None) -> str:
    if isinstance(refusal, TooManyQueued):
        return "queue full" if "queue is full" in refusal.message else "too many waiting"
    return type(refusal).__name__


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest) -> dict[str, str]:
    """The ``[storage]`` section: the embedded SQLite file, or a real PostgreSQL server, where
    admissions run side by side in separate transactions."""
    if request.param == "sqlite":
        return {}
    postgres: Any = request.getfixturevalue("postgres")
    return {"database_url": str(postgres.create_database())}


async def test_a_thousand_draws_lose_nothing_and_respect_every_limit(
    app_factory: AppFactory, storage: dict[str, str]
) -> None:
    # The server's default limits (bot/config.py), with a global queue cap that the campaign
    # reaches, so "the queue is full" is exercised too. The worker is off: nothing leaves the
    # queue, so the queue caps and "none lost" are exact.
    max_queue = REQUESTS * 3 // 10
    limits = {**DEFAULTS.model_dump(), "max_queue": max_queue}
    app = await app_factory(
        worker=False, limits=limits, generation={"cpu_threads": 1}, storage=storage
    )
    for platform, scope, settings in SCOPES:
        if settings:
            admin = Origin(platform, scope, "admin", is_admin=True)
            await app.service.update_scope_settings(admin, **settings)

    campaign = await run_campaign(app, arrivals(REQUESTS, USERS, WINDOW))
    report(f"service load on {'postgresql' if storage else 'sqlite'}", campaign)

    outcomes = campaign.outcomes
    accepted = [o.accepted for o in outcomes if o.accepted is not None]
    refused = [o for o in outcomes if o.refused is not None]
    # Every request was answered one way or the other, within the window (plus admission time).
    assert len(accepted) + len(refused) == len(outcomes) == REQUESTS
    assert len({o.user for o in outcomes}) == USERS
    assert campaign.wall < WINDOW + 5

    # None lost: each accepted job is a queued row and waits in the live queue; nothing else is.
    rows = await app.store.list_jobs(limit=10 * REQUESTS)
    assert sorted(job.id for job in rows) == sorted(a.job.id for a in accepted)
    assert all(job.status == "queued" for job in rows)
    assert len(app.queue) == len(accepted) <= max_queue
    assert all(a.job.id in app.queue and a.position >= 0 for a in accepted)

    # Each user stays within the limits of their community.
    base = app.config.limits
    for user, mine in campaign.by_user().items():
        limit = limits_of(user, base)
        took = [o for o in mine if o.accepted is not None]
        assert len(took) <= limit.max_queued_per_user, (user, len(took))
        if limit.daily_quota:
            assert len(took) <= limit.daily_quota, (user, len(took))
        if took:  # the bucket: burst at once, then rate_per_minute
            span = max(o.ended for o in took) - min(o.started for o in mine)
            tokens = limit.burst + span * limit.rate_per_minute / 60
            assert len(took) <= math.floor(tokens + 1e-6), (user, len(took), span)

    # Every refusal says why and what to do; the rate and quota ones say when.
    reasons = Counter(reason(o.refused) for o in refused)
    assert set(reasons) == {"RateLimited", "too many waiting", "QuotaExceeded", "queue full"}
    for outcome in refused:
        error = outcome.refused
        assert error is not None
        kind = next(k for k in ADVICE if isinstance(error, k))
        assert ADVICE[kind].search(error.message), error.message
        if isinstance(error, RateLimited):
            assert 0 < error.retry_after <= 60 / limits_of(outcome.user, base).rate_per_minute
        if isinstance(error, QuotaExceeded):
            assert 0 < error.retry_after <= 24 * 3600
        assert describe_error(error).startswith("🚫 ")  # what a chat front end shows
    ms = [o.ms for o in outcomes]
    assert percentile(ms, 99) < 5000  # generous: a shared 2-core box; the figure is printed


async def test_every_accepted_job_finishes_with_the_worker_running(
    app_factory: AppFactory,
) -> None:
    """The same admission with the worker on: every accepted job reaches ``succeeded``."""
    requests, users = (120, 24) if FULL else (24, 6)
    app = await app_factory(limits=DEFAULTS.model_dump(), generation={"cpu_threads": 1})

    campaign = await run_campaign(app, arrivals(requests, users, 1.0, seed=3))
    accepted = [o.accepted for o in campaign.outcomes if o.accepted is not None]
    refused = [o for o in campaign.outcomes if o.refused is not None]
    assert len(accepted) + len(refused) == requests and accepted and refused

    async def wait_all() -> None:
        while True:
            records = [await app.store.get_job(a.job.id) for a in accepted]
            if all(r is not None and r.is_terminal for r in records):
                return
            await asyncio.sleep(0.1)

    started = time.monotonic()
    async with asyncio.timeout(120):
        await wait_all()
    records = [await app.store.get_job(a.job.id) for a in accepted]
    assert [r.status for r in records if r is not None] == ["succeeded"] * len(accepted)
    assert all(r is not None and len(r.images) == r.count for r in records)
    assert len(app.queue) == 0
    report("with worker", campaign, f"render_all={time.monotonic() - started:.1f}s")


async def test_http_api_under_load_answers_202_or_429_never_5xx(
    app_factory: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """200 POST /api/jobs from 50 users (HTTP basic, a public-host config) at once."""
    requests, users, window = (1000, 200, WINDOW) if FULL else (200, 50, 2.0)
    passwords = {f"user{n}": f"pass-{n}-x" for n in range(users)}
    monkeypatch.setenv("EASEL_LOAD_AUTH", ",".join(f"{u}:{p}" for u, p in passwords.items()))
    web = {"host": "0.0.0.0", "port": 0, "api_auth_env": "EASEL_LOAD_AUTH"}
    app = await app_factory(worker=False, limits=DEFAULTS.model_dump(), web=web)
    server = await start_web(app, host="127.0.0.1", port=0)
    rng = random.Random(11)
    plan = sorted((rng.uniform(0, window), f"user{n % users}") for n in range(requests))
    answers: list[tuple[str, int, dict[str, Any], dict[str, str], float]] = []
    try:
        async with aiohttp.ClientSession(server.url) as http:
            # Unauthenticated first: a public server refuses, whatever the load.
            anonymous = await http.post("/api/jobs", json={"prompt": "x"})
            assert anonymous.status == 401

            async def post(n: int) -> None:
                user = plan[n][1]
                sent = time.monotonic()
                auth = aiohttp.BasicAuth(user, passwords[user])
                async with http.post("/api/jobs", json={"prompt": "a fox"}, auth=auth) as reply:
                    body = await reply.json()
                    ms = (time.monotonic() - sent) * 1000
                    answers.append((user, reply.status, body, dict(reply.headers), ms))

            wall = await at_their_times([at for at, _ in plan], post)
    finally:
        await server.stop()

    statuses = Counter(status for _, status, _, _, _ in answers)
    ms = [answer[4] for answer in answers]
    print(
        f"\n[http load] requests={len(answers)} users={users} {dict(statuses)} "
        f"ms p50={percentile(ms, 50):.1f} p99={percentile(ms, 99):.1f} max={max(ms):.1f} "
        f"wall={wall:.2f}s"
    )
    assert len(answers) == requests
    assert set(statuses) <= {202, 429} and statuses[202] and statuses[429], statuses
    accepted_ids = []
    per_user: Counter[str] = Counter()
    for user, status, body, headers, _ in answers:
        if status == 202:
            accepted_ids.append(body["job"]["id"])
            per_user[user] += 1
            continue
        assert body["type"] in ("RateLimited", "TooManyQueued"), body
        assert ADVICE[RateLimited].search(body["error"]) or ADVICE[TooManyQueued].search(
            body["error"]
        ), body
        if body["type"] == "RateLimited":
            assert 1 <= int(headers["Retry-After"]) <= 10  # 6 a minute: one every 10 s
    # None lost; nobody beyond their bucket (burst 3, then one every 10 s).
    rows = await app.store.list_jobs(limit=10 * requests)
    assert sorted(job.id for job in rows) == sorted(accepted_ids)
    assert all(job.id in app.queue for job in rows)
    assert max(per_user.values()) <= DEFAULTS.burst + math.floor(
        wall * DEFAULTS.rate_per_minute / 60
    )
    owners = [await app.store.get_user(job.user_id) for job in rows]
    assert {(u.platform, u.platform_user_id) for u in owners if u} == {("web", u) for u in per_user}


async def table_sizes(app: App) -> tuple[int, int]:
    async with app.db.read() as session:
        users = await session.execute(select(func.count()).select_from(UserRow))
        scopes = await session.execute(select(func.count()).select_from(ScopeRow))
        return users.scalar_one(), scopes.scalar_one()


async def test_a_history_query_for_an_unknown_user_writes_nothing(
    app_factory: AppFactory,
) -> None:
    """Reads (history, queue status) must not create users: only requests make rows."""
    app = await app_factory(worker=False)
    before = await table_sizes(app)
    stranger = Origin("telegram", "-5", "never-seen", user_name="Nobody")
    assert await app.service.history(stranger) == []
    assert await app.service.history(stranger, query="lamp") == []
    status = await app.service.queue_status(stranger)
    assert status.your_jobs == () and status.length == 0
    assert await table_sizes(app) == before
    # A real request does create the user, and then history finds the job.
    accepted = await app.service.draw(stranger, DrawRequest("a lamp"))
    assert [job.id for job in await app.service.history(stranger)] == [accepted.job.id]
    assert (await app.service.queue_status(stranger)).your_jobs[0][0] == accepted.job.id


async def test_concurrent_admissions_cannot_overshoot_the_queue_cap(
    app_factory: AppFactory, storage: dict[str, str]
) -> None:
    """Regression: the global cap was checked before the job's row was written, so users
    admitted at the same moment all passed the check (302 queued with max_queue = 300)."""
    limits = {**DEFAULTS.model_dump(), "max_queue": 5}
    app = await app_factory(worker=False, limits=limits, storage=storage)
    results = await asyncio.gather(
        *(app.service.draw(Origin("discord", "g", f"u{n}"), DrawRequest("x")) for n in range(40)),
        return_exceptions=True,
    )
    accepted = [r for r in results if isinstance(r, Accepted)]
    refused = [r for r in results if not isinstance(r, Accepted)]
    assert len(accepted) == len(app.queue) == await app.store.count_queued() == 5
    assert all(isinstance(r, TooManyQueued) and "queue is full" in r.message for r in refused)
