"""The broker's promises on a real Redis: a batch has one owner (claim / recall / drop), work
and results survive a restart of whoever reads them, and a silent worker's heartbeat expires."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from cluster.broker import Broker
from cluster.protocol import BatchOrder, Outcome, Started, Ticket, WorkerInfo
from generation.render import ModelSource
from generation.rendering import RenderMeta
from tests.records import job_record
from tests.servers import RedisServer

DEMO = ModelSource("demo", "builtin:demo", "builtin", None)


@pytest.fixture
async def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def engine(redis_server: RedisServer, prefix: str) -> AsyncIterator[Broker]:
    broker = Broker(redis_server.url, prefix)
    await broker.open_results()
    yield broker
    await broker.close()


@pytest.fixture
async def worker(redis_server: RedisServer, prefix: str) -> AsyncIterator[Broker]:
    broker = Broker(redis_server.url, prefix)
    await broker.join("gpu1")
    yield broker
    await broker.close()


def order(batch_id: str, *job_ids: str) -> BatchOrder:
    return BatchOrder(batch_id, tuple(Ticket(RenderMeta.of(job_record(j)), DEMO) for j in job_ids))


async def next_work(broker: Broker, name: str = "gpu1") -> BatchOrder:
    for _ in range(20):  # the first reads drain the (empty) backlog
        item = await broker.next_work(name, block_ms=200)
        if item is not None:
            return item[1]
    raise AssertionError("no work arrived")


async def results(broker: Broker) -> list[tuple[bytes, object]]:
    for _ in range(20):  # likewise
        found = await broker.read_results(block_ms=200)
        if found:
            return list(found)
    raise AssertionError("no result arrived")


async def test_a_claimed_batch_cannot_be_taken_back_or_claimed_by_another(
    engine: Broker, worker: Broker
) -> None:
    await engine.assign("gpu1", order("b1", "abcd2345"))
    received = await next_work(worker)
    assert received.batch_id == "b1" and received.tickets[0].job_id == "abcd2345"
    assert await worker.claim("b1", "gpu1")
    assert not await engine.recall("b1")  # started: the engine must ask it to stop instead
    assert not await worker.claim("b1", "gpu2")  # someone else's
    (entry_id, started), *_ = await results(engine)
    assert started == Started("b1", "gpu1")  # the claim announced itself in the same step
    await engine.ack_result(entry_id)


async def test_a_recalled_or_dropped_batch_is_skipped_by_its_worker(
    engine: Broker, worker: Broker
) -> None:
    await engine.assign("gpu1", order("b1", "abcd2345"))
    await engine.assign("gpu1", order("b2", "efgh2345"))
    assert await engine.recall("b1")
    await engine.drop("b2")  # (its worker was taken for dead)
    assert (await next_work(worker)).batch_id == "b1"
    assert not await worker.claim("b1", "gpu1")
    assert (await next_work(worker)).batch_id == "b2"
    assert not await worker.claim("b2", "gpu1")
    assert await engine.batches() == {}


async def test_results_wait_for_an_engine_that_restarts(
    redis_server: RedisServer, prefix: str, engine: Broker, worker: Broker
) -> None:
    await worker.send_outcome(Outcome("b1", "abcd2345", "gpu1", "failed", error="boom"))
    (_, first), *_ = await results(engine)
    assert isinstance(first, Outcome) and first.error == "boom"
    # The engine dies before acknowledging it: the next engine reads it again.
    again = Broker(redis_server.url, prefix)
    try:
        await again.open_results()
        (entry_id, second), *_ = await results(again)
        assert second == first
        await again.ack_result(entry_id)
        third = Broker(redis_server.url, prefix)
        await third.open_results()
        assert await third.read_results(block_ms=100) == []  # the backlog: empty
        assert await third.read_results(block_ms=100) == []  # acknowledged: gone
        await third.close()
    finally:
        await again.close()


async def test_a_restarted_worker_resumes_the_batch_it_had_started(
    redis_server: RedisServer, prefix: str, engine: Broker, worker: Broker
) -> None:
    await engine.assign("gpu1", order("b1", "abcd2345"))
    assert (await next_work(worker)).batch_id == "b1"
    assert await worker.claim("b1", "gpu1")  # ... and the process dies, never acknowledging
    restarted = Broker(redis_server.url, prefix)
    try:
        await restarted.join("gpu1")
        item = await restarted.next_work("gpu1", block_ms=200)
        assert item is not None and item[1].batch_id == "b1"  # its pending entry comes back
        assert await restarted.claim("b1", "gpu1")  # its own started batch: resumed
        await restarted.ack_work("gpu1", item[0])
        assert await restarted.next_work("gpu1", block_ms=100) is None
    finally:
        await restarted.close()


async def test_a_silent_workers_heartbeat_expires(engine: Broker, worker: Broker) -> None:
    await worker.heartbeat(WorkerInfo("gpu1", "cuda", loaded=("demo",)), ttl_seconds=0.3)
    seen = await engine.workers()
    assert seen["gpu1"] is not None and seen["gpu1"].loaded == ("demo",)
    for _ in range(100):
        if (await engine.workers())["gpu1"] is None:
            break
        await asyncio.sleep(0.05)
    assert (await engine.workers()) == {"gpu1": None}  # still listed, but taken for dead
    await engine.forget_worker("gpu1")
    assert await engine.workers() == {}
