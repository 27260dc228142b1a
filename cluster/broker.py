"""The Redis side of the cluster: streams with consumer groups, heartbeats, batch locks.

Why Redis Streams (and not Celery): the engine keeps choosing *which job goes next* (the fair
round-robin queue, limits) and *which worker* renders it (the one with the model loaded), and
hands each worker at most one batch ahead; a batch not started yet can be taken back. Streams
give exactly that: one stream per worker, read through a consumer group, so an entry a worker
read but never acknowledged stays in its pending-entries list when it dies (a worker that comes
back resumes it; the engine claims a dead worker's leftovers with ``XAUTOCLAIM``), and one
results stream to the engine, whose unacknowledged entries survive an engine restart. The
state of each batch is a hash changed only by two Lua scripts (claim, recall), so a worker and
the engine can never both think a batch is theirs. Celery's ``acks_late`` would redeliver a
lost task, but its workers pull from shared queues, which hands the choice of the next job to
whichever worker asks first.

Every call may raise ``redis.exceptions.ConnectionError`` (Redis restarting): callers retry.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from cluster.protocol import (
    ASSIGNED,
    ENGINE_CONSUMER,
    ENGINE_GROUP,
    WORKER_GROUP,
    BatchOrder,
    Keys,
    Outcome,
    ResultEntry,
    WorkerInfo,
    decode_result,
    started_fields,
)
from generation.render import ModelSource

# Claim a batch for rendering: assigned -> started, or a worker resuming its own started batch
# after a restart. On success the "started" notice joins the results stream in the same step.
_CLAIM = """
local state = redis.call('HGET', KEYS[1], 'state')
local owner = redis.call('HGET', KEYS[1], 'worker')
if owner ~= ARGV[1] then return 0 end
if state == 'assigned' or state == 'started' then
  redis.call('HSET', KEYS[1], 'state', 'started')
  redis.call('XADD', KEYS[2], '*', 'meta', ARGV[2])
  return 1
end
return 0
"""
# Take a batch back while it is only assigned (nobody renders it yet).
_RECALL = """
if redis.call('HGET', KEYS[1], 'state') == 'assigned' then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""
log = logging.getLogger(__name__)
# What Redis going away (a restart, a network cut) raises; callers retry after RETRY_PAUSE.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
RETRY_PAUSE = 1.0
T = TypeVar("T")
STREAM_CAP = 10_000  # entries kept per stream at most (acknowledged ones are deleted anyway)


