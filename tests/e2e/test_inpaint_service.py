"""Inpainting through the one door (``Service.inpaint``): a real App on the demo model and a real
SQLite file. The child job stores everything a rerun needs, keeps the picture outside the mask,
and bad masks are refused before anything is stored or queued."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageFilter, ImageOps

from bot.app import App
from generation.errors import ImageRejected, InvalidRequest, NotFound, Rejected
from generation.metadata import parse_infotext, read_png_text
from generation.requests import InpaintRequest
from generation.spec import Action, Mode
from storage.records import JobRecord
from tests.e2e.engine_helpers import max_diff, origin, pixels, small, wait_finished

BOX = (16, 20, 40, 48)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def box_mask(size: tuple[int, int] = (64, 64), box: tuple[int, int, int, int] = BOX) -> bytes:
    mask = Image.new("L", size, 0)
    mask.paste(255, box)
    return png(mask)


async def parent_job(app: App) -> JobRecord:
    job = await wait_finished(app, (await app.service.draw(origin(), small(count=2))).job.id)
    assert job.status == "succeeded", job.error
    return job


def stored_files(app: App) -> set[str]:
    return {p.name for p in app.images.root.rglob("*.png")}


async def test_inpaint_a_result_stores_everything_keeps_the_outside_and_reruns_exactly(
    app_factory: Any,
) -> None:
    app = await app_factory()
    parent = await parent_job(app)
    request = InpaintRequest(
        mask=box_mask(),
        prompt="a dragon",
        strength=0.9,
        mask_blur=2,
        inpainting_fill=0,
        inpaint_full_res=True,
        inpaint_full_res_padding=8,
    )
    accepted = await app.service.inpaint(origin(), parent.id, request, index=1)
    assert accepted.job.status == "queued"
    job = await wait_finished(app, accepted.job.id)
    assert job.status == "succeeded", job.error
    assert (job.mode, job.action) == (Mode.INPAINT, Action.VARY)
    assert (job.parent_id, job.parent_index) == (parent.id, 1)
    assert job.init_image == parent.images[1].sha256
    assert job.prompt == "a dragon" and job.negative_prompt == parent.negative_prompt
    assert job.strength == 0.9 and job.seed != parent.seed
    assert job.inpaint == {
        "mask_blur": 2,
        "inpainting_fill": 0,
        "inpaint_full_res": True,
        "inpaint_full_res_padding": 8,
        "mask_invert": False,
    }
    assert job.mask_image is not None
    stored_mask = Image.open(io.BytesIO(app.images.read(job.mask_image)))
    assert stored_mask.mode == "L" and stored_mask.size == (64, 64)
    spec = job.spec
    assert spec.mode is Mode.INPAINT and spec.mask_image == job.mask_image
    assert spec.inpaint_full_res and spec.inpaint_full_res_padding == 8

    info = parse_infotext(read_png_text(app.images.read(job.images[0].sha256))["parameters"])
    assert info["Prompt"] == "a dragon" and info["Denoising strength"] == "0.9"
    assert (info["Mask blur"], info["Masked content"]) == ("2", "fill")
    assert (info["Inpaint area"], info["Masked area padding"]) == ("Only masked", "8")
    assert info["Easel parent"] == f"{parent.id}/2" and "Mask mode" not in info

    # Outside the mask's blur band: the parent's pixels exactly.
    mask = Image.open(io.BytesIO(box_mask())).filter(ImageFilter.GaussianBlur(2))
    band = np.asarray(mask) > 0
    ours, before = pixels(app, job), pixels(app, parent, 1)
    assert (ours[~band] == before[~band]).all()
    assert max_diff(ours, before) > 10

    rerun = await wait_finished(app, (await app.service.rerun(origin(), job.id)).job.id)
    assert rerun.status == "succeeded", rerun.error
    assert rerun.spec == job.spec and rerun.mask_image == job.mask_image
    assert max_diff(pixels(app, rerun), ours) == 0

    # An action on the inpainted picture is an ordinary one: no mask carried over.
    vary = await wait_finished(app, (await app.service.vary(origin(), job.id)).job.id)
    assert vary.mode == Mode.IMG2IMG and vary.mask_image is None and vary.inpaint is None


async def test_a_mask_of_the_same_shape_is_resized_and_the_prompt_defaults_to_the_jobs(
    app_factory: Any,
) -> None:
    app = await app_factory()
    parent = await parent_job(app)
    request = InpaintRequest(mask=box_mask((128, 128), (32, 40, 80, 96)), mask_invert=True)
    job = await wait_finished(app, (await app.service.inpaint(origin(), parent.id, request)).job.id)
    assert job.status == "succeeded", job.error
    assert job.prompt == parent.prompt and job.strength == 0.75
    assert job.mask_image is not None
    assert Image.open(io.BytesIO(app.images.read(job.mask_image))).size == (64, 64)
    assert job.spec.mask_invert
    ours, before = pixels(app, job), pixels(app, parent)
    repainted = ImageOps.invert(Image.open(io.BytesIO(box_mask())))
    kept = np.asarray(repainted.filter(ImageFilter.GaussianBlur(4))) == 0
    assert kept.sum() > 20  # inside the box, beyond the blur band
    assert (ours[kept] == before[kept]).all()  # inverted: the white part stays
    assert max_diff(ours, before) > 10


def _bomb() -> bytes:
    return png(Image.new("L", (5000, 5000), 255))  # 25 million pixels, a few KB


BAD_MASKS: dict[str, tuple[Any, type[Rejected], str]] = {
    "not an image": (b"this is not a picture", ImageRejected, "not an image Easel can read"),
    "empty": (b"", ImageRejected, "empty"),
    "a bomb": (_bomb(), ImageRejected, "pixels"),
    "wrong shape": (box_mask((64, 32), (0, 0, 8, 8)), ImageRejected, "it must be 64x64"),
    "all black": (png(Image.new("L", (64, 64), 0)), ImageRejected, "nothing to repaint"),
    "all white": (png(Image.new("L", (64, 64), 255)), ImageRejected, "Use Vary"),
    "faint grey": (png(Image.new("L", (64, 64), 100)), ImageRejected, "all black"),
    "blur": (InpaintRequest(box_mask(), mask_blur=-1), InvalidRequest, "Mask blur"),
    "fill": (InpaintRequest(box_mask(), inpainting_fill=4), InvalidRequest, "3 \\(latent"),
    "padding": (
        InpaintRequest(box_mask(), inpaint_full_res_padding=999),
        InvalidRequest,
        "padding",
    ),
    "strength": (InpaintRequest(box_mask(), strength=0.0), InvalidRequest, "Strength"),
    "prompt": (InpaintRequest(box_mask(), prompt="  "), InvalidRequest, "prompt is empty"),
}


@pytest.mark.parametrize("case", list(BAD_MASKS))
async def test_bad_masks_and_options_are_refused_and_nothing_is_stored_or_queued(
    app_factory: Any, case: str
) -> None:
    app = await app_factory()
    parent = await parent_job(app)
    given, error, message = BAD_MASKS[case]
    request = given if isinstance(given, InpaintRequest) else InpaintRequest(mask=given)
    files = stored_files(app)
    with pytest.raises(error, match=message):
        await app.service.inpaint(origin(), parent.id, request)
    assert [job.id for job in await app.store.list_jobs()] == [parent.id]
    assert len(app.queue) == 0
    assert stored_files(app) == files


async def test_inverted_all_white_is_all_black(app_factory: Any) -> None:
    app = await app_factory()
    parent = await parent_job(app)
    request = InpaintRequest(mask=png(Image.new("L", (64, 64), 255)), mask_invert=True)
    with pytest.raises(ImageRejected, match="nothing to repaint"):
        await app.service.inpaint(origin(), parent.id, request)


async def test_inpaint_follows_the_rules_of_every_action(app_factory: Any) -> None:
    """Someone who may not see the job gets NotFound; an image that does not exist is named;
    the upload cap is the front end's."""
    app = await app_factory()
    parent = await parent_job(app)
    with pytest.raises(NotFound):
        await app.service.inpaint(origin("mallory", "elsewhere"), parent.id, InpaintRequest(b""))
    with pytest.raises(InvalidRequest, match="has 2 image"):
        await app.service.inpaint(origin(), parent.id, InpaintRequest(box_mask()), index=5)
    with pytest.raises(ImageRejected, match="limit is"):
        await app.service.inpaint(
            origin(), parent.id, InpaintRequest(box_mask()), max_upload_bytes=10
        )
    assert len(await app.store.list_jobs()) == 1


