"""Real headless Chromium (the system's, never a downloaded one) against a real Easel server.

``served(app)`` runs the web application on a free loopback port; ``launch_browser()`` starts
Chromium through Playwright; ``RECORDER`` is an init script that keeps every text the page ever
showed in its status lines, so a test can assert on states that last only milliseconds
(queue position, "Step n / N").
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from aiohttp import web

if TYPE_CHECKING:
    from playwright.async_api import Browser, HttpCredentials, Page

    from bot.app import App


def find_chromium() -> str | None:
    candidates = ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"))
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return candidate
    return None


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

TIMEOUT_MS = 20_000
RENDER_TIMEOUT_MS = 60_000  # a render on a busy two-core CI machine

# Records every text shown in a job card's status or step line, the footer's queue length and
# every inline error.
RECORDER = """
window.__seen = [];
(() => {
  const seen = new Set();
  const note = () => {
    for (const node of document.querySelectorAll('.job-status, .step, .error, #queue-length')) {
      const text = node.textContent.trim();
      if (text && !seen.has(text)) { seen.add(text); window.__seen.push(text); }
    }
  };
  new MutationObserver(note).observe(document, {
    subtree: true, childList: true, characterData: true, attributes: true,
  });
})();
"""


@asynccontextmanager
async def served(app: App) -> AsyncIterator[str]:
    """The Easel web application for ``app`` on 127.0.0.1:<free port>; yields the base URL."""
    from bot.web.server import create_web_app

    runner = web.AppRunner(create_web_app(app), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, shutdown_timeout=1.0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def launch_browser(executable: str) -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright

    playwright = await async_playwright().start()
    try:
        browser = await playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, timeout=TIMEOUT_MS
        )
        try:
            yield browser
        finally:
            await browser.close()
    finally:
        await playwright.stop()


async def open_page(
    browser: Browser,
    url: str,
    *,
    width: int = 1280,
    height: int = 900,
    basic_auth: tuple[str, str] | None = None,
    color_scheme: Literal["light", "dark"] = "light",
) -> tuple[Page, list[str]]:
    """A fresh page (own context) at ``url``; returns it and the list of JS errors it raises.

    ``basic_auth`` answers the server's ``WWW-Authenticate: Basic`` challenges (a person would
    see the browser's own login prompt; headless Chromium would wait on it forever).
    """
    credentials: HttpCredentials | None = None
    if basic_auth is not None:
        credentials = {"username": basic_auth[0], "password": basic_auth[1]}
    context = await browser.new_context(
        viewport={"width": width, "height": height},
        http_credentials=credentials,
        color_scheme=color_scheme,
    )
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.add_init_script(RECORDER)
    await page.goto(url, wait_until="domcontentloaded")
    return page, errors


async def seen_texts(page: Page) -> list[str]:
    texts: list[str] = await page.evaluate("window.__seen")
    return texts


async def first_image_loaded(page: Page, card: str) -> None:
    await page.wait_for_function(
        """(card) => {
            const img = document.querySelector(card + ' figure img');
            return img && img.complete && img.naturalWidth > 0;
        }""",
        arg=card,
        timeout=RENDER_TIMEOUT_MS,
    )


def screenshots(tmp_path: Path) -> Path:
    """Where screenshots go: ``EASEL_SCREENSHOTS`` (scripts/screenshots: the README's) or tmp."""
    folder = Path(os.environ.get("EASEL_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