class Broker:
    def __init__(self, url: str, prefix: str = "easel") -> None:
        self.redis: aioredis.Redis = aioredis.Redis.from_url(
            url, decode_responses=False, socket_keepalive=True, health_check_interval=30
        )
        self.keys = Keys(prefix)
        self._claim = self.redis.register_script(_CLAIM)
        self._recall = self.redis.register_script(_RECALL)
        self._results_backlog = True  # read the engine's own pending results first
        self._work_backlog: dict[str, bool] = {}

    async def close(self) -> None:
        await self.redis.aclose()

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    # ------------------------------------------------------------------ workers

    async def heartbeat(self, info: WorkerInfo, ttl_seconds: float) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.sadd(self.keys.workers, info.name)
        pipe.set(self.keys.worker(info.name), info.encode(), px=int(ttl_seconds * 1000))
        await pipe.execute()

    async def workers(self) -> dict[str, WorkerInfo | None]:
        """Every announced worker: its latest heartbeat, or None when it has gone silent."""
        names = sorted(_text(n) for n in await self.redis.smembers(self.keys.workers))
        if not names:
            return {}
        beats = await self.redis.mget([self.keys.worker(n) for n in names])
        return {
            name: WorkerInfo.decode(beat) if beat is not None else None
            for name, beat in zip(names, beats, strict=True)
        }

    async def forget_worker(self, name: str) -> None:
        await self.redis.srem(self.keys.workers, name)

    async def join(self, name: str) -> None:
        """Create the worker's stream and consumer group (once; later calls do nothing)."""
        await _create_group(self.redis, self.keys.work(name), WORKER_GROUP)

    # ------------------------------------------------------------------ batches (engine)

    async def assign(self, worker: str, order: BatchOrder) -> None:
        """Give ``worker`` a batch: its lock hash (assigned) and its stream entry, atomically."""
        job_ids = [ticket.job_id for ticket in order.tickets]
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(
            self.keys.batch(order.batch_id),
            mapping={
                "state": ASSIGNED,
                "worker": worker,
                "jobs": json.dumps(job_ids),
                "sent_at": str(time.time()),
            },
        )
        fields: Any = order.encode()
        pipe.xadd(self.keys.work(worker), fields, maxlen=STREAM_CAP, approximate=True)
        await pipe.execute()

    async def recall(self, batch_id: str) -> bool:
        """Take back a batch nobody renders yet; False when a worker already started it."""
        return bool(await self._recall(keys=[self.keys.batch(batch_id)]))

    async def drop(self, batch_id: str) -> None:
        """Forget a batch whatever its state (its worker died, or it is finished): a late
        claim or result for it comes to nothing."""
        await self.redis.delete(self.keys.batch(batch_id))

    async def batches(self) -> dict[str, dict[str, Any]]:
        """Every batch in flight: state, worker, jobs (after an engine restart)."""
        found: dict[str, dict[str, Any]] = {}
        prefix_length = len(self.keys.batch(""))
        async for key in self.redis.scan_iter(match=self.keys.batch_pattern, count=500):
            raw = await self.redis.hgetall(key)
            if not raw:
                continue
            fields = {_text(k): _text(v) for k, v in raw.items()}
            found[_text(key)[prefix_length:]] = {
                "state": fields.get("state", ""),
                "worker": fields.get("worker", ""),
                "jobs": json.loads(fields.get("jobs", "[]")),
                "sent_at": float(fields.get("sent_at", "0") or 0),
            }
        return found

    async def purge_work(self, worker: str) -> None:
        """Empty a dead worker's stream (nothing in it may be rendered now)."""
        await self.redis.xtrim(self.keys.work(worker), maxlen=0)

    # ------------------------------------------------------------------ results (engine)

    async def open_results(self) -> None:
        await _create_group(self.redis, self.keys.results, ENGINE_GROUP, start="0")

    async def read_results(
        self, block_ms: int = 1000, count: int = 64
    ) -> list[tuple[bytes, ResultEntry]]:
        """The next results: first those read before a restart and never acknowledged."""
        start = "0" if self._results_backlog else ">"
        reply = await self.redis.xreadgroup(
            ENGINE_GROUP,
            ENGINE_CONSUMER,
            {self.keys.results: start},
            count=count,
            block=None if self._results_backlog else block_ms,
        )
        entries = _entries(reply)
        if self._results_backlog and not entries:
            self._results_backlog = False
        results = []
        for entry_id, fields in entries:
            if fields:
                results.append((entry_id, decode_result(fields)))
            else:  # pending, but its data was deleted: nothing left to do with it
                await self.ack_result(entry_id)
        return results

    async def ack_result(self, entry_id: bytes) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.xack(self.keys.results, ENGINE_GROUP, entry_id)
        pipe.xdel(self.keys.results, entry_id)
        await pipe.execute()

    # ------------------------------------------------------------------ work (workers)

    async def next_work(self, name: str, block_ms: int = 1000) -> tuple[bytes, BatchOrder] | None:
        """This worker's next batch: first what it read before a restart and never finished."""
        backlog = self._work_backlog.get(name, True)
        reply = await self.redis.xreadgroup(
            WORKER_GROUP,
            name,
            {self.keys.work(name): "0" if backlog else ">"},
            count=1,
            block=None if backlog else block_ms,
        )
        entries = _entries(reply)
        if backlog and not entries:
            self._work_backlog[name] = False
            return None
        if not entries:
            return None
        entry_id, fields = entries[0]
        if not fields:  # pending, but the engine emptied the stream: nothing to render
            await self.ack_work(name, entry_id)
            return None
        return entry_id, BatchOrder.decode(fields)

    async def claim(self, batch_id: str, worker: str) -> bool:
        """Start rendering a batch (see the module's docstring); False: not ours any more."""
        meta = started_fields(batch_id, worker)["meta"]
        keys = [self.keys.batch(batch_id), self.keys.results]
        return bool(await self._claim(keys=keys, args=[worker, meta]))

    async def send_outcome(self, outcome: Outcome) -> None:
        fields: Any = outcome.encode()
        await self.redis.xadd(self.keys.results, fields, maxlen=STREAM_CAP, approximate=True)

    async def ack_work(self, name: str, entry_id: bytes) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.xack(self.keys.work(name), WORKER_GROUP, entry_id)
        pipe.xdel(self.keys.work(name), entry_id)
        await pipe.execute()

    # ------------------------------------------------------------------ cancels and progress

    async def cancel(self, job_ids: Iterable[str]) -> None:
        ids = list(job_ids)
        if not ids:
            return
        pipe = self.redis.pipeline(transaction=True)
        pipe.sadd(self.keys.cancelled, *ids)
        pipe.publish(self.keys.cancel, json.dumps(ids))
        await pipe.execute()

    async def forget_cancelled(self, job_ids: Iterable[str]) -> None:
        ids = list(job_ids)
        if ids:
            await self.redis.srem(self.keys.cancelled, *ids)

    async def cancelled_among(self, job_ids: list[str]) -> set[str]:
        if not job_ids:
            return set()
        flags = await self.redis.smismember(self.keys.cancelled, job_ids)
        return {job_id for job_id, flag in zip(job_ids, flags, strict=True) if flag}

    async def publish_progress(self, message: str) -> None:
        await self.redis.publish(self.keys.progress, message)

    # ------------------------------------------------------------------ the model registry

    async def publish_models(self, models: list[ModelSource]) -> None:
        data = [model.__dict__ for model in models]
        await self.redis.set(self.keys.models, json.dumps(data))

    async def models(self) -> list[ModelSource] | None:
        raw = await self.redis.get(self.keys.models)
        if raw is None:
            return None
        return [ModelSource(**item) for item in json.loads(raw)]

    # ------------------------------------------------------------------ LoRA / embedding files

    async def keep_addon(self, sha256: str, ttl_seconds: int) -> bool:
        """Whether the file is in Redis (its expiry pushed back), else False."""
        return bool(await self.redis.expire(self.keys.addon(sha256), ttl_seconds))

    async def put_addon(self, sha256: str, data: bytes, ttl_seconds: int) -> None:
        await self.redis.set(self.keys.addon(sha256), data, ex=ttl_seconds)

    async def addon(self, sha256: str) -> bytes | None:
        data = await self.redis.get(self.keys.addon(sha256))  # bytes: no decode_responses
        return None if data is None else bytes(data)  # type: ignore[arg-type]


async def until_redis(call: Callable[[], Awaitable[T]], who: str) -> T:
    """``call()``, retried every RETRY_PAUSE while Redis is unreachable (one warning)."""
    warned = False
    while True:
        try:
            return await call()
        except REDIS_DOWN as error:
            if not warned:
                log.warning("%s: Redis is unreachable (%s); retrying", who, error)
                warned = True
        await asyncio.sleep(RETRY_PAUSE)


async def _create_group(client: aioredis.Redis, stream: str, group: str, start: str = "$") -> None:
    try:
        await client.xgroup_create(stream, group, id=start, mkstream=True)
    except ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entries(reply: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """(id, fields) of an XREADGROUP reply; a pending entry whose data was deleted has no
    fields (``None``): it comes back as an empty dict."""
    if not reply:
        return []
    _, entries = reply[0]
    return [(entry_id, fields or {}) for entry_id, fields in entries]
