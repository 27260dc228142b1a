"""Permissions, table-driven over every front end: admin commands and routes are refused to
non-admins with a clear message and change nothing; nobody cancels or deletes someone else's
job; the HTTP API refuses unauthenticated calls when it is reachable from other machines.

The tables are checked against what the code registers (the service's admin use cases, the
Discord command tree, the Telegram handlers, the aiohttp router), so a command or route added
later without an entry here fails these tests instead of escaping them.
"""

from __future__ import annotations

import inspect
import itertools
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import discord
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.typedefs import Handler

from bot.app import App
from bot.discord.buttons import result_view
from bot.telegram.admin import AdminCommands as TelegramAdmin
from bot.telegram.application import (
    TelegramApplication,
    build_application,
    start_application,
    stop_application,
)
from bot.web.auth import ADMIN_PREFIX, PROTECTED_PREFIXES
from bot.web.server import create_web_app, start_web
from generation.errors import ConfigError, NotFound, PermissionDenied
from generation.requests import DrawRequest, Origin, Visibility
from generation.service import Service
from tests.addon_files import make_sd1_lora
from tests.conftest import AppFactory, make_config
from tests.discord.harness import (  # noqa: F401  (fixtures)
    job_id_in,
    shared_backend_fixture,
    world_factory_fixture,
)
from tests.telegram.fake_telegram import TOKEN, FakeTelegram

ROOT = Origin("cli", "local", "root", is_admin=True)


async def snapshot(app: App, *origins: Origin) -> tuple[Any, ...]:
    """Everything an admin command could change: scope settings, models, the default, jobs."""
    settings = [(await app.service.scope_settings(o)).to_dict() for o in origins]
    models = [(m.name, m.is_default, m.kind) for m in await app.store.list_models()]
    jobs = [(j.id, j.status) for j in await app.store.list_jobs(limit=1000)]
    return settings, models, jobs


# ---------------------------------------------------------------------- the service


# Every admin use case of the Service, called by a non-admin.
SERVICE_ADMIN_CALLS: dict[str, Callable[[Service, Origin], Awaitable[Any]]] = {
    "add_model": lambda s, o: s.add_model(o, "other", "builtin:demo"),
    "remove_model": lambda s, o: s.remove_model(o, "sketch"),
    "set_default_model": lambda s, o: s.set_default_model(o, "sketch"),
    "update_scope_settings": lambda s, o: s.update_scope_settings(o, burst=100),
    "block_words": lambda s, o: s.block_words(o, ["cats"]),
    "unblock_words": lambda s, o: s.unblock_words(o, ["dogs"]),
    "set_client_options": lambda s, o: s.set_client_options(o, {"send_seed": False}),
    "scopes": lambda s, o: s.scopes(o),  # which servers and chats use Easel: admins only
    "find_scope": lambda s, o: s.find_scope(o, "discord", "guild-1"),
    "add_addon": lambda s, o: s.add_addon(o, "ink", "/nowhere/ink.safetensors", "lora"),
    "remove_addon": lambda s, o: s.remove_addon(o, "ink"),
    "set_style": lambda s, o: s.set_style(o, "ink", "ink drawing"),
    "remove_style": lambda s, o: s.remove_style(o, "ink"),
}


def admin_use_cases() -> set[str]:
    """Public Service methods that check admin rights (directly or through another one)."""
    names = set()
    for name, method in inspect.getmembers(Service, inspect.iscoroutinefunction):
        source = inspect.getsource(method)
        if not name.startswith("_") and re.search(
            r"_require_admin|update_scope_settings\(", source
        ):
            names.add(name)
    return names


