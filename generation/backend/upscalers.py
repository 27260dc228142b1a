"""ESRGAN-family upscalers (4x-UltraSharp and friends), loaded with spandrel.

spandrel is optional (``pip install 'easel[upscalers]'``); without it a registered upscaler
fails its job with a message saying what to install. One upscaler stays resident at a time.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from generation.errors import InvalidRequest, ModelError
from generation.render import ModelSource, ProgressFn, RenderJob


class Upscalers:
    def __init__(self, device: str) -> None:
        self.device = device
        self._loaded: OrderedDict[tuple[str, str | None], Any] = OrderedDict()

    def render(self, job: RenderJob, progress: ProgressFn) -> list[Image.Image]:
        """The Upscale action with ``job.upscaler``: ``job.init_image`` at the spec's size."""
        spec = job.spec
        upscaler = job.upscaler
        assert upscaler is not None
        if job.init_image is None:
            raise InvalidRequest("an upscale job needs an input image")
        image = self.upscale(job.init_image, upscaler, (spec.width, spec.height))
        progress(1, 1, None)
        return [image.copy() for _ in range(spec.count)]

    def upscale(
        self, image: Image.Image, upscaler: ModelSource, size: tuple[int, int]
    ) -> Image.Image:
        """``image`` through the upscaler's model, then Lanczos to ``size`` (the Upscale
        action's step, and the hires fix's with a registered upscaler)."""
        model = self._load(upscaler)
        source = image.convert("RGB")
        tensor = torch.from_numpy(np.asarray(source, dtype=np.float32) / 255.0)
        tensor = tensor.permute(2, 0, 1).unsqueeze(0).to(self.device)
        with torch.inference_mode():
            result = model(tensor)
        pixels = (result[0].clamp(0, 1).permute(1, 2, 0).float().cpu().numpy() * 255.0).round()
        upscaled = Image.fromarray(pixels.astype(np.uint8), "RGB")
        if upscaled.size != size:
            upscaled = upscaled.resize(size, Image.Resampling.LANCZOS)
        return upscaled

    def _load(self, upscaler: ModelSource) -> Any:
        key = (upscaler.name, upscaler.revision)
        if key in self._loaded:
            self._loaded.move_to_end(key)
            return self._loaded[key]
        try:
            import spandrel
        except ImportError as e:
            raise ModelError(
                f"upscaler {upscaler.name!r} needs the optional spandrel package: "
                "pip install 'easel[upscalers]'"
            ) from e
        path = Path(upscaler.source)
        if not path.is_file():
            raise ModelError(f"upscaler {upscaler.name!r}: file {upscaler.source!r} is gone")
        try:
            descriptor = spandrel.ModelLoader().load_from_file(str(path))
        except Exception as e:
            raise ModelError(
                f"upscaler {upscaler.name!r} could not be loaded: {type(e).__name__}: {e}"
            ) from e
        if not isinstance(descriptor, spandrel.ImageModelDescriptor):
            raise ModelError(f"upscaler {upscaler.name!r} is not an image-to-image model")
        descriptor.to(self.device).eval()
        self._loaded.clear()  # keep one resident
        self._loaded[key] = descriptor
        return descriptor

    def clear(self) -> None:
        self._loaded.clear()
