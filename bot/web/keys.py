"""Keys for what the web application stores: the engine and the shared per-server state."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

from bot.app import App
from bot.web.auth import AuthPolicy
from bot.web.progress import ProgressTracker

APP_KEY = web.AppKey("easel_app", App)


@dataclass
class WebState:
    """Per-server state the handlers share."""

    policy: AuthPolicy
    tracker: ProgressTracker
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    upscale_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


STATE_KEY = web.AppKey("easel_web_state", WebState)


def app_of(request: web.Request) -> App:
    return request.app[APP_KEY]


def state_of(request: web.Request) -> WebState:
    return request.app[STATE_KEY]
