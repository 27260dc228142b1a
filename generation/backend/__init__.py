"""The diffusion backend: the only package that imports torch, diffusers and transformers.

* ``renderer``: :class:`DiffusersBackend`, what the worker renders with (resident pipelines,
  txt2img / img2img / upscale calls, seeds, progress and previews);
* ``loading``: device and dtype choice, and loading a registered model into a pipeline;
* ``upscalers``: ESRGAN-family upscalers through spandrel;
* ``prompt_encoding``: prompts in AUTOMATIC1111's syntax as ``prompt_embeds`` (75-token
  chunks, emphasis weights, ``BREAK``; SD 1.x/2.x and SDXL's two encoders);
* ``previews``: step previews (latent projection, or a TAESD tiny decoder);
* ``fast_path``: the CUDA speed-ups (SDPA, channels-last, VAE slicing/tiling, torch.compile);
* ``residents``: which pipelines stay loaded (count and memory budget; pure);
* ``demo_model``: the built-in tiny random-weight model, built in code.

Nothing outside this package imports torch (an import-linter contract in ``scripts/test``).
"""

from generation.backend.renderer import DiffusersBackend
from generation.render import ModelSource, RenderJob

__all__ = ["DiffusersBackend", "ModelSource", "RenderJob"]
