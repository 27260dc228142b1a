"""The hires fix's passes (torch and Pillow): :func:`render_hires` renders the first pass,
upscales each image, then runs the Upscale action's own second pass on it, with that image's
seed (so, with "Lanczos", image ``i`` is the Upscale action on image ``i`` of the first pass).
``DiffusersBackend._render_hires`` gives it the pipeline calls. The upscale step:

* a latent mode ("Latent", "Latent (bicubic antialiased)", ...): the first pass's latents are
  interpolated as A1111 does (``torch.nn.functional.interpolate`` with its mode and antialias
  flag) and cropped in latent cells; the second pass starts from them (diffusers'
  image-to-image takes 4-channel latents as its image);
* "Lanczos" and "None": the Upscale action's Lanczos resize (:func:`resize_pixels`, which the
  Upscale action uses too); "Nearest": Pillow's nearest neighbour;
* a registered upscaler: its model (``Upscalers.upscale``, the Upscale action's), then Lanczos
  to the size.

A picture upscaled to cover a box of another shape is then cropped to it (A1111's
``truncate_x``/``truncate_y``, see ``generation.hires.crop_box``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from PIL import Image

from generation.estimate import denoising_steps
from generation.hires import LATENT_MODES, cover_size, crop_box, is_latent
from generation.render import ProgressFn, RenderJob
from generation.spec import Mode

Size = tuple[int, int]
# (image, size) -> the image upscaled by a registered upscaler to ``size``.
ModelUpscale = Callable[[Image.Image, Size], Image.Image]
# (progress, latent?) -> the first pass's images (PIL), or their latents (1 tensor each).
FirstPass = Callable[[ProgressFn, bool], list[Any]]
# (one image's second-pass job, progress, its start: a picture or latents) -> its image.
SecondPass = Callable[[RenderJob, ProgressFn, Any], list[Image.Image]]


def render_hires(
    job: RenderJob,
    first_pass: FirstPass,
    second_pass: SecondPass,
    model_upscale: ModelUpscale | None,
    progress: ProgressFn,
) -> list[Image.Image]:
    """The job's images at the hires fix's final size. Progress counts both passes as one:
    the first pass's steps, then each image's ``int(steps x strength)``."""
    spec = job.spec
    hires = spec.hires
    assert hires is not None
    second = replace(
        spec,
        mode=Mode.UPSCALE,  # drops ``hires``: the second pass is an upscale's
        width=hires.width,
        height=hires.height,
        count=1,
        strength=hires.strength,
        steps=hires.steps or spec.steps,
        upscaler=hires.upscaler,
    )
    per_image = denoising_steps(second.steps, hires.strength)
    total = spec.steps + per_image * spec.count
    latent = is_latent(hires.upscaler)
    first = first_pass(_spanned(progress, 0, total), latent)
    final = (hires.width, hires.height)
    cover = cover_size((spec.width, spec.height), final)
    images = []
    for i, (seed, image) in enumerate(zip(spec.seeds, first, strict=True)):
        if latent:
            start = upscale_latents(image.unsqueeze(0), hires.upscaler, cover, final)
        else:
            upscaled = resize_pixels(image, cover, hires.upscaler, model_upscale)
            start = crop_pixels(upscaled, cover, final)
        one = RenderJob(replace(second, seed=seed), job.model)
        report = _spanned(progress, spec.steps + per_image * i, total)
        images.extend(second_pass(one, report, start))
    return images


def _spanned(progress: ProgressFn, offset: int, total: int) -> ProgressFn:
    """Progress of one pass of several: steps counted on from ``offset``, out of ``total``."""

    def report(step: int, _pass_total: int, preview: bytes | None) -> None:
        progress(min(offset + step, total), total, preview)

    return report


def resize_pixels(
    image: Image.Image, size: Size, upscaler: str = "Lanczos", model: ModelUpscale | None = None
) -> Image.Image:
    """``image`` as RGB at ``size``: by ``model`` when given, else Pillow's ``upscaler``
    ("Nearest", or Lanczos for "Lanczos" and "None"): image-to-image's resize of its start."""
    if model is not None:
        return model(image, size)
    method = Image.Resampling.NEAREST if upscaler == "Nearest" else Image.Resampling.LANCZOS
    return image.convert("RGB").resize(size, method)


def crop_pixels(image: Image.Image, cover: Size, final: Size) -> Image.Image:
    if cover == final:
        return image
    return image.crop(crop_box(cover, final))


def upscale_latents(latents: Any, upscaler: str, cover: Size, final: Size) -> Any:
    """One image's first-pass latents ``(1, C, h, w)`` at ``cover`` (pixels), cropped to
    ``final``, as A1111's ``sample_hr_pass`` does for a latent upscaler."""
    mode, antialias = LATENT_MODES[upscaler]
    upscaled = torch.nn.functional.interpolate(
        latents, size=(cover[1] // 8, cover[0] // 8), mode=mode, antialias=antialias
    )
    if cover == final:
        return upscaled
    left, top, right, bottom = (edge // 8 for edge in crop_box(cover, final))
    return upscaled[:, :, top:bottom, left:right]
