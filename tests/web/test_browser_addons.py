"""The admin page registers a LoRA file from its model form, lists it with how a prompt
writes it, and removes it (a real browser on a real server)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.addon_files import make_sd1_lora
from tests.conftest import AppFactory
from tests.web.browser_helpers import find_chromium, open_page, served

if TYPE_CHECKING:
    from playwright.async_api import Browser

CHROMIUM = find_chromium()

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (apt-get install chromium)"),
    pytest.mark.timeout(120),
]

playwright_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed")
expect = playwright_api.expect
expect.set_options(timeout=10_000)


async def test_admin_page_registers_lists_and_removes_a_lora(
    app_factory: AppFactory, browser: Browser, tmp_path: Path
) -> None:
    app = await app_factory(worker=False)
    lora = make_sd1_lora(tmp_path / "ink.safetensors")
    async with served(app) as url:
        page, errors = await open_page(browser, f"{url}/admin")
        await expect(page.locator('#models tr[data-model="demo"]')).to_be_visible()
        await page.fill("#model-name", "ink")
        await page.fill("#model-source", str(lora))
        await page.select_option("#model-addon", "lora")
        await page.click("#add-model button[type=submit]")
        row = page.locator('#models tr[data-addon="ink"]')
        await expect(row).to_contain_text("LoRA")
        await expect(row).to_contain_text("for sd1 models")
        await expect(row).to_contain_text("<lora:ink:1>")
        assert [a.name for a in await app.service.list_addons()] == ["ink"]

        async def accept(dialog: Any) -> None:
            await dialog.accept()

        page.on("dialog", accept)
        await row.locator("button", has_text="Remove").click()
        await expect(row).to_have_count(0)
        assert await app.service.list_addons() == []
        assert errors == []
        await page.context.close()
