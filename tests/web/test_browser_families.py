"""The page shows only what a model's family uses: switching to a Flux.1 model hides the sampler
menu (it has one sampler) and the negative prompt (Flux ignores it), and a draw from there
sends neither; switching back shows them again. An SDXL refiner is never offered as the model,
and the Refiner field shows only for an SDXL model, whose draw then names the refiner."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from generation.requests import Origin
from tests.conftest import AppFactory
from tests.web.browser_helpers import find_chromium, open_page, served
from tests.web.page_checks import TOO_SMALL_TO_TOUCH, serious_accessibility_violations

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


async def test_the_refiner_field_shows_for_sdxl_and_sends_the_refiner(
    app_factory: AppFactory, browser: Browser
) -> None:
    app = await app_factory(worker=False)  # no worker: the job stays queued, as sent
    await app.service.add_model(ADMIN, "xl", "builtin:demo-sdxl")
    await app.service.add_model(ADMIN, "xl-refiner", "builtin:demo-sdxl-refiner")
    async with served(app) as url:
        page, errors = await open_page(browser, url, width=390, height=844)  # a phone
        await expect(page.locator("#model option[value=xl]")).to_have_count(1)
        await expect(page.locator("#model option[value=xl-refiner]")).to_have_count(0)  # no drawing
        await expect(page.locator("#refiner")).to_be_hidden()  # the demo model takes no refiner
        await expect(page.locator("#switch-at")).to_be_hidden()

        await page.select_option("#model", "xl")
        await expect(page.locator("#refiner")).to_be_visible()
        await expect(page.locator("#switch-at")).to_be_visible()
        assert await page.locator("#refiner option").all_inner_texts() == [
            "No refiner",
            "xl",
            "xl-refiner",
        ]
        assert await serious_accessibility_violations(page) == []
        small = await page.evaluate(TOO_SMALL_TO_TOUCH)
        assert [c for c in small if "refiner" in c or "switch-at" in c] == []

        await page.select_option("#refiner", "xl-refiner")
        await page.fill("#switch-at", "0.7")
        await page.fill("#prompt", "a fox")
        await page.click("#generate")
        await expect(page.locator("article.job")).to_have_count(1)
        job_id = await page.locator("article.job").first.get_attribute("data-job")
        job = await app.store.get_job(job_id or "")
        assert job is not None
        assert job.model == "xl"
        assert job.spec.refiner is not None
        assert (job.spec.refiner.model, job.spec.refiner.switch_at) == ("xl-refiner", 0.7)

        await page.reload()  # the form is kept, the refiner with it
        await expect(page.locator("#model")).to_have_value("xl")
        await expect(page.locator("#refiner")).to_have_value("xl-refiner")
        await expect(page.locator("#switch-at")).to_have_value("0.7")
        await expect(page.locator("#refiner")).to_be_visible()

        await page.select_option("#model", "demo")
        await expect(page.locator("#refiner")).to_be_hidden()
        await expect(page.locator("#switch-at")).to_be_hidden()

        await page.click("#form-reset")  # every setting back to its default, the refiner too
        await page.select_option("#model", "xl")
        await expect(page.locator("#refiner")).to_have_value("")
        await expect(page.locator("#switch-at")).to_have_value("")
        assert errors == []
        await page.context.close()
