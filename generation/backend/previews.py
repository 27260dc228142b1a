"""Step previews of the first image of a pipeline call, as small PNGs (used by ``backend.py``).

Two ways to turn latents into pixels:

* ``projection_png``: a fixed linear latent -> RGB projection, no network at all (blurry, 1/8 size).
* ``TinyDecoder``: a TAESD ``AutoencoderTiny`` (``generation.preview_decoder``), a near-final
  picture for a few milliseconds of GPU time. Loaded once, lazily, at the first preview; when it
  cannot be loaded or does not fit a pipeline the caller falls back to the projection.
"""

from __future__ import annotations

import io
import logging
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
# fmt: on
PREVIEW_SIDE = 128  # longest side of a preview, in pixels


def is_sdxl(pipe: Any) -> bool:
    return "XL" in type(pipe).__name__


def _png(image: Image.Image) -> bytes:
    scale = PREVIEW_SIDE / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    image = image.resize(size, Image.Resampling.BILINEAR)
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def projection_png(latents: Any, factors: tuple[tuple[float, float, float], ...]) -> bytes | None:
    """A cheap preview of the first image: project its latents to RGB (no VAE), PNG-encode."""
    lat = latents[0].detach().to("cpu", torch.float32)
    if lat.ndim != 3 or lat.shape[0] != len(factors):
        return None
    rgb = torch.einsum("chw,cr->hwr", lat, torch.tensor(factors, dtype=torch.float32))
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
