"""Web fixtures: a real Easel App served by a real aiohttp server on 127.0.0.1.

* ``web_factory(worker=True, **config_sections)`` -> a started :class:`TestClient`; the App is
  ``client_app(client)``. ``web={"host": "0.0.0.0"}`` configures a public host (so the auth
  policy applies) while the test server still binds 127.0.0.1 only.
* ``web_client``: the default (loopback, worker running, demo model).
* ``idle_client``: the same without a worker (nothing renders: fast validation tests).
"""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from PIL import Image

from bot.app import App
from bot.web.server import APP_KEY
from tests.conftest import WebFactory

# ``web_factory`` itself lives in tests/conftest.py (tests/reliability uses it too).

# Small and quick on the demo model.
SMALL = {"width": 64, "height": 64, "steps": 4}


def client_app(client: TestClient[Any, Any]) -> App:
    return client.server.app[APP_KEY]


async def nothing_queued(app: App) -> None:
    assert len(app.queue) == 0
    assert await app.store.count_queued(include_running=True) == 0


def png_b64(size: tuple[int, int] = (64, 64), color: tuple[int, int, int] = (200, 40, 40)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@pytest.fixture
async def web_client(web_factory: WebFactory) -> TestClient[Any, Any]:
    return await web_factory()


@pytest.fixture
async def idle_client(web_factory: WebFactory) -> TestClient[Any, Any]:
    return await web_factory(worker=False)
