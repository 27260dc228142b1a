"""Platform faults while delivering: every result is delivered later or recorded, never lost.

The real front ends run offline (Discord: discord.py on simcord; Telegram: python-telegram-bot
against the fake Bot API server) and the faults are injected where the network is: HTTP errors
(429 with ``retry_after``, 5xx, 403/404 "Unknown Channel", 403 "bot was kicked", 400 "chat not
found") and network errors (connection reset, timeout) on the routes a delivery uses.

Each fault kind has an expected outcome, and the scenario checks every job against it:

* ``retry``: delivered in the same run after the failure (exactly one result message);
* ``next_start``: the fault lasts until the restart; the job is recorded as undelivered (reason
  and attempts in the jobs table, an ERROR line) and delivered by the next process at start;
* ``undeliverable``: a permanent refusal; recorded undeliverable for good (reason, an ERROR
  line) after a single attempt, and not tried again at the next start.

A job that ends in none of these is counted as lost, and there must be none. CI runs one job per
fault kind; ``EASEL_FULL_CAMPAIGN=1`` runs ten and prints the table::

    EASEL_FULL_CAMPAIGN=1 .venv/bin/python -m pytest -s tests/reliability/test_platform_faults.py
"""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
import logging
import os
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import simcord.http.router as simcord_router
from aiohttp import web

from bot.app import App
from bot.telegram.application import (
    TelegramApplication,
    build_application,
    easel_of,
    start_application,
    stop_application,
)
from generation.delivery import DeliveryDispatcher
from storage.records import JobRecord
from storage.repository import UNDELIVERABLE_PREFIX
from tests.conftest import make_config
from tests.discord.harness import (  # noqa: F401  (fixtures)
    World,
    job_id_in,
    shared_backend_fixture,
    world_factory_fixture,
)
from tests.telegram.fake_telegram import TOKEN, Call, FakeTelegram, _error

FULL = os.environ.get("EASEL_FULL_CAMPAIGN") == "1"
JOBS_PER_FAULT = 10 if FULL else 1
RETRY_DELAYS = (0.05, 0.05)  # three attempts per run, quickly
OUTCOMES = ("retry", "next_start", "undeliverable")


# ---------------------------------------------------------------------- bookkeeping


@dataclass
class Tally:
    fault: str
    expected: str
    jobs: list[str] = field(default_factory=list)
    outcome: dict[str, str] = field(default_factory=dict)  # job id -> what happened

    def count(self, outcome: str) -> int:
        return sum(1 for job in self.jobs if self.outcome.get(job) == outcome)

    @property
    def lost(self) -> int:
        return len(self.jobs) - sum(self.count(o) for o in OUTCOMES)


