"""Who may see which job, table-driven over every route, command, button and callback.

The rule (generation.visibility): everyone sees their own jobs; a Discord server's members see
that server's jobs and a Telegram chat's members that chat's (the results are posted there); an
HTTP credential sees only its own, on ``/api`` and ``/sdapi`` alike (one person on both APIs);
an admin (the admin token, loopback, the command line) sees every job. To anyone else a job is
"No job with id", exactly like one that does not exist.

Each table is checked against what the code registers (the aiohttp router, the Discord command
tree and button codes, the Telegram handlers and callback codes), so a new route, command or
button that reaches jobs must join a table here, and then be scoped, to pass.

The three leaks found from outside are here: ``GET /api/jobs/{id}`` of someone else's job
answered with their prompt, ``GET /api/events?job=`` streamed someone else's job, and a forged
Telegram ``i:<job>`` callback from another chat showed that job's info.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import discord
import pytest

from bot.discord.actions import BUTTON_ACTIONS
from bot.discord.buttons import ACTIONS as DISCORD_BUTTONS
from bot.discord.buttons import PANS, REGION, ZOOMS, result_view
from bot.telegram.keyboards import ACTIONS as TELEGRAM_CALLBACKS
from generation.events import JobFinished, JobStarted
from tests.conftest import AppFactory
from tests.discord.harness import (  # noqa: F401  (fixtures)
    job_id_in,
    shared_backend_fixture,
    world_factory_fixture,
)
from tests.reliability.test_permissions import (  # noqa: F401  (fixtures)
    ADMIN_TOKEN,
    ALICE,
    BOB,
    PUBLIC_ROUTES,
    USER_TOKEN,
    Client,
    TelegramEnv,
    _ids,
    app_of,
    credentials,
    readable,
    request,
    routes,
    serve,
    telegram,
    web_sections,
)
from tests.web.conftest import png_b64

NO_JOB = "No job with id"

# ---------------------------------------------------------------------- the HTTP APIs

# Routes that reach an existing job (by id, by image, or by listing/streaming/stopping jobs).
WEB_JOB_ROUTES = {
    ("GET", "/api/jobs"),
    ("GET", "/api/jobs/{id}"),
    ("POST", "/api/jobs/{id}/actions"),
    ("POST", "/api/jobs/{id}/inpaint"),
    ("GET", "/api/images/{name}"),
    ("GET", "/api/events"),
    ("GET", "/sdapi/v1/progress"),
    ("POST", "/sdapi/v1/interrupt"),
    ("POST", "/sdapi/v1/skip"),
}
# Routes that make the caller's own new job, or show no stored job at all: model and sampler
# lists, options, info about an uploaded file, extras on an uploaded image, admin settings.
_A1111_LISTS = [
    "cmd-flags",
    "embeddings",
    "extensions",
    "face-restorers",
    "hypernetworks",
    "latent-upscale-modes",
    "loras",
    "memory",
    "options",
    "prompt-styles",
    "realesrgan-models",
    "samplers",
    "schedulers",
    "script-info",
    "scripts",
    "sd-models",
    "sd-modules",
    "sd-vae",
    "upscalers",
]
_A1111_POSTS = [
    "txt2img",
    "img2img",
    "extra-batch-images",
    "extra-single-image",
    "interrogate",
    "options",
    "png-info",
    "refresh-checkpoints",
    "refresh-embeddings",
    "refresh-loras",
    "refresh-vae",
    "reload-checkpoint",
    "unload-checkpoint",
]
WEB_NO_JOB_ROUTES = {
    ("POST", "/api/jobs"),
    ("GET", "/api/models"),
    ("GET", "/api/status"),
    ("GET", "/api/admin/settings"),
    ("POST", "/api/admin/settings"),
    ("POST", "/api/admin/blocklist"),
    ("POST", "/api/admin/styles"),
    ("GET", "/api/styles"),  # the scope's prompt styles: no job in it
    ("POST", "/api/admin/models"),
    ("DELETE", "/api/admin/models/{name}"),
    ("POST", "/api/admin/models/{name}/default"),
    ("POST", "/api/admin/addons"),  # LoRA and embedding files: the registry, no job
    ("DELETE", "/api/admin/addons/{name}"),
    # Admin-only (tests/web/test_operations.py): the workers list names the jobs rendering.
    ("GET", "/api/admin/workers"),
    # Admin-only (tests/web/test_admin_scopes.py): names the servers and chats using Easel.
    ("GET", "/api/admin/scopes"),
    ("GET", "/metrics"),
    *(("GET", f"/sdapi/v1/{name}") for name in _A1111_LISTS),
    *(("POST", f"/sdapi/v1/{name}") for name in _A1111_POSTS),
}


@pytest.fixture
async def served(app_factory: AppFactory, credentials: None) -> AsyncIterator[Client]:  # noqa: F811
    """A public-host configuration (credentials apply) with the worker on."""
    app = await app_factory(
        web=web_sections("0.0.0.0"), generation={"cpu_threads": 1, "shutdown_grace_seconds": 5.0}
    )
    client = await serve(app)
    yield client
    await client.close()


async def finished(client: Client, job_id: str) -> dict[str, Any]:
    app = app_of(client)
    async with asyncio.timeout(120):
        while True:
            job = await app.store.get_job(job_id)
            if job is not None and job.is_terminal:
                status, body = await request(client, "GET", f"/api/jobs/{job_id}", auth=ALICE)
                assert status == 200, body
                return dict(body)
            await asyncio.sleep(0.05)


def test_every_route_is_in_a_table(tmp_path: Path) -> None:
    from bot.app import App
    from bot.web.server import create_web_app
    from tests.conftest import make_config

    app = App.from_config(make_config(tmp_path))
    table = {(m, p) for m, p in routes(create_web_app(app)) if m != "HEAD"}
    assert table == WEB_JOB_ROUTES | WEB_NO_JOB_ROUTES | PUBLIC_ROUTES, (
        "a route is missing from the scoping tables (or a listed one is gone): "
        f"{sorted(table ^ (WEB_JOB_ROUTES | WEB_NO_JOB_ROUTES | PUBLIC_ROUTES))}"
    )


async def test_a_credential_sees_its_own_jobs_on_both_apis_and_nobody_elses(
    served: Client,
) -> None:
    app = app_of(served)
    # Alice draws through /api and through the A1111 API: one person on both.
    status, body = await request(
        served, "POST", "/api/jobs", json={"prompt": "alice's secret garden"}, auth=ALICE
    )
    assert status == 202, body
    web_job = await finished(served, body["job"]["id"])
    status, body = await request(
        served,
        "POST",
        "/sdapi/v1/txt2img",
        json={"prompt": "alice's second secret", "steps": 2, "width": 64, "height": 64},
        auth=ALICE,
    )
    assert status == 200, body
    api_job_id = json.loads(body["info"])["easel_job_id"]
    sha = web_job["image_sha256"][0]

    status, body = await request(served, "GET", "/api/jobs", auth=ALICE)
    assert {j["id"] for j in body["jobs"]} == {web_job["id"], api_job_id}

    # Bob (another credential) and the shared API token: her jobs do not exist for them.
    for who in ({"auth": BOB}, {"headers": USER_TOKEN}):
        for job_id in (web_job["id"], api_job_id):
            status, body = await request(served, "GET", f"/api/jobs/{job_id}", **who)
            assert status == 404 and NO_JOB in readable(body), body  # leak 1
            assert "secret" not in json.dumps(body)
            status, body = await request(served, "GET", f"/api/events?job={job_id}", **who)
            assert status == 404 and NO_JOB in readable(body), body  # leak 2
            for action in ("reroll", "rerun", "upscale", "vary", "cancel"):
                status, body = await request(
                    served,
                    "POST",
                    f"/api/jobs/{job_id}/actions",
                    json={"action": action},
                    **who,
                )
                assert status == 404 and NO_JOB in readable(body), (action, body)
            status, body = await request(
                served,
                "POST",
                f"/api/jobs/{job_id}/inpaint",
                json={"mask": png_b64((64, 64), (255, 255, 255)), "prompt": "mine now"},
                **who,
            )
            assert status == 404 and NO_JOB in readable(body), body
        status, body = await request(served, "GET", f"/api/images/{sha}.png", **who)
        assert status == 404, body
        status, body = await request(served, "GET", "/api/jobs", **who)
        assert status == 200 and body["jobs"] == []
    # Her own credential and the admin token do see them.
    for who in ({"auth": ALICE}, {"headers": ADMIN_TOKEN}):
        status, _ = await request(served, "GET", f"/api/images/{sha}.png", **who)
        assert status == 200
        status, body = await request(served, "GET", f"/api/jobs/{api_job_id}", **who)
        assert status == 200 and body["prompt"] == "alice's second secret"
    assert len(await app.store.list_jobs(limit=100)) == 2  # nothing was made by the refusals


async def read_events(
    client: Client, who: dict[str, Any], until_job: asyncio.Future[str]
) -> list[tuple[str, str]]:
    """(event, job id) of the event stream ``who`` sees, until ``until_job`` has finished."""
    seen: list[tuple[str, str]] = []
    async with client.get("/api/events", **who) as stream:
        assert stream.status == 200
        name = ""
        async with asyncio.timeout(120):
            async for raw in stream.content:
                line = raw.decode().strip()
                if line.startswith("event: "):
                    name = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    data = json.loads(line.removeprefix("data: "))
                    job_id = data.get("job_id") or data["job"]["id"]
                    seen.append((name, job_id))
                    if name == "finished" and until_job.done() and job_id == until_job.result():
                        return seen
    return seen


async def test_event_streams_progress_and_interrupt_see_only_the_callers_jobs(
    served: Client,
) -> None:
    app = app_of(served)
    bobs_job: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    bobs_stream = asyncio.ensure_future(read_events(served, {"auth": BOB}, bobs_job))
    subscription = app.bus.subscribe()
    try:
        await asyncio.sleep(0.2)  # bob's stream is open
        # Alice's job runs long enough to be interrupted; bob's waits behind it.
        status, body = await request(
            served, "POST", "/api/jobs", json={"prompt": "alice's slow one --steps 60"}, auth=ALICE
        )
        alice_id = body["job"]["id"]
        async with asyncio.timeout(120):
            while True:
                event = await subscription.get()
                if isinstance(event, JobStarted) and event.job.id == alice_id:
                    break
        status, body = await request(
            served, "POST", "/api/jobs", json={"prompt": "bob's own --steps 1"}, auth=BOB
        )
        bobs_job.set_result(body["job"]["id"])

        # While hers runs: bob's progress shows nothing of it, and his interrupt stops nothing.
        status, body = await request(served, "GET", "/sdapi/v1/progress", auth=BOB)
        assert status == 200 and body["progress"] == 0.0 and body["current_image"] is None
        assert body["state"]["sampling_steps"] == 0
        for path in ("/sdapi/v1/interrupt", "/sdapi/v1/skip"):
            assert (await request(served, "POST", path, auth=BOB))[0] == 200
        if app.queue.is_running(alice_id):  # her job outlived his calls: it must carry on
            status, body = await request(served, "GET", "/sdapi/v1/progress", auth=ALICE)
            assert body["state"]["job_count"] >= 1
        # Her own interrupt stops it.
        assert (await request(served, "POST", "/sdapi/v1/interrupt", auth=ALICE))[0] == 200
        async with asyncio.timeout(120):
            while True:
                event = await subscription.get()
                if isinstance(event, JobFinished) and event.job.id == alice_id:
                    assert event.job.status in ("cancelled", "succeeded")
                    break
        seen = await bobs_stream
    finally:
        subscription.close()
        bobs_stream.cancel()
    assert {job_id for _, job_id in seen} == {bobs_job.result()}, seen  # none of hers
    assert ("finished", bobs_job.result()) in seen


# ---------------------------------------------------------------------- Discord

# Slash commands that take a job id, and the button codes: each tried from another server.
DISCORD_JOB_COMMANDS = {"rerun", "show", "cancel"}


def discord_commands_taking_a_job(tree: discord.app_commands.CommandTree[Any]) -> set[str]:
    names = set()
    for command in tree.get_commands():
        params = getattr(command, "parameters", [])
        if any(p.name == "id" for p in params):
            names.add(command.name)
    return names


async def test_discord_jobs_of_another_server_do_not_exist_there(world_factory: Any) -> None:
    async with world_factory(worker=False) as world:
        assert discord_commands_taking_a_job(world.bot.tree) == DISCORD_JOB_COMMANDS
        assert set(DISCORD_BUTTONS) == {*BUTTON_ACTIONS, "info", "del", *ZOOMS, *PANS, REGION}
        alice = world.member("alice")
        drawn = await alice.slash(world.channel, "draw", prompt="alice's secret pond")
        job_id = job_id_in(drawn.response.content)
        jobs_before = len(await world.app.store.list_jobs())

        other = world.env.create_guild("Elsewhere")
        channel = other.create_text_channel("lobby")
        stranger = other.add_member(world.env.create_user("mallory"))
        for command in sorted(DISCORD_JOB_COMMANDS):
            result = await stranger.slash(channel, command, id=job_id)
            assert NO_JOB in result.response.content, (command, result.response.content)
            assert "secret" not in result.response.content
        # Buttons naming her job on a message in the other server (forged custom ids).
        bot_channel = world.bot.get_channel(channel.id)
        assert isinstance(bot_channel, discord.TextChannel)
        await bot_channel.send("look", view=result_view(job_id, 1))
        await world.env.settle()
        message = world.result_message(job_id, channel)
        for code in sorted(DISCORD_BUTTONS):
            index = ":1" if code in ("up", "var", *ZOOMS, *PANS, REGION) else ""
            click = await stranger.click(message, custom_id=f"easel:{code}:{job_id}{index}")
            text = click.response.content if click.response else ""
            followups = " ".join(str(f.content) for f in click.followups)
            assert NO_JOB in text + followups, (code, text, followups)
            assert "secret" not in text + followups
        await stranger.react(message, "🔄")  # a reaction there: refused the same way
        await world.env.settle()
        assert len(await world.app.store.list_jobs()) == jobs_before  # nothing was made
        assert (await world.job(job_id)).status == "queued"  # nor cancelled


# ---------------------------------------------------------------------- Telegram

TELEGRAM_JOB_COMMANDS = {"rerun", "show", "cancel"}


def telegram_commands_taking_a_job(application: Any) -> set[str]:
    from telegram.ext import CommandHandler

    names = set()
    for handlers in application.handlers.values():
        for handler in handlers:
            if isinstance(handler, CommandHandler):
                source = inspect.getsource(handler.callback)
                if "context.args[0]" in source:
                    names |= set(handler.commands)
    return names


async def test_telegram_jobs_of_another_chat_do_not_exist_there(
    telegram: TelegramEnv,  # noqa: F811
) -> None:
    fake, app = telegram.fake, telegram.app
    assert telegram_commands_taking_a_job(telegram.application) == TELEGRAM_JOB_COMMANDS
    assert set(TELEGRAM_CALLBACKS.values()) == {
        *("reroll", "upscale", "vary", "info", "png"),
        *("outpaint", "region", "preset"),  # zoom/pan, the Vary (Region) menu, its presets
    }
    group = fake.group(-next(_ids))
    alice = fake.user(next(_ids), "Alice")
    status = await telegram.ask(group, alice, "/draw alice's secret lake")
    job_id = job_id_in_text(status)
    jobs_before = len(await app.store.list_jobs())

    stranger_chat, stranger = fake.private_chat(next(_ids), "Eve")
    for command in sorted(TELEGRAM_JOB_COMMANDS):
        reply = await telegram.ask(stranger_chat, stranger, f"/{command} {job_id}")
        assert NO_JOB in reply and "secret" not in reply, (command, reply)
    # Forged buttons: callback data naming her job, pressed in the stranger's own chat.
    message = fake.send_text(stranger_chat, stranger, "hello")
    for code in sorted(TELEGRAM_CALLBACKS):
        data = f"{code}:{job_id}" + (":0" if code in ("u", "v", "p", "m") else "")
        data += {"o": ":0:z2", "g": ":0:left"}.get(code, "")
        query = fake.press(stranger, message, data)
        answer = await fake.wait_call(
            "answerCallbackQuery", None, lambda c, q=query: c.params["callback_query_id"] == q
        )
        if code in ("i", "p"):  # leak 3: these answer with a message in the chat
            reply = await fake.wait_call(
                "sendMessage",
                stranger_chat["id"],
                lambda c: (
                    (c.params.get("reply_parameters") or {}).get("message_id")
                    == message["message_id"]
                    and NO_JOB in str(c.params["text"])
                ),
            )
            assert "secret" not in str(reply.params["text"])
        else:
            assert NO_JOB in str(answer.params.get("text")), (code, answer.params)
    assert not fake.calls_of("sendDocument", stranger_chat["id"])  # no PNG went out
    assert len(await app.store.list_jobs()) == jobs_before
    assert (await app.store.get_job(job_id)).status == "queued"


def job_id_in_text(text: str) -> str:
    found = re.search(r"Drawing ([a-z0-9]{8})", text)
    assert found, text
    return found.group(1)
