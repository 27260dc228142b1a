"""Operations: ``/metrics`` for Prometheus and the workers list, both admin-only.

The figures are read back with prometheus-client's own parser, as Prometheus would."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from generation.requests import DrawRequest, Origin
from storage.records import JobRecord
from tests.conftest import WebFactory
from tests.web.conftest import SMALL, client_app

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(client: TestClient[Any, Any], **kwargs: Any) -> Samples:
    response = await client.get("/metrics", **kwargs)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(await response.text())


async def scrape_until(
    client: TestClient[Any, Any], wanted: Callable[[Samples], bool], timeout: float = 60.0
) -> Samples:
    async with asyncio.timeout(timeout):
        while not wanted(samples := await scrape(client)):
            await asyncio.sleep(0.05)
    return samples


async def test_metrics_count_queue_depth_per_model_and_scope(web_factory: WebFactory) -> None:
    client = await web_factory(worker=False)  # nothing renders: the queue only grows
    app = client_app(client)
    for user in ("ann", "bob", "ann"):
        await app.service.draw(Origin("discord", "guild-1", user), DrawRequest("x", **SMALL))
    await app.service.draw(Origin("telegram", "-100", "cat"), DrawRequest("y", **SMALL))
    samples = await scrape(client)
    assert samples[("easel_queue_depth_by_model", (("model", "demo"),))] == 4
    by_scope = {
        labels[0][1]: value
        for (name, labels), value in samples.items()
        if name == "easel_queue_depth_by_scope"
    }
    assert sorted(by_scope.values()) == [1, 3]
    assert any(scope.startswith("discord:") for scope in by_scope)
    assert samples[("easel_workers_up", ())] == 0  # no worker in this engine


async def test_metrics_time_jobs_and_count_workers(web_factory: WebFactory) -> None:
    client = await web_factory()
    app = client_app(client)
    accepted = await app.service.draw(Origin("web", "web", "ann"), DrawRequest("x", **SMALL))

    def rendered(samples: Samples) -> bool:
        return samples.get(("easel_job_render_seconds_count", ()), 0) >= 1

    samples = await scrape_until(client, rendered)
    assert samples[("easel_job_wait_seconds_count", ())] == 1
    assert samples[("easel_jobs_finished_total", (("status", "succeeded"),))] == 1
    assert samples[("easel_workers_up", ())] == 1
    job = await app.store.get_job(accepted.job.id)
    assert job is not None and job.started_at and job.finished_at
    took = (job.finished_at - job.started_at).total_seconds()
    assert samples[("easel_job_render_seconds_sum", ())] == pytest.approx(took, abs=1e-3)


async def test_failed_deliveries_are_counted_per_platform(web_factory: WebFactory) -> None:
    client = await web_factory()
    app = client_app(client)

    class Unreachable:  # a chat whose network is down (the front end's edge)
        platform = "discord"

        async def on_event(self, event: object) -> None:
            return None

        async def deliver(self, job: JobRecord) -> None:
            raise aiohttp.ClientConnectionError("connection reset by peer")

    app.delivery.register(Unreachable())
    await app.service.draw(Origin("discord", "guild-1", "ann"), DrawRequest("x", **SMALL))
    key = ("easel_deliveries_failed_total", (("permanent", "no"), ("platform", "discord")))
    samples = await scrape_until(client, lambda s: s.get(key, 0) >= 1)
    assert samples[key] >= 1


async def test_the_workers_list_says_what_renders(web_factory: WebFactory) -> None:
    client = await web_factory()
    response = await client.get("/api/admin/workers")
    assert response.status == 200
    (local,) = (await response.json())["workers"]
    assert local["name"] == "local" and local["state"] == "idle"
    assert local["device"] == "" and local["loaded"] == []  # nothing built before a job
    app = client_app(client)
    accepted = await app.service.draw(Origin("web", "web", "ann"), DrawRequest("x", **SMALL))
    async with asyncio.timeout(60):
        while not (job := await app.store.get_job(accepted.job.id)) or not job.is_terminal:
            await asyncio.sleep(0.05)
    (local,) = (await (await client.get("/api/admin/workers")).json())["workers"]
    assert local["device"] == "cpu" and local["loaded"] == ["demo"]
    assert local["jobs_per_minute"] == 1.0


async def test_metrics_and_workers_are_for_admins_only(
    web_factory: WebFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EASEL_API_AUTH", "alice:wonderland")
    monkeypatch.setenv("EASEL_ADMIN_TOKEN", "admin-token-123456")
    client = await web_factory(worker=False, web={"host": "0.0.0.0"})
    alice = aiohttp.BasicAuth("alice", "wonderland")
    admin = {"Authorization": "Bearer admin-token-123456"}
    for path in ("/metrics", "/api/admin/workers"):
        nobody = await client.get(path)
        assert nobody.status == 401 and "WWW-Authenticate" not in nobody.headers
        assert (await client.get(path, auth=alice)).status == 403
        assert (await client.get(path, headers=admin)).status == 200
    assert (
        "easel_queue_depth_by_model" in await (await client.get("/metrics", headers=admin)).text()
    )
