"""Step previews of the first image of a pipeline call, as small PNGs (used by ``backend.py``).

Two ways to turn latents into pixels:

* ``projection_png``: a fixed linear latent -> RGB projection, no network at all (blurry, 1/8 size);
  SD3's and Flux.1's 16-channel latents too (Flux's packed 2x2 into tokens: ``unpack_tokens``).
* ``TinyDecoder``: a TAESD ``AutoencoderTiny`` (``generation.preview_decoder``), a near-final
  picture for a few milliseconds of GPU time. Loaded once, lazily, at the first preview; when it
  cannot be loaded or does not fit a pipeline the caller falls back to the projection.
"""

from __future__ import annotations

import io
import logging
import math
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from generation.model_sources import offline

log = logging.getLogger(__name__)

# Latent -> RGB projections (the widely used SD 1.x and SDXL "latent_rgb_factors").
# fmt: off
RGB_SD15 = ((0.3512, 0.2297, 0.3227), (0.3250, 0.4974, 0.2350),
            (-0.2829, 0.1762, 0.2721), (-0.2120, -0.2616, -0.6178))
RGB_SDXL = ((0.3920, 0.4054, 0.4549), (-0.2634, -0.0196, 0.0653),
            (0.0568, 0.1687, -0.0755), (-0.3112, -0.2359, -0.2076))
# SD3/SD3.5 and Flux.1 (16 channels, plus a bias): ComfyUI's, comfyanonymous/ComfyUI
# comfy/latent_formats.py (classes SD3 and Flux). They apply to scaled latents,
# (z - shift_factor) * scaling_factor, which is also what diffusers' SD3/Flux pipelines sample
# (they undo it only before the VAE decode), so they apply to the callback's latents as they are.
RGB_SD3 = ((-0.0922, -0.0175, 0.0749), (0.0311, 0.0633, 0.0954),
           (0.1994, 0.0927, 0.0458), (0.0856, 0.0339, 0.0902),
           (0.0587, 0.0272, -0.0496), (-0.0006, 0.1104, 0.0309),
           (0.0978, 0.0306, 0.0427), (-0.0042, 0.1038, 0.1358),
           (-0.0194, 0.0020, 0.0669), (-0.0488, 0.0130, -0.0268),
           (0.0922, 0.0988, 0.0951), (-0.0278, 0.0524, -0.0542),
           (0.0332, 0.0456, 0.0895), (-0.0069, -0.0030, -0.0810),
           (-0.0596, -0.0465, -0.0293), (-0.1448, -0.1463, -0.1189))
RGB_SD3_BIAS = (0.2394, 0.2135, 0.1925)
RGB_FLUX = ((-0.0346, 0.0244, 0.0681), (0.0034, 0.0210, 0.0687),
            (0.0275, -0.0668, -0.0433), (-0.0174, 0.0160, 0.0617),
            (0.0859, 0.0721, 0.0329), (0.0004, 0.0383, 0.0115),
            (0.0405, 0.0861, 0.0915), (-0.0236, -0.0185, -0.0259),
            (-0.0245, 0.0250, 0.1180), (0.1008, 0.0755, -0.0421),
            (-0.0515, 0.0201, 0.0011), (0.0428, -0.0012, -0.0036),
            (0.0817, 0.0765, 0.0749), (-0.1264, -0.0522, -0.1103),
            (-0.0280, -0.0881, -0.0499), (-0.1262, -0.0982, -0.0778))
RGB_FLUX_BIAS = (-0.0329, -0.0718, -0.0851)
# fmt: on
PREVIEW_SIDE = 128  # longest side of a preview, in pixels
# Pixels per side of one Flux token: the VAE's 8 times its 2x2 packing (diffusers floors the
# picture's size to this when it packs the latents).
FLUX_TOKEN_PIXELS = 16

Factors = tuple[tuple[float, float, float], ...]
Bias = tuple[float, float, float]


def rgb_projection(family: str, pipe: Any) -> tuple[Factors, Bias | None]:
    """The latent -> RGB projection for a pipeline of ``family`` (``generation.families``)."""
    if family == "sd3":
        return RGB_SD3, RGB_SD3_BIAS
    if family == "flux":
        return RGB_FLUX, RGB_FLUX_BIAS
    return (RGB_SDXL if is_sdxl(pipe) else RGB_SD15), None


def is_sdxl(pipe: Any) -> bool:
    return "XL" in type(pipe).__name__


