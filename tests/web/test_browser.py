"""The local web page in a real headless Chromium against a real server and the demo model.

Skipped only when no Chromium is installed (CI installs Debian's ``chromium``); Playwright drives
that browser, nothing is downloaded. Every wait is bounded (``browser_helpers.TIMEOUT_MS`` and
``RENDER_TIMEOUT_MS``).
"""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from generation.requests import DrawRequest, Origin
from tests.conftest import AppFactory
from tests.web.browser_helpers import (
    RENDER_TIMEOUT_MS,
    find_chromium,
    first_image_loaded,
    open_page,
    seen_texts,
    served,
)

if TYPE_CHECKING:
    from playwright.async_api import Browser

CHROMIUM = find_chromium()

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (apt-get install chromium)"),
    pytest.mark.timeout(120),
    pytest.mark.usefixtures("one_torch_thread"),
]

playwright_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed")
expect = playwright_api.expect
expect.set_options(timeout=10_000)


async def test_draw_progress_gallery_reroll_history_and_info(
    app_factory: AppFactory, browser: Browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = await app_factory()
    # The first job's render waits until the page has shown its own job's place in line, so
    # the queue is never empty by luck on a fast machine (or a slow one).
    page_job_waited = threading.Event()
    for method in ("render", "render_batch"):  # a single job goes to render()
        real = getattr(app.backend, method)

        def held(*args: object, real: Any = real, **kwargs: object) -> object:
            page_job_waited.wait(timeout=RENDER_TIMEOUT_MS / 1000)
            return real(*args, **kwargs)

        monkeypatch.setattr(app.backend, method, held)
    async with served(app) as url:
        page, errors = await open_page(browser, url)
        await expect(page.locator("#demo-banner")).to_be_visible()
        await expect(page.locator("#demo-banner")).to_contain_text("demo model draws noise")
        await expect(page.locator("#model option")).to_have_count(2)  # "Default (demo)" + demo

        # Another job just before, so the page's job waits in the queue and shows its place.
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{url}/api/jobs", json={"prompt": "a castle at dusk", "steps": 6}
            ) as response,
        ):
            assert response.status == 202, await response.text()

        await page.fill("#prompt", "a red fox in the snow --seed 7 --steps 20")
        await page.click("#generate")
        await expect(page.locator("article.job").first).to_contain_text(
            re.compile(r"next in line|position \d+ in line")
        )
        page_job_waited.set()

        first = 'article.job[data-status="succeeded"]'
        await page.wait_for_selector(first, timeout=RENDER_TIMEOUT_MS)
        await first_image_loaded(page, first)
        seen = await seen_texts(page)
        assert any(re.search(r"next in line|position \d+ in line", text) for text in seen), seen
        assert any(re.search(r"^Step \d+ / 20$", text) for text in seen), seen
        # Waiting and running times, from the server's estimate (the same on every front end).
        assert any(re.search(r"in line · starts in about ", text) for text in seen), seen
        assert any(re.search(r"^Running · about .+ left$", text) for text in seen), seen
        assert any(re.search(r"\d+ waiting, \d+ running", text) for text in seen), seen
        await expect(page.locator("#queue-length")).to_have_text("empty")
        await expect(page.locator("#form-error")).to_be_hidden()

        card = page.locator("article.job").first
        job_id = await card.get_attribute("data-job")
        assert job_id

        # Info shows every parameter, the seed typed inline included.
        await card.get_by_role("button", name="Info").click()
        info = card.locator("pre.info")
        await expect(info).to_be_visible()
        await expect(info).to_contain_text("Seed: 7")
        await expect(info).to_contain_text("Steps: 20")
        await expect(info).to_contain_text("a red fox in the snow")

        # Download is the stored PNG, with its metadata.
        download = card.get_by_role("link", name="Download")
        href = await download.get_attribute("href")
        assert href and re.fullmatch(r"/api/images/[0-9a-f]+\.png", href), href
        assert await download.get_attribute("download")
        png = await page.request.get(url + href)
        body = await png.body()
        assert body.startswith(b"\x89PNG") and b"parameters" in body

        # Reroll: a second job appears in the gallery and renders too.
        await card.get_by_role("button", name="Reroll").click()
        await expect(page.locator("article.job")).to_have_count(2)
        await expect(page.locator(first)).to_have_count(2, timeout=RENDER_TIMEOUT_MS)
        reroll_id = await page.locator("article.job").first.get_attribute("data-job")
        assert reroll_id and reroll_id != job_id

        # History: every job, newest first; the search box filters by prompt.
        await page.click("#tab-history")
        rows = page.locator("#history-list li[data-job]")
        await expect(rows).to_have_count(3)
        assert await rows.nth(0).get_attribute("data-job") == reroll_id
        assert await rows.nth(1).get_attribute("data-job") == job_id
        await page.fill("#history-q", "castle")
        await page.press("#history-q", "Enter")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_contain_text("a castle at dusk")
        await page.fill("#history-q", "fox")
        await page.press("#history-q", "Enter")
        await expect(rows).to_have_count(2)

        # A history entry opens with its parameters; "use these settings" fills the form.
        await rows.nth(1).click()
        dialog = page.locator("#job-dialog")
        await expect(dialog).to_be_visible()
        await expect(dialog.locator(".params")).to_contain_text(job_id)
        await dialog.get_by_role("button", name="Use these settings").click()
        await expect(dialog).to_be_hidden()
        await expect(page.locator("#prompt")).to_have_value("a red fox in the snow")
        await expect(page.locator("#seed")).to_have_value("7")
        await expect(page.locator("#steps")).to_have_value("20")

        assert errors == []
        await page.context.close()