async def test_service_admin_use_cases_and_cancel_refuse_non_admins(
    app_factory: AppFactory,
) -> None:
    assert admin_use_cases() == set(SERVICE_ADMIN_CALLS)
    app = await app_factory(worker=False)
    await app.service.add_model(ROOT, "sketch", "builtin:demo")

    def member(guild: str, user: str, admin: bool = False) -> Origin:
        return Origin("discord", guild, user, is_admin=admin, sees=Visibility.SCOPE)

    here = member("guild-1", "alice")
    await app.service.update_scope_settings(member("guild-1", "mod", True), blocklist=["dogs"])
    before = await snapshot(app, here)
    for name, call in SERVICE_ADMIN_CALLS.items():
        with pytest.raises(PermissionDenied, match="Only an admin of this server"):
            await call(app.service, here)
        assert await snapshot(app, here) == before, name

    # Cancelling: only the requester (or an admin); another server's job does not exist.
    job = (await app.service.draw(here, DrawRequest("a kite"))).job
    bob = member("guild-1", "bob")
    with pytest.raises(PermissionDenied, match="belongs to someone else; only they can cancel"):
        await app.service.cancel(bob, job.id)
    with pytest.raises(NotFound, match="No job with id"):
        await app.service.cancel(member("guild-2", "carol", admin=True), job.id)
    assert (await app.store.get_job(job.id)).status == "queued" and job.id in app.queue
    mod = member("guild-1", "mod", admin=True)
    assert (await app.service.cancel(mod, job.id)).status == "cancelled"
    assert job.id not in app.queue


# ---------------------------------------------------------------------- Discord

# One harmless call of every Discord admin command (qualified name -> options).
DISCORD_ADMIN_CALLS: dict[str, dict[str, Any]] = {
    "models list": {},
    "models allow": {"name": "demo"},
    "models deny": {"name": "sketch"},
    "models default": {"name": "sketch"},
    "models add": {"name": "ink", "file": ("ink.safetensors", b"not even weights")},
    "limits": {"max_steps": 2, "daily_quota": 1},
    "blocklist add": {"words": "cats, dogs"},
    "blocklist remove": {"words": "dragon"},
    "blocklist list": {},
    "nsfw": {"policy": "allow"},
}


def discord_admin_commands(tree: discord.app_commands.CommandTree[Any]) -> dict[str, str]:
    """Qualified names of the leaf commands that ask for Manage Server -> their root name."""
    found: dict[str, str] = {}

    def walk(command: Any, root: str, admin: bool) -> None:
        perms = getattr(command, "default_permissions", None)
        admin = admin or bool(perms is not None and perms.manage_guild)
        children = getattr(command, "commands", None)
        if children is not None:
            for child in children:
                walk(child, root, admin)
        elif admin:
            found[command.qualified_name] = root

    for command in tree.get_commands():
        walk(command, command.name, False)
    return found


async def test_discord_admin_commands_refuse_members_without_manage_server(
    world_factory: Any,
) -> None:
    async with world_factory(worker=False) as world:
        app = world.app
        admin_commands = discord_admin_commands(world.bot.tree)
        assert set(admin_commands) == set(DISCORD_ADMIN_CALLS)
        await app.service.add_model(ROOT, "sketch", "builtin:demo")
        mod = world.member("mod", admin=True)
        bob = world.member("bob")  # no Manage Server, not in discord.owner_ids
        # The server lets bob see the commands (an override Discord allows): Easel must still
        # refuse inside each command.
        fetched = {c.name: c for c in await world.bot.tree.fetch_commands()}
        for root in set(admin_commands.values()):
            world.guild.set_command_permissions(fetched[root], {bob: True})
        await mod.slash(world.channel, "blocklist add", words="dragon")
        here = Origin("discord", str(world.guild.id), "x")
        before = await snapshot(app, here)

        for command, options in DISCORD_ADMIN_CALLS.items():
            result = await bob.slash(world.channel, command, **options)
            text = result.response.content
            assert result.ephemeral and "Only members with the Manage Server permission" in text
            assert await snapshot(app, here) == before, command
        # The same calls from an admin are not refused: the table exercises real commands.
        for command, options in DISCORD_ADMIN_CALLS.items():
            result = await mod.slash(world.channel, command, **options)
            assert "Manage Server" not in result.response.content, command
        assert await snapshot(app, here) != before