async def test_an_upload_is_inpainted_with_draw_and_its_mask(app_factory: Any) -> None:
    """A1111's img2img with a mask: the picture and its mask are uploads."""
    app = await app_factory()
    parent = await parent_job(app)
    upload = app.images.read(parent.images[0].sha256)
    options = InpaintRequest(box_mask(), mask_blur=0, inpainting_fill=2)
    request = small(prompt="a dragon", init_image=upload, strength=0.8, mask=options)
    job = await wait_finished(app, (await app.service.draw(origin(), request)).job.id)
    assert job.status == "succeeded", job.error
    assert (job.mode, job.action, job.parent_id) == (Mode.INPAINT, Action.DRAW, None)
    assert job.strength == 0.8 and job.init_image and job.mask_image
    assert job.inpaint is not None and job.inpaint["inpainting_fill"] == 2
    outside = np.asarray(Image.open(io.BytesIO(box_mask()))) == 0
    ours, before = pixels(app, job), pixels(app, parent)
    assert (ours[outside] == before[outside]).all() and max_diff(ours, before) > 10


async def test_a_bad_mask_on_an_upload_stores_and_queues_nothing(app_factory: Any) -> None:
    app = await app_factory()
    parent = await parent_job(app)
    upload = app.images.read(parent.images[0].sha256)
    files = stored_files(app)
    black = InpaintRequest(png(Image.new("L", (64, 64), 0)))
    with pytest.raises(ImageRejected, match="nothing to repaint"):
        await app.service.draw(origin(), small(init_image=upload, mask=black))
    with pytest.raises(InvalidRequest, match="attach that image too"):
        await app.service.draw(origin(), small(mask=InpaintRequest(box_mask())))
    with pytest.raises(InvalidRequest, match="Mask blur"):
        await app.service.draw(origin(), small(mask=InpaintRequest(box_mask(), mask_blur=99)))
    assert [job.id for job in await app.store.list_jobs()] == [parent.id]
    assert len(app.queue) == 0 and stored_files(app) == files