async def test_admin_blocklist_makes_a_draw_refused_inline(
    app_factory: AppFactory, browser: Browser
) -> None:
    app = await app_factory(worker=False)
    async with served(app) as url:
        page, errors = await open_page(browser, f"{url}/admin")
        demo_row = page.locator('#models tr[data-model="demo"]')
        await expect(demo_row).to_be_visible()
        await expect(demo_row).to_contain_text("(default)")
        await expect(page.locator("#login")).to_be_hidden()  # loopback: no token needed

        await page.fill("#block-word", "dragon")
        await page.click("#block-form button[type=submit]")
        await expect(page.locator("#blocklist")).to_contain_text("dragon")
        await expect(page.locator("#block-error")).to_be_hidden()

        await page.goto(url, wait_until="domcontentloaded")
        await page.fill("#prompt", "a dragon over the city")
        await page.click("#generate")
        refusal = page.locator("#form-error")
        await expect(refusal).to_be_visible()
        await expect(refusal).to_contain_text("dragon")
        await expect(refusal).to_contain_text("block")
        await expect(page.locator("article.job")).to_have_count(0)
        assert errors == []
        await page.context.close()


async def test_the_page_says_the_model_is_loading_until_it_is_ready(
    data_dir: Path, browser: Browser
) -> None:
    from bot.app import App, diffusers_backend
    from generation.lazy_backend import LazyBackend
    from generation.render import Backend, ModelSource
    from tests.conftest import make_config

    release = threading.Event()
    config = make_config(data_dir, generation={"cpu_threads": 1})

    def slow_build() -> Backend:
        release.wait(timeout=120)
        return diffusers_backend(config)

    app = App.from_config(config, backend=LazyBackend(slow_build))
    await app.start()
    try:
        assert app.worker is not None
        preload = app.worker.preload(ModelSource("demo", "builtin:demo", "builtin", None))
        async with served(app) as url:
            page, errors = await open_page(browser, url)
            banner = page.locator("#loading-banner")
            await expect(banner).to_be_visible()
            await expect(banner).to_contain_text("Loading the model")
            release.set()
            await preload
            await expect(banner).to_be_hidden()
            assert errors == []
            await page.context.close()
    finally:
        release.set()
        await app.stop()


async def test_admin_page_lists_the_workers(app_factory: AppFactory, browser: Browser) -> None:
    app = await app_factory()
    drawn = await app.service.draw(
        Origin("web", "web", "ann"), DrawRequest("x", width=64, height=64, steps=2)
    )
    async with asyncio.timeout(RENDER_TIMEOUT_MS / 1000):
        while not (job := await app.store.get_job(drawn.job.id)) or not job.is_terminal:
            await asyncio.sleep(0.05)
    async with served(app) as url:
        page, errors = await open_page(browser, f"{url}/admin")
        row = page.locator('#workers tr[data-worker="local"]')
        await expect(row).to_be_visible()
        await expect(row).to_contain_text("idle")
        await expect(row).to_contain_text("cpu")
        await expect(row).to_contain_text("demo")  # loaded by the job
        assert errors == []
        await page.context.close()