async def test_discord_members_cannot_cancel_or_delete_someone_elses_job(
    world_factory: Any,
) -> None:
    async with world_factory(worker=False) as world:
        alice, bob = world.member("alice"), world.member("bob")
        mod = world.member("mod", admin=True)
        drawn = await alice.slash(world.channel, "draw", prompt="a quiet pond")
        job_id = job_id_in(drawn.response.content)

        refused = await bob.slash(world.channel, "cancel", id=job_id)
        assert refused.ephemeral and "belongs to someone else" in refused.response.content
        assert (await world.job(job_id)).status == "queued"

        # A result message with its buttons (posted directly: the worker is off).
        channel = world.bot.get_channel(world.channel.id)
        assert isinstance(channel, discord.TextChannel)
        await channel.send("a quiet pond", view=result_view(job_id, 1))
        await world.env.settle()
        message = world.result_message(job_id)
        delete = f"easel:del:{job_id}"
        refused = await bob.click(message, custom_id=delete)
        text = refused.response.content
        assert refused.ephemeral and "Only whoever asked for this image, or an admin" in text
        assert world.result_message(job_id).id == message.id  # still there

        assert (
            "Cancelled" in (await alice.slash(world.channel, "cancel", id=job_id)).response.content
        )
        assert "Deleted" in (await mod.click(message, custom_id=delete)).response.content
        assert (await world.job(job_id)).status == "cancelled"


# ---------------------------------------------------------------------- Telegram

# One call of every Telegram admin command, with and without arguments.
TELEGRAM_ADMIN_CALLS = (
    "/models",
    "/setmodel",
    "/setmodel sketch",
    "/setmodel default",
    "/limits",
    "/limits burst=100 daily_quota=0",
    "/limits reset",
    "/blocklist",
    "/blocklist add cats",
    "/blocklist remove dragon",
    "/blocklist clear",
    "/styles add ink {prompt}, ink drawing | colour",  # /styles alone lists them: anyone's
    "/styles remove ink",
)
_ids = itertools.count(50_000)


@dataclass
class TelegramEnv:
    fake: FakeTelegram
    app: App
    application: TelegramApplication

    async def ask(self, chat: dict[str, Any], user: dict[str, Any], text: str) -> str:
        """Send ``text`` as ``user``; the text of the bot's reply to it."""
        message = self.fake.send_text(chat, user, text)

        def replies(call: Any) -> bool:
            reply = call.params.get("reply_parameters") or {}
            return bool(reply.get("message_id") == message["message_id"])

        call = await self.fake.wait_call("sendMessage", chat["id"], replies)
        return str(call.params["text"])


@pytest.fixture
async def telegram(data_dir: Path) -> AsyncIterator[TelegramEnv]:
    fake = FakeTelegram()
    await fake.start()
    config = make_config(
        data_dir,
        telegram={"base_url": fake.base_url, "base_file_url": fake.base_file_url},
        generation={"shutdown_grace_seconds": 1.0, "cpu_threads": 1},
    )
    app = App.from_config(config)
    await app.start(worker=False)
    application = build_application(app, token=TOKEN)
    await start_application(application)
    try:
        yield TelegramEnv(fake, app, application)
    finally:
        fake.push()  # wakes the bot's long poll, so it stops at once instead of timing out
        await stop_application(application)
        await app.stop()
        await fake.stop()


def telegram_admin_commands(application: TelegramApplication) -> set[str]:
    from telegram.ext import CommandHandler

    names = set()
    for handlers in application.handlers.values():
        for handler in handlers:
            owner = getattr(handler.callback, "__self__", None)
            if isinstance(handler, CommandHandler) and isinstance(owner, TelegramAdmin):
                names |= set(handler.commands)
    return names


