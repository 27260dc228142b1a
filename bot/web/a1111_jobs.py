"""What A1111's masked ``img2img`` and hires ``txt2img`` fields become in Easel, and what its
``info`` says about them (A1111-API.md §4.1, §4.2, §5).

* ``mask`` with its options becomes ``DrawRequest.mask`` (an inpaint job of the upload):
  ``mask_blur`` sets both ``mask_blur_x`` and ``mask_blur_y`` (A1111's setter); without it the
  two must be equal, because Easel blurs a mask evenly. With ``inpaint_full_res`` ("only
  masked") A1111 answers the picture's own size, so the job is the picture's size (rounded down
  to a multiple of 8, within the limits); otherwise ``width``/``height`` as for any img2img.
* ``enable_hr`` becomes ``DrawRequest.hires``; ``hr_upscaler`` null is A1111's default
  "Latent". A second checkpoint, sampler, scheduler or prompt for the second pass is refused:
  Easel's second pass is the Upscale action's, with the job's own.
* ``is_using_inpainting_conditioning``: whether the job's model has a 9-channel (inpainting)
  UNet, read from its files; for a Hub model not read here, whether its id says "inpaint".
"""

from __future__ import annotations

import contextlib
import io
import json
import struct
from pathlib import Path
from typing import Any

from PIL import Image

from bot.web.a1111_models import Img2ImgRequest, Txt2ImgRequest
from bot.web.common import decode_image
from generation.demo_info import DEMO_INPAINT_SOURCE
from generation.errors import InvalidRequest
from generation.rendering import denoising_strength, extra_generation_params
from generation.requests import HiresRequest, InpaintRequest
from storage.records import JobRecord, ModelRecord

A1111_DEFAULT_HR_UPSCALER = "Latent"  # the option latent_upscale_default_mode
_SAME = {"", "Use same sampler", "Use same checkpoint", "Use same scheduler"}
# A UNet's first convolution in an original (LDM) checkpoint: its input channels are dim 1.
_FIRST_CONV = "model.diffusion_model.input_blocks.0.0.weight"


def inpaint_of(req: Img2ImgRequest, max_bytes: int) -> InpaintRequest | None:
    """The inpaint of an img2img request with a ``mask``, else None."""
    if not req.mask:
        return None
    if req.mask_blur is not None:
        blur = req.mask_blur
    else:
        blur_x = 4 if req.mask_blur_x is None else req.mask_blur_x
        blur_y = 4 if req.mask_blur_y is None else req.mask_blur_y
        if blur_x != blur_y:
            raise InvalidRequest(
                f"mask_blur_x ({blur_x}) and mask_blur_y ({blur_y}) differ: Easel blurs masks "
                "evenly; send mask_blur, or equal values."
            )
        blur = blur_x
    return InpaintRequest(
        mask=decode_image(req.mask, max_bytes, field="mask"),
        mask_blur=blur,
        inpainting_fill=0 if req.inpainting_fill is None else req.inpainting_fill,
        inpaint_full_res=bool(req.inpaint_full_res),
        inpaint_full_res_padding=req.inpaint_full_res_padding or 0,
        mask_invert=bool(req.inpainting_mask_invert),
    )


def inpaint_size(init: bytes) -> tuple[int, int] | None:
    """The picture's size (A1111's answer for "only masked"); None when it is not an image
    (the Service then refuses it, saying why)."""
    with (
        contextlib.suppress(OSError, ValueError, Image.DecompressionBombError),
        Image.open(io.BytesIO(init)) as image,
    ):
        return image.size
    return None


def hires_of(req: Txt2ImgRequest) -> HiresRequest | None:
    """The hires fix of a txt2img request with ``enable_hr``, else None."""
    if not req.enable_hr:
        return None
    for field, value in (
        ("hr_checkpoint_name", req.hr_checkpoint_name),
        ("hr_sampler_name", req.hr_sampler_name),
        ("hr_scheduler", req.hr_scheduler),
    ):
        if value is not None and value.strip() not in _SAME:
            raise InvalidRequest(
                f"{field}: Easel's hires second pass uses the job's own; leave it out."
            )
    for field, value, main in (
        ("hr_prompt", req.hr_prompt, req.prompt),
        ("hr_negative_prompt", req.hr_negative_prompt, req.negative_prompt),
    ):
        if value and value != main:
            raise InvalidRequest(
                f"{field}: Easel's hires second pass uses the job's prompts; leave it empty."
            )
    return HiresRequest(
        scale=2.0 if req.hr_scale is None else req.hr_scale,
        resize_x=req.hr_resize_x or 0,
        resize_y=req.hr_resize_y or 0,
        upscaler=req.hr_upscaler or A1111_DEFAULT_HR_UPSCALER,
        steps=req.hr_second_pass_steps or 0,
        strength=req.denoising_strength,
    )


def info_extras(job: JobRecord, schedule: str) -> dict[str, Any]:
    """``info.extra_generation_params``, in A1111's order: ``Denoising strength`` (img2img's,
    or the hires pass's: both ``init``s set it first), the keys the PNG carries beyond the
    common ones, then ``Schedule type`` (set while sampling)."""
    extra: dict[str, Any] = {}
    strength = denoising_strength(job.spec)
    if strength is not None:
        extra["Denoising strength"] = strength
    extra.update((k, v) for k, v in extra_generation_params(job.spec).items() if v is not None)
    extra["Schedule type"] = schedule
    return extra


def inpainting_conditioning(model: ModelRecord | None, data_dir: Path) -> bool:
    """Whether ``model`` has a 9-channel inpainting UNet (A1111's
    ``is_using_inpainting_conditioning``)."""
    if model is None:
        return False
    if model.kind == "builtin":
        return model.source == DEMO_INPAINT_SOURCE
    path = Path(model.source)
    if model.kind == "folder":
        return _folder_channels(path) == 9
    if model.kind == "single_file" and path.suffix.lower() == ".safetensors":
        return _safetensors_channels(path) == 9
    return "inpaint" in model.source.lower()


def _folder_channels(folder: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        config = json.loads((folder / "unet" / "config.json").read_text(encoding="utf-8"))
        return int(config.get("in_channels", 4))
    return None


def _safetensors_channels(file: Path) -> int | None:
    """The first convolution's input channels, from the file's JSON header (no weights read)."""
    with contextlib.suppress(OSError, ValueError, KeyError, IndexError, struct.error):
        with file.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(min(length, 100_000_000)))
        return int(header[_FIRST_CONV]["shape"][1])
    return None
