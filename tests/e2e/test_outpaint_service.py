"""Zoom out and pan through the one door (``Service.zoom_out``/``pan``): a real App on the
demo model and a real SQLite file. The child is an inpaint of a stored canvas, within the size
limits; a rerun is identical; bad requests are refused before anything is stored or queued."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image

from bot.app import App
from generation.errors import InvalidRequest, NotFound
from generation.metadata import parse_infotext, read_png_text
from generation.spec import Action, Mode
from storage.records import JobRecord
from tests.e2e.engine_helpers import max_diff, origin, pixels, small, wait_finished


async def parent_job(app: App) -> JobRecord:
    job = await wait_finished(app, (await app.service.draw(origin(), small(count=2))).job.id)
    assert job.status == "succeeded", job.error
    return job


def stored(app: App, sha: str | None) -> Image.Image:
    assert sha is not None
    return Image.open(io.BytesIO(app.images.read(sha)))


async def test_zoom_out_centres_the_picture_on_a_larger_canvas_and_reruns_exactly(
    app_factory: Any,
) -> None:
    app = await app_factory()
    parent = await parent_job(app)
    accepted = await app.service.zoom_out(origin(), parent.id, 2, index=1)
    job = await wait_finished(app, accepted.job.id)
    assert job.status == "succeeded", job.error
    assert (job.mode, job.action, job.parent_id, job.parent_index) == (
        Mode.INPAINT,
        Action.VARY,
        parent.id,
        1,
    )
    assert (job.width, job.height, job.strength) == (128, 128, 1.0)
    assert job.inpaint is not None and job.inpaint["outpaint"] == "zoom 2"
    assert job.prompt == parent.prompt and job.seed != parent.seed
    canvas = np.asarray(stored(app, job.init_image).convert("RGB"), dtype=np.int16)
    assert (canvas[32:96, 32:96] == pixels(app, parent, 1)).all()
    mask = np.asarray(stored(app, job.mask_image))
    assert mask[0, 0] == 255 and mask[64, 64] == 0
    ours = pixels(app, job)
    assert ours.shape == (128, 128, 3)
    # The middle of the picture is the parent's; the border was painted.
    assert (ours[60:68, 60:68] == pixels(app, parent, 1)[28:36, 28:36]).all()
    assert max_diff(ours[:16], canvas[:16]) > 10
    info = parse_infotext(read_png_text(app.images.read(job.images[0].sha256))["parameters"])
    assert (info["Size-1"], info["Size-2"]) == ("128", "128") and info["Masked content"] == "fill"

    rerun = await wait_finished(app, (await app.service.rerun(origin(), job.id)).job.id)
    assert rerun.spec == job.spec and max_diff(pixels(app, rerun), ours) == 0


async def test_pan_extends_the_canvas_towards_one_side(app_factory: Any) -> None:
    app = await app_factory()
    parent = await parent_job(app)
    job = await wait_finished(app, (await app.service.pan(origin(), parent.id, "left")).job.id)
    assert job.status == "succeeded", job.error
    assert (job.width, job.height) == (96, 64) and job.spec.outpaint == "pan left"
    canvas = np.asarray(stored(app, job.init_image).convert("RGB"), dtype=np.int16)
    assert (canvas[:, 32:] == pixels(app, parent)).all()
    up = await wait_finished(app, (await app.service.pan(origin(), job.id, "up")).job.id)
    assert (up.width, up.height, up.parent_id) == (96, 96, job.id)


async def test_the_canvas_respects_the_size_limit(app_factory: Any) -> None:
    refuse = await app_factory(generation={"max_pixels": 100 * 100, "on_excess": "refuse"})
    parent = await parent_job(refuse)
    before = len(await refuse.store.list_jobs())
    files = {p.name for p in refuse.images.root.rglob("*.png")}
    with pytest.raises(InvalidRequest, match="larger than"):
        await refuse.service.zoom_out(origin(), parent.id, 2)
    assert len(await refuse.store.list_jobs()) == before
    assert {p.name for p in refuse.images.root.rglob("*.png")} == files
    # 1.5x fits (96x96 = 9,216 pixels)
    fits = await refuse.service.zoom_out(origin(), parent.id, "1.5")
    assert (fits.job.width, fits.job.height) == (96, 96)


async def test_a_shrunk_canvas_shrinks_the_picture(app_factory: Any) -> None:
    app = await app_factory(generation={"max_pixels": 96 * 96, "on_excess": "clamp"})
    parent = await parent_job(app)
    job = await wait_finished(app, (await app.service.zoom_out(origin(), parent.id, 2)).job.id)
    assert job.status == "succeeded", job.error
    assert (job.width, job.height) == (96, 96)
    mask = np.asarray(stored(app, job.mask_image))
    kept = np.argwhere(mask == 0)
    assert kept.min(axis=0).tolist() == [32, 32] and (kept.max(axis=0) + 1).tolist() == [64, 64]


async def test_bad_outpaints_are_refused_with_nothing_queued(app_factory: Any) -> None:
    app = await app_factory()
    parent = await parent_job(app)
    before = len(await app.store.list_jobs())
    with pytest.raises(InvalidRequest, match="Zoom out factor"):
        await app.service.zoom_out(origin(), parent.id, 3)
    with pytest.raises(InvalidRequest, match="Pan direction"):
        await app.service.pan(origin(), parent.id, "sideways")
    with pytest.raises(InvalidRequest, match="has 2 image"):
        await app.service.zoom_out(origin(), parent.id, 2, index=5)
    with pytest.raises(NotFound):
        await app.service.pan(origin("mallory", "elsewhere"), parent.id, "left")
    with pytest.raises(NotFound):
        await app.service.zoom_out(origin(), "nosuchjob", 2)
    assert len(await app.store.list_jobs()) == before
