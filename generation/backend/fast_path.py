"""GPU speed-ups for a loaded diffusers pipeline, one small function each (used by ``backend.py``).

* ``use_sdpa``: PyTorch's fused scaled-dot-product attention in the UNet and VAE.
* ``fit_vae``: VAE slicing for batches and tiling for large images (CUDA: lower peak memory).
* ``compile_unet`` + ``batch_bucket``: an optional ``torch.compile``d UNet that sees few shapes.
* ``pipeline_bytes``: what a resident pipeline costs in memory, for the resident-model budget.

Like ``backend.py`` this module imports torch; nothing outside ``generation/`` imports it.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import torch

log = logging.getLogger(__name__)

# Above this many pixels the VAE decodes in tiles on CUDA (a 2048x2048 decode needs GiBs at once).
LARGE_IMAGE_PIXELS = 1024 * 1024
# Compiled graphs kept per function before dynamo falls back to eager (torch's default is 8): one
# per (batch bucket, image size, guidance on/off), and a server sees a few sizes and buckets.
RECOMPILE_LIMIT = 64


def batch_bucket(n: int, max_batch: int) -> int:
    """The batch size a pipeline call of ``n`` images is padded to when the UNet is compiled.

    The next power of two (1, 2, 4, 8, ...), capped at ``max_batch``; ``n`` itself when it is
    already ``max_batch`` or more. A UNet compiled with ``dynamic=False`` is specialised on its
    input shapes and every new shape costs a recompile (tens of seconds), so a few buckets beat one
    graph per distinct count; padding wastes at most half of one call's work.
    """
    if n < 1:
        raise ValueError(f"a pipeline call needs at least one image, not {n}")
    if n >= max_batch:
        return n
    bucket = 1
    while bucket < n:
        bucket *= 2
    return min(bucket, max_batch)


def use_sdpa(pipe: Any) -> int:
    """Replace diffusers' plain attention processor with the SDPA one (``AttnProcessor2_0``,
    flash / memory-efficient kernels on CUDA) in the pipeline's UNet and VAE. Other processors
    (LoRA, IP-Adapter, added-KV attention) are left alone. Returns how many were replaced."""
    try:
        from diffusers.models import attention_processor as processors_module
    except ImportError:  # pragma: no cover - a diffusers without these classes
        return 0
    if not hasattr(torch.nn.functional, "scaled_dot_product_attention"):  # pragma: no cover
        return 0
    plain_class: Any = getattr(processors_module, "AttnProcessor", None)
    sdpa_class: Any = getattr(processors_module, "AttnProcessor2_0", None)
    if plain_class is None or sdpa_class is None:  # pragma: no cover
        return 0
    replaced = 0
    for name in ("unet", "vae"):
        module: Any = getattr(pipe, name, None)
        if not (hasattr(module, "attn_processors") and hasattr(module, "set_attn_processor")):
            continue
        processors: dict[str, Any] = dict(module.attn_processors)
        plain = [key for key, proc in processors.items() if type(proc) is plain_class]
        if not plain:
            continue
        for key in plain:
            processors[key] = sdpa_class()
        module.set_attn_processor(processors)
        replaced += len(plain)
    return replaced


def fit_vae(vae: Any, images: int, width: int, height: int) -> None:
    """Before a CUDA pipeline call: decode a batch one image at a time (slicing) and a large image
    in tiles (tiling). Both lower the decode's peak memory, the usual out-of-memory spot at the end
    of a job; tiling slightly changes pixels at tile seams, so it stays off for ordinary sizes."""
    if vae is None:
        return
    _switch(vae, "slicing", images > 1)
    _switch(vae, "tiling", width * height > LARGE_IMAGE_PIXELS)


def _switch(vae: Any, feature: str, on: bool) -> None:
    method = getattr(vae, f"{'enable' if on else 'disable'}_{feature}", None)
    if callable(method):
        method()


def compile_unet(pipe: Any) -> bool:
    """``torch.compile`` the pipeline's UNet in place (``nn.Module.compile``: the module keeps its
    class, so diffusers' checks and ``from_pipe`` still work). ``dynamic=False`` gives the fastest
    kernels; the backend pads batches to ``batch_bucket`` sizes so few shapes ever reach it.
    Compilation itself happens lazily, on the first call with each new shape."""
    unet = getattr(pipe, "unet", None)
    if unet is None or not hasattr(unet, "compile"):
        return False
    dynamo: Any = torch._dynamo.config
    # torch >= 2.7 calls it recompile_limit (cache_size_limit is a deprecated alias).
    name = "recompile_limit" if hasattr(dynamo, "recompile_limit") else "cache_size_limit"
    if hasattr(dynamo, name):
        setattr(dynamo, name, max(int(getattr(dynamo, name)), RECOMPILE_LIMIT))
    unet.compile(dynamic=False)
    return True


def pipeline_bytes(pipe: Any) -> int:
    """Bytes held by the pipeline's parameters and buffers (tensors shared between components,
    such as tied weights, counted once)."""
    components: dict[str, Any] = getattr(pipe, "components", None) or {}
    seen: set[int] = set()
    total = 0
    for component in components.values():
        if not isinstance(component, torch.nn.Module):
            continue
        for tensor in itertools.chain(component.parameters(), component.buffers()):
            if id(tensor) not in seen:
                seen.add(id(tensor))
                total += tensor.numel() * tensor.element_size()
    return total