def _png(image: Image.Image) -> bytes:
    scale = PREVIEW_SIDE / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    image = image.resize(size, Image.Resampling.BILINEAR)
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def unpack_tokens(tokens: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor | None:
    """One image's Flux tokens, (rows * cols, 4C), back to latents (C, 2 rows, 2 cols), as
    ``FluxPipeline._unpack_latents`` does. The token grid is not in the tensor: the pipeline
    makes it from the picture's ``size`` (width, height), one token per 16x16 pixels, rounded
    down; without a size only a square grid is unambiguous. None when nothing fits."""
    count, packed = tokens.shape
    if packed % 4:
        return None
    if size is not None:
        rows, cols = size[1] // FLUX_TOKEN_PIXELS, size[0] // FLUX_TOKEN_PIXELS
    else:
        rows = cols = math.isqrt(count)
    if rows * cols != count or count == 0:
        return None
    grid = tokens.reshape(rows, cols, packed // 4, 2, 2).permute(2, 0, 3, 1, 4)
    return grid.reshape(packed // 4, rows * 2, cols * 2)


def projection_png(
    latents: Any,
    factors: Factors,
    bias: Bias | None = None,
    size: tuple[int, int] | None = None,
) -> bytes | None:
    """A cheap preview of the first image: project its latents to RGB (no VAE), PNG-encode.
    ``latents``: (B, C, h, w), or Flux's packed (B, tokens, 4C) whose grid ``size`` (the
    picture's width, height) tells. None for latents these factors do not fit."""
    lat = latents[0].detach().to("cpu", torch.float32)
    if lat.ndim == 2 and lat.shape[1] == 4 * len(factors):  # Flux: 2x2 patches as tokens
        lat = unpack_tokens(lat, size)
        if lat is None:
            return None
    if lat.ndim != 3 or lat.shape[0] != len(factors):
        return None
    rgb = torch.einsum("chw,cr->hwr", lat, torch.tensor(factors, dtype=torch.float32))
    if bias is not None:
        rgb += torch.tensor(bias, dtype=torch.float32)
    pixels = ((rgb + 1.0) * 127.5).clamp(0, 255).round().to(torch.uint8).numpy()
    return _png(Image.fromarray(pixels, "RGB"))


class TinyDecoder:
    """A TAESD decoder for previews: ``source`` is a local folder or a Hub id of a diffusers
    ``AutoencoderTiny`` ("madebyollin/taesd" for SD 1.x/2.x, "madebyollin/taesdxl" for SDXL).

    SD and SDXL TAESDs share one config, so the family is read from the name: a decoder whose
    name contains "xl" serves SDXL pipelines only, any other decoder only the others."""

    def __init__(
        self, source: str, device: str, dtype: torch.dtype, allow_unsafe_weights: bool = False
    ) -> None:
        self.source = source
        self._device = device
        self._dtype = dtype
        self._allow_unsafe = allow_unsafe_weights
        self._vae: Any = None
        self._failed = False  # a load failure is reported once, then the projection is used

    def fits(self, pipe: Any) -> bool:
        """Whether this decoder can stand in for ``pipe``'s VAE (loading it on first use)."""
        vae = self._load()
        pipe_vae = getattr(pipe, "vae", None)
        if vae is None or pipe_vae is None:
            return False
        channels = getattr(pipe_vae.config, "latent_channels", None)
        made_for_xl = "xl" in Path(self.source).name.lower()
        return bool(vae.config.latent_channels == channels and made_for_xl == is_sdxl(pipe))

    def preview_png(self, latents: Any, pipe: Any) -> bytes | None:
        """Decode the first image's latents to a small PNG; None when the result does not have
        the pipeline's image size (a decoder that does not fit)."""
        vae = self._load()
        if vae is None:
            return None
        config = vae.config
        lat = latents[:1].detach().to(self._device, self._dtype)
        # What a pipeline does before its VAE decode (TAESD: scaling 1, shift 0).
        lat = lat / config.scaling_factor + getattr(config, "shift_factor", 0.0)
        with torch.no_grad():
            decoded = vae.decode(lat).sample
        factor = int(getattr(pipe, "vae_scale_factor", 8))
        if tuple(decoded.shape[-2:]) != (lat.shape[-2] * factor, lat.shape[-1] * factor):
            return None
        rgb = ((decoded[0].float() + 1.0) * 127.5).clamp(0, 255).round().to(torch.uint8)
        return _png(Image.fromarray(rgb.permute(1, 2, 0).cpu().numpy(), "RGB"))

    def _load(self) -> Any:
        if self._vae is not None or self._failed:
            return self._vae
        import diffusers

        autoencoder_tiny: Any = diffusers.AutoencoderTiny
        kwargs: dict[str, Any] = {"use_safetensors": None if self._allow_unsafe else True}
        if offline() or Path(self.source).is_dir():
            kwargs["local_files_only"] = True
        try:
            vae: Any = autoencoder_tiny.from_pretrained(self.source, **kwargs)
            self._vae = vae.to(self._device, self._dtype).eval()
        except Exception as e:
            self._failed = True
            log.warning(
                "generation.preview_decoder %r could not be loaded (%s: %s); previews use the "
                "latent projection instead",
                self.source,
                type(e).__name__,
                e,
            )
        return self._vae