async def test_admin_page_asks_for_the_token_when_not_on_loopback(
    app_factory: AppFactory, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EASEL_ADMIN_TOKEN", "s3cret-admin")
    # Configured for every interface (so the API wants credentials); bound to loopback here.
    app = await app_factory(worker=False, web={"host": "0.0.0.0"})
    async with served(app) as url:
        # No basic credentials are configured: the challenge the API sends is answered with
        # nonsense, as a person would cancel the browser's login prompt.
        page, errors = await open_page(browser, f"{url}/admin", basic_auth=("-", "-"))
        login = page.locator("#login")
        await expect(login).to_be_visible()
        await expect(page.locator("#panels")).to_be_hidden()

        await page.fill("#token", "wrong")
        await page.click("#login button[type=submit]")
        await expect(page.locator("#login-error")).to_contain_text("not valid")
        await expect(page.locator("#panels")).to_be_hidden()

        await page.fill("#token", "s3cret-admin")
        await page.click("#login button[type=submit]")
        await expect(page.locator('#models tr[data-model="demo"]')).to_be_visible()
        await expect(login).to_be_hidden()
        # The token lives in this tab's sessionStorage: a reload stays unlocked.
        await page.reload()
        await expect(page.locator('#models tr[data-model="demo"]')).to_be_visible()
        assert errors == []
        await page.context.close()


async def test_a_refused_card_action_is_said_under_the_buttons_that_asked(
    app_factory: AppFactory, browser: Browser
) -> None:
    # A user held to the per-user rate (on loopback only with exempt_admins off): two requests
    # go through, the third (Upscale on the first card) is refused where it was clicked.
    limits = {"burst": 2, "rate_per_minute": 0.5, "exempt_admins": False}
    app = await app_factory(limits=limits)
    async with served(app) as url:
        page, errors = await open_page(browser, url)
        await page.fill("#prompt", "a lighthouse --steps 2")
        await page.click("#generate")
        done = 'article.job[data-status="succeeded"]'
        await page.wait_for_selector(done, timeout=RENDER_TIMEOUT_MS)
        job_id = await page.locator(done).first.get_attribute("data-job")
        original = page.locator(f'article.job[data-job="{job_id}"]')
        await original.get_by_role("button", name="Reroll").click()
        await expect(page.locator("article.job")).to_have_count(2)

        figure = original.locator("figure").first
        upscale = figure.get_by_role("button", name="Upscale")
        await upscale.click()
        refusal = figure.locator(".action-error")
        await expect(refusal).to_be_visible()
        await expect(refusal).to_contain_text(re.compile(r"too fast|try again", re.I))
        await expect(page.locator("#form-error")).to_be_hidden()
        button_box, refusal_box = await upscale.bounding_box(), await refusal.bounding_box()
        assert button_box and refusal_box
        below = refusal_box["y"] - (button_box["y"] + button_box["height"])
        assert 0 <= below < 120, (button_box, refusal_box)  # right under the buttons
        await expect(page.locator("article.job")).to_have_count(2)  # nothing was queued
        assert errors == []
        await page.context.close()


async def test_rate_limit_message_says_when_to_retry(
    app_factory: AppFactory, browser: Browser
) -> None:
    # On loopback the page's user is the owner: exempt unless the admin turned that off.
    limits = {"burst": 1, "rate_per_minute": 1.0, "exempt_admins": False}
    app = await app_factory(worker=False, limits=limits)
    async with served(app) as url:
        page, errors = await open_page(browser, url)
        await page.fill("#prompt", "a cat")
        await page.click("#generate")
        await expect(page.locator("article.job")).to_have_count(1)
        await page.click("#generate")
        refusal = page.locator("#form-error")
        await expect(refusal).to_be_visible()
        await expect(refusal).to_contain_text(re.compile(r"\d+\s*(s|second|min)", re.I))
        await expect(page.locator("article.job")).to_have_count(1)
        assert errors == []
        await page.context.close()


async def test_phone_viewport_keeps_prompt_and_button_on_screen(
    app_factory: AppFactory, browser: Browser
) -> None:
    app = await app_factory(worker=False)
    async with served(app) as url:
        for path in ("/", "/admin"):
            page, errors = await open_page(browser, url + path, width=390, height=844)
            await page.wait_for_load_state("load")
            if path == "/":
                for selector in ("#prompt", "#generate"):
                    await expect(page.locator(selector)).to_be_in_viewport()
                    box = await page.locator(selector).bounding_box()
                    assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, (selector, box)
            else:
                await expect(page.locator('#models tr[data-model="demo"]')).to_be_visible()
            scroll_width = await page.evaluate("document.documentElement.scrollWidth")
            assert scroll_width <= 390, (path, scroll_width)
            assert errors == []
            await page.context.close()


async def test_pages_and_static_files_are_served_without_other_hosts(
    app_factory: AppFactory,
) -> None:
    app = await app_factory(worker=False)
    async with served(app) as url, aiohttp.ClientSession() as http:
        expected = {
            "/": "text/html",
            "/admin": "text/html",
            "/static/common.js": "text/javascript",
            "/static/app.js": "text/javascript",
            "/static/admin.js": "text/javascript",
            "/static/style.css": "text/css",
        }
        for path, content_type in expected.items():
            async with http.get(url + path) as response:
                assert response.status == 200, path
                assert response.content_type == content_type, path
                assert "default-src 'self'" in response.headers["Content-Security-Policy"]
                text = await response.text()
                # Nothing is fetched from another host: no absolute URLs in the page's files.
                assert not re.search(r"(src|href)=[\"']?(https?:)?//", text), path
                assert "http://" not in text and "https://" not in text, path
        async with http.get(url + "/static/../pyproject.toml") as response:
            assert response.status == 404
        async with http.get(url + "/static/nothing.js") as response:
            assert response.status == 404


async def test_image_to_image_upload_and_vary(
    app_factory: AppFactory, browser: Browser, tmp_path: Path
) -> None:
    from PIL import Image

    start = tmp_path / "start.png"
    Image.new("RGB", (96, 64), (200, 40, 40)).save(start)  # landscape, 3:2
    app = await app_factory()
    async with served(app) as url:
        page, errors = await open_page(browser, url)
        await page.check('input[name="mode"][value="img2img"]')
        await expect(page.locator("#img2img-fields")).to_be_visible()
        await page.set_input_files("#init-file", str(start))
        await expect(page.locator("#init-preview")).to_be_visible()
        await page.fill("#prompt", "a red house")
        await page.click("#generate")
        done = 'article.job[data-status="succeeded"]'
        await page.wait_for_selector(done, timeout=RENDER_TIMEOUT_MS)
        await first_image_loaded(page, done)
        job_id = await page.locator("article.job").first.get_attribute("data-job")
        assert job_id
        async with aiohttp.ClientSession() as http, http.get(f"{url}/api/jobs/{job_id}") as got:
            job = await got.json()
        assert job["mode"] == "img2img" and job["strength"] == pytest.approx(0.6), job
        # No size asked for: the result keeps the starting image's shape, and the card says
        # what it is.
        assert job["width"] * 2 == job["height"] * 3, job
        card = page.locator("article.job").first
        await expect(card.locator(".mode-tag")).to_have_text("img2img")
        await expect(card).to_contain_text("image to image (strength 0.60)")

        await page.locator("article.job").first.get_by_role("button", name="Vary (subtle)").click()
        await expect(page.locator(done)).to_have_count(2, timeout=RENDER_TIMEOUT_MS)
        await expect(page.locator("article.job").first).to_contain_text("vary")
        assert errors == []
        await page.context.close()


async def test_admin_adds_a_style_and_the_page_draws_with_it(
    app_factory: AppFactory, browser: Browser
) -> None:
    app = await app_factory(worker=False)
    async with served(app) as url:
        page, errors = await open_page(browser, url)
        await expect(page.locator("#style-field")).to_be_hidden()  # no styles yet: no menu
        await page.goto(f"{url}/admin", wait_until="domcontentloaded")
        await page.fill("#style-name", "ink")
        await page.click("#style-form button[type=submit]")  # neither prompt: refused
        await expect(page.locator("#style-error")).to_contain_text("needs a prompt")
        await page.fill("#style-prompt", "{prompt}, ink drawing")
        await page.fill("#style-negative", "colour")
        await page.click("#style-form button[type=submit]")
        await expect(page.locator("#styles")).to_contain_text(
            "ink: {prompt}, ink drawing (no: colour)"
        )
        await expect(page.locator("#style-error")).to_be_hidden()

        await page.goto(url, wait_until="domcontentloaded")
        await expect(page.locator("#style-field")).to_be_visible()
        await page.select_option("#style", "ink")
        await page.fill("#prompt", "a fox")
        await page.click("#generate")
        await expect(page.locator("article.job")).to_have_count(1)
        job_id = await page.locator("article.job").first.get_attribute("data-job")
        job = await app.store.get_job(job_id or "")
        assert job is not None and (job.prompt, job.negative_prompt) == (
            "a fox, ink drawing",
            "colour",
        )
        assert errors == []
        await page.context.close()
