"""The hires fix's upscale step, between the first pass and the second (torch and Pillow).

``DiffusersBackend._render_hires`` renders the first pass, upscales each image here, then runs
the Upscale action's own second pass (``_second_pass``) on it:

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
from typing import Any

import torch
from PIL import Image

from generation.hires import LATENT_MODES, crop_box

Size = tuple[int, int]
# (image, size) -> the image upscaled by a registered upscaler to ``size``.
ModelUpscale = Callable[[Image.Image, Size], Image.Image]


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
