"""What differs per model family when the renderer loads and calls a pipeline.

    dtype = family_dtype(family, device, configured)     # Flux/SD3 in bf16 on CUDA under "auto"
    place(pipe, device, offload)                         # .to(device) or CPU offload
    kwargs = call_kwargs(family, negatives, width=..., height=...)

Kept out of ``renderer`` so that file stays about rendering; see ``generation.families`` for
what each family supports and why.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from PIL import Image

from generation.families import Family

log = logging.getLogger(__name__)
OFFLOAD_MODES = ("none", "model", "sequential")


_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def family_dtype(
    family: Family,
    device: str,
    configured: str,
    default: torch.dtype,
    registered: str | None = None,
) -> torch.dtype:
    """The dtype to load a ``family`` model in: on a GPU the one it was registered with
    (``easel models add --dtype``), else under ``generation.dtype = "auto"`` on CUDA bfloat16
    for Flux and SD3 (their releases are bf16; in float16 Flux's activations overflow to black
    images), else ``default`` (the configured dtype). The CPU always renders in float32
    (``default`` there): half precision on a CPU is slow or unsupported."""
    if device == "cpu":
        return default
    if registered in _DTYPES:
        return _DTYPES[registered]
    flow = family.name in {"flux", "sd3"}
    if device == "cuda" and configured == "auto" and flow and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return default


def place(pipe: Any, device: str, offload: str) -> None:
    """Put ``pipe`` on ``device``: wholly (``"none"``), or with diffusers' CPU offload —
    ``"model"`` moves each whole model (text encoders, transformer/UNet, VAE) to the GPU only
    while it runs; ``"sequential"`` streams layer by layer (least memory, much slower). Offload
    needs an accelerator: on the CPU it is ignored."""
    if device == "cpu":
        return
    if offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        pipe.to(device)


def call_kwargs(family: Family, negatives: list[str], single: bool, **sizes: Any) -> dict[str, Any]:
    """The family-specific keyword arguments of one pipeline call: the negative prompt where
    the family has one (Flux has none: its guidance is distilled), SDXL's size
    micro-conditioning (original and target size = the size asked for; diffusers' default too,
    said here so it stays so), and the size SD3's and Flux's image-to-image would not take from
    the image."""
    out: dict[str, Any] = {}
    image = sizes.get("image")
    flow = family.name in {"sd3", "flux"}
    if flow and "width" not in sizes and isinstance(image, Image.Image):
        # their image-to-image pipelines draw at the model's default size (1024x1024) unless
        # told the size: a 768x512 start would come back square
        out.update(width=image.width, height=image.height)
    if family.negative_prompt:
        out["negative_prompt"] = negatives[0] if single else negatives
    if family.size_conditioning and "width" in sizes and "height" in sizes:
        size = (sizes["height"], sizes["width"])
        out.update(original_size=size, target_size=size)
    return out
