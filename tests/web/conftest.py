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
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp.test_utils import TestClient
from PIL import Image

from bot.app import App
from bot.web.server import APP_KEY
from tests.conftest import WebFactory

if TYPE_CHECKING:
    from playwright.async_api import Browser


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Browser tests: Chromium, the server and the worker share the machine. Torch's default of
    one spinning thread per core then slows the demo model twentyfold on a busy two-core runner
    (20 steps: 0.5 s with one thread, 10 s with two)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """The system's Chromium through Playwright (browser tests skip when there is none)."""
    from tests.web.browser_helpers import find_chromium, launch_browser

    executable = find_chromium()
    if executable is None:
        pytest.skip("no chromium installed (apt-get install chromium)")
    async with launch_browser(executable) as launched:
        yield launched


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
