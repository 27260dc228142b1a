"""Easel's JSON API (/api) and the credentials policy, over real HTTP on the demo model."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from PIL import Image

from bot.web.server import create_web_app
from generation.errors import ConfigError
from generation.events import JobProgress, JobStarted
from generation.metadata import read_png_text
from tests.conftest import AppFactory
from tests.web.conftest import SMALL, WebFactory, client_app, nothing_queued, png_b64

Client = TestClient[Any, Any]


async def sse(response: ClientResponse) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """``(event, data)`` pairs of a Server-Sent Events stream (heartbeat comments skipped)."""
    event, data = "message", ""
    while True:
        raw = await response.content.readline()
        if not raw:
            return
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data += line[6:]
        elif line == "" and data:
            yield event, json.loads(data)
            event, data = "message", ""


async def until_finished(response: ClientResponse, job_id: str) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []
    async with asyncio.timeout(60):
        async for event, data in sse(response):
            mine = data.get("job_id") or data["job"]["id"]
            if mine == job_id:
                seen.append((event, data))
            if event == "finished" and mine == job_id:
                return seen
    raise AssertionError(f"the stream ended early: {seen}")


async def test_submit_follow_events_fetch_and_act(web_client: Client) -> None:
    app = client_app(web_client)
    stream = await web_client.get("/api/events")
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    body = {"prompt": "a red fox --seed 7 --no blurry --ar 3:2", "steps": 4, "seed": 99,
            "width": 64, "height": 64, "sampler": "euler"}  # fmt: skip
    response = await web_client.post("/api/jobs", json=body)
    assert response.status == 202, await response.text()
    accepted = await response.json()
    job = accepted["job"]
    assert accepted["position"] == 0 and accepted["eta_seconds"] >= 0
    assert (job["prompt"], job["negative_prompt"], job["seed"]) == ("a red fox", "blurry", 7)
    assert (job["width"], job["height"], job["sampler"]) == (96, 64, "Euler")  # --ar wins
    assert job["status"] == "queued" and "position" in job

    events = await until_finished(stream, job["id"])
    stream.close()
    names = [name for name, _ in events]
    assert names[0] == "queued" and names[1] == "started" and names[-1] == "finished"
    steps = [data["step"] for name, data in events if name == "progress"]
    assert steps and steps == sorted(steps)
    previews = [data["preview"] for name, data in events if name == "progress" and data["preview"]]
    # the page's stream shows previews, so they are made (a few per second, and the first step)
    assert previews and all(p.startswith("data:image/png;base64,") for p in previews)
    finished = events[-1][1]["job"]
    assert finished["status"] == "succeeded"

    fetched = await (await web_client.get(f"/api/jobs/{job['id'].upper()}")).json()
    assert fetched["images"] == finished["images"] and fetched["image_seeds"] == [7]
    (url,) = fetched["images"]
    assert url.startswith("/api/images/") and url.endswith(".png")
    image = await web_client.get(url)
    assert image.status == 200 and image.headers["Content-Type"] == "image/png"
    sha = url.split("/")[-1][:-4]
    assert image.headers["Content-Disposition"] == f'inline; filename="easel-{sha[:10]}.png"'
    data = await image.read()
    assert read_png_text(data)["parameters"] == fetched["infotexts"][0]
    assert Image.open(io.BytesIO(data)).size == (96, 64)

    late = await web_client.get(f"/api/events?job={job['id']}")  # already finished: one event
    assert [name async for name, _ in sse(late)] == ["finished"]

    listed = await (await web_client.get("/api/jobs?limit=5&q=FOX")).json()
    assert [j["id"] for j in listed["jobs"]] == [job["id"]] and listed["limit"] == 5
    none = await (await web_client.get("/api/jobs?q=castle")).json()
    assert none["jobs"] == []

    async def act(action: str, **fields: Any) -> Any:
        reply = await web_client.post(
            f"/api/jobs/{job['id']}/actions", json={"action": action, **fields}
        )
        assert reply.status in (200, 202), await reply.text()
        return await reply.json()

    upscale = await act("upscale", index=0)
    vary = await act("vary", strength="strong")
    reroll = await act("reroll")
    rerun = await act("rerun")
    assert rerun["job"]["seed"] == 7 and rerun["job"]["action"] == "rerun"
    for queued in (reroll, rerun):  # still waiting behind the upscale and the variation
        cancel = await web_client.post(
            f"/api/jobs/{queued['job']['id']}/actions", json={"action": "cancel"}
        )
        assert cancel.status == 200 and (await cancel.json())["job"]["status"] == "cancelled"
    assert upscale["job"]["action"] == "upscale" and upscale["job"]["width"] == 192
    assert vary["job"]["strength"] == 0.7 and reroll["job"]["action"] == "reroll"
    for child in (upscale, vary):
        child_events = await web_client.get(f"/api/events?job={child['job']['id']}")
        final = (await until_finished(child_events, child["job"]["id"]))[-1][1]["job"]
        assert final["status"] == "succeeded" and final["parent_id"] == job["id"]
    await nothing_queued(app)


async def test_bad_requests_are_clear_4xx_and_queue_nothing(web_factory: WebFactory) -> None:
    client = await web_factory(worker=False, web={"max_upload_mb": 1})
    app = client_app(client)

    async def call(method: str, path: str, status: int, **kwargs: Any) -> dict[str, Any]:
        response = await client.request(method, path, **kwargs)
        assert response.status == status, (path, kwargs, await response.text())
        body: dict[str, Any] = await response.json()
        assert set(body) == {"error", "type"} and body["error"], body
        return body

    async def submit(status: int, **kwargs: Any) -> dict[str, Any]:
        return await call("POST", "/api/jobs", status, **kwargs)

    bad = await submit(400, data=b"{nope", headers={"Content-Type": "application/json"})
    assert bad["type"] == "InvalidRequest" and "not valid JSON" in bad["error"]
    assert "empty" in (await submit(400, data=b""))["error"]
    assert "JSON object" in (await submit(400, json=["a cat"]))["error"]
    assert "prompt must be a string" in (await submit(400, json={"prompt": 5}))["error"]
    assert (
        "steps must be a whole number"
        in (await submit(400, json={"prompt": "x", "steps": "ten"}))["error"]
    )
    assert "cfg must be a number" in (await submit(400, json={"prompt": "x", "cfg": True}))["error"]
    unknown_model = await submit(400, json={"prompt": "x", "model": "nope"})
    assert "Unknown model 'nope'" in unknown_model["error"]
    assert (
        "Unknown sampler" in (await submit(400, json={"prompt": "x", "sampler": "Bogus"}))["error"]
    )
    grammar = await submit(400, json={"prompt": "a cat --bogus 3"})
    assert grammar["type"] == "GrammarError" and "--bogus" in grammar["error"]
    assert "Steps 1000" in (await submit(400, json={"prompt": "x", "steps": 1000}))["error"]
    assert "base64" in (await submit(400, json={"prompt": "x", "init_image": "@@@"}))["error"]
    big = base64.b64encode(b"\0" * (1024 * 1024 + 10)).decode()
    too_big = await submit(413, json={"prompt": "x", "init_image": big})
    assert too_big["type"] == "UploadTooLarge"
    huge = await submit(413, json={"prompt": "x", "init_image": "A" * (3 * 1024 * 1024)})
    assert "larger than this server accepts" in huge["error"]
    bomb = await submit(400, json={"prompt": "x", "init_image": png_b64((5000, 5000))})
    assert bomb["type"] == "ImageRejected"

    assert (await call("GET", "/api/jobs/zzzzzzzz", 404))["type"] == "NotFound"
    await call("POST", "/api/jobs/zzzzzzzz/actions", 404, json={"action": "reroll"})
    assert (
        "action must be one of"
        in (await call("POST", "/api/jobs/zzzzzzzz/actions", 400, json={"action": "explode"}))[
            "error"
        ]
    )
    await call("GET", "/api/images/" + "0" * 64 + ".png", 404)
    await call("GET", "/api/images/..%2F..%2Fetc%2Fpasswd", 400)
    await call("GET", "/api/images/not-a-hash.png", 400)
    await call("GET", "/api/jobs?limit=lots", 400)
    await call("GET", "/api/events?job=zzzzzzzz", 404)
    assert (await call("GET", "/api/nothing-here", 404))["type"] == "NotFound"
    await call("DELETE", "/api/jobs", 405)
    await nothing_queued(app)

    models = await (await client.get("/api/models")).json()
    assert [m["name"] for m in models["models"]] == ["demo"]
    assert models["models"][0]["is_default"] and "DPM++ 2M Karras" in models["samplers"]


async def test_rate_limit_answers_429_with_retry_after(
    web_factory: WebFactory, credentials: None
) -> None:
    limits = {"burst": 1, "rate_per_minute": 1, "max_queued_per_user": 2}
    client = await web_factory(worker=False, limits=limits, web={"host": "0.0.0.0"})
    alice = aiohttp.BasicAuth("alice", "wonderland")
    first = await client.post("/api/jobs", json={"prompt": "one", **SMALL}, auth=alice)
    assert first.status == 202
    second = await client.post("/api/jobs", json={"prompt": "two", **SMALL}, auth=alice)
    assert second.status == 429
    assert 1 <= int(second.headers["Retry-After"]) <= 60
    assert (await second.json())["type"] == "RateLimited"
    # The admin is not held to the per-user limits (rate, burst, waiting cap): 3 in a row.
    admin = {"Authorization": "Bearer admin-token-123456"}
    for n in range(3):
        answer = await client.post(
            "/api/jobs", json={"prompt": f"admin {n}", **SMALL}, headers=admin
        )
        assert answer.status == 202, await answer.text()
    assert len(client_app(client).queue) == 4


async def test_the_owner_on_loopback_is_not_rate_limited_unless_configured(
    web_factory: WebFactory,
) -> None:
    tight = {"burst": 1, "rate_per_minute": 1, "max_queued_per_user": 1, "daily_quota": 1}
    client = await web_factory(worker=False, limits=tight)  # loopback: everyone is the owner
    for n in range(4):
        answer = await client.post("/api/jobs", json={"prompt": f"mine {n}", **SMALL})
        assert answer.status == 202, await answer.text()

    held_limits = {"burst": 1, "rate_per_minute": 1, "exempt_admins": False}
    held = await web_factory(worker=False, limits=held_limits)  # same data dir, fresh limiter
    assert (await held.post("/api/jobs", json={"prompt": "one", **SMALL})).status == 202
    refused = await held.post("/api/jobs", json={"prompt": "two", **SMALL})
    assert refused.status == 429


async def test_the_global_queue_cap_holds_for_admins_too(web_factory: WebFactory) -> None:
    client = await web_factory(worker=False, limits={"max_queue": 2})
    for n in range(2):
        assert (await client.post("/api/jobs", json={"prompt": f"{n}", **SMALL})).status == 202
    full = await client.post("/api/jobs", json={"prompt": "one too many", **SMALL})
    assert full.status == 429 and "queue is full" in (await full.json())["error"]


async def test_admin_settings_blocklist_and_models(idle_client: Client, data_dir: Path) -> None:
    settings = await (await idle_client.get("/api/admin/settings")).json()
    assert settings["scope"] == "web" and settings["settings"]["blocklist"] == []
    assert settings["server"]["limits"]["burst"] == 1000
    changed = await idle_client.post("/api/admin/settings", json={"max_steps": 10})
    assert changed.status == 200 and (await changed.json())["settings"]["max_steps"] == 10
    refused = await idle_client.post("/api/jobs", json={"prompt": "x", "steps": 20})
    assert refused.status == 400 and "Steps 20" in (await refused.json())["error"]
    wrong = await idle_client.post("/api/admin/settings", json={"max_stepz": 3})
    assert wrong.status == 400 and "Unknown setting" in (await wrong.json())["error"]
    blocked = await idle_client.post("/api/admin/blocklist", json={"add": ["castle"]})
    assert (await blocked.json())["settings"]["blocklist"] == ["castle"]
    draw = await idle_client.post("/api/jobs", json={"prompt": "a castle", **SMALL})
    assert draw.status == 400 and (await draw.json())["type"] == "BlockedPrompt"
    await idle_client.post("/api/admin/blocklist", json={"remove": ["CASTLE"]})
    api_scope = await (await idle_client.get("/api/admin/settings?scope=api")).json()
    assert api_scope["scope"] == "api" and api_scope["settings"]["max_steps"] is None

    folder = str(data_dir / "models" / "demo")
    added = await idle_client.post(
        "/api/admin/models",
        json={"name": "mine", "source": folder, "defaults": {"steps": 3, "sampler": "euler"}},
    )
    assert added.status == 201, await added.text()
    assert (await added.json())["model"]["default_sampler"] == "Euler"
    again = await idle_client.post("/api/admin/models", json={"name": "mine", "source": folder})
    assert again.status == 400
    default = await idle_client.post("/api/admin/models/mine/default")
    assert (await default.json())["model"]["name"] == "mine"
    refused_remove = await idle_client.delete("/api/admin/models/mine")
    assert refused_remove.status == 400  # the default cannot go
    await idle_client.post("/api/admin/models/demo/default")
    assert (await idle_client.delete("/api/admin/models/mine")).status == 200
    assert (await idle_client.delete("/api/admin/models/mine")).status == 404
    await nothing_queued(client_app(idle_client))


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EASEL_API_AUTH", "alice:wonderland,bob:builder")
    monkeypatch.setenv("EASEL_API_TOKEN", "api-token-123456")
    monkeypatch.setenv("EASEL_ADMIN_TOKEN", "admin-token-123456")


async def test_public_host_needs_credentials(web_factory: WebFactory, credentials: None) -> None:
    # Configured for every interface; the test server itself binds 127.0.0.1 only.
    client = await web_factory(worker=False, web={"host": "0.0.0.0"})
    alice = aiohttp.BasicAuth("alice", "wonderland")
    bearer = {"Authorization": "Bearer api-token-123456"}
    admin = {"Authorization": "Bearer admin-token-123456"}

    missing = await client.get("/api/jobs")
    assert missing.status == 401 and (await missing.json())["type"] == "Unauthorized"
    assert missing.headers["WWW-Authenticate"].startswith("Basic")
    sd = await client.get("/sdapi/v1/sd-models")
    assert sd.status == 401 and "WWW-Authenticate" not in sd.headers
    assert await sd.json() == {
        "error": "HTTPException", "detail": "Not authenticated", "body": "", "errors": "",
    }  # fmt: skip
    wrong = await client.get("/sdapi/v1/sd-models", auth=aiohttp.BasicAuth("alice", "nope"))
    assert (
        wrong.status == 401 and (await wrong.json())["detail"] == "Incorrect username or password"
    )
    garbled = await client.get("/sdapi/v1/options", headers={"Authorization": "Basic !!!"})
    assert (await garbled.json())["detail"] == "Invalid authentication credentials"
    bad_token = await client.get("/api/models", headers={"Authorization": "Bearer guess"})
    assert bad_token.status == 401
    assert "WWW-Authenticate" not in bad_token.headers  # no browser login box for a bad token
    assert (await client.get("/sdapi/v1/no-such-route")).status == 404  # routing first

    assert (await client.get("/sdapi/v1/sd-models", auth=alice)).status == 200
    assert (await client.get("/api/models", headers=bearer)).status == 200
    submitted = await client.post("/api/jobs", json={"prompt": "x", **SMALL}, auth=alice)
    assert submitted.status == 202
    app = client_app(client)
    job = await app.store.get_job((await submitted.json())["job"]["id"])
    assert job is not None
    user = await app.store.get_user(job.user_id)
    assert user is not None and (user.platform, user.platform_user_id) == ("web", "alice")
    mine = await (await client.get("/api/jobs", auth=aiohttp.BasicAuth("bob", "builder"))).json()
    assert mine["jobs"] == []  # not an admin: only bob's own jobs

    no_admin = await client.get("/api/admin/settings")
    assert no_admin.status == 401 and "WWW-Authenticate" not in no_admin.headers
    assert (await client.get("/api/admin/settings", auth=alice)).status == 403
    assert (await client.get("/api/admin/settings", headers=bearer)).status == 403
    assert (await client.get("/api/admin/settings", headers=admin)).status == 200
    switch = {"sd_model_checkpoint": "demo"}
    assert (await client.post("/sdapi/v1/options", json=switch, headers=admin)).status == 200
    everyone = await (await client.get("/api/jobs", headers=admin)).json()
    assert len(everyone["jobs"]) == 1


async def test_public_host_without_credentials_refuses_to_start(
    app_factory: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("EASEL_API_AUTH", "EASEL_API_TOKEN", "EASEL_ADMIN_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    app = await app_factory(worker=False, web={"host": "0.0.0.0"})
    with pytest.raises(ConfigError, match="no API credentials"):
        create_web_app(app)
    monkeypatch.setenv("EASEL_API_AUTH", "nopassword")
    with pytest.raises(ConfigError, match="user:password"):
        create_web_app(app)


async def test_event_stream_heartbeats_and_ends_when_the_server_stops(
    idle_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.web import events

    monkeypatch.setattr(events, "HEARTBEAT_SECONDS", 0.05)
    stream = await idle_client.get("/api/events")
    assert stream.status == 200
    async with asyncio.timeout(10):
        assert await stream.content.readline() == b": heartbeat\n"
        await idle_client.server.close()  # on_shutdown ends every stream
        while await stream.content.readline():
            pass


def test_loopback_detection_and_secrets_stay_out_of_reprs() -> None:
    from bot.web.auth import Credentials, is_loopback

    for host in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "192.168.1.5", "example.org", ""):
        assert not is_loopback(host), host
    shown = repr(Credentials((("alice", "s3cret-pass"),), "tok-123456", "adm-123456"))
    assert "alice" in shown and "s3cret" not in shown and "tok-" not in shown


async def test_waiting_times_follow_each_jobs_size_and_a_running_jobs_steps(
    idle_client: Client,
) -> None:
    app = client_app(idle_client)

    async def submit(side: int) -> dict[str, Any]:
        body = {"prompt": f"size {side}", "width": side, "height": side, "steps": 20}
        response = await idle_client.post("/api/jobs", json=body)
        assert response.status == 202, await response.text()
        return dict(await response.json())

    async def fetch(job_id: str) -> dict[str, Any]:
        return dict(await (await idle_client.get(f"/api/jobs/{job_id}")).json())

    # Before any job finished: generation.initial_job_seconds (10 s) for 512x512 and 20 steps,
    # a smaller job less. "Position x one average" would say 20 s for the third job.
    first = await submit(512)
    assert (first["eta_seconds"], first["seconds_left"]) == (0.0, 10.0)
    small = await submit(128)
    assert (small["eta_seconds"], small["seconds_left"]) == (10.0, 10.6)
    last = await submit(512)
    assert (last["eta_seconds"], last["seconds_left"]) == (10.6, 20.6)
    fetched = await fetch(last["job"]["id"])
    assert (fetched["position"], fetched["eta_seconds"], fetched["seconds_left"]) == (2, 10.6, 20.6)
    stream = await idle_client.get(f"/api/events?job={last['job']['id']}")
    name, data = await anext(sse(stream))
    stream.close()
    assert name == "queued" and (data["eta_seconds"], data["seconds_left"]) == (10.6, 20.6)

    # The first job starts (as the worker would start it) and gets halfway through its steps:
    # its time left follows the steps too, and everyone after it waits for that.
    app.service.progress.start()  # what the engine follows while a worker runs
    (item,) = await app.queue.take_batch(1)
    running = await app.store.mark_running(item.job_id)
    assert running is not None and running.id == first["job"]["id"]
    watch = await idle_client.get("/api/events")
    app.bus.publish(JobStarted(running))
    app.bus.publish(JobProgress(running.id, 10, 20))
    async with asyncio.timeout(30):
        async for name, data in sse(watch):
            if name == "progress":
                assert data["step"] == 10 and data["seconds_left"] >= 0
                break
    watch.close()
    async with asyncio.timeout(30):  # the engine's progress tracker follows the same events
        while app.service.progress.running.get(running.id) is None or (
            app.service.progress.running[running.id].step < 10
        ):
            await asyncio.sleep(0.01)
    # Half the steps in e seconds: the steps say e more, the estimate 10 - e: half each = 5.
    now_running = await fetch(running.id)
    assert now_running["status"] == "running" and now_running["seconds_left"] == pytest.approx(
        5.0, abs=0.15
    )
    assert (await fetch(small["job"]["id"]))["eta_seconds"] == pytest.approx(5.0, abs=0.15)
    a1111 = await (await idle_client.get("/sdapi/v1/progress")).json()
    assert a1111["eta_relative"] == pytest.approx(now_running["seconds_left"], abs=0.15)
    app.queue.finished(running.id, None)
