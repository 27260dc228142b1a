"""Rendering: the resident pipelines, text-to-image, image-to-image, inpainting and upscales,
progress.

``DiffusersBackend`` keeps the most recently used pipelines resident (LRU keyed by model name +
revision), maps A1111 sampler names to diffusers schedulers, and renders text-to-image,
image-to-image and upscale jobs with one CPU ``torch.Generator`` per image, so image ``i`` of a job
equals the single-image job with seed ``seed + i`` and a single image equals what plain diffusers
draws with the same settings. Models are classified and identified at registration time, without
torch, by ``generation.model_sources``; a known Hub commit is passed to ``from_pretrained`` so
loads are pinned.

On CUDA (see ``generation.backend.fast_path``): half precision, TF32 matmuls, SDPA attention, a
channels-last UNet, VAE slicing for batches and tiling for large images, and optionally a
``torch.compile``d UNet fed bucketed batch sizes. Resident pipelines are limited by count and,
optionally, by a memory budget (``residents``). Step previews use a TAESD decoder when one is
configured, else a latent -> RGB projection (``previews``). Loading is in ``loading``, ESRGAN
upscalers in ``upscalers``.

Threading: every public method takes one lock; the worker calls them from its single thread.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import diffusers as _diffusers
import torch
import transformers.utils.logging as _transformers_logging
from PIL import Image

from generation.backend.adapters import AdapterState
from generation.backend.family_calls import call_kwargs, family_dtype, place
from generation.backend.fast_path import (
    batch_bucket,
    compile_unet,
    fit_vae,
    pipeline_bytes,
    use_sdpa,
)
from generation.backend.hires import render_hires, resize_pixels
from generation.backend.inpainting import inpaint_inputs, paste_back
from generation.backend.loading import PipelineLoader, is_oom, pick_device, pick_dtype
from generation.backend.previews import Bias, Factors, TinyDecoder, projection_png, rgb_projection
from generation.backend.prompt_encoding import batchable, encode_prompts
from generation.backend.residents import Residents
from generation.backend.upscalers import Upscalers
from generation.errors import (
    EaselError,
    GenerationFailed,
    InvalidRequest,
    JobInterrupted,
    OutOfMemory,
)
from generation.families import FAMILIES, Family
from generation.model_sources import model_family
from generation.render import ModelSource, ProgressFn, RenderJob
from generation.spec import GenerationSpec, Mode

# diffusers and transformers are only partly typed; everything from them is Any at this edge.
_d: Any = _diffusers
_transformers_log: Any = _transformers_logging
# Their tqdm bars would print to stderr on every model load; the worker reports progress itself.
_d.utils.logging.disable_progress_bar()
_transformers_log.disable_progress_bar()
log = logging.getLogger(__name__)

PREVIEW_INTERVAL_S = 0.25
_DEFAULT_STRENGTH = {Mode.IMG2IMG: 0.75, Mode.UPSCALE: 0.35, Mode.INPAINT: 0.75}
# Seeds of the throwaway images that pad a batch up to its bucket (never returned).
_PAD_SEED = 0
_GIB = 1024**3


@dataclass
class _Resident:
    pipe: Any
    scheduler_config: Any  # the pipeline's own scheduler config, as loaded
    rgb_factors: Factors  # the latent -> RGB projection of step previews (``previews``)
    img2img: Any = None
    inpaint: Any = None
    # One scheduler per sampler, made once: from_config costs ~4 ms on a CPU, ~8% of a small
    # render. Reusing one is safe: calls take turns (the backend's lock) and every pipeline
    # call starts the scheduler afresh with set_timesteps.
    schedulers: dict[str, Any] = field(default_factory=dict)
    tiny_fits: bool | None = None  # whether the TAESD preview decoder fits (None: not asked yet)
    projection_failed: bool = False  # a latent projection preview failed (logged once)
    rgb_bias: Bias | None = None  # added to the projection (SD3, Flux)
    adapters: AdapterState = field(default_factory=AdapterState)  # LoRA, embeddings loaded
    family: Family = FAMILIES["sd1"]  # samplers and call arguments (generation.families)


def _at_size(image: Image.Image, width: int, height: int) -> Image.Image:
    return resize_pixels(image, (width, height))  # Lanczos: the Upscale action's resize too


def _strength_and_steps(spec: GenerationSpec) -> tuple[float, int]:
    """The strength, and the steps to ask for: diffusers runs ``int(steps * strength)`` steps
    and refuses 0, so at least one runs."""
    strength = spec.strength if spec.strength is not None else _DEFAULT_STRENGTH[spec.mode]
    if not 0.0 < strength <= 1.0:
        raise InvalidRequest(f"strength must be in (0, 1], not {strength}")
    steps = spec.steps
    while int(steps * strength) < 1:
        steps += 1
    return strength, steps


class DiffusersBackend:
    """Renders jobs with diffusers on one device. Not a protocol: the worker's ``Backend`` is."""

    def __init__(
        self,
        *,
        data_dir: Path,
        device: str = "auto",
        dtype: str = "auto",
        resident_models: int = 2,
        previews: bool | Callable[[], bool] = True,
        allow_unsafe_weights: bool = False,
        cpu_threads: int = 0,
        compile_unet: bool = False,
        max_batch_images: int = 16,
        preview_decoder: str = "",
        resident_memory_gb: float = 0.0,
        pad_batches: bool | None = None,
        offload: str = "none",
    ) -> None:
        """``previews``: make step previews (a callable: asked at every step, so previews are
        made only while someone looks at them). ``max_batch_images``: the most images one
        pipeline call can hold (max_batch x
        max_count), the largest padding bucket. ``pad_batches``: pad pipeline calls to
        ``batch_bucket`` sizes; None = only when the UNet is compiled (tests force it on)."""
        if cpu_threads > 0:  # torch's own default is every core, which starves a shared box
            torch.set_num_threads(cpu_threads)
        self._device = pick_device(device)
        self._dtype = pick_dtype(self._device, dtype)
        self._dtype_setting, self._offload = dtype, offload  # per family: backend.family_calls
        self._previews: Callable[[], bool] = previews if callable(previews) else lambda: previews
        self._loader = PipelineLoader(
            data_dir, dtype=self._dtype, allow_unsafe_weights=allow_unsafe_weights
        )
        self._lock = threading.RLock()
        self._pipes: Residents[tuple[str, str | None], _Resident] = Residents(
            resident_models, int(resident_memory_gb * _GIB)
        )
        self._upscalers = Upscalers(self._device)
        if self._device == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self._compile = compile_unet and self._device == "cuda"
        if compile_unet and not self._compile:
            log.info("generation.compile only works on CUDA; ignored on %s", self._device)
        self._pad = self._compile if pad_batches is None else pad_batches
        self._max_batch_images = max(1, max_batch_images)
        source = preview_decoder.strip()
        self._tiny = (
            TinyDecoder(source, self._device, self._dtype, allow_unsafe_weights)
            if source and previews is not False
            else None
        )

    @property
    def device_name(self) -> str:
        return self._device

    def loaded_models(self) -> list[str]:
        """Names of the models resident now (any thread: a snapshot)."""
        resident = self._pipes.keys()
        return [name for name, _ in resident]

    def memory_gb(self) -> tuple[float | None, float | None]:
        """(total, free) memory of the CUDA device in GiB; (None, None) elsewhere."""
        if self._device != "cuda":
            return None, None
        free, total = torch.cuda.mem_get_info()
        return total / _GIB, free / _GIB

    # ----------------------------------------------------------------- loading

    def preload(self, model: ModelSource) -> None:
        with self._lock:
            try:
                self._resident(model)
            except EaselError:
                raise
            except BaseException as e:
                if is_oom(e):
                    self._free_cuda()
                    raise OutOfMemory(
                        f"Out of memory on {self._device} while loading model {model.name!r}"
                    ) from e
                raise

    def _resident(self, model: ModelSource) -> _Resident:
        """The loaded pipeline for ``model``; loading it evicts the least recently used ones
        beyond ``resident_models`` or the memory budget (never the one just loaded)."""
        key = (model.name, model.revision)
        hit = self._pipes.get(key)
        if hit is not None:
            return hit
        self._unloaded(self._pipes.make_room(key), f"to load {model.name!r}")
        pipe = self._load_on_device(model)
        if use_sdpa(pipe):
            log.info("model %r: switched its attention to PyTorch SDPA", model.name)
        if self._compile and compile_unet(pipe):
            log.info(
                "model %r: UNet compiled with torch.compile (first renders are slow)", model.name
            )
        family = model_family(model)
        rgb, bias = rgb_projection(family.name, pipe)  # SD3/Flux: their 16-channel projections
        entry = _Resident(pipe, pipe.scheduler.config, rgb, family=family, rgb_bias=bias)
        size = pipeline_bytes(pipe)
        self._unloaded(self._pipes.add(key, entry, size), f"to fit {model.name!r} in the budget")
        if 0 < self._pipes.budget_bytes < size:
            gib = (size / _GIB, self._pipes.budget_bytes / _GIB)
            log.warning("model %r needs %.2f GiB, over resident_memory_gb (%.2f)", model.name, *gib)
        return entry

    def _unloaded(self, keys: list[tuple[str, str | None]], why: str) -> None:
        if keys:
            log.info("unloaded model(s) %s %s", ", ".join(repr(name) for name, _ in keys), why)
            self._free_cuda(collect=True)

    def _load_on_device(self, model: ModelSource) -> Any:
        """Load ``model`` onto the device; out of memory with other models resident unloads
        them all and tries once more."""
        try:
            return self._load_and_place(model)
        except Exception as e:
            if not (is_oom(e) and len(self._pipes)):
                raise
        # Retried outside the except block: its traceback holds the failed attempt's tensors.
        self._unloaded(
            self._pipes.evict_all(), f"after running out of memory loading {model.name!r}"
        )
        try:
            return self._load_and_place(model)
        except Exception as e:
            if not is_oom(e):
                raise
        self._free_cuda(collect=True)
        raise OutOfMemory(
            f"Out of memory on {self._device} while loading model {model.name!r}, even with "
            "every other model unloaded"
        )

    def _load_and_place(self, model: ModelSource) -> Any:
        def choose_dtype() -> torch.dtype:  # asked once a Hub model's index is downloaded
            family = model_family(model)
            return family_dtype(family, self._device, self._dtype_setting, self._dtype, model.dtype)

        pipe = self._loader.load(model, choose_dtype)
        pipe.set_progress_bar_config(disable=True)
        place(pipe, self._device, self._offload)
        if self._device == "cuda" and getattr(pipe, "unet", None) is not None:
            pipe.unet.to(memory_format=torch.channels_last)
        return pipe

    def _img2img(self, entry: _Resident) -> Any:
        if entry.img2img is None and not entry.family.draws:  # an SDXL refiner already is one
            entry.img2img = entry.pipe
        if entry.img2img is None:
            entry.img2img = _d.AutoPipelineForImage2Image.from_pipe(entry.pipe)
            entry.img2img.set_progress_bar_config(disable=True)
        return entry.img2img

    def _inpaint(self, entry: _Resident) -> Any:
        """The inpainting pipeline on the resident one's components (no second copy): SD 1.x/2.x
        and SDXL, 4-channel UNets (re-blended with the original at every step) and dedicated
        9-channel inpainting UNets alike."""
        if entry.inpaint is None:
            entry.inpaint = _d.AutoPipelineForInpainting.from_pipe(entry.pipe)
            entry.inpaint.set_progress_bar_config(disable=True)
        return entry.inpaint

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
            and j.spec.hires is None  # its passes render image by image
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
                if is_oom(e):
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
            return [self._upscalers.render(job, progress)]
        entry = self._resident(job.model)
        jobs = entry.adapters.apply(entry.pipe, jobs)  # LoRA / embeddings; tags stripped
        job, spec = jobs[0], jobs[0].spec
        callback = self._callback(entry, progress, should_stop, (spec.width, spec.height))
        if spec.mode is Mode.TXT2IMG and spec.hires is not None:
            images = self._render_hires(entry, job, progress, should_stop)
        elif spec.mode is Mode.TXT2IMG and spec.refiner is not None:
            images = self._render_refined(entry, jobs, progress, should_stop)
        elif spec.mode is Mode.TXT2IMG:
            images = self._call(
                entry, entry.pipe, jobs, callback, width=spec.width, height=spec.height
            )
        elif spec.mode is Mode.INPAINT:
            images = self._render_inpaint(entry, job, callback)
        else:  # image-to-image, and the Upscale action's "hires": Lanczos, then a second pass
            if job.init_image is None:
                raise InvalidRequest(f"a {spec.mode.value} job needs an input image")
            init = _at_size(job.init_image, spec.width, spec.height)
            images = self._second_pass(entry, job, callback, init)
        out: list[list[Image.Image]] = []
        for j in jobs:
            out.append([im.convert("RGB") for im in images[: j.spec.count]])
            images = images[j.spec.count :]
        return out

    def _second_pass(
        self,
        entry: _Resident,
        job: RenderJob,
        callback: Callable[..., dict[str, Any]],
        start: Image.Image | Any,
    ) -> list[Image.Image]:
        """Image-to-image from ``start`` (a picture at the spec's size, or latents) at the
        spec's strength: image-to-image, the Upscale action's second pass and the hires fix's."""
        strength, steps = _strength_and_steps(job.spec)
        return self._call(
            entry,
            self._img2img(entry),
            [job],
            callback,
            image=start,
            strength=strength,
            steps=steps,
        )

    def _render_hires(
        self,
        entry: _Resident,
        job: RenderJob,
        progress: ProgressFn,
        should_stop: Callable[[], bool],
    ) -> list[Image.Image]:
        """The hires fix (``backend.hires.render_hires``) on this pipeline: its first pass is
        the text-to-image call, its second the Upscale action's ``_second_pass``."""
        spec = job.spec

        def first_pass(report: ProgressFn, latent: bool) -> list[Any]:
            callback = self._callback(entry, report, should_stop, (spec.width, spec.height))
            output = "latent" if latent else "pil"
            return self._call(
                entry,
                entry.pipe,
                [job],
                callback,
                width=spec.width,
                height=spec.height,
                output_type=output,
            )

        def second_pass(one: RenderJob, report: ProgressFn, start: Any) -> list[Image.Image]:
            size = (one.spec.width, one.spec.height)
            callback = self._callback(entry, report, should_stop, size)
            return self._second_pass(entry, one, callback, start)

        model_upscale = None
        if job.upscaler is not None:  # a registered upscaler: the Upscale action's model step
            source = job.upscaler

            def model_upscale(image: Image.Image, size: tuple[int, int]) -> Image.Image:
                return self._upscalers.upscale(image, source, size)

        return render_hires(job, first_pass, second_pass, model_upscale, progress)

    def _render_refined(
        self,
        entry: _Resident,
        jobs: list[RenderJob],
        progress: ProgressFn,
        should_stop: Callable[[], bool],
    ) -> list[Image.Image]:
        """The SDXL refiner stage (``generation.refiner``): the model denoises up to
        ``switch_at`` of the schedule and returns latents; the refiner's image-to-image
        pipeline finishes them from there with the same prompts, steps and seeds. LoRA and
        embeddings apply to the model only (they are made for it, not for the refiner).
        Progress counts the two calls as one run of ``steps``."""
        job, spec = jobs[0], jobs[0].spec
        refiner = spec.refiner
        if refiner is None or job.refiner is None:
            raise InvalidRequest("a refined job needs its refiner")
        done = [0]

        def base_progress(step: int, _total: int, preview: bytes | None) -> None:
            done[0] = step
            progress(min(step, spec.steps), spec.steps, preview)

        def refiner_progress(step: int, total: int, preview: bytes | None) -> None:
            progress(done[0] + step, max(spec.steps, done[0] + total), preview)

        latents = self._call(
            entry,
            entry.pipe,
            jobs,
            self._callback(entry, base_progress, should_stop),
            width=spec.width,
            height=spec.height,
            output_type="latent",
            denoising_end=refiner.switch_at,
        )
        finisher = self._resident(job.refiner)
        return self._call(
            finisher,
            self._img2img(finisher),
            jobs,
            self._callback(finisher, refiner_progress, should_stop),
            image=torch.stack(latents),
            denoising_start=refiner.switch_at,
        )

    def _render_inpaint(
        self, entry: _Resident, job: RenderJob, callback: Callable[..., dict[str, Any]]
    ) -> list[Image.Image]:
        """Inpaint image by image (each one's pre-fill can depend on its seed): see
        ``generation.backend.inpainting`` for what A1111 does and how it maps."""
        spec = job.spec
        if job.init_image is None or job.mask_image is None:
            raise InvalidRequest("an inpaint job needs an input image and a mask")
        init = _at_size(job.init_image, spec.width, spec.height)
        strength, steps = _strength_and_steps(spec)
        pipe = self._inpaint(entry)
        images = []
        for seed in spec.seeds:
            one = replace(job, spec=replace(spec, seed=seed, count=1))
            inputs = inpaint_inputs(pipe, spec, init, job.mask_image, seed)
            rendered = self._call(
                entry,
                pipe,
                [one],
                callback,
                image=inputs.image,
                mask_image=inputs.mask,
                strength=strength,
                steps=steps,
                width=spec.width,
                height=spec.height,
            )[0]
            images.append(paste_back(pipe, inputs, rendered))
        return images

    def _call(
        self,
        entry: _Resident,
        pipe: Any,
        jobs: list[RenderJob],
        callback: Callable[..., dict[str, Any]],
        steps: int | None = None,
        output_type: str = "pil",
        **kwargs: Any,
    ) -> list[Any]:
        """The pipeline's images (PIL; latent tensors with ``output_type="latent"``)."""
        spec = jobs[0].spec
        if not batchable(pipe, [j.spec for j in jobs]):  # A1111 prompts of unequal chunks
            return [
                im
                for j in jobs
                for im in self._call(entry, pipe, [j], callback, steps, output_type, **kwargs)
            ]
        try:
            pipe.scheduler = self._scheduler(entry, spec.sampler)
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
        real = len(generators)
        if self._pad:  # see batch_bucket: a compiled UNet recompiles for every new batch size
            extra = batch_bucket(real, self._max_batch_images) - real
            # Appended after the real images, each with its own generator: the real images'
            # noise, and so their pixels, are those of the unpadded call.
            prompts += [prompts[-1]] * extra
            negatives += [negatives[-1]] * extra
            generators += [torch.Generator("cpu").manual_seed(_PAD_SEED) for _ in range(extra)]
            start = kwargs.get("image")
            if extra and isinstance(start, torch.Tensor) and len(start) == real:  # latents
                kwargs["image"] = torch.cat([start, start[-1:].expand(extra, *start.shape[1:])])
        if self._device == "cuda":
            fit_vae(getattr(pipe, "vae", None), len(generators), spec.width, spec.height)
        single = len(generators) == 1
        kwargs.update(call_kwargs(entry.family, negatives, single, **kwargs))
        call = dict(
            prompt=prompts[0] if single else prompts,
            generator=generators[0] if single else generators,
            num_inference_steps=steps if steps is not None else spec.steps,
            guidance_scale=spec.cfg,
            num_images_per_prompt=1,
            output_type=output_type,
            callback_on_step_end=callback,
            callback_on_step_end_tensor_inputs=["latents"],
            **kwargs,
        )
        result = pipe(**encode_prompts(pipe, spec.prompt_syntax, call))  # prompt_encoding
        return list(result.images)[:real]

    @staticmethod
    def _scheduler(entry: _Resident, sampler: str) -> Any:
        scheduler = entry.schedulers.get(sampler)
        if scheduler is None:
            choice = entry.family.scheduler(sampler)  # refuses a sampler the family lacks
            scheduler = getattr(_d, choice.class_name).from_config(
                entry.scheduler_config, **choice.options
            )
            entry.schedulers[sampler] = scheduler
        return scheduler

    def _callback(
        self,
        entry: _Resident,
        progress: ProgressFn,
        should_stop: Callable[[], bool],
        size: tuple[int, int] | None = None,
    ) -> Callable[..., dict[str, Any]]:
        """``size``: the call's picture (width, height), which Flux's packed latents need for a
        preview (their token grid); without it only square ones get one."""
        previews_wanted = self._previews
        last_preview = [-PREVIEW_INTERVAL_S]  # monotonic time of the last preview sent

        def on_step_end(
            pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]
        ) -> dict[str, Any]:
            total = int(getattr(pipe, "num_timesteps", 0) or step + 1)
            preview = None
            now = time.monotonic()
            # A preview costs a GPU->CPU copy and a PNG encode: a few per second is plenty,
            # and none while nobody looks (the device is not synchronised then either).
            if (
                "latents" in kwargs
                and now - last_preview[0] >= PREVIEW_INTERVAL_S
                and previews_wanted()
            ):
                last_preview[0] = now
                preview = self._preview(entry, kwargs["latents"], size)
            progress(step + 1, total, preview)
            if should_stop():
                raise JobInterrupted("cancelled")
            return kwargs

        return on_step_end

    def _preview(
        self, entry: _Resident, latents: Any, size: tuple[int, int] | None = None
    ) -> bytes | None:
        """The first image's preview PNG: TAESD when configured and fitting this pipeline, else
        the latent projection. A preview is never worth failing a job: errors give None."""
        tiny = self._tiny
        if tiny is not None and entry.tiny_fits is not False:
            try:
                if entry.tiny_fits is None:
                    entry.tiny_fits = tiny.fits(entry.pipe)
                png = tiny.preview_png(latents, entry.pipe) if entry.tiny_fits else None
            except Exception as e:
                log.warning("preview decoder %r failed (%s: %s)", tiny.source, type(e).__name__, e)
                png = None
            if png is not None:
                return png
            entry.tiny_fits = False  # reported or unfit once: the projection from now on
        try:
            return projection_png(latents, entry.rgb_factors, entry.rgb_bias, size)
        except Exception as e:  # the render goes on without a preview; said once per model
            if not entry.projection_failed:
                log.warning("step previews failed and are skipped (%s: %s)", type(e).__name__, e)
                entry.projection_failed = True
            return None

    # ----------------------------------------------------------------- shutdown

    def close(self) -> None:
        with self._lock:
            self._pipes.evict_all()
            self._upscalers.clear()
            self._free_cuda(collect=True)
