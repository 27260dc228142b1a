"""``POST /api/jobs/{id}/inpaint`` ("Vary region" on the page): a mask and A1111's inpaint
options in, a repaint job out; every malformed request refused with its reason, nothing queued."""

from __future__ import annotations

import asyncio
import base64
import io
from typing import Any

from aiohttp.test_utils import TestClient
from PIL import Image, ImageDraw

from tests.web.conftest import SMALL, client_app, png_b64

Client = TestClient[Any, Any]


def half_mask(size: tuple[int, int] = (64, 64)) -> str:
    """A data: URL of a mask whose left half is white (repaint)."""
    image = Image.new("L", size, 0)
    ImageDraw.Draw(image).rectangle((0, 0, size[0] // 2 - 1, size[1] - 1), fill=255)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


async def finished_job(client: Client) -> str:
    drawn = await client.post("/api/jobs", json={"prompt": "a lighthouse", **SMALL, "steps": 2})
    assert drawn.status == 202, await drawn.text()
    job_id = str((await drawn.json())["job"]["id"])
    async with asyncio.timeout(60):
        while (await (await client.get(f"/api/jobs/{job_id}")).json())["status"] != "succeeded":
            await asyncio.sleep(0.05)
    return job_id


async def test_a_masked_region_is_repainted_with_the_options_given(web_client: Client) -> None:
    parent = await finished_job(web_client)
    answer = await web_client.post(
        f"/api/jobs/{parent}/inpaint",
        json={
            "mask": half_mask(),
            "prompt": "a red door",
            "mask_blur": 2,
            "only_masked": True,
            "padding": 8,
            "inpainting_fill": 1,
        },
    )
    assert answer.status == 202, await answer.text()
    body = await answer.json()
    job = body["job"]
    assert job["mode"] == "inpaint" and job["parent_id"] == parent and job["prompt"] == "a red door"
    assert job["inpaint"]["mask_blur"] == 2 and job["inpaint"]["inpaint_full_res"] is True
    assert job["inpaint"]["inpaint_full_res_padding"] == 8
    assert job["mask_image_url"].startswith("/api/images/")
    assert "eta_seconds" in body and "seconds_left" in body


async def test_bad_inpaint_requests_are_refused_and_nothing_is_queued(web_client: Client) -> None:
    parent = await finished_job(web_client)
    app = client_app(web_client)
    before = len(await app.store.list_jobs(limit=100))
    cases = [
        ({}, "mask is required"),
        ({"mask": "!!! not base64"}, "not base64"),
        ({"mask": half_mask(), "only_masked": "yes"}, "only_masked must be true or false"),
        ({"mask": half_mask(), "mask_blur": "soft"}, "mask_blur must be a whole number"),
        ({"mask": png_b64((64, 64), (0, 0, 0))}, "all black"),
        ({"mask": png_b64((64, 64), (255, 255, 255))}, "all white"),
        ({"mask": half_mask((64, 32))}, "it must be 64x64"),
        ({"mask": base64.b64encode(b"%PDF-1.4 not a picture").decode()}, "mask was refused"),
        ({"region": "elsewhere"}, "Unknown region"),
        ({"region": "50,0,60,10"}, "inside the picture"),
        ({"region": "left", "mask": half_mask()}, "a mask or a region, not both"),
    ]
    for body, reason in cases:
        answer = await web_client.post(f"/api/jobs/{parent}/inpaint", json=body)
        text = await answer.text()
        assert answer.status == 400 and reason in text, (body.keys(), answer.status, text)
    missing = await web_client.post("/api/jobs/nosuchjob/inpaint", json={"mask": half_mask()})
    assert missing.status == 404
    assert len(await app.store.list_jobs(limit=100)) == before and len(app.queue) == 0


async def finished(client: Client, job_id: str) -> dict[str, Any]:
    async with asyncio.timeout(60):
        while True:
            job: dict[str, Any] = await (await client.get(f"/api/jobs/{job_id}")).json()
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return job
            await asyncio.sleep(0.05)


async def test_a_region_preset_zoom_out_and_pan_through_the_actions(web_client: Client) -> None:
    parent = await finished_job(web_client)
    region = await web_client.post(f"/api/jobs/{parent}/inpaint", json={"region": "right"})
    assert region.status == 202, await region.text()
    job = await finished(web_client, (await region.json())["job"]["id"])
    assert job["status"] == "succeeded" and job["mode"] == "inpaint"
    mask = Image.open(io.BytesIO(await (await web_client.get(job["mask_image_url"])).read()))
    assert mask.getpixel((10, 10)) == 0 and mask.getpixel((50, 10)) == 255

    cases = [
        ({"action": "zoom_out", "factor": 1.5}, (96, 96), "zoom 1.5"),
        ({"action": "zoom_out"}, (128, 128), "zoom 2"),
        ({"action": "pan", "direction": "left"}, (96, 64), "pan left"),
        ({"action": "pan", "direction": "up"}, (64, 96), "pan up"),
    ]
    for body, size, name in cases:
        answer = await web_client.post(f"/api/jobs/{parent}/actions", json=body)
        assert answer.status == 202, await answer.text()
        child = await finished(web_client, (await answer.json())["job"]["id"])
        assert child["status"] == "succeeded", child
        assert (child["width"], child["height"]) == size and child["inpaint"]["outpaint"] == name
        assert child["parent_id"] == parent
        image = await web_client.get(child["images"][0])
        assert Image.open(io.BytesIO(await image.read())).size == size


async def test_bad_zoom_and_pan_requests_are_refused_and_nothing_is_queued(
    web_client: Client,
) -> None:
    parent = await finished_job(web_client)
    app = client_app(web_client)
    before = len(await app.store.list_jobs(limit=100))
    cases = [
        ({"action": "zoom_out", "factor": 3}, "at most 2"),
        ({"action": "zoom_out", "factor": "big"}, "factor must be a number"),
        ({"action": "pan"}, "direction is required"),
        ({"action": "pan", "direction": "sideways"}, "left, right, up, down"),
        ({"action": "pan", "direction": "left", "index": 3}, "has 1 image"),
    ]
    for body, reason in cases:
        answer = await web_client.post(f"/api/jobs/{parent}/actions", json=body)
        text = await answer.text()
        assert answer.status == 400 and reason in text, (body, answer.status, text)
    missing = await web_client.post(
        "/api/jobs/nosuchjob/actions", json={"action": "pan", "direction": "up"}
    )
    assert missing.status == 404
    assert len(await app.store.list_jobs(limit=100)) == before and len(app.queue) == 0


async def test_an_upload_with_a_mask_is_an_inpaint_and_bad_ones_are_refused(
    web_client: Client,
) -> None:
    app = client_app(web_client)
    upload = {"prompt": "a red door", **SMALL, "steps": 2, "init_image": png_b64()}
    answer = await web_client.post(
        "/api/jobs", json={**upload, "mask": half_mask(), "mask_blur": 0}
    )
    assert answer.status == 202, await answer.text()
    job = await finished(web_client, (await answer.json())["job"]["id"])
    assert job["status"] == "succeeded" and job["mode"] == "inpaint"
    assert job["inpaint"]["mask_blur"] == 0 and job["mask_image_url"]
    image = await web_client.get(job["images"][0])
    result = Image.open(io.BytesIO(await image.read())).convert("RGB")
    assert set(result.crop((40, 0, 64, 64)).getdata()) == {(200, 40, 40)}  # unmasked: kept

    before = len(await app.store.list_jobs(limit=100))
    cases = [
        ({"prompt": "a door", **SMALL, "mask": half_mask()}, "needs the picture it masks"),
        ({**upload, "mask": half_mask((64, 32))}, "it must be 64x64"),
        ({**upload, "mask": png_b64((64, 64), (0, 0, 0))}, "all black"),
        ({**upload, "mask": half_mask(), "inpainting_fill": 7}, "Inpainting fill must be"),
    ]
    for body, reason in cases:
        answer = await web_client.post("/api/jobs", json=body)
        text = await answer.text()
        assert answer.status == 400 and reason in text, (reason, answer.status, text)
    assert len(await app.store.list_jobs(limit=100)) == before and len(app.queue) == 0
