"""The admin page's LoRA and embeddings (``generation.addons``), beside its models:

* ``POST /api/admin/addons`` ``{"name", "path", "kind": "lora" | "embedding"}``: register a
  file on the server's disk (checked as ``easel models add NAME FILE --lora`` checks it);
  201 with the record, 400 with the reason.
* ``DELETE /api/admin/addons/{name}``: unregister it (404 when there is none).

``GET /api/models`` lists them (``addons``). Admin-only, like every ``/api/admin/`` route.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.web.auth import principal
from bot.web.common import read_json, web_origin
from bot.web.keys import app_of
from generation.errors import InvalidRequest
from storage.addons import AddOnRecord


def addon_json(addon: AddOnRecord) -> dict[str, Any]:
    return {"name": addon.name, "kind": addon.kind, "family": addon.family}


async def add_addon(request: web.Request) -> web.Response:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    name, path, kind = (body.get(key) for key in ("name", "path", "kind"))
    if not isinstance(name, str) or not isinstance(path, str) or not name or not path:
        raise InvalidRequest("name and path (a .safetensors file on the server) are required.")
    if kind not in ("lora", "embedding"):
        raise InvalidRequest("kind must be lora or embedding.")
    addon = await app_of(request).service.add_addon(
        web_origin(principal(request)), name, path, kind
    )
    return web.json_response({"addon": addon_json(addon)}, status=201)


async def remove_addon(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    await app_of(request).service.remove_addon(web_origin(principal(request)), name)
    return web.json_response({"removed": name})


def setup_routes(web_app: web.Application) -> None:
    web_app.router.add_post("/api/admin/addons", add_addon)
    web_app.router.add_delete("/api/admin/addons/{name}", remove_addon)
