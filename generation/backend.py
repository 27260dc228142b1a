"""The diffusion backend: the only module (with ``demo_model.py``) that imports torch/diffusers.

``DiffusersBackend`` keeps the most recently used pipelines resident (LRU keyed by model name +
revision), maps A1111 sampler names to diffusers schedulers, and renders text-to-image,
image-to-image and upscale jobs with one CPU ``torch.Generator`` per image, so image ``i`` of a job
equals the single-image job with seed ``seed + i`` and a single image equals what plain diffusers
draws with the same settings. Models are classified and identified at registration time, without
torch, by ``generation.model_sources``; a known Hub commit is passed to ``from_pretrained`` so
loads are pinned.

Threading: every public method takes one lock; the worker calls them from its single thread.
"""

from __future__ import annotations

import gc
import io
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import diffusers as _diffusers
import numpy as np
import torch
import transformers.utils.logging as _transformers_logging
from PIL import Image

from generation.demo_model import ensure_demo_model
from generation.errors import (
    ConfigError,
    EaselError,
    GenerationFailed,
    InvalidRequest,
    JobInterrupted,
    ModelError,
    OutOfMemory,
)
from generation.model_sources import UNSAFE_HINT, hub_error, is_sdxl_file, offline
from generation.render import ModelSource, ProgressFn, RenderJob
from generation.samplers import scheduler_for
from generation.spec import Mode

# diffusers and transformers are only partly typed; everything from them is Any at this edge.
_d: Any = _diffusers
_transformers_log: Any = _transformers_logging
# Their tqdm bars would print to stderr on every model load; the worker reports progress itself.
_d.utils.logging.disable_progress_bar()
_transformers_log.disable_progress_bar()
try:  # newer diffusers renamed ``torch_dtype`` to ``dtype`` (the old name warns)
    from diffusers.utils.deprecation_utils import _TORCH_DTYPE_DEPRECATION_MESSAGE  # noqa: F401

    _DTYPE_KW = "dtype"
except ImportError:  # pragma: no cover - older diffusers
    _DTYPE_KW = "torch_dtype"

# Latent -> RGB projections (the widely used SD 1.x and SDXL "latent_rgb_factors").
# fmt: off
_RGB_SD15 = ((0.3512, 0.2297, 0.3227), (0.3250, 0.4974, 0.2350),
             (-0.2829, 0.1762, 0.2721), (-0.2120, -0.2616, -0.6178))
_RGB_SDXL = ((0.3920, 0.4054, 0.4549), (-0.2634, -0.0196, 0.0653),
             (0.0568, 0.1687, -0.0755), (-0.3112, -0.2359, -0.2076))
# fmt: on
_PREVIEW_SIDE = 128
PREVIEW_INTERVAL_S = 0.25
_DEFAULT_STRENGTH = {Mode.IMG2IMG: 0.75, Mode.UPSCALE: 0.35}


@dataclass
class _Resident:
    pipe: Any
    scheduler_config: Any  # the pipeline's own scheduler config, as loaded
    rgb_factors: tuple[tuple[float, float, float], ...]
    img2img: Any = field(default=None)


def _preview_png(latents: Any, factors: tuple[tuple[float, float, float], ...]) -> bytes | None:
    """A cheap preview of the first image: project its latents to RGB (no VAE), PNG-encode."""
    lat = latents[0].detach().to("cpu", torch.float32)
    if lat.ndim != 3 or lat.shape[0] != len(factors):
        return None
    rgb = torch.einsum("chw,cr->hwr", lat, torch.tensor(factors, dtype=torch.float32))
    pixels = ((rgb + 1.0) * 127.5).clamp(0, 255).round().to(torch.uint8).numpy()
    image = Image.fromarray(pixels, "RGB")
    scale = _PREVIEW_SIDE / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    image = image.resize(size, Image.Resampling.BILINEAR)
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def _is_oom(error: BaseException) -> bool:
    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(
        torch.cuda, "OutOfMemoryError", None
    )
    if isinstance(error, MemoryError) or (oom_type is not None and isinstance(error, oom_type)):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


