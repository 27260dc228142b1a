"""Inpainting as AUTOMATIC1111 does it, on diffusers' inpainting pipelines.

One job, step by step (A1111's ``StableDiffusionProcessingImg2Img.init`` and ``apply_overlay``):

1. the mask (white = repaint) is made grey-scale, inverted when ``mask_invert``, and blurred by
   ``mask_blur`` px (a PIL Gaussian blur, as diffusers' ``VaeImageProcessor.blur``);
2. the masked area of the starting image is pre-filled by ``inpainting_fill``:
   ``1`` original: nothing to do (diffusers' own behaviour: the picture is noised to the
   strength and re-blended with the original outside the mask at every step), faithful;
   ``0`` fill: A1111's ``masking.fill`` (the surrounding colours, blurred in), ported here,
   faithful (A1111 also fills in pixels, before encoding);
   ``2`` latent noise: *approximate*: A1111 replaces the masked latents by random latents;
   diffusers takes no starting latents for an inpaint, so the masked pixels are replaced by
   noise seeded from the image's seed (the VAE encodes that to noise-like latents);
   ``3`` latent nothing: *approximate*: A1111 zeroes the masked latents; here the masked
   pixels become mid grey, which the VAE encodes to latents near zero;
3. diffusers' ``AutoPipelineForInpainting`` (built from the resident pipeline's components)
   renders at the job's size; "only masked" (``inpaint_full_res``) is diffusers'
   ``padding_mask_crop``, a port of A1111's crop: the blurred mask's box plus the padding,
   grown to the job's aspect ratio, rendered at the job's size and pasted back;
4. the result is laid under the original through the blurred mask (A1111's ``apply_overlay``,
   which diffusers has too): outside the mask and its blur band the pixels are the original's.
   Like A1111, the whole-picture mode doubles the blurred mask first (so the band is half as
   wide on the inside), "only masked" uses the blurred mask as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from diffusers.image_processor import VaeImageProcessor
from PIL import Image, ImageFilter, ImageOps

from generation.spec import GenerationSpec

FILL, ORIGINAL, LATENT_NOISE, LATENT_NOTHING = 0, 1, 2, 3


@dataclass(frozen=True)
class InpaintInputs:
    """What one image's pipeline call gets (``image``, ``mask``: the job's size), and what its
    result is laid under."""

    image: Image.Image  # the starting picture, pre-filled (and cropped for "only masked")
    mask: Image.Image  # the blurred mask the pipeline gets (cropped likewise)
    overlay_mask: Image.Image  # where the original shows through: see overlay_mask
    original: Image.Image  # the starting picture as it was (RGB, the job's size)
    crop: tuple[int, int, int, int] | None  # "only masked": the box rendered, else None


def prepare_mask(mask: Image.Image, spec: GenerationSpec) -> Image.Image:
    """Steps 1: grey-scale, the job's size, inverted if asked, blurred."""
    grey = mask.convert("L")
    if grey.size != (spec.width, spec.height):
        grey = grey.resize((spec.width, spec.height), Image.Resampling.LANCZOS)
    if spec.mask_invert:
        grey = ImageOps.invert(grey)
    if spec.mask_blur > 0:
        grey = VaeImageProcessor.blur(grey, spec.mask_blur)
    return grey


def a1111_fill(image: Image.Image, mask: Image.Image) -> Image.Image:
    """A1111's ``modules.masking.fill``: the masked area painted with ever less blurred copies
    of what surrounds it."""
    result = Image.new("RGBA", image.size)
    masked = Image.new("RGBa", image.size)
    masked.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask.convert("L")))
    masked = masked.convert("RGBa")
    for radius, repeats in ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1)):
        blurred = masked.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(repeats):
            result.alpha_composite(blurred)
    return result.convert("RGB")


def prefill(image: Image.Image, mask: Image.Image, fill: int, seed: int) -> Image.Image:
    """Step 2 for one image (``seed`` makes ``LATENT_NOISE`` repeatable)."""
    if fill == ORIGINAL:
        return image
    if fill == FILL:
        return a1111_fill(image, mask)
    if fill == LATENT_NOISE:
        rng = np.random.default_rng(seed)
        noise = rng.integers(0, 256, size=(image.height, image.width, 3), dtype=np.uint8)
        replacement = Image.fromarray(noise, "RGB")
    elif fill == LATENT_NOTHING:
        replacement = Image.new("RGB", image.size, (128, 128, 128))
    else:
        raise ValueError(f"inpainting_fill must be 0, 1, 2 or 3, not {fill}")
    filled = image.copy()
    filled.paste(replacement, mask=mask.point(lambda v: 255 if v > 0 else 0))
    return filled


def overlay_mask(blurred: Image.Image, full_res: bool) -> Image.Image:
    """A1111's ``mask_for_overlay``: the blurred mask, doubled (clipped) outside "only masked"."""
    if full_res:
        return blurred
    doubled = np.clip(np.asarray(blurred, dtype=np.float32) * 2, 0, 255).astype(np.uint8)
    return Image.fromarray(doubled, "L")


def inpaint_inputs(
    pipe: Any, spec: GenerationSpec, init: Image.Image, mask: Image.Image, seed: int
) -> InpaintInputs:
    """Steps 1-2 (and the crop of step 3) for the image with ``seed``; ``init`` is at the job's
    size. "Only masked" crops and resizes here exactly as diffusers' ``padding_mask_crop`` does
    inside the pipeline, so that step 4 can lay the result under the true original (diffusers
    lays it under the image it was given, which the fill changed)."""
    blurred = prepare_mask(mask, spec)
    image = prefill(init, blurred, spec.inpainting_fill, seed)
    crop = None
    if spec.inpaint_full_res:
        w, h = spec.width, spec.height
        found = pipe.mask_processor.get_crop_region(
            blurred, w, h, pad=spec.inpaint_full_res_padding
        )
        crop = (int(found[0]), int(found[1]), int(found[2]), int(found[3]))
        image = pipe.image_processor.resize(image.crop(crop), h, w, resize_mode="fill")
        cropped_mask = pipe.mask_processor.resize(blurred.crop(crop), h, w, resize_mode="fill")
    return InpaintInputs(
        image=image,
        mask=cropped_mask if crop is not None else blurred,
        overlay_mask=overlay_mask(blurred, spec.inpaint_full_res),
        original=init,
        crop=crop,
    )


def paste_back(pipe: Any, inputs: InpaintInputs, rendered: Image.Image) -> Image.Image:
    """Step 4: ``rendered`` laid under the original through the overlay mask (diffusers'
    ``VaeImageProcessor.apply_overlay`` is A1111's, crop included)."""
    result: Image.Image = pipe.image_processor.apply_overlay(
        inputs.overlay_mask, inputs.original, rendered.convert("RGB"), inputs.crop
    )
    return result
