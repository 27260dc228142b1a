"""Fast start: the engine answers while its backend (torch, diffusers, the model) loads on the
worker's thread; jobs wait and run once it is ready; a backend that fails to build fails the
job that needed it with the reason, and the next job tries again."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import App, diffusers_backend
from bot.web.server import create_web_app
from generation.lazy_backend import LazyBackend
from generation.render import Backend, ModelSource
from generation.requests import DrawRequest, Origin
from storage.records import JobRecord
from tests.conftest import make_config

SMALL = {"width": 64, "height": 64, "steps": 2}
ANN = Origin("web", "web", "ann")


@pytest.fixture
async def started() -> AsyncIterator[list[App]]:
    apps: list[App] = []
    yield apps
    for app in apps:
        await app.stop()


async def finished(app: App, job_id: str) -> JobRecord:
    async with asyncio.timeout(120):
        while True:
            job = await app.store.get_job(job_id)
            if job is not None and job.is_terminal:
                return job
            await asyncio.sleep(0.05)


async def test_the_page_answers_while_the_model_loads_and_jobs_wait(
    data_dir: Path, started: list[App]
) -> None:
    release = threading.Event()
    config = make_config(data_dir, generation={"cpu_threads": 1})

    def slow_build() -> Backend:  # torch and the model taking their time
        release.wait(timeout=120)
        return diffusers_backend(config)

    app = App.from_config(config, backend=LazyBackend(slow_build))
    await app.start()
    started.append(app)
    client: TestClient[Any, Any] = TestClient(TestServer(create_web_app(app), host="127.0.0.1"))
    await client.start_server()
    try:
        assert app.worker is not None
        preload = app.worker.preload(ModelSource("demo", "builtin:demo", "builtin", None))
        async with asyncio.timeout(30):
            while not (await (await client.get("/api/status")).json())["loading"]:
                await asyncio.sleep(0.02)
        progress = await (await client.get("/sdapi/v1/progress")).json()
        assert progress["textinfo"] == "Loading model"
        workers = await (await client.get("/api/admin/workers")).json()
        assert workers["workers"][0]["state"] == "loading"
        assert workers["workers"][0]["device"] == "loading"
        accepted = await app.service.draw(ANN, DrawRequest("waits for the model", **SMALL))
        assert (await app.store.get_job(accepted.job.id)).status == "queued"  # type: ignore[union-attr]

        release.set()
        await preload
        job = await finished(app, accepted.job.id)
        assert job.status == "succeeded" and len(job.images) == 1
        assert (await (await client.get("/api/status")).json()) == {"loading": False}
        progress = await (await client.get("/sdapi/v1/progress")).json()
        assert progress["textinfo"] is None
    finally:
        release.set()
        await client.close()


async def test_a_backend_that_fails_to_build_fails_the_job_then_is_retried(
    data_dir: Path, started: list[App]
) -> None:
    config = make_config(data_dir, generation={"cpu_threads": 1})
    attempts: list[int] = []

    def flaky_build() -> Backend:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("CUDA driver version is insufficient for CUDA runtime version")
        return diffusers_backend(config)

    app = App.from_config(config, backend=LazyBackend(flaky_build))
    await app.start()
    started.append(app)
    first = await app.service.draw(ANN, DrawRequest("first", **SMALL))
    failed = await finished(app, first.job.id)
    assert failed.status == "failed" and failed.error is not None
    assert "CUDA driver version is insufficient" in failed.error
    second = await app.service.draw(ANN, DrawRequest("second", **SMALL))
    assert (await finished(app, second.job.id)).status == "succeeded"
    assert len(attempts) == 2
