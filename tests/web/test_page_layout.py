"""How the page is laid out and reads, in a real headless Chromium against a real server.

The result beside the form on a desktop and scrolled to on a phone; defaults said apart from
typed values; the form kept across reloads; the admin page naming (and switching) the scope it
edits; and, on every page at desktop and phone sizes, no serious or critical axe-core finding,
touch targets of 44 px on phones, menus that show their whole text and no word broken in two.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest

from generation.requests import Origin
from tests.conftest import AppFactory
from tests.web.browser_helpers import (
    RENDER_TIMEOUT_MS,
    find_chromium,
    first_image_loaded,
    open_page,
    screenshots,
    served,
)
from tests.web.page_checks import (
    BROKEN_WORDS,
    CUT_MENUS,
    TOO_SMALL_TO_TOUCH,
    serious_accessibility_violations,
)

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytestmark = [
    pytest.mark.skipif(find_chromium() is None, reason="no chromium (apt-get install chromium)"),
    pytest.mark.timeout(180),
    pytest.mark.usefixtures("one_torch_thread"),
]

playwright_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed")
expect = playwright_api.expect
expect.set_options(timeout=10_000)

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
DONE = '#current article.job[data-status="succeeded"]'


async def draw_on_page(page: Page, prompt: str, count: int = 1) -> None:
    await page.fill("#prompt", prompt)
    await page.fill("#count", str(count))
    await page.click("#generate")
    await page.wait_for_selector(DONE, timeout=RENDER_TIMEOUT_MS)
    await first_image_loaded(page, DONE)


async def test_the_result_is_beside_the_form_on_a_desktop_and_scrolled_to_on_a_phone(
    app_factory: AppFactory, browser: Browser, tmp_path: Path
) -> None:
    app = await app_factory()
    async with served(app) as url:
        page, errors = await open_page(browser, url, **DESKTOP)
        await draw_on_page(page, "a lighthouse at dusk --steps 2 --seed 3", count=2)
        shown = page.locator(f"{DONE} figure:not(.unselected)")
        await expect(shown).to_have_count(1)  # one image large, the batch as thumbnails
        form_box, image_box = (
            await page.locator("#draw-form").bounding_box(),
            await shown.locator("img").bounding_box(),
        )
        assert form_box and image_box
        assert image_box["x"] >= form_box["x"] + form_box["width"], (form_box, image_box)
        assert image_box["width"] >= 400, image_box  # large, not a 220 px card
        await expect(shown.locator("img")).to_be_in_viewport(ratio=1.0)
        await expect(shown.get_by_role("button", name="Reroll")).to_be_in_viewport(ratio=1.0)
        thumbs = page.locator(f"{DONE} .thumbs button")
        await expect(thumbs).to_have_count(2)
        await thumbs.nth(1).click()
        await expect(shown).to_have_attribute("data-index", "1")
        await expect(thumbs.nth(1)).to_have_attribute("aria-pressed", "true")
        await page.screenshot(path=str(screenshots(tmp_path) / "page-desktop.png"))

        # The next job takes the place beside the form; this one moves to "earlier".
        first_id = await page.locator(DONE).get_attribute("data-job")
        await shown.get_by_role("button", name="Reroll").click()
        await expect(page.locator("#current article.job")).not_to_have_attribute(
            "data-job", first_id or ""
        )
        await expect(page.locator(f'#gallery article.job[data-job="{first_id}"]')).to_be_visible()
        await expect(page.locator("#earlier-title")).to_be_visible()
        await page.wait_for_selector(DONE, timeout=RENDER_TIMEOUT_MS)

        # A phone: the form fills the screen, so the page scrolls to the result when it starts.
        phone, phone_errors = await open_page(browser, url, **PHONE)
        await phone.fill("#prompt", "a boat on a lake --steps 2")
        await expect(phone.locator("#generate")).to_be_in_viewport()
        await phone.click("#generate")
        card = phone.locator("#current article.job")
        await expect(card).to_be_in_viewport()
        await phone.wait_for_function(
            "() => Math.abs(document.querySelector('#current article.job')"
            ".getBoundingClientRect().top) < 60"
        )
        await expect(phone.locator("#prompt")).not_to_be_in_viewport()
        await phone.wait_for_selector(DONE, timeout=RENDER_TIMEOUT_MS)
        await first_image_loaded(phone, DONE)
        await phone.screenshot(path=str(screenshots(tmp_path) / "page-phone.png"))
        assert errors == [] and phone_errors == []
        await page.context.close()
        await phone.context.close()


async def test_defaults_are_said_beside_the_fields_and_the_form_survives_a_reload(
    app_factory: AppFactory, browser: Browser
) -> None:
    app = await app_factory(worker=False)
    demo = await app.store.get_model("demo")
    assert demo is not None
    async with served(app) as url:
        page, errors = await open_page(browser, url, **DESKTOP)
        # The model's default is said beside the label; the empty box shows no number.
        await expect(page.locator("#steps-default")).to_have_text(f"default {demo.default_steps}")
        await expect(page.locator("#cfg-default")).to_have_text(f"default {demo.default_cfg:g}")
        for field in ("#steps", "#cfg"):
            await expect(page.locator(field)).to_have_value("")
            placeholder = await page.locator(field).get_attribute("placeholder")
            assert placeholder and not re.search(r"\d", placeholder), (field, placeholder)

        await page.fill("#prompt", "a castle at dusk")
        await page.fill("#negative", "blurry")
        await page.fill("#steps", "12")
        await page.select_option("#size", "custom")
        await page.fill("#width", "96")
        await page.fill("#height", "72")
        await page.select_option("#sampler", "DDIM")
        await page.check('input[name="mode"][value="img2img"]')
        await page.reload()
        await expect(page.locator("#prompt")).to_have_value("a castle at dusk")
        await expect(page.locator("#negative")).to_have_value("blurry")
        await expect(page.locator("#steps")).to_have_value("12")
        await expect(page.locator("#custom-size")).to_be_visible()
        await expect(page.locator("#width")).to_have_value("96")
        await expect(page.locator("#height")).to_have_value("72")
        await expect(page.locator("#sampler")).to_have_value("DDIM")
        await expect(page.locator('input[name="mode"][value="img2img"]')).to_be_checked()
        await expect(page.locator("#img2img-fields")).to_be_visible()

        # Reset empties it for good.
        await page.click("#form-reset")
        await expect(page.locator("#prompt")).to_have_value("")
        await page.reload()
        await expect(page.locator("#steps-default")).to_have_text(f"default {demo.default_steps}")
        for field in ("#prompt", "#negative", "#steps"):
            await expect(page.locator(field)).to_have_value("")
        await expect(page.locator('input[name="mode"][value="txt2img"]')).to_be_checked()
        assert errors == []
        await page.context.close()


async def audit(page: Page, where: str, *, phone: bool) -> list[Any]:
    """Every problem found on the page as it is now, labelled with ``where``."""
    problems: list[Any] = [
        (where, "axe", found) for found in await serious_accessibility_violations(page)
    ]
    problems += [(where, "menu cut", cut) for cut in await page.evaluate(CUT_MENUS)]
    if phone:
        small = await page.evaluate(TOO_SMALL_TO_TOUCH)
        problems += [(where, "under 44 px", control) for control in small]
    return problems


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop-light", "phone-dark"])
async def test_every_page_reads_well_and_passes_the_accessibility_check(
    app_factory: AppFactory, browser: Browser, size: dict[str, int], tmp_path: Path
) -> None:
    app = await app_factory()
    await app.store.get_or_create_scope("discord", "4242", "Art club")
    phone = size is PHONE
    name = "phone" if phone else "desktop"
    # Both colour schemes are checked: the desktop in the light one, the phone in the dark.
    scheme: Literal["light", "dark"] = "dark" if phone else "light"
    async with served(app) as url:
        page, errors = await open_page(browser, url, **size, color_scheme=scheme)
        await draw_on_page(page, "a lighthouse --steps 2", count=2)
        problems = await audit(page, "create", phone=phone)

        await page.click("#tab-history")
        await expect(page.locator("#history-list li[data-job]")).to_have_count(1)
        problems += await audit(page, "history", phone=phone)
        await page.locator("#history-list li[data-job]").first.click()
        await expect(page.locator("#job-dialog")).to_be_visible()
        problems += await audit(page, "job dialog", phone=phone)

        await page.goto(f"{url}/admin")
        await expect(page.locator('#models tr[data-model="demo"]')).to_be_visible()
        await expect(page.locator("#scope option")).to_have_count(3)
        problems += await audit(page, "admin", phone=phone)
        broken = await page.evaluate(BROKEN_WORDS, "#models th, #models td, #workers td")
        problems += [("admin", "word broken", word) for word in broken]
        await page.screenshot(path=str(screenshots(tmp_path) / f"admin-{name}.png"))
        assert problems == []
        assert errors == []
        await page.context.close()


async def test_the_admin_page_names_the_scope_it_edits_and_can_switch(
    app_factory: AppFactory, browser: Browser
) -> None:
    app = await app_factory(worker=False)
    await app.store.get_or_create_scope("discord", "4242", "Art club")
    async with served(app) as url:
        page, errors = await open_page(browser, f"{url}/admin", **DESKTOP)
        heading = page.locator(".scope-name").first
        await expect(heading).to_have_text("This page and the /api clients")
        await page.select_option("#scope", "discord:4242")
        await expect(heading).to_have_text("Discord server “Art club”")
        await page.fill("#limit-max_steps", "10")
        await page.click("#limits button[type=submit]")
        await expect(page.locator("#limits-ok")).to_be_visible()
        await expect(page.locator("#limits-error")).to_be_hidden()

        member = Origin("discord", "4242", "1001")
        assert (await app.service.scope_settings(member)).max_steps == 10
        assert (await app.service.scope_settings(Origin("web", "web", "local"))).max_steps is None

        await page.reload()  # the choice is in the address: a reload stays on that server
        await expect(heading).to_have_text("Discord server “Art club”")
        await expect(page.locator("#limit-max_steps")).to_have_value("10")
        await page.select_option("#scope", "web")
        await expect(page.locator("#limit-max_steps")).to_have_value("")
        assert errors == []
        await page.context.close()