class DiffusersBackend:
    """Renders jobs with diffusers on one device. Not a protocol: the worker's ``Backend`` is."""

    def __init__(
        self,
        *,
        data_dir: Path,
        device: str = "auto",
        dtype: str = "auto",
        resident_models: int = 2,
        previews: bool = True,
        allow_unsafe_weights: bool = False,
        cpu_threads: int = 0,
    ) -> None:
        if cpu_threads > 0:  # torch's own default is every core, which starves a shared box
            torch.set_num_threads(cpu_threads)
        self._data_dir = Path(data_dir)
        self._device = self._pick_device(device)
        self._dtype = self._pick_dtype(dtype)
        self._resident_max = max(1, resident_models)
        self._previews = previews
        self._allow_unsafe = allow_unsafe_weights
        self._lock = threading.RLock()
        self._pipes: OrderedDict[tuple[str, str | None], _Resident] = OrderedDict()
        self._upscalers: OrderedDict[tuple[str, str | None], Any] = OrderedDict()
        if self._device == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

    # ----------------------------------------------------------------- device & dtype

    @staticmethod
    def _pick_device(device: str) -> str:
        mps = getattr(torch.backends, "mps", None)
        mps_ok = bool(mps is not None and mps.is_available())
        if device == "auto":
            return "cuda" if torch.cuda.is_available() else "mps" if mps_ok else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise ConfigError(
                "generation.device = 'cuda' but no CUDA GPU is usable here (is the CUDA build of "
                "torch installed?); use 'auto' or 'cpu'"
            )
        if device == "mps" and not mps_ok:
            raise ConfigError("generation.device = 'mps' but MPS is not available; use 'auto'")
        if device not in {"cuda", "mps", "cpu"}:
            raise ConfigError(f"generation.device must be auto, cuda, mps or cpu, not {device!r}")
        return device

    def _pick_dtype(self, dtype: str) -> torch.dtype:
        if self._device == "cpu":
            return torch.float32  # half precision on CPU is slow or unsupported
        table = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
        if dtype == "auto":
            return torch.float16 if self._device == "cuda" else torch.float32
        if dtype not in table:
            raise ConfigError(
                f"generation.dtype must be auto, float16, bfloat16 or float32, not {dtype!r}"
            )
        return table[dtype]

    @property
    def device_name(self) -> str:
        return self._device

    # ----------------------------------------------------------------- loading

    def preload(self, model: ModelSource) -> None:
        with self._lock:
            try:
                self._resident(model)
            except EaselError:
                raise
            except BaseException as e:
                if _is_oom(e):
                    self._free_cuda()
                    raise OutOfMemory(
                        f"Out of memory on {self._device} while loading model {model.name!r}"
                    ) from e
                raise

    def _resident(self, model: ModelSource) -> _Resident:
        key = (model.name, model.revision)
        hit = self._pipes.get(key)
        if hit is not None:
            self._pipes.move_to_end(key)
            return hit
        while len(self._pipes) >= self._resident_max:
            self._pipes.popitem(last=False)
            self._free_cuda(collect=True)
        pipe = self._load(model)
        pipe.set_progress_bar_config(disable=True)
        if self._device != "cpu":
            pipe.to(self._device)
        if self._device == "cuda" and getattr(pipe, "unet", None) is not None:
            pipe.unet.to(memory_format=torch.channels_last)
        xl = "XL" in type(pipe).__name__
        entry = _Resident(pipe, pipe.scheduler.config, _RGB_SDXL if xl else _RGB_SD15)
        self._pipes[key] = entry
        return entry

    def _load(self, model: ModelSource) -> Any:
        dtype = self._dtype
        if model.kind == "builtin":
            folder = ensure_demo_model(self._data_dir)
            return self._from_pretrained(model, str(folder), folder / "model_index.json", {})
        if model.kind == "folder":
            folder = Path(model.source)
            if not folder.is_dir():
                raise ModelError(f"model {model.name!r}: folder {model.source!r} is gone")
            return self._from_pretrained(model, str(folder), folder / "model_index.json", {})
        if model.kind == "hub":
            from huggingface_hub import hf_hub_download

            extra: dict[str, Any] = {}
            if model.revision:
                extra["revision"] = model.revision
            if offline():
                extra["local_files_only"] = True
            try:
                index = Path(hf_hub_download(model.source, "model_index.json", **extra))
                return self._from_pretrained(model, model.source, index, extra)
            except EaselError:
                raise
            except Exception as e:
                raise hub_error(model, e) from e
        if model.kind == "single_file":
            return self._from_single_file(model, dtype)
        raise ModelError(f"model {model.name!r}: cannot render with a {model.kind!r} model")

    def _from_pretrained(
        self, model: ModelSource, where: str, index_file: Path, extra: dict[str, Any]
    ) -> Any:
        try:
            index = json.loads(index_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ModelError(f"model {model.name!r}: unreadable model_index.json: {e}") from e
        kwargs: dict[str, Any] = dict(extra)
        if "safety_checker" in index:
            kwargs.update(safety_checker=None, requires_safety_checker=False)
        kwargs["use_safetensors"] = None if self._allow_unsafe else True
        try:
            kwargs[_DTYPE_KW] = self._dtype
            return _d.AutoPipelineForText2Image.from_pretrained(where, **kwargs)
        except EaselError:
            raise
        except Exception as e:
            if _is_oom(e):
                raise
            hint = ""
            if not self._allow_unsafe and "safetensors" in str(e).lower():
                hint = f" ({UNSAFE_HINT})"
            elif model.kind == "hub" and not isinstance(e, ValueError | TypeError):
                raise hub_error(model, e) from e
            raise ModelError(
                f"model {model.name!r} could not be loaded from {where!r}: "
                f"{type(e).__name__}: {e}{hint}"
            ) from e

    def _from_single_file(self, model: ModelSource, dtype: torch.dtype) -> Any:
        path = Path(model.source)
        if not path.is_file():
            raise ModelError(f"model {model.name!r}: file {model.source!r} is gone")
        xl = is_sdxl_file(path)
        cls = _d.StableDiffusionXLPipeline if xl else _d.StableDiffusionPipeline
        kwargs: dict[str, Any] = {_DTYPE_KW: dtype, "local_files_only": True}
        if model.config:
            kwargs["config"] = model.config
        if not xl:
            kwargs.update(safety_checker=None, requires_safety_checker=False)
        try:
            return cls.from_single_file(str(path), **kwargs)
        except Exception as e:
            if _is_oom(e):
                raise
            family = "SDXL" if xl else "SD 1.x/2.x"
            example = (
                "stabilityai/stable-diffusion-xl-base-1.0"
                if xl
                else "stable-diffusion-v1-5/stable-diffusion-v1-5"
            )
            hint = (
                f"the config {model.config!r} does not fit this checkpoint"
                if model.config
                else "diffusers needs the model's config files locally and found none: register it "
                f"again with --config <a local diffusers folder of the same architecture, or a "
                f"cached Hub id such as {example}>"
            )
            raise ModelError(
                f"model {model.name!r} ({family} single file) could not be loaded: {hint} "
                f"({type(e).__name__}: {e})"
            ) from e

    def _img2img(self, entry: _Resident) -> Any:
        if entry.img2img is None:
            entry.img2img = _d.AutoPipelineForImage2Image.from_pipe(entry.pipe)
            entry.img2img.set_progress_bar_config(disable=True)
        return entry.img2img

    def _free_cuda(self, collect: bool = False) -> None:
        if collect:
            gc.collect()
        if self._device == "cuda":
            torch.cuda.empty_cache()

    # ----------------------------------------------------------------- rendering

    def render(
        self, job: RenderJob, progress: ProgressFn, should_stop: Callable[[], bool]
    ) -> list[Image.Image]:
        """Render ``job``: ``spec.count`` RGB images of ``spec.width`` x ``spec.height``."""
        return self._guarded([job], progress, should_stop)[0]

    def render_batch(
        self, jobs: list[RenderJob], progress: ProgressFn, should_stop: Callable[[], bool]
    ) -> list[list[Image.Image]]:
        """Text-to-image jobs with equal ``batch_key()`` and model run in one pipeline call (each
        image with its own generator; progress once per step for the batch). Anything else is
        rendered job by job."""
        if not jobs:
            return []
        first = jobs[0]
        together = all(
            j.spec.mode is Mode.TXT2IMG
            and j.spec.batch_key() == first.spec.batch_key()
            and j.model == first.model
            for j in jobs
        )
        if len(jobs) > 1 and together:
            return self._guarded(jobs, progress, should_stop)
        return [self.render(j, progress, should_stop) for j in jobs]

    def _guarded(
        self, jobs: list[RenderJob], progress: ProgressFn, should_stop: Callable[[], bool]
    ) -> list[list[Image.Image]]:
        if should_stop():
            raise JobInterrupted("stopped before start")
        spec = jobs[0].spec
        with self._lock:
            try:
                return self._dispatch(jobs, progress, should_stop)
            except (JobInterrupted, EaselError):
                raise
            except BaseException as e:
                if _is_oom(e):
                    self._free_cuda(collect=True)
                    count = sum(j.spec.count for j in jobs)
                    raise OutOfMemory(
                        f"Out of memory on {self._device} while rendering {spec.width}x"
                        f"{spec.height} x{count}: try a smaller size or count"
                    ) from e
                if not isinstance(e, Exception):
                    raise
                raise GenerationFailed(f"{type(e).__name__}: {e}") from e

    def _dispatch(
        self, jobs: list[RenderJob], progress: ProgressFn, should_stop: Callable[[], bool]
    ) -> list[list[Image.Image]]:
        job = jobs[0]
        spec = job.spec
        if spec.mode is Mode.UPSCALE and job.upscaler is not None:
            return [self._upscale_model(job, progress)]
        entry = self._resident(job.model)
        callback = self._callback(entry, progress, should_stop)
        if spec.mode is Mode.TXT2IMG:
            images = self._call(
                entry, entry.pipe, jobs, callback, width=spec.width, height=spec.height
            )
        else:
            if job.init_image is None:
                raise InvalidRequest(f"a {spec.mode.value} job needs an input image")
            init = job.init_image.convert("RGB").resize(
                (spec.width, spec.height), Image.Resampling.LANCZOS
            )
            strength = spec.strength if spec.strength is not None else _DEFAULT_STRENGTH[spec.mode]
            if not 0.0 < strength <= 1.0:
                raise InvalidRequest(f"strength must be in (0, 1], not {strength}")
            # diffusers runs int(steps * strength) steps and refuses 0: run at least one.
            steps = spec.steps
            while int(steps * strength) < 1:
                steps += 1
            images = self._call(
                entry,
                self._img2img(entry),
                jobs,
                callback,
                image=init,
                strength=strength,
                steps=steps,
            )
        out: list[list[Image.Image]] = []
        for j in jobs:
            out.append([im.convert("RGB") for im in images[: j.spec.count]])
            images = images[j.spec.count :]
        return out

    def _call(
        self,
        entry: _Resident,
        pipe: Any,
        jobs: list[RenderJob],
        callback: Callable[..., dict[str, Any]],
        steps: int | None = None,
        **kwargs: Any,
    ) -> list[Image.Image]:
        spec = jobs[0].spec
        choice = scheduler_for(spec.sampler)
        try:
            pipe.scheduler = getattr(_d, choice.class_name).from_config(
                entry.scheduler_config, **choice.options
            )
        except ImportError as e:  # e.g. LMS needs scipy; diffusers hands out a dummy class
            package = "scipy" if "scipy" in str(e) else "a package that is not installed"
            raise GenerationFailed(
                f"sampler {spec.sampler!r} needs {package} on the server "
                f"(pip install {package if package == 'scipy' else '...'}); "
                "choose another sampler"
            ) from e
        prompts = [j.spec.prompt for j in jobs for _ in j.spec.seeds]
        negatives = [j.spec.negative_prompt for j in jobs for _ in j.spec.seeds]
        generators = [torch.Generator("cpu").manual_seed(s) for j in jobs for s in j.spec.seeds]
        vae = getattr(pipe, "vae", None)
        if self._device == "cuda" and vae is not None and hasattr(vae, "enable_slicing"):
            if len(generators) > 1:
                vae.enable_slicing()
            else:
                vae.disable_slicing()
        single = len(generators) == 1
        result = pipe(
            prompt=prompts[0] if single else prompts,
            negative_prompt=negatives[0] if single else negatives,
            generator=generators[0] if single else generators,
            num_inference_steps=steps if steps is not None else spec.steps,
            guidance_scale=spec.cfg,
            num_images_per_prompt=1,
            output_type="pil",
            callback_on_step_end=callback,
            callback_on_step_end_tensor_inputs=["latents"],
            **kwargs,
        )
        return list(result.images)

    def _callback(
        self, entry: _Resident, progress: ProgressFn, should_stop: Callable[[], bool]
    ) -> Callable[..., dict[str, Any]]:
        previews = self._previews
        last_preview = [-PREVIEW_INTERVAL_S]  # monotonic time of the last preview sent

        def on_step_end(
            pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]
        ) -> dict[str, Any]:
            total = int(getattr(pipe, "num_timesteps", 0) or step + 1)
            preview = None
            now = time.monotonic()
            # A preview costs a GPU->CPU copy and a PNG encode: a few per second is plenty.
            if previews and "latents" in kwargs and now - last_preview[0] >= PREVIEW_INTERVAL_S:
                last_preview[0] = now
                try:
                    preview = _preview_png(kwargs["latents"], entry.rgb_factors)
                except Exception:  # a preview is never worth failing a job
                    preview = None
            progress(step + 1, total, preview)
            if should_stop():
                raise JobInterrupted("cancelled")
            return kwargs

        return on_step_end

    def _upscale_model(self, job: RenderJob, progress: ProgressFn) -> list[Image.Image]:
        spec = job.spec
        upscaler = job.upscaler
        assert upscaler is not None
        if job.init_image is None:
            raise InvalidRequest("an upscale job needs an input image")
        model = self._load_upscaler(upscaler)
        source = job.init_image.convert("RGB")
        tensor = torch.from_numpy(np.asarray(source, dtype=np.float32) / 255.0)
        tensor = tensor.permute(2, 0, 1).unsqueeze(0).to(self._device)
        with torch.inference_mode():
            result = model(tensor)
        pixels = (result[0].clamp(0, 1).permute(1, 2, 0).float().cpu().numpy() * 255.0).round()
        image = Image.fromarray(pixels.astype(np.uint8), "RGB")
        if image.size != (spec.width, spec.height):
            image = image.resize((spec.width, spec.height), Image.Resampling.LANCZOS)
        progress(1, 1, None)
        return [image.copy() for _ in range(spec.count)]

    def _load_upscaler(self, upscaler: ModelSource) -> Any:
        key = (upscaler.name, upscaler.revision)
        if key in self._upscalers:
            self._upscalers.move_to_end(key)
            return self._upscalers[key]
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
        descriptor.to(self._device).eval()
        self._upscalers.clear()  # keep one resident
        self._upscalers[key] = descriptor
        return descriptor

    # ----------------------------------------------------------------- shutdown

    def close(self) -> None:
        with self._lock:
            self._pipes.clear()
            self._upscalers.clear()
            self._free_cuda(collect=True)