async def test_telegram_admin_commands_refuse_plain_members(telegram: TelegramEnv) -> None:
    fake, app = telegram.fake, telegram.app
    commands = {text.split()[0][1:] for text in TELEGRAM_ADMIN_CALLS}
    assert telegram_admin_commands(telegram.application) == commands
    await app.service.add_model(ROOT, "sketch", "builtin:demo")
    group = fake.group(-next(_ids))
    member, admin = fake.user(next(_ids), "Bob"), fake.user(next(_ids), "Ada")
    fake.set_member(group["id"], member["id"], "member")  # what getChatMember answers
    fake.set_member(group["id"], admin["id"], "administrator")
    assert "Blocked words" in await telegram.ask(group, admin, "/blocklist add dragon")
    lone_chat, lone = fake.private_chat(next(_ids), "Lone")  # private chats: owners only
    here = Origin("telegram", str(group["id"]), "x")
    there = Origin("telegram", str(lone_chat["id"]), "x")
    before = await snapshot(app, here, there)

    for text in TELEGRAM_ADMIN_CALLS:
        command = text.split()[0]
        for chat, user in ((group, member), (lone_chat, lone)):
            reply = await telegram.ask(chat, user, text)
            assert reply == f"🚫 Only this chat's admins can use {command}.", (text, reply)
        assert await snapshot(app, here, there) == before, text
    for text in TELEGRAM_ADMIN_CALLS:  # an admin gets past the check with the same calls
        assert "Only this chat's admins" not in await telegram.ask(group, admin, text)
    assert await snapshot(app, here, there) != before


async def test_telegram_users_cannot_cancel_or_see_other_peoples_jobs(
    telegram: TelegramEnv,
) -> None:
    fake, app = telegram.fake, telegram.app
    group = fake.group(-next(_ids))
    alice, bob = fake.user(next(_ids), "Alice"), fake.user(next(_ids), "Bob")
    fake.set_member(group["id"], bob["id"], "member")
    status = await telegram.ask(group, alice, "/draw a red boat")
    found = re.search(r"Drawing ([a-z0-9]{8})", status)
    assert found, status
    job_id = found.group(1)

    refused = await telegram.ask(group, bob, f"/cancel {job_id}")
    assert refused == f"🚫 Job {job_id} belongs to someone else; only they can cancel it."
    stranger_chat, stranger = fake.private_chat(next(_ids), "Eve")
    assert "No job" in await telegram.ask(stranger_chat, stranger, f"/cancel {job_id}")
    # /show from another chat: that job does not exist there (it used to be shown to anyone).
    assert "No job" in await telegram.ask(stranger_chat, stranger, f"/show {job_id}")
    assert (await app.store.get_job(job_id)).status == "queued" and job_id in app.queue
    assert "cancelled" in await telegram.ask(group, alice, f"/cancel {job_id}")
    # Telegram has no delete button: results carry reroll/upscale/vary/info/PNG buttons only.


# ---------------------------------------------------------------------- the HTTP API

ENV = {"auth": "EASEL_PERM_AUTH", "token": "EASEL_PERM_TOKEN", "admin": "EASEL_PERM_ADMIN"}
ALICE = aiohttp.BasicAuth("alice", "wonderland-7")
BOB = aiohttp.BasicAuth("bob", "builder-7")
USER_TOKEN = {"Authorization": "Bearer user-token-7"}
ADMIN_TOKEN = {"Authorization": "Bearer admin-token-7"}
# Routes open to anyone: the page and its static files (they only talk to the API).
PUBLIC_ROUTES = {("GET", "/"), ("GET", "/admin"), ("GET", "/static/{name}")}
# Admin routes outside /api/admin/: A1111's options POST sets the server's default model.
EXTRA_ADMIN_ROUTES = {("POST", "/sdapi/v1/options")}
ADMIN_BODIES = {
    "/api/admin/settings": {"burst": 100},
    "/api/admin/blocklist": {"add": ["cats"]},
    "/api/admin/styles": {"add": {"name": "ink", "prompt": "ink drawing"}},
    "/api/admin/models": {"name": "other", "source": "builtin:demo"},
    "/sdapi/v1/options": {"sd_model_checkpoint": "sketch"},
}
Client = TestClient[Any, Any]


def web_sections(host: str) -> dict[str, Any]:
    return {
        "host": host,
        "api_auth_env": ENV["auth"],
        "api_token_env": ENV["token"],
        "admin_token_env": ENV["admin"],
    }


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV["auth"], "alice:wonderland-7,bob:builder-7")
    monkeypatch.setenv(ENV["token"], "user-token-7")
    monkeypatch.setenv(ENV["admin"], "admin-token-7")


