"""Keys for what the web application stores: the engine and the shared per-server state."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from bot.web.auth import AuthPolicy

if TYPE_CHECKING:
    from bot.app import App

APP_KEY: web.AppKey[App] = web.AppKey("easel_app")


@dataclass
class WebState:
    """Per-server state the handlers share."""

    policy: AuthPolicy
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    upscale_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


STATE_KEY = web.AppKey("easel_web_state", WebState)


def app_of(request: web.Request) -> App:
    return request.app[APP_KEY]


def state_of(request: web.Request) -> WebState:
    return request.app[STATE_KEY]
