"""Prompt styles through the one door and the AUTOMATIC1111 API: the config's styles for every
scope, a scope's own (set by its admins), the prompts a job stores, and the refusals."""

from __future__ import annotations

from typing import Any

import pytest

from bot.app import App
from generation.errors import InvalidRequest, PermissionDenied
from generation.metadata import parse_infotext, read_png_text
from tests.e2e.engine_helpers import origin, small, wait_finished

GLOBAL = {"cinematic": {"prompt": "{prompt}, cinematic lighting", "negative_prompt": "cartoon"}}


async def test_a_style_is_applied_stored_and_rerun_without_it(app_factory: Any) -> None:
    app: App = await app_factory(generation={"styles": GLOBAL})
    admin = origin("owner", admin=True)
    await app.service.set_style(admin, "ink", "ink drawing", "colour")
    request = small("a castle", negative_prompt="blurry", styles=("Cinematic", "ink"))
    job = await wait_finished(app, (await app.service.draw(origin(), request)).job.id)
    assert job.status == "succeeded", job.error
    assert job.prompt == "a castle, cinematic lighting, ink drawing"
    assert job.negative_prompt == "blurry, cartoon, colour"
    info = parse_infotext(read_png_text(app.images.read(job.images[0].sha256))["parameters"])
    assert info["Prompt"] == job.prompt and info["Negative prompt"] == job.negative_prompt
    # The job keeps the prompts it used: removing the style changes nothing for a rerun.
    await app.service.remove_style(admin, "ink")
    rerun = await wait_finished(app, (await app.service.rerun(origin(), job.id)).job.id)
    assert (rerun.prompt, rerun.negative_prompt) == (job.prompt, job.negative_prompt)
    assert [s.name for s in await app.service.styles(origin())] == ["cinematic"]


async def test_unknown_styles_and_non_admins_are_refused_with_nothing_queued(
    app_factory: Any,
) -> None:
    app: App = await app_factory(worker=False, generation={"styles": GLOBAL})
    with pytest.raises(InvalidRequest, match=r"Unknown style 'noir'\. Styles here: cinematic"):
        await app.service.draw(origin(), small(styles=("noir",)))
    with pytest.raises(PermissionDenied):
        await app.service.set_style(origin("mallory"), "x", "y")
    with pytest.raises(InvalidRequest, match="no style 'ink'"):
        await app.service.remove_style(origin("owner", admin=True), "ink")
    assert len(app.queue) == 0 and await app.store.list_jobs() == []
    # another scope has its own styles: this one's are not there
    await app.service.set_style(origin("owner", "server-a", admin=True), "ink", "ink drawing")
    with pytest.raises(InvalidRequest, match="Unknown style 'ink'"):
        await app.service.draw(origin("bob", "server-b"), small(styles=("ink",)))


async def test_a1111_lists_styles_and_applies_them(web_factory: Any) -> None:
    client = await web_factory(generation={"styles": GLOBAL})
    listed = await (await client.get("/sdapi/v1/prompt-styles")).json()
    assert listed == [
        {
            "name": "cinematic",
            "prompt": "{prompt}, cinematic lighting",
            "negative_prompt": "cartoon",
        }
    ]
    body = {"prompt": "a castle", "steps": 2, "width": 64, "height": 64, "styles": ["cinematic"]}
    answer = await client.post("/sdapi/v1/txt2img", json=body)
    assert answer.status == 200, await answer.text()
    info = (await answer.json())["info"]
    assert '"prompt": "a castle, cinematic lighting"' in info and '"styles": ["cinematic"]' in info
    refused = await client.post("/sdapi/v1/txt2img", json={**body, "styles": ["noir"]})
    assert refused.status in (400, 422) and "Unknown style" in await refused.text()
