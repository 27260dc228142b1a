"""Inpainting end to end on the demo model and its 9-channel inpainting variant (real diffusers,
CPU, 64x64): pixels equal plain diffusers' for the same request, the picture outside the mask's
blur band is the original's, reruns are identical."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path
from typing import Any

import diffusers
import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from generation.backend import DiffusersBackend, ModelSource, RenderJob
from generation.backend.demo_model import ensure_demo_model
from generation.backend.inpainting import a1111_fill
from generation.demo_info import DEMO_DEFAULTS, DEMO_INPAINT_SOURCE, DEMO_SOURCE
from generation.model_sources import inspect_source
from generation.outpainting import (
    FILL,
    MASK_BLUR,
    STRENGTH,
    Outpaint,
    compose,
    pan,
    zoom_out,
)
from generation.samplers import scheduler_for
from generation.spec import GenerationSpec, Mode

TOLERANCE = 1  # uint8 levels, i.e. 1/255
SIZE = 64
BOX = (20, 16, 44, 40)  # the white part of the mask


def _never() -> bool:
    return False


def _ignore(step: int, total: int, preview: bytes | None) -> None:
    pass


def _pixels(image: Image.Image) -> np.ndarray[Any, np.dtype[np.int16]]:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def _max_diff(a: Image.Image, b: Image.Image) -> int:
    assert a.size == b.size
    return int(np.abs(_pixels(a) - _pixels(b)).max())


def picture() -> Image.Image:
    """A starting picture with structure everywhere (a gradient plus seeded noise)."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    base = np.stack([x * 4, y * 4, (x + y) * 2], axis=-1).astype(np.int16)
    noisy = np.clip(base + rng.integers(-20, 21, size=base.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(noisy, "RGB")


def box_mask(box: tuple[int, int, int, int] = BOX) -> Image.Image:
    mask = Image.new("L", (SIZE, SIZE), 0)
    mask.paste(255, box)
    return mask


def spec(**changes: Any) -> GenerationSpec:
    base = GenerationSpec(
        mode=Mode.INPAINT,
        prompt="a castle at dusk",
        negative_prompt="blurry",
        model="demo",
        sampler=DEMO_DEFAULTS.sampler,
        width=SIZE,
        height=SIZE,
        steps=4,
        cfg=DEMO_DEFAULTS.cfg,
        seed=1234,
        strength=0.75,
        init_image="0" * 64,
        mask_image="1" * 64,
    )
    return replace(base, **changes)


@pytest.fixture(scope="module", params=[DEMO_SOURCE, DEMO_INPAINT_SOURCE], ids=["demo", "9ch"])
def model(request: pytest.FixtureRequest, demo_data_dir: Path) -> tuple[ModelSource, Any]:
    """The model as Easel registers it, and plain diffusers' inpainting pipeline of its folder."""
    source = str(request.param)
    folder = ensure_demo_model(demo_data_dir, source)
    cls: Any = diffusers.StableDiffusionInpaintPipeline  # the plain diffusers way
    plain = cls.from_pretrained(str(folder), safety_checker=None, requires_safety_checker=False)
    plain.set_progress_bar_config(disable=True)
    assert plain.unet.config.in_channels == (9 if source == DEMO_INPAINT_SOURCE else 4)
    return inspect_source(source.removeprefix("builtin:"), source), plain


def render(backend: DiffusersBackend, source: ModelSource, job_spec: GenerationSpec) -> Image.Image:
    job = RenderJob(job_spec, source, init_image=picture(), mask_image=box_mask())
    [image] = backend.render(job, _ignore, _never)
    return image


def plain_render(plain: Any, job_spec: GenerationSpec, **kwargs: Any) -> Image.Image:
    choice = scheduler_for(job_spec.sampler)
    plain.scheduler = getattr(diffusers, choice.class_name).from_config(
        plain.scheduler.config, **choice.options
    )
    image: Image.Image = plain(
        prompt=job_spec.prompt,
        negative_prompt=job_spec.negative_prompt,
        num_inference_steps=job_spec.steps,
        guidance_scale=job_spec.cfg,
        strength=job_spec.strength,
        height=job_spec.height,
        width=job_spec.width,
        generator=torch.Generator("cpu").manual_seed(job_spec.seed),
        output_type="pil",
        **kwargs,
    ).images[0]
    return image


def overlay(blurred: Image.Image, original: Image.Image, rendered: Image.Image) -> Image.Image:
    """A1111's paste-back of the whole picture: the blurred mask doubled (clipped), the
    original laid over the result where it is not masked."""
    doubled = np.clip(np.asarray(blurred, dtype=np.float32) * 2, 0, 255).astype(np.uint8)
    shown = Image.fromarray(doubled, "L").point(lambda v: 255 - v)
    under = rendered.convert("RGBA")
    over = Image.new("RGBa", original.size)
    over.paste(original.convert("RGBA").convert("RGBa"), mask=shown)
    under.alpha_composite(over.convert("RGBA"))
    return under.convert("RGB")


# ------------------------------------------------------------------ exactness


def test_whole_picture_equals_plain_diffusers_with_a1111_paste_back(
    demo_backend: DiffusersBackend, model: tuple[ModelSource, Any]
) -> None:
    source, plain = model
    job_spec = spec(mask_blur=4)
    ours = render(demo_backend, source, job_spec)
    blurred = box_mask().filter(ImageFilter.GaussianBlur(4))
    theirs = plain_render(plain, job_spec, image=picture(), mask_image=blurred)
    assert ours.size == (SIZE, SIZE) and ours.mode == "RGB"
    assert _max_diff(ours, overlay(blurred, picture(), theirs)) <= TOLERANCE
    assert _max_diff(ours, picture()) > 10  # the masked part did change


def test_only_masked_equals_plain_diffusers_padding_mask_crop(
    demo_backend: DiffusersBackend, model: tuple[ModelSource, Any]
) -> None:
    """A1111's "only masked" is diffusers' ``padding_mask_crop`` (crop, render at the job's
    size, paste back through the blurred mask)."""
    source, plain = model
    job_spec = spec(mask_blur=2, inpaint_full_res=True, inpaint_full_res_padding=4)
    ours = render(demo_backend, source, job_spec)
    blurred = box_mask().filter(ImageFilter.GaussianBlur(2))
    theirs = plain_render(plain, job_spec, image=picture(), mask_image=blurred, padding_mask_crop=4)
    assert _max_diff(ours, theirs) <= TOLERANCE
    # rendered at the job's size from a crop: not the whole-picture result
    assert _max_diff(ours, render(demo_backend, source, replace(job_spec, inpaint_full_res=False)))


# ------------------------------------------------------------------ what stays, what changes


@pytest.mark.parametrize("fill", [0, 1, 2, 3])
@pytest.mark.parametrize("full_res", [False, True], ids=["whole", "only-masked"])
def test_outside_the_blur_band_the_pixels_are_the_originals(
    demo_backend: DiffusersBackend, model: tuple[ModelSource, Any], fill: int, full_res: bool
) -> None:
    source, _ = model
    job_spec = spec(mask_blur=3, inpainting_fill=fill, inpaint_full_res=full_res)
    ours = _pixels(render(demo_backend, source, job_spec))
    band = np.asarray(box_mask().filter(ImageFilter.GaussianBlur(3))) > 0
    original = _pixels(picture())
    assert band.sum() < SIZE * SIZE  # there is an outside to check
    assert (ours[~band] == original[~band]).all()
    inside = np.zeros_like(band)
    inside[BOX[1] : BOX[3], BOX[0] : BOX[2]] = True
    assert np.abs(ours[inside] - original[inside]).max() > 10


def test_fill_modes_start_from_different_pictures_and_rerun_identically(
    demo_backend: DiffusersBackend, model: tuple[ModelSource, Any]
) -> None:
    source, _ = model
    results = [render(demo_backend, source, spec(inpainting_fill=fill)) for fill in range(4)]
    for i, first in enumerate(results):
        for second in results[i + 1 :]:
            assert _max_diff(first, second) > 0
    again = render(demo_backend, source, spec(inpainting_fill=2))
    assert _max_diff(again, results[2]) == 0


def test_invert_repaints_the_other_part(
    demo_backend: DiffusersBackend, model: tuple[ModelSource, Any]
) -> None:
    source, _ = model
    ours = _pixels(render(demo_backend, source, spec(mask_invert=True, mask_blur=0)))
    original = _pixels(picture())
    box = np.zeros((SIZE, SIZE), dtype=bool)
    box[BOX[1] : BOX[3], BOX[0] : BOX[2]] = True
    assert (ours[box] == original[box]).all()  # the white part is kept now
    assert np.abs(ours[~box] - original[~box]).max() > 10


def test_inpaint_pipeline_shares_the_resident_components(
    demo_backend: DiffusersBackend, model: tuple[ModelSource, Any]
) -> None:
    source, _ = model
    render(demo_backend, source, spec(steps=2))
    entry: Any = demo_backend._pipes.get((source.name, source.revision))
    assert entry is not None and entry.inpaint is not None
    assert entry.inpaint.unet is entry.pipe.unet and entry.inpaint.vae is entry.pipe.vae


# ------------------------------------------------------------------ outpainting


@pytest.mark.parametrize("how", [zoom_out(2), zoom_out(1.5), pan("left"), pan("down")])
def test_outpaint_equals_plain_diffusers_on_the_composed_canvas(
    demo_backend: DiffusersBackend, model: tuple[ModelSource, Any], how: Outpaint
) -> None:
    """Zoom out and pan are inpaints of a larger canvas: what Easel renders is plain diffusers'
    inpaint of that canvas (A1111's "fill" start, strength 1) laid under the canvas through
    the blurred mask; the picture itself, beyond the overlap and blur band, keeps its pixels."""
    source, plain = model
    width, height = how.canvas_size(SIZE, SIZE)
    canvas_png, mask_png = compose(picture(), how, (width, height))
    canvas, mask = Image.open(io.BytesIO(canvas_png)), Image.open(io.BytesIO(mask_png))
    job_spec = spec(
        width=width,
        height=height,
        strength=STRENGTH,
        mask_blur=MASK_BLUR,
        inpainting_fill=FILL,
        inpaint_full_res_padding=0,
        outpaint=how.name,
    )
    job = RenderJob(job_spec, source, init_image=canvas, mask_image=mask)
    [ours] = demo_backend.render(job, _ignore, _never)
    blurred = mask.filter(ImageFilter.GaussianBlur(MASK_BLUR))
    theirs = plain_render(plain, job_spec, image=a1111_fill(canvas, blurred), mask_image=blurred)
    assert ours.size == (width, height)
    assert _max_diff(ours, overlay(blurred, canvas, theirs)) <= TOLERANCE
    # Beyond the overlap and the blur band the picture keeps its pixels (where compose put
    # it: see tests/unit/test_outpainting.py).
    keep = np.asarray(blurred) == 0
    assert keep.sum() >= 64
    assert (_pixels(ours)[keep] == _pixels(canvas)[keep]).all()
    # ...and the border was painted, not left as the stretched edge.
    assert _max_diff(ours, canvas) > 10
