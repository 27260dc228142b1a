"""Benchmark scale checks: admission latency with a deep queue, ``/history`` among many jobs."""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, text

from bot.app import App
from bot.config import parse_config
from generation.requests import DrawRequest, Origin
from storage.models import ScopeRow, UserRow
from storage.repository import JOB_ID_ALPHABET, JOB_ID_LENGTH

BIG = 10**9


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def big_limits(data_dir: str, **generation: Any) -> dict[str, Any]:
    return {
        "data_dir": data_dir,
        "limits": {
            "rate_per_minute": 1e9,
            "burst": BIG,
            "max_queued_per_user": BIG,
            "max_queue": BIG,
        },
        "generation": generation,
    }


async def admission_with_queue(queued: int, users: int, samples: int) -> dict[str, Any]:
    """``service.draw`` latency (ms) with ``queued`` jobs already waiting (no worker runs)."""
    with tempfile.TemporaryDirectory(prefix="easel-bench-adm-") as tmp:
        app = App.from_config(parse_config(big_limits(tmp)))
        await app.start(worker=False)
        try:
            request = DrawRequest("a castle at dusk", width=64, height=64, steps=4)
            origins = [Origin("cli", "bench", f"user{u}") for u in range(users)]
            for i in range(queued):
                await app.service.draw(origins[i % users], request)
            assert len(app.queue) == queued
            times = []
            for i in range(samples):
                started = time.perf_counter()
                await app.service.draw(origins[i % users], request)
                times.append((time.perf_counter() - started) * 1000)
            return {
                "queued_before": queued,
                "users": users,
                "samples": samples,
                "p50_ms": round(statistics.median(times), 3),
                "p99_ms": round(percentile(times, 99), 3),
                "max_ms": round(max(times), 3),
            }
        finally:
            await app.stop()


def _job_id(n: int) -> str:
    """A distinct, random-looking 8-character id for row ``n`` (a bijection mod 31**8)."""
    base = len(JOB_ID_ALPHABET)
    value = (n * 2_654_435_761 + 12345) % base**JOB_ID_LENGTH
    chars = []
    for _ in range(JOB_ID_LENGTH):
        value, digit = divmod(value, base)
        chars.append(JOB_ID_ALPHABET[digit])
    return "".join(chars)


def _bulk_insert(db_path: Path, jobs: int, users: int, chunk: int = 20_000) -> float:
    """Insert ``users`` users and ``jobs`` succeeded jobs (one image each) with SQLAlchemy core
    executemany; returns seconds. Runs on a plain sync engine over the migrated file."""
    engine = create_engine(f"sqlite:///{db_path}")
    started = time.perf_counter()
    rng = random.Random(7)
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA synchronous = OFF")
        conn.exec_driver_sql("PRAGMA cache_size = -400000")
        first_user = conn.execute(text("SELECT coalesce(max(id), 0) FROM users")).scalar_one() + 1
        conn.execute(
            insert(UserRow),
            [
                {
                    "id": first_user + u,
                    "platform": "cli",
                    "platform_user_id": f"hist{u}",
                    "display_name": "",
                    "created_at": t0,
                }
                for u in range(users)
            ],
        )
        scope_id = conn.execute(
            insert(ScopeRow).values(
                platform="cli", platform_scope_id="hist", name="", settings={}, created_at=t0
            )
        ).inserted_primary_key[0]
        first_seq = conn.execute(text("SELECT coalesce(max(seq), 0) FROM jobs")).scalar_one() + 1
        # Rows go in as plain tuples through the driver's executemany (SQLAlchemy's per-row bind
        # processing would double the time); timestamps use SQLAlchemy's SQLite text format.
        job_cols = (
            "id, seq, mode, action, prompt, negative_prompt, model, model_revision, sampler, "
            "width, height, steps, cfg, seed, count, user_id, scope_id, platform, reply_target, "
            "status, attempt, created_at, started_at, finished_at, delivered_at, delivery_attempts"
        )
        job_sql = f"INSERT INTO jobs ({job_cols}) VALUES ({', '.join('?' * 26)})"
        image_sql = (
            'INSERT INTO images (job_id, "index", seed, sha256, width, height, created_at) '
            "VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        for start in range(0, jobs, chunk):
            job_rows = []
            image_rows = []
            for n in range(start, min(jobs, start + chunk)):
                when = f"{t0 + timedelta(seconds=n * 3):%Y-%m-%d %H:%M:%S.%f}"
                job_id = _job_id(n)
                user = first_user + rng.randrange(users)
                job_rows.append(
                    (job_id, first_seq + n, "txt2img", "draw", f"a castle at dusk number {n}",
                     "", "demo", None, "Euler a", 64, 64, 4, 7.0, n, 1, user, scope_id, "cli",
                     '{"channel": "bench"}', "succeeded", 1, when, when, when, when, 1)
                )  # fmt: skip
                image_rows.append((job_id, 0, n, f"{n:064x}", 64, 64, when))
            conn.exec_driver_sql(job_sql, job_rows)
            conn.exec_driver_sql(image_sql, image_rows)
    engine.dispose()
    return time.perf_counter() - started


async def history_among(jobs: int, users: int, queries: int) -> dict[str, Any]:
    """``Store.list_jobs(user_id=..., limit=20)`` (what ``/history`` calls) among ``jobs`` rows."""
    with tempfile.TemporaryDirectory(prefix="easel-bench-hist-") as tmp:
        app = App.from_config(parse_config(big_limits(tmp)))
        await app.start(worker=False)  # migrations: the real schema and indexes
        db_path = app.db.path
        assert db_path is not None
        await app.db.close()
        insert_seconds = _bulk_insert(db_path, jobs, users)
        engine = create_engine(f"sqlite:///{db_path}")
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            user_ids = [row[0] for row in conn.exec_driver_sql("SELECT id FROM users")]
            plan = [
                str(row[-1])
                for row in conn.exec_driver_sql(
                    "EXPLAIN QUERY PLAN SELECT * FROM jobs WHERE user_id = ? "
                    "ORDER BY created_at DESC, seq DESC LIMIT 20",
                    (user_ids[-1],),
                )
            ]
        engine.dispose()
        await app.db.connect()
        try:
            rng = random.Random(11)
            await app.store.list_jobs(user_id=user_ids[-1], limit=20)  # warm the pool
            times = []
            sizes = []
            for _ in range(queries):
                uid = rng.choice(user_ids)
                started = time.perf_counter()
                found = await app.store.list_jobs(user_id=uid, limit=20)
                times.append((time.perf_counter() - started) * 1000)
                sizes.append(len(found))
            return {
                "jobs": jobs,
                "users": users,
                "insert_seconds": round(insert_seconds, 1),
                "db_mb": round(db_path.stat().st_size / 2**20, 1),
                "queries": queries,
                "rows_returned_median": statistics.median(sizes),
                "p50_ms": round(statistics.median(times), 3),
                "p99_ms": round(percentile(times, 99), 3),
                "query_plan": plan,
            }
        finally:
            await app.stop()
