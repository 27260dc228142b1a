"""The page shows only what a model's family uses: switching to a Flux.1 model hides the sampler
menu (it has one sampler) and the negative prompt (Flux ignores it), and a draw from there
sends neither; switching back shows them again."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from generation.requests import Origin
from tests.conftest import AppFactory
from tests.web.browser_helpers import find_chromium, open_page, served

if TYPE_CHECKING:
    from playwright.async_api import Browser

pytestmark = [
    pytest.mark.skipif(find_chromium() is None, reason="no chromium installed"),
    pytest.mark.timeout(120),
]
playwright_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed")
expect = playwright_api.expect
ADMIN = Origin(platform="cli", scope_id="local", user_id="root", is_admin=True)


async def test_model_switch_hides_the_sampler_and_negative_prompt_for_flux(
    app_factory: AppFactory, browser: Browser
) -> None:
    app = await app_factory(worker=False)
    await app.service.add_model(ADMIN, "flux", "builtin:demo-flux")
    await app.service.add_model(ADMIN, "sd3", "builtin:demo-sd3")
    async with served(app) as url:
        page, errors = await open_page(browser, url)
        await expect(page.locator("#sampler")).to_be_visible()
        await page.fill("#negative", "blurry")
        await page.select_option("#sampler", "DPM++ 2M Karras")

        await page.select_option("#model", "sd3")  # two flow-matching samplers: a short menu
        await expect(page.locator("#sampler")).to_be_visible()
        await expect(page.locator("#negative")).to_be_visible()
        assert await page.locator("#sampler").input_value() == ""  # not one of SD3's
        assert await page.locator("#sampler option[value=Heun]").is_enabled()
        assert await page.locator("#sampler option[value='Euler a']").is_disabled()

        await page.select_option("#model", "flux")
        await expect(page.locator("#sampler")).to_be_hidden()
        await expect(page.locator("#negative")).to_be_hidden()
        await page.fill("#prompt", "a fox")
        await page.click("#generate")
        await expect(page.locator("article.job")).to_have_count(1)
        job_id = await page.locator("article.job").first.get_attribute("data-job")
        job = await app.store.get_job(job_id or "")
        assert job is not None
        assert (job.model, job.sampler, job.negative_prompt) == ("flux", "Euler", "")

        await page.select_option("#model", "demo")
        await expect(page.locator("#sampler")).to_be_visible()
        await expect(page.locator("#negative")).to_be_visible()
        assert errors == []
        await page.context.close()