def routes(web_app: web.Application) -> list[tuple[str, str]]:
    """(method, canonical path) of every route, HEAD included (aiohttp adds it to GETs)."""
    found = set()
    for route in web_app.router.routes():
        resource = route.resource
        assert resource is not None
        found.add((route.method, resource.canonical))
    return sorted(found)


def concrete(path: str, job_id: str) -> str:
    fills = {"{id}": job_id, "{name}": "demo"}
    if path.startswith("/api/images/"):
        fills["{name}"] = "0" * 64 + ".png"
    if path.startswith("/static/"):
        fills["{name}"] = "app.js"
    for key, value in fills.items():
        path = path.replace(key, value)
    assert "{" not in path, f"no sample value for {path}: extend concrete()"
    return path


async def serve(app: App, *middlewares: Any) -> Client:
    web_app = create_web_app(app)
    for middleware in middlewares:
        web_app.middlewares.insert(0, middleware)
    client: Client = TestClient(TestServer(web_app, host="127.0.0.1"))
    await client.start_server()
    return client


async def request(client: Client, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    async with client.request(method, path, **kw) as reply:
        if method == "HEAD":
            return reply.status, None
        if reply.content_type == "application/json":
            return reply.status, await reply.json()
        return reply.status, await reply.read()


def readable(body: Any) -> str:
    """The sentence an API client shows: Easel's ``error`` or A1111's ``detail``."""
    text = body.get("error") if "type" in body else body.get("detail")
    assert isinstance(text, str) and len(text) > 10, body
    return text


@pytest.fixture
async def public(app_factory: AppFactory, credentials: None) -> AsyncIterator[Client]:
    """A public-host configuration (so credentials apply), served on 127.0.0.1 for the test."""
    app = await app_factory(worker=False, web=web_sections("0.0.0.0"))
    await app.service.add_model(ROOT, "sketch", "builtin:demo")
    client = await serve(app)
    yield client
    await client.close()


def app_of(client: Client) -> App:
    from bot.web.keys import APP_KEY

    return client.server.app[APP_KEY]


async def test_public_api_refuses_every_route_without_credentials(public: Client) -> None:
    app = app_of(public)
    job = (await app.service.draw(Origin("web", "web", "alice"), DrawRequest("x"))).job
    table = routes(public.server.app)
    open_routes = set()
    for method, path in table:
        url = concrete(path, job.id)
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic Ym9i"}):
            status, body = await request(public, method, url, headers=headers)
            if status != 401:
                open_routes.add((method.replace("HEAD", "GET"), path))
                continue
            assert path.startswith(PROTECTED_PREFIXES)
            if method != "HEAD":
                assert re.search(
                    r"[Aa]uthenticat|[Cc]redentials|password|token is not valid", readable(body)
                )
    # Exactly the page is open: a new route under another prefix would show up here.
    assert open_routes == PUBLIC_ROUTES
    status, body = await request(public, "GET", "/api/jobs", auth=ALICE)  # credentials work
    assert status == 200 and [j["id"] for j in body["jobs"]] == [job.id]


async def test_admin_routes_refuse_users_and_change_nothing(public: Client, tmp_path: Path) -> None:
    app = app_of(public)
    lora = make_sd1_lora(tmp_path / "ink.safetensors")  # POST /api/admin/addons registers it
    bodies = {
        **ADMIN_BODIES,
        "/api/admin/addons": {"name": "ink", "path": str(lora), "kind": "lora"},
    }
    admin_routes = {
        (m, p) for m, p in routes(public.server.app) if p.startswith(ADMIN_PREFIX) and m != "HEAD"
    } | EXTRA_ADMIN_ROUTES
    scopes = (Origin("web", "web", "x"), Origin("api", "api", "x"))
    before = await snapshot(app, *scopes)
    for method, path in sorted(admin_routes):
        url = concrete(path, "nojob")
        for who in ({"auth": ALICE}, {"headers": USER_TOKEN}):
            status, body = await request(public, method, url, json=bodies.get(path, {}), **who)
            assert status == 403, (method, path, status, body)
            assert "admin" in readable(body).lower()
            assert await snapshot(app, *scopes) == before, (method, path)
    # With the admin token the same calls get through (so the table reaches real handlers):
    # reads, then writes, then the DELETE of the model the POST added.
    order = {"GET": 0, "POST": 1, "DELETE": 2}
    for method, path in sorted(admin_routes, key=lambda r: (order[r[0]], r[1])):
        url = concrete(path, "nojob")
        if (method, path) == ("DELETE", "/api/admin/models/{name}"):
            url = "/api/admin/models/other"  # added by the POST above; "demo" is the default
        if (method, path) == ("DELETE", "/api/admin/addons/{name}"):
            url = "/api/admin/addons/ink"  # registered by the POST above
        status, body = await request(
            public, method, url, json=bodies.get(path, {}), headers=ADMIN_TOKEN
        )
        assert status < 300, (method, path, status, body)
    default = await app.store.default_model()
    assert default is not None and default.name == "sketch"  # the admin's options POST


async def test_web_users_cannot_cancel_someone_elses_job(public: Client) -> None:
    app = app_of(public)
    sent = await public.post("/api/jobs", json={"prompt": "a green door"}, auth=ALICE)
    job_id = (await sent.json())["job"]["id"]
    cancel = {"action": "cancel"}
    for who in ({"auth": BOB}, {"headers": USER_TOKEN}):
        status, body = await request(
            public, "POST", f"/api/jobs/{job_id}/actions", json=cancel, **who
        )
        # Another credential's job does not exist for them: 404, like an unknown id.
        assert status == 404 and "No job with id" in readable(body)
        # A1111's interrupt stops only the caller's own running job.
        assert (await request(public, "POST", "/sdapi/v1/interrupt", **who))[0] == 200
    assert (await app.store.get_job(job_id)).status == "queued" and job_id in app.queue
    status, body = await request(
        public, "POST", f"/api/jobs/{job_id}/actions", json=cancel, auth=ALICE
    )
    assert status == 200 and body["job"]["status"] == "cancelled"


def remote_from(address: str) -> Any:
    """Middleware making every request come from ``address`` (as behind a port forward)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        return await handler(request.clone(remote=address))

    return middleware


async def test_a_loopback_server_refuses_requests_from_other_machines(
    app_factory: AppFactory,
) -> None:
    """Configured for loopback (no credentials), a peer that is not loopback is no admin."""
    app = await app_factory(worker=False)
    job = (await app.service.draw(ROOT, DrawRequest("x"))).job
    local = await serve(app)
    remote = await serve(app, remote_from("203.0.113.9"))
    mapped = await serve(app, remote_from("::ffff:127.0.0.1"))  # a dual-stack loopback peer
    try:
        before = await snapshot(app, Origin("web", "web", "x"))
        for method, path in routes(remote.server.app):
            if path == "/api/events":
                continue  # a stream: checked below without reading it to the end
            url = concrete(path, job.id)
            status, body = await request(remote, method, url, json={"burst": 100})
            if not path.startswith(PROTECTED_PREFIXES):
                assert status == 200, (method, path)  # the page itself is static
                continue
            assert status == 403, (method, path, status)
            if method != "HEAD":
                assert "answers only its own machine" in readable(body)
        async with remote.get("/api/events") as stream:
            assert stream.status == 403
        assert await snapshot(app, Origin("web", "web", "x")) == before
        for client in (local, mapped):
            assert (await client.get("/api/admin/settings")).status == 200
    finally:
        for client in (local, remote, mapped):
            await client.close()


async def test_a_public_server_will_not_start_without_credentials(
    app_factory: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ENV.values():
        monkeypatch.delenv(name, raising=False)
    public = await app_factory(worker=False, web={**web_sections("0.0.0.0"), "port": 0})
    with pytest.raises(ConfigError, match="no API credentials are set"):
        await start_web(public)
    # Configured for loopback but bound elsewhere (start_web's host override): still refused.
    local = await app_factory(worker=False, web={**web_sections("127.0.0.1"), "port": 0})
    with pytest.raises(ConfigError, match="no API credentials are set"):
        await start_web(local, host="0.0.0.0", port=0)
    server = await start_web(local, host="127.0.0.1", port=0)  # loopback: open, as documented
    await server.stop()
