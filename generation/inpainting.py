"""Inpainting's policy (pure, no torch): the checks on a mask and the options, and the child
job's spec. The backend's half is ``generation.backend.inpainting``.

Refusals, each before anything is stored or queued:

* not an image / a bomb / too many bytes: :func:`generation.uploads.load_upload`'s;
* wrong size: the mask must be the image's size; a mask of the same shape (aspect ratio within
  1%) at another size is resized to it (LANCZOS; A1111 resizes whatever it gets), another shape
  is refused with the size it must be;
* all black (after ``mask_invert``): nothing to repaint;
* all white (after ``mask_invert``): everything would be repainted: that is Vary (or
  image-to-image), which say so honestly, so it is refused with that advice.

A pixel counts as masked from grey level 128 (diffusers binarises the mask at 0.5).
"""

from __future__ import annotations

import io
import math
from dataclasses import replace

from PIL import Image, ImageOps

from generation.errors import ImageRejected, InvalidRequest
from generation.requests import InpaintRequest
from generation.spec import Action, GenerationSpec, Mode
from generation.uploads import DEFAULT_MAX_BYTES, load_upload
from storage.records import ImageRecord, JobRecord

DEFAULT_INPAINT_STRENGTH = 0.75
MAX_MASK_BLUR = 64
MAX_PADDING = 256
FILLS = {0: "fill", 1: "original", 2: "latent noise", 3: "latent nothing"}
LINEAGE = Action.VARY  # an inpaint of a result is its "Vary (Region)"
_MASKED = 128


def check_options(request: InpaintRequest) -> float:
    """Refuse out-of-range options; the strength to use."""
    strength = DEFAULT_INPAINT_STRENGTH if request.strength is None else request.strength
    if not (math.isfinite(strength) and 0.0 < strength <= 1.0):
        raise InvalidRequest("Strength must be greater than 0 and at most 1.")
    if not 0 <= request.mask_blur <= MAX_MASK_BLUR:
        raise InvalidRequest(f"Mask blur must be 0-{MAX_MASK_BLUR} pixels.")
    if request.inpainting_fill not in FILLS:
        choices = ", ".join(f"{k} ({v})" for k, v in FILLS.items())
        raise InvalidRequest(f"Inpainting fill must be one of {choices}.")
    if not 0 <= request.inpaint_full_res_padding <= MAX_PADDING:
        raise InvalidRequest(f"Only-masked padding must be 0-{MAX_PADDING} pixels.")
    return strength


def clean_mask(
    data: bytes, size: tuple[int, int], *, invert: bool, max_bytes: int = DEFAULT_MAX_BYTES
) -> bytes:
    """The mask as Easel stores it: a grey-scale PNG of ``size`` (as given: ``invert`` is
    applied when rendering), or :class:`ImageRejected` saying what is wrong. Blocking: call it
    in a thread."""
    try:
        image = load_upload(data, max_bytes=max_bytes).convert("L")
    except ImageRejected as error:
        raise ImageRejected(f"The mask was refused: {error}") from None
    width, height = size
    if image.size != size:
        if abs(image.width / image.height - width / height) > 0.01 * (width / height):
            raise ImageRejected(
                f"The mask is {image.width}x{image.height}; it must be {width}x{height}, the "
                "image's size (or the same shape, which is resized)."
            )
        image = image.resize(size, Image.Resampling.LANCZOS)
    effective = ImageOps.invert(image) if invert else image
    extrema = effective.getextrema()
    assert isinstance(extrema[0], int) and isinstance(extrema[1], int)  # one band: (min, max)
    low, high = extrema[0], extrema[1]
    if high < _MASKED:
        raise ImageRejected(
            "The mask is all black: nothing to repaint. Paint white where the picture should "
            "change."
        )
    if low >= _MASKED:
        raise ImageRejected(
            "The mask is all white: the whole picture would be repainted. Use Vary (or "
            "image-to-image) for that, or leave black what should stay."
        )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def upload_spec(spec: GenerationSpec, options: InpaintRequest, mask_sha: str) -> GenerationSpec:
    """An image-to-image spec of an upload (``DrawRequest.init_image``) made an inpaint."""
    return replace(
        spec,
        mode=Mode.INPAINT,
        mask_image=mask_sha,
        mask_blur=options.mask_blur,
        inpainting_fill=options.inpainting_fill,
        inpaint_full_res=options.inpaint_full_res,
        inpaint_full_res_padding=options.inpaint_full_res_padding,
        mask_invert=options.mask_invert,
    )


def inpaint_spec(
    parent: JobRecord,
    image: ImageRecord,
    request: InpaintRequest,
    *,
    prompt: str,
    negative_prompt: str,
    strength: float,
    mask_sha: str,
    seed: int,
) -> GenerationSpec:
    """The child job: image ``image`` of ``parent`` repainted where the mask is white."""
    return replace(
        parent.spec,
        mode=Mode.INPAINT,
        prompt=prompt,
        negative_prompt=negative_prompt,
        width=image.width,
        height=image.height,
        seed=seed,
        count=1,
        strength=strength,
        init_image=image.sha256,
        upscaler=None,
        mask_image=mask_sha,
        mask_blur=request.mask_blur,
        inpainting_fill=request.inpainting_fill,
        inpaint_full_res=request.inpaint_full_res,
        inpaint_full_res_padding=request.inpaint_full_res_padding,
        mask_invert=request.mask_invert,
        outpaint=None,
    )
