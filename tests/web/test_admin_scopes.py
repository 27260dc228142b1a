"""The admin API edits any scope by name: the page, the A1111 clients, each Discord server and
Telegram chat that has used Easel; a scope that does not exist is refused, never created."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from generation.requests import DrawRequest, Origin
from tests.web.conftest import client_app

Client = TestClient[Any, Any]


async def test_scopes_are_listed_and_each_keeps_its_own_settings(idle_client: Client) -> None:
    app = client_app(idle_client)
    await app.store.get_or_create_scope("discord", "4242", "Art club")
    await app.store.get_or_create_scope("telegram", "-100777", "")

    listed = await (await idle_client.get("/api/admin/scopes")).json()
    keys = [scope["key"] for scope in listed["scopes"]]
    assert keys[:2] == ["web", "api"] and set(keys[2:]) == {"discord:4242", "telegram:-100777"}
    labels = {scope["key"]: scope["label"] for scope in listed["scopes"]}
    assert labels["discord:4242"] == "Discord server “Art club”"
    assert labels["telegram:-100777"] == "Telegram chat -100777"  # no title known

    changed = await idle_client.post(
        "/api/admin/settings?scope=discord:4242", json={"max_steps": 10}
    )
    assert changed.status == 200, await changed.text()
    body = await changed.json()
    assert body["scope"] == "discord:4242" and body["settings"]["max_steps"] == 10
    blocked = await idle_client.post(
        "/api/admin/blocklist?scope=discord:4242", json={"add": ["dragon"]}
    )
    assert (await blocked.json())["settings"]["blocklist"] == ["dragon"]

    # The Discord server's members meet those settings; the page does not.
    member = Origin("discord", "4242", "1001", user_name="ann")
    assert (await app.service.scope_settings(member)).max_steps == 10
    web = await (await idle_client.get("/api/admin/settings")).json()
    assert web["scope"] == "web" and web["settings"]["max_steps"] is None
    assert web["settings"]["blocklist"] == []
    accepted = await app.service.draw(Origin("web", "web", "local"), DrawRequest("a dragon"))
    assert accepted.job.id


async def test_an_unknown_or_malformed_scope_is_refused_and_not_created(
    idle_client: Client,
) -> None:
    app = client_app(idle_client)
    unknown = await idle_client.post(
        "/api/admin/settings?scope=discord:999", json={"max_steps": 10}
    )
    assert unknown.status == 404
    assert "No Discord server with id 999 has used Easel yet" in (await unknown.json())["error"]
    assert await app.store.find_scope("discord", "999") is None
    for bad in ("slack:1", "discord:", "discord", "everything"):
        refused = await idle_client.get(f"/api/admin/settings?scope={bad}")
        assert refused.status == 400, bad
        assert "scope must be web" in (await refused.json())["error"]