def print_table(title: str, tallies: list[Tally]) -> None:
    head = ("fault", "jobs", "delivered on retry", "delivered at next start", "undelivered", "lost")
    rows = [
        (
            t.fault,
            str(len(t.jobs)),
            str(t.count("retry")),
            str(t.count("next_start")),
            str(t.count("undeliverable")),
            str(t.lost),
        )
        for t in tallies
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    print(f"\n{title}")
    for row in [head, *rows]:
        print(" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


async def settled(app: App, job_id: str, timeout: float = 60.0) -> JobRecord:
    """The job once its delivery is over for this run: delivered, or failed and not retrying."""
    previous: JobRecord | None = None
    async with asyncio.timeout(timeout):
        while True:
            busy = app.delivery.is_delivering(job_id)
            job = await app.store.get_job(job_id)
            busy = busy or app.delivery.is_delivering(job_id)  # an attempt began meanwhile
            if job is not None and job.is_terminal:
                if job.delivered_at is not None:
                    return job
                # Failed and idle, and the same on two polls in a row: nothing is under way.
                if job.delivery_error and not busy and job == previous:
                    return job
            previous = None if busy else job
            await asyncio.sleep(0.02)


async def redelivered(app: App, job_id: str, attempts_before: int) -> JobRecord:
    """After a restart: the job once the new process delivered it or tried and failed."""
    async with asyncio.timeout(60):
        previous: JobRecord | None = None
        while True:
            busy = app.delivery.is_delivering(job_id)
            job = await app.store.get_job(job_id)
            busy = busy or app.delivery.is_delivering(job_id)
            assert job is not None
            if job.delivered_at is not None:
                return job
            if job.delivery_attempts > attempts_before and not busy and job == previous:
                return job
            previous = None if busy else job
            await asyncio.sleep(0.02)


def error_lines(caplog: pytest.LogCaptureFixture, job_id: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR
        and r.name == "generation.delivery"
        and job_id in r.getMessage()
    ]


def judge_first_run(
    tally: Tally, job: JobRecord, caplog: pytest.LogCaptureFixture, results: int, failed: bool
) -> None:
    """Classify a settled job of the first run; ``results``: result messages the user got;
    ``failed``: whether a call of its delivery failed at the network edge."""
    if job.delivered_at is not None:
        if tally.expected == "retry" and results == 1 and failed:
            tally.outcome[job.id] = "retry"
        else:
            tally.outcome[job.id] = f"delivered: {results} result(s), failed first: {failed}"
        return
    error = job.delivery_error or ""
    logged = error_lines(caplog, job.id)
    tally.outcome[job.id] = f"not delivered: {error} ({job.delivery_attempts} attempts)"
    if tally.expected == "undeliverable":
        if error.startswith(UNDELIVERABLE_PREFIX) and job.delivery_attempts == 1 and logged:
            tally.outcome[job.id] = "undeliverable"
    elif tally.expected == "next_start" and error and logged and job.delivery_attempts == 3:
        tally.outcome[job.id] = "pending"  # decided after the restart


# ---------------------------------------------------------------------- Discord


class NetworkFaults:
    """Network errors (not HTTP answers) on simcord's REST edge, as aiohttp would raise them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._rules: list[tuple[str, str, Callable[[], Exception], list[int]]] = []
        real = simcord_router.dispatch

        def dispatch(backend: Any, method: str, path: str, **kwargs: Any) -> Any:
            for rule_method, pattern, make, left in self._rules:
                if left[0] and rule_method == method and fnmatch.fnmatch(path, pattern):
                    left[0] -= 1
                    raise make()
            return real(backend, method, path, **kwargs)

        monkeypatch.setattr(simcord_router, "dispatch", dispatch)

    def fail(self, method: str, pattern: str, make: Callable[[], Exception], times: int) -> None:
        self._rules.append((method, pattern, make, [times]))


FOLLOW_UP = "/webhooks/*"  # interaction follow-ups (POST /webhooks/{application}/{token})
CHANNEL = "/channels/*/messages"


def discord_faults(world: World, net: NetworkFaults) -> list[tuple[str, str, Callable[[], None]]]:
    """(fault, expected outcome, inject before one job)."""
    env = world.env

    def http(status: int, message: str, code: int = 0, *, route: str = FOLLOW_UP) -> None:
        env.inject_error("POST", route, status=status, code=code, message=message, times=1)

    def gone(status: int, code: int, message: str) -> None:
        env.inject_error("POST", FOLLOW_UP, status=404, code=10015, message="Unknown Webhook")
        env.inject_error("POST", CHANNEL, status=status, code=code, message=message, times=None)

    def down() -> None:
        for route in (FOLLOW_UP, CHANNEL):
            env.inject_error("POST", route, status=503, message="Service Unavailable", times=None)

    def reset() -> aiohttp.ClientOSError:
        return aiohttp.ClientOSError(104, "Connection reset by peer")

    def timeout() -> aiohttp.ServerTimeoutError:
        return aiohttp.ServerTimeoutError("Timeout on reading data from socket")

    return [
        ("discord 429 rate limited", "retry", lambda: http(429, "You are being rate limited.")),
        ("discord 500", "retry", lambda: http(500, "Internal Server Error")),
        ("discord 503", "retry", lambda: http(503, "Service Unavailable")),
        ("discord connection reset", "retry", lambda: net.fail("POST", FOLLOW_UP, reset, 1)),
        ("discord timeout", "retry", lambda: net.fail("POST", FOLLOW_UP, timeout, 1)),
        (
            "discord 404 Unknown Channel",
            "undeliverable",
            lambda: gone(404, 10003, "Unknown Channel"),
        ),
        ("discord 403 Missing Access", "undeliverable", lambda: gone(403, 50001, "Missing Access")),
        ("discord 503 until restart", "next_start", down),
    ]


def discord_results(world: World, job_id: str) -> int:
    wanted = f"easel:info:{job_id}"
    return sum(
        1
        for message in world.channel.history()
        for row in message.components
        for child in getattr(row, "children", ())
        if getattr(child, "custom_id", None) == wanted
    )


async def test_discord_faults_are_retried_recorded_or_redelivered(
    world_factory: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="generation.delivery")
    tallies: list[Tally] = []
    async with world_factory() as world:
        world.app.delivery.retry_delays = RETRY_DELAYS
        net = NetworkFaults(monkeypatch)
        alice = world.member("alice")
        seeds = itertools.count(1)
        for fault, expected, inject in discord_faults(world, net):
            tally = Tally(fault, expected)
            tallies.append(tally)
            for _ in range(JOBS_PER_FAULT):
                inject()
                result = await alice.slash(
                    world.channel, "draw", prompt=fault, seed=next(seeds), steps=1
                )
                job_id = job_id_in(result.response.content)
                tally.jobs.append(job_id)
                job = await settled(world.app, job_id)
                await world.env.settle()
                results = discord_results(world, job_id)
                judge_first_run(tally, job, caplog, results, job.delivery_attempts >= 1)
                if expected != "retry":
                    world.env.backend.faults.clear()  # the next job starts from a clean slate

        # A new process: what was left undelivered goes to the channel, mentioning alice.
        before = {job: (await world.job(job)).delivery_attempts for t in tallies for job in t.jobs}
        await world.restart()
        for tally in tallies:
            for job_id in tally.jobs:
                if tally.outcome.get(job_id) != "pending":
                    continue
                job = await redelivered(world.app, job_id, before[job_id])
                results = discord_results(world, job_id)
                mentioned = alice.mention in world.result_message(job_id).content
                if job.delivered_at is not None and results == 1 and mentioned:
                    tally.outcome[job_id] = "next_start"
        await world.env.settle()
        for tally in tallies:
            for job_id in tally.jobs:
                job = await world.job(job_id)
                if tally.expected == "undeliverable" and (
                    job.delivery_attempts != before[job_id] or discord_results(world, job_id)
                ):
                    tally.outcome[job_id] = "retried after giving up"

    print_table("Discord delivery faults", tallies)
    for tally in tallies:
        assert tally.count(tally.expected) == len(tally.jobs), (tally.fault, tally.outcome)
        assert tally.lost == 0


async def test_discord_delivery_error_reason_is_recorded(
    world_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The jobs table keeps the reason and the count of a failed delivery; the ERROR line
    says the result is tried again at the next start."""
    caplog.set_level(logging.WARNING, logger="generation.delivery")
    async with world_factory() as world:
        world.app.delivery.retry_delays = (0.01,)
        for route in (FOLLOW_UP, CHANNEL):
            world.env.inject_error("POST", route, status=502, message="Bad Gateway", times=None)
        alice = world.member("alice")
        result = await alice.slash(world.channel, "draw", prompt="gateway", steps=1)
        job = await settled(world.app, job_id_in(result.response.content))
        assert job.status == "succeeded" and job.delivered_at is None
        assert job.delivery_attempts == 2
        assert job.delivery_error is not None and "502" in job.delivery_error
        assert "Bad Gateway" in job.delivery_error
        assert not job.delivery_error.startswith(UNDELIVERABLE_PREFIX)
        assert [j.id for j in await world.app.store.undelivered("discord")] == [job.id]
        (line,) = error_lines(caplog, job.id)
        assert "retried at the next start" in line


# ---------------------------------------------------------------------- Telegram


PARSED = web.RequestKey("easel_params", tuple)


class FaultyTelegram(FakeTelegram):
    """The fake Bot API with two more faults: dropped connections, and chats that refuse
    every call (the bot was kicked, the chat deleted, or the API is down for that chat)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.drops: dict[tuple[str, int], int] = {}
        self.refusing: dict[int, tuple[int, str]] = {}

    async def _m_getupdates(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        # Short long-polls: a poll left open by a stopped bot would hold up the server's stop.
        params = {**params, "timeout": min(float(params.get("timeout") or 0), 0.5)}
        return await super()._m_getupdates(params, files)

    def drop_next(self, method: str, chat_id: int) -> None:
        key = (method.lower(), chat_id)
        self.drops[key] = self.drops.get(key, 0) + 1

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"].lower()
        if method in ("getupdates", "getme", "setmycommands", "deletewebhook"):
            return await super()._handle(request)
        params, _ = await self._params(request)
        chat_id = params.get("chat_id")
        key = (method, chat_id)
        if self.drops.get(key):  # connection reset: no HTTP answer at all
            self.drops[key] -= 1
            self._record(Call(request.match_info["method"], params, {}, 0.0, status=0))
            assert request.transport is not None
            request.transport.abort()
            return web.Response()  # never reaches the client
        if chat_id in self.refusing:
            status, description = self.refusing[chat_id]
            self._record(Call(request.match_info["method"], params, {}, 0.0, status=status))
            return _error(status, description)
        return await super()._handle(request)

    async def _params(self, request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
        # The body can be read once: keep what the first reader parsed.
        cached = request.get(PARSED)
        if cached is None:
            cached = await super()._params(request)
            request[PARSED] = cached
        return cached


@dataclass
class TelegramRig:
    fake: FaultyTelegram
    app: App
    application: TelegramApplication
    chats: Iterator[int] = field(default_factory=lambda: itertools.count(50_000))

    @property
    def delivery(self) -> DeliveryDispatcher:
        return self.app.delivery

    async def start(self) -> None:
        await self.app.start()
        self.app.delivery.retry_delays = RETRY_DELAYS
        self.application = build_application(self.app, token=TOKEN)
        await start_application(self.application)

    async def restart(self) -> None:
        await stop_application(self.application)
        await self.app.stop()
        self.app = App.from_config(self.app.config, backend=self.app.backend)
        await self.start()


@pytest.fixture
async def rig(data_dir: Path) -> AsyncIterator[TelegramRig]:
    fake = FaultyTelegram()
    await fake.start()
    config = make_config(
        data_dir,
        telegram={
            "base_url": fake.base_url,
            "base_file_url": fake.base_file_url,
            "status_edit_interval": 0.05,
        },
        limits={"burst": 1000, "max_queued_per_user": 1000},
        generation={"shutdown_grace_seconds": 5.0, "cpu_threads": 1},
    )
    app = App.from_config(config)
    rig = TelegramRig(fake, app, None)  # type: ignore[arg-type]
    await rig.start()
    try:
        yield rig
    finally:
        await stop_application(rig.application)
        await rig.app.stop()
        await fake.stop()


def telegram_results(fake: FakeTelegram, chat_id: int, job_id: str) -> int:
    return sum(1 for c in fake.calls_of("sendPhoto", chat_id) if job_id in str(c.params["caption"]))


async def finished(app: App, job_id: str) -> None:
    async with asyncio.timeout(60):
        while (job := await app.store.get_job(job_id)) is None or not job.is_terminal:
            await asyncio.sleep(0.02)


async def attempts(app: App, job_id: str) -> int:
    job = await app.store.get_job(job_id)
    assert job is not None
    return job.delivery_attempts


async def telegram_draw(rig: TelegramRig, chat_id: int, prompt: str) -> str:
    fake = rig.fake
    chat, user = fake.private_chat(chat_id, f"user{chat_id}")
    command = fake.send_text(chat, user, f"/draw {prompt} --steps 1 --seed {chat_id}")

    def status(call: Call) -> bool:
        reply = call.params.get("reply_parameters") or {}
        return bool(reply.get("message_id") == command["message_id"])

    reply = await fake.wait_call("sendMessage", chat_id, status)
    assert str(reply.params["text"]).startswith("⏳"), reply.params["text"]
    match = re.search(r"Drawing ([a-z0-9]{8})\b", str(reply.params["text"]))
    assert match, reply.params["text"]
    return match.group(1)


def telegram_faults(rig: TelegramRig) -> list[tuple[str, str, Callable[[int], None], bool]]:
    """(fault, expected outcome, inject for one chat, inject only once the job is finished)."""
    fake = rig.fake

    def refuse(status: int, description: str) -> Callable[[int], None]:
        return lambda chat_id: fake.refusing.__setitem__(chat_id, (status, description))

    return [
        (
            "telegram 429 retry_after=1",
            "retry",
            lambda chat_id: fake.flood_next("sendPhoto", retry_after=1, chat_id=chat_id),
            False,
        ),
        (
            "telegram 502 Bad Gateway",
            "retry",
            lambda chat_id: fake.fail_next("sendPhoto", 502, "Bad Gateway", chat_id=chat_id),
            False,
        ),
        (
            "telegram connection reset",
            "retry",
            lambda chat_id: fake.drop_next("sendPhoto", chat_id),
            False,
        ),
        (
            "telegram 403 bot was kicked",
            "undeliverable",
            refuse(403, "Forbidden: bot was kicked from the group chat"),
            True,
        ),
        (
            "telegram 400 chat not found",
            "undeliverable",
            refuse(400, "Bad Request: chat not found"),
            True,
        ),
        (
            "telegram 500 until restart",
            "next_start",
            refuse(500, "Internal Server Error"),
            True,
        ),
    ]


async def test_telegram_faults_are_retried_recorded_or_redelivered(
    rig: TelegramRig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="generation.delivery")
    fake = rig.fake
    tallies: list[Tally] = []
    chat_of: dict[str, int] = {}
    for fault, expected, inject, after_render in telegram_faults(rig):
        tally = Tally(fault, expected)
        tallies.append(tally)
        front_end = easel_of(rig.application).frontend
        if after_render:  # the chat goes away after the job was accepted
            rig.delivery.unregister(front_end.platform)
        for _ in range(JOBS_PER_FAULT):
            chat_id = next(rig.chats)
            if not after_render:
                inject(chat_id)
            job_id = await telegram_draw(rig, chat_id, fault)
            tally.jobs.append(job_id)
            chat_of[job_id] = chat_id
        if after_render:
            for job_id in tally.jobs:
                await finished(rig.app, job_id)
                inject(chat_of[job_id])
            rig.delivery.register(front_end)
        for job_id in tally.jobs:
            job = await settled(rig.app, job_id)
            results = telegram_results(fake, chat_of[job_id], job_id)
            failed = any(c.chat_id == chat_of[job_id] and c.status != 200 for c in fake.calls)
            judge_first_run(tally, job, caplog, results, failed)

    before = {job: await attempts(rig.app, job) for job in chat_of}
    fake.refusing.clear()  # the API is back; kicked stays kicked but is not asked again
    await rig.restart()
    for tally in tallies:
        for job_id in tally.jobs:
            if tally.outcome.get(job_id) == "pending":
                job = await redelivered(rig.app, job_id, before[job_id])
                if job.delivered_at and telegram_results(fake, chat_of[job_id], job_id) == 1:
                    tally.outcome[job_id] = "next_start"
    await asyncio.sleep(0.2)
    for tally in tallies:
        if tally.expected != "undeliverable":
            continue
        for job_id in tally.jobs:
            job = await rig.app.store.get_job(job_id)
            assert job is not None
            if job.delivery_attempts != before[job_id] or telegram_results(
                fake, chat_of[job_id], job_id
            ):
                tally.outcome[job_id] = "retried after giving up"

    print_table("Telegram delivery faults", tallies)
    for tally in tallies:
        assert tally.count(tally.expected) == len(tally.jobs), (tally.fault, tally.outcome)
        assert tally.lost == 0
    # The 429 was honoured inside the delivery: the photo went out a second later.
    flood = chat_of[tallies[0].jobs[0]]
    sent = fake.calls_of("sendPhoto", flood, ok=False)
    assert [c.status for c in sent] == [429, 200] and sent[1].at - sent[0].at >= 1.0


async def test_a_delivery_failing_max_attempts_times_is_given_up_for_good(
    world_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Transient failures are not retried forever: after ``max_attempts`` (counted over every
    start) the result is recorded undeliverable and the next start leaves it alone."""
    caplog.set_level(logging.WARNING, logger="generation.delivery")
    async with world_factory() as world:
        world.app.delivery.retry_delays = (0.01,) * 5
        world.app.delivery.max_attempts = 3
        for route in (FOLLOW_UP, CHANNEL):
            world.env.inject_error("POST", route, status=500, message="Oops", times=None)
        alice = world.member("alice")
        result = await alice.slash(world.channel, "draw", prompt="doomed", steps=1)
        job = await settled(world.app, job_id_in(result.response.content))
        assert job.delivery_attempts == 3 and job.delivered_at is None
        assert job.delivery_error is not None
        assert job.delivery_error.startswith(f"{UNDELIVERABLE_PREFIX}HTTPException: 500")
        (line,) = error_lines(caplog, job.id)
        assert "recorded as undeliverable" in line

        world.env.backend.faults.clear()
        await world.restart()
        await asyncio.sleep(0.3)
        await world.env.settle()
        assert await world.app.store.undelivered("discord") == []
        assert (await world.job(job.id)).delivery_attempts == 3
        assert discord_results(world, job.id) == 0
