"""The page's mask painter ("Vary region") in a real headless Chromium: painting with the mouse
and with touch, the eraser, undo, invert and clear, then the repaint job from the painted mask
(the real demo pipeline behind a real server)."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from PIL import Image

from tests.conftest import AppFactory
from tests.web.browser_helpers import (
    RENDER_TIMEOUT_MS,
    find_chromium,
    first_image_loaded,
    open_page,
    screenshots,
    served,
)
from tests.web.page_checks import TOO_SMALL_TO_TOUCH, serious_accessibility_violations

if TYPE_CHECKING:
    from playwright.async_api import Browser, Locator, Page

pytestmark = [
    pytest.mark.skipif(find_chromium() is None, reason="no chromium (apt-get install chromium)"),
    pytest.mark.timeout(180),
    pytest.mark.usefixtures("one_torch_thread"),
]

playwright_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed")
expect = playwright_api.expect
expect.set_options(timeout=10_000)

DONE = '#current article.job[data-status="succeeded"]'


def white_share(mask: Image.Image, box: tuple[int, int, int, int] | None = None) -> float:
    part = mask.crop(box) if box else mask
    values = list(part.getdata())
    return sum(value >= 128 for value in values) / len(values)


Point = tuple[float, float]  # a place on the canvas, as fractions of its width and height


async def drag(page: Page, canvas: Locator, start: Point, end: Point) -> None:
    """A mouse stroke from ``start`` to ``end`` (fractions of the canvas)."""
    box = await canvas.bounding_box()
    assert box
    x0, y0 = box["x"] + start[0] * box["width"], box["y"] + start[1] * box["height"]
    x1, y1 = box["x"] + end[0] * box["width"], box["y"] + end[1] * box["height"]
    await page.mouse.move(x0, y0)
    await page.mouse.down()
    await page.mouse.move(x1, y1, steps=8)
    await page.mouse.up()


async def touch_drag(
    page: Page, canvas: Locator, start: tuple[float, float], end: tuple[float, float]
):
    """A finger stroke, as a phone's touch screen sends it (Chrome's own touch events)."""
    box = await canvas.bounding_box()
    assert box
    cdp = await page.context.new_cdp_session(page)
    points = [
        (start[0] + (end[0] - start[0]) * i / 8, start[1] + (end[1] - start[1]) * i / 8)
        for i in range(9)
    ]
    for i, (fx, fy) in enumerate(points):
        kind = "touchStart" if i == 0 else "touchMove"
        point = {"x": box["x"] + fx * box["width"], "y": box["y"] + fy * box["height"]}
        await cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [point]})
    await cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


async def test_paint_a_region_with_mouse_and_touch_then_repaint_it(
    app_factory: AppFactory, browser: Browser, tmp_path: Path
) -> None:
    app = await app_factory()
    async with served(app) as url:
        page, errors = await open_page(browser, url, width=390, height=844)  # a phone
        await page.fill("#prompt", "a lighthouse --steps 2 --seed 5")
        await page.click("#generate")
        await page.wait_for_selector(DONE, timeout=RENDER_TIMEOUT_MS)
        await first_image_loaded(page, DONE)
        parent_id = await page.locator(DONE).get_attribute("data-job")

        await page.locator(DONE).get_by_role("button", name="Vary region").click()
        dialog = page.locator("#mask-dialog")
        await expect(dialog).to_be_visible()
        await expect(page.locator("#mask-prompt")).to_have_value("a lighthouse")
        canvas = dialog.locator("canvas.mask-overlay")
        await expect(canvas).to_be_visible()
        # Readable and touchable on a phone like the rest of the page.
        assert await serious_accessibility_violations(page) == []
        assert await page.evaluate(TOO_SMALL_TO_TOUCH) == []

        # Nothing painted: Repaint says so, and nothing is queued.
        await page.click("#mask-submit")
        await expect(page.locator("#mask-error")).to_contain_text("Paint over the part")
        assert len(app.queue) == 0

        # A finger paints the left half's middle; undo takes it back; the mouse paints it again.
        await touch_drag(page, canvas, (0.1, 0.5), (0.4, 0.5))
        mask = await current_mask(page)
        assert white_share(mask, (8, 30, 24, 34)) > 0.9 and white_share(mask, (40, 0, 64, 64)) == 0
        await dialog.get_by_role("button", name="Undo").click()
        assert white_share(await current_mask(page)) == 0
        await drag(page, canvas, (0.1, 0.5), (0.4, 0.5))
        await dialog.get_by_role("button", name="Eraser").click()
        await expect(dialog.get_by_role("button", name="Eraser")).to_have_attribute(
            "aria-pressed", "true"
        )
        await drag(page, canvas, (0.1, 0.5), (0.2, 0.5))  # rubs out the stroke's start
        mask = await current_mask(page)
        assert white_share(mask, (0, 28, 10, 36)) < 0.2 < white_share(mask, (18, 28, 26, 36))
        await dialog.get_by_role("button", name="Invert").click()
        assert white_share(await current_mask(page)) > 0.5
        await dialog.get_by_role("button", name="Clear").click()
        assert white_share(await current_mask(page)) == 0
        await dialog.get_by_role("button", name="Brush").click()
        await drag(page, canvas, (0.1, 0.5), (0.4, 0.5))
        sent = await current_mask(page)
        assert sent.size == (64, 64)
        await page.screenshot(path=str(screenshots(tmp_path) / "mask-painter-phone.png"))

        await page.fill("#mask-prompt", "a red door")
        await page.click("#mask-submit")
        await expect(dialog).to_be_hidden()
        child = page.locator("#current article.job")
        await expect(child).not_to_have_attribute("data-job", parent_id or "")
        await expect(child.locator(".mode-tag")).to_have_text("vary region")
        await page.wait_for_selector(DONE, timeout=RENDER_TIMEOUT_MS)
        child_id = await page.locator(DONE).get_attribute("data-job")
        assert child_id
        job = await app.store.get_job(child_id)
        assert job is not None and job.mode == "inpaint" and job.parent_id == parent_id
        assert job.prompt == "a red door" and job.mask_image
        stored = Image.open(app.images.path_for(job.mask_image)).convert("L")
        assert list(stored.getdata()) == list(sent.getdata())  # the mask painted, as sent
        assert errors == []
        await page.context.close()


async def current_mask(page: Page) -> Image.Image:
    """The mask the painter would send now (white = repaint), as an image."""
    url = await page.evaluate(
        "() => document.querySelector('#mask-slot .mask-painter').maskPainter.toDataUrl()"
    )
    header, data = url.split(",", 1)
    assert header == "data:image/png;base64", header
    return Image.open(io.BytesIO(base64.b64decode(data))).convert("L")


async def test_zoom_out_and_pan_from_a_result_card(
    app_factory: AppFactory, browser: Browser
) -> None:
    """The result's "Zoom out" and "Pan" buttons queue an outpaint of that image: a new card
    says what it is and shows the larger picture."""
    app = await app_factory()
    async with served(app) as url:
        page, errors = await open_page(browser, url)
        await page.fill("#prompt", "a lighthouse --steps 2 --seed 5")
        await page.click("#generate")
        await page.wait_for_selector(DONE, timeout=RENDER_TIMEOUT_MS)
        parent_id = await page.locator(DONE).get_attribute("data-job")
        extend = page.locator(DONE).get_by_role("group", name="Extend the picture")
        for button, tag, size in (
            ("Zoom out 2x", "zoom out 2x", (128, 128)),
            ("← Pan left", "pan left", (96, 64)),
        ):
            await extend.get_by_role("button", name=button).click()
            child = page.locator("#current article.job")
            await expect(child).not_to_have_attribute("data-job", parent_id or "")
            await expect(child.locator(".mode-tag")).to_have_text(tag)
            await page.wait_for_selector(DONE, timeout=RENDER_TIMEOUT_MS)
            await first_image_loaded(page, DONE)
            image = page.locator(f"{DONE} figure img").first
            natural = await image.evaluate("(img) => [img.naturalWidth, img.naturalHeight]")
            assert tuple(natural) == size
            child_id = await page.locator(DONE).get_attribute("data-job")
            job = await app.store.get_job(child_id or "")
            assert job is not None and job.parent_id == parent_id
            # the next button acts on the original again: its card is still listed below
            await page.locator(
                f'article.job[data-job="{parent_id}"]'
            ).first.scroll_into_view_if_needed()
            extend = page.locator(f'article.job[data-job="{parent_id}"]').first.get_by_role(
                "group", name="Extend the picture"
            )
        assert errors == []
        await page.context.close()


async def test_paint_a_region_of_an_uploaded_picture_then_generate(
    app_factory: AppFactory, browser: Browser, tmp_path: Path
) -> None:
    """Image to image with a painted region: only that part of the upload is repainted (an
    inpaint of the upload, like A1111's img2img with a mask)."""
    start = tmp_path / "start.png"
    Image.new("RGB", (64, 64), (200, 40, 40)).save(start)
    app = await app_factory()
    async with served(app) as url:
        page, errors = await open_page(browser, url)
        await page.check('input[name="mode"][value="img2img"]')
        await expect(page.locator("#paint-region")).to_be_hidden()  # nothing to paint yet
        await page.set_input_files("#init-file", str(start))
        await page.click("#paint-region")
        dialog = page.locator("#mask-dialog")
        await expect(dialog).to_be_visible()
        await expect(page.locator("#mask-prompt")).to_be_hidden()  # the form's prompt is used
        await page.click("#mask-submit")  # nothing painted: said, the dialog stays
        await expect(page.locator("#mask-error")).to_contain_text("Paint over the part")
        canvas = dialog.locator("canvas.mask-overlay")
        await drag(page, canvas, (0.1, 0.3), (0.4, 0.3))
        sent = await current_mask(page)
        await expect(page.locator("#mask-submit")).to_have_text("Use this region")
        await page.click("#mask-submit")
        await expect(dialog).to_be_hidden()
        await expect(page.locator("#region-state")).to_be_visible()

        await page.fill("#prompt", "a red house --size 64x64 --steps 2")
        await page.click("#generate")
        await page.wait_for_selector(DONE, timeout=RENDER_TIMEOUT_MS)
        await expect(page.locator(f"{DONE} .mode-tag")).to_have_text("vary region")
        job_id = await page.locator(DONE).get_attribute("data-job")
        job = await app.store.get_job(job_id or "")
        assert job is not None and job.mode == "inpaint" and job.mask_image and job.init_image
        stored = Image.open(app.images.path_for(job.mask_image)).convert("L")
        assert list(stored.getdata()) == list(sent.getdata())
        result = Image.open(app.images.path_for(job.images[0].sha256)).convert("RGB")
        # the bottom rows, far from the painted stroke, are the upload's
        assert set(result.crop((0, 56, 64, 64)).getdata()) == {(200, 40, 40)}

        # "Change the whole picture" drops the region: plain image to image again.
        await page.click("#clear-region")
        await expect(page.locator("#region-state")).to_be_hidden()
        await page.click("#generate")
        await expect(page.locator(DONE)).to_have_count(1)
        plain = page.locator("#current article.job")
        await expect(plain.locator(".mode-tag")).to_have_text("img2img")
        assert errors == []
        await page.context.close()
