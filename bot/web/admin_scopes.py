"""Which scope the admin page edits: the page, the A1111 API clients, or any Discord server or
Telegram chat that has used Easel. The page's admin is the service's owner, so they may change
every scope's limits, blocklist and models (a chat's own admins change only theirs, in chat)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.web.auth import principal
from bot.web.common import http_origin, origin_in
from bot.web.keys import app_of
from generation.errors import InvalidRequest, NotFound
from generation.requests import Origin
from storage.records import ScopeRecord

HTTP_SCOPES = {
    "web": "This page and the /api clients",
    "api": "AUTOMATIC1111 API clients (/sdapi)",
}
CHAT_PLATFORMS = {"discord": "Discord server", "telegram": "Telegram chat"}


def scope_key(platform: str, scope_id: str) -> str:
    return platform if platform in HTTP_SCOPES else f"{platform}:{scope_id}"


def scope_json(scope: ScopeRecord) -> dict[str, Any]:
    if scope.platform in HTTP_SCOPES:
        label = HTTP_SCOPES[scope.platform]
    else:
        kind = CHAT_PLATFORMS.get(scope.platform, scope.platform)
        label = f"{kind} “{scope.name}”" if scope.name else f"{kind} {scope.platform_scope_id}"
    return {
        "key": scope_key(scope.platform, scope.platform_scope_id),
        "platform": scope.platform,
        "id": scope.platform_scope_id,
        "name": scope.name,
        "label": label,
    }


async def scope_origin(request: web.Request) -> Origin:
    """The admin acting on ``?scope=``: ``web`` (default), ``api``, or ``discord:<server id>`` /
    ``telegram:<chat id>`` of a server or chat that has used Easel."""
    who = principal(request)
    key = request.query.get("scope", "web")
    if key in HTTP_SCOPES:
        return http_origin(who, key)
    platform, _, scope_id = key.partition(":")
    if platform not in CHAT_PLATFORMS or not scope_id:
        raise InvalidRequest(
            "scope must be web (the page and /api), api (/sdapi clients), discord:<server id> "
            f"or telegram:<chat id>; got {key[:80]!r}."
        )
    # (Only admins reach /api/admin/: the auth middleware refuses everyone else first.)
    asking = http_origin(who, "web")
    if await app_of(request).service.find_scope(asking, platform, scope_id) is None:
        raise NotFound(f"No {CHAT_PLATFORMS[platform]} with id {scope_id} has used Easel yet.")
    return origin_in(who, platform, scope_id)


async def list_scopes(request: web.Request) -> web.Response:
    """Every scope the admin page can edit, the page's own first."""
    origin = http_origin(principal(request), "web")
    stored = {
        scope_key(s.platform, s.platform_scope_id): scope_json(s)
        for s in await app_of(request).service.scopes(origin)
    }
    scopes = [
        stored.get(key, {"key": key, "platform": key, "id": key, "name": "", "label": label})
        for key, label in HTTP_SCOPES.items()
    ]
    scopes += [s for key, s in stored.items() if key not in HTTP_SCOPES]
    return web.json_response({"scopes": scopes})
