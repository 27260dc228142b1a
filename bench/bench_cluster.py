"""Cluster benchmark: throughput with 1, 2, 4 and 8 ``easel worker`` processes, and fairness.

Only the GPU is simulated: each worker runs the stand-in renderer (a fixed time per image,
``--stand-in``); Redis (a real ``redis-server`` on loopback), the engine, the store and the
workers are the real code. Prints a table and ratios:

    .venv/bin/python bench/bench_cluster.py                 # 400 jobs, 40 users, 200 ms
    .venv/bin/python bench/bench_cluster.py --jobs 80 --workers 1 2   # a quick look

* **throughput**: ``--jobs`` single-image jobs from ``--users`` users, from the first request
  to the last result recorded; speed-up against one worker and the share of linear it reaches.
* **fairness**: every worker busy on one user's ``--busy`` jobs, then another user's single
  job: how long it waited before its render started, in job times.

Needs ``redis-server`` (Debian package) on this machine; nothing else is started.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.app import App  # noqa: E402
from bot.config import load_config  # noqa: E402
from generation.requests import DrawRequest  # noqa: E402
from tests.cluster.harness import Cluster, person, write_config  # noqa: E402
from tests.servers import RedisServer  # noqa: E402


async def cluster_of(redis: RedisServer, root: Path, workers: int, seconds: float) -> Cluster:
    prefix = f"b{uuid.uuid4().hex[:10]}"
    data_dir = root / prefix
    logs = root / f"logs-{prefix}"
    logs.mkdir(parents=True)
    path = write_config(root / f"{prefix}.toml", data_dir, redis.url, prefix)
    app = App.from_config(load_config(path))
    await app.start()
    cluster = Cluster(app, path, logs, seconds)
    await cluster.start_workers(*(f"w{index}" for index in range(workers)), timeout=180)
    return cluster


async def throughput(
    redis: RedisServer, root: Path, workers: int, args: argparse.Namespace
) -> float:
    """Seconds from the first request to the last result recorded."""
    cluster = await cluster_of(redis, root, workers, args.seconds)
    try:
        cluster.watch_finished()
        started = time.monotonic()
        per_user = args.jobs // args.users
        ids = await cluster.draw(users=args.users, per_user=per_user)
        await cluster.until(lambda: len(cluster.finished_events) >= len(ids), 3600, "all jobs")
        took = time.monotonic() - started
        jobs = await cluster.finished(ids)
        bad = [job.id for job in jobs if job.status != "succeeded" or len(job.images) != 1]
        if bad or any(count != 1 for count in cluster.finished_events.values()):
            raise SystemExit(f"{workers} workers: jobs not recorded exactly once: {bad}")
        return took
    finally:
        await cluster.close()


async def fairness(redis: RedisServer, root: Path, args: argparse.Namespace) -> float:
    """Seconds the newcomer's job waited while every worker was busy with one user's jobs."""
    workers = max(args.workers)
    cluster = await cluster_of(redis, root, workers, args.seconds)
    try:
        cluster.watch_finished()
        busy = await cluster.draw(users=1, per_user=args.busy, tag="busy")
        await cluster.until(lambda: len(cluster.rendering()) == workers, 120, "all busy")
        await asyncio.sleep(args.seconds * 2.5)  # mid-stream, not at a batch boundary
        request = DrawRequest("just one", width=64, height=64, steps=4)
        newcomer = (await cluster.app.service.draw(person("newcomer"), request)).job
        (mine,) = await cluster.finished([newcomer.id])
        await cluster.finished(busy)
        assert mine.started_at is not None
        return (mine.started_at - newcomer.created_at).total_seconds()
    finally:
        await cluster.close()


async def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING)
    redis = RedisServer()
    try:
        with tempfile.TemporaryDirectory(prefix="easel-bench-cluster-") as tmp:
            root = Path(tmp)
            results: dict[int, float] = {}
            for workers in args.workers:
                results[workers] = await throughput(redis, root, workers, args)
                print(f"  {workers} worker(s): {results[workers]:.1f} s", flush=True)
            waited = await fairness(redis, root, args) if not args.no_fairness else None
    finally:
        redis.close()

    ideal_one = args.jobs * args.seconds
    base = results.get(1)
    print()
    print(
        f"Easel cluster benchmark: {args.jobs} jobs from {args.users} users, "
        f"stand-in {args.seconds * 1000:.0f} ms per image, max_batch 1"
    )
    print(f"{'workers':>7} {'seconds':>8} {'jobs/s':>7} {'speed-up':>9} {'of linear':>10}")
    for workers, took in results.items():
        speedup = (base / took) if base else ideal_one / took
        print(
            f"{workers:>7} {took:8.1f} {args.jobs / took:7.2f} {speedup:8.2f}x "
            f"{speedup / workers:9.0%}"
        )
    if waited is not None:
        print(
            f"fairness: {max(args.workers)} workers busy on one user's {args.busy} jobs; another "
            f"user's job started after {waited:.2f} s = {waited / args.seconds:.2f} job times"
        )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=0.2, help="stand-in time per image")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--busy", type=int, default=200, help="the busy user's jobs (fairness)")
    parser.add_argument("--no-fairness", action="store_true")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
