"""Loading a registered model into a diffusers pipeline: Hub ids, local folders, single files.

    loader = PipelineLoader(data_dir, dtype=torch.float16, allow_unsafe_weights=False)
    pipe = loader.load(model_source)        # on the CPU; the backend moves it to the device

Only safetensors weights are loaded unless ``allow_unsafe_weights`` (pickled files can run code).
A Hub model is loaded at the commit recorded at registration; offline, only from the cache.
Every failure is a :class:`ModelError` that says what to do.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import diffusers as _diffusers
import torch

from generation.backend.demo_model import ensure_demo_model
from generation.errors import ConfigError, EaselError, ModelError
from generation.model_sources import UNSAFE_HINT, hub_error, model_family, offline
from generation.render import ModelSource

_d: Any = _diffusers  # diffusers is only partly typed
DtypeChoice = Callable[[], torch.dtype]
try:  # newer diffusers renamed ``torch_dtype`` to ``dtype`` (the old name warns)
    from diffusers.utils.deprecation_utils import _TORCH_DTYPE_DEPRECATION_MESSAGE  # noqa: F401

    _DTYPE_KW = "dtype"
except ImportError:  # pragma: no cover - older diffusers
    _DTYPE_KW = "torch_dtype"


# family -> (the pipeline class that reads its single-file checkpoints, a Hub id with its configs)
_SINGLE_FILE: dict[str, tuple[str, str]] = {
    "sd1": ("StableDiffusionPipeline", "stable-diffusion-v1-5/stable-diffusion-v1-5"),
    "sd2": ("StableDiffusionPipeline", "stabilityai/stable-diffusion-2-1"),
    "sdxl": ("StableDiffusionXLPipeline", "stabilityai/stable-diffusion-xl-base-1.0"),
    "sdxl_refiner": (
        "StableDiffusionXLImg2ImgPipeline",
        "stabilityai/stable-diffusion-xl-refiner-1.0",
    ),
    "sd3": ("StableDiffusion3Pipeline", "stabilityai/stable-diffusion-3.5-large"),
    "flux": ("FluxPipeline", "black-forest-labs/FLUX.1-dev"),
}


def is_oom(error: BaseException) -> bool:
    """Whether ``error`` means the device (or the host) ran out of memory."""
    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(
        torch.cuda, "OutOfMemoryError", None
    )
    if isinstance(error, MemoryError) or (oom_type is not None and isinstance(error, oom_type)):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def pick_device(device: str) -> str:
    """The device for ``generation.device`` ("auto": CUDA, else MPS, else the CPU)."""
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


def pick_dtype(device: str, dtype: str) -> torch.dtype:
    """The dtype for ``generation.dtype`` on ``device`` (float16 on GPUs, float32 on the CPU)."""
    if device == "cpu":
        return torch.float32  # half precision on CPU is slow or unsupported
    table = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
    if dtype == "auto":
        return torch.float16 if device == "cuda" else torch.float32
    if dtype not in table:
        raise ConfigError(
            f"generation.dtype must be auto, float16, bfloat16 or float32, not {dtype!r}"
        )
    return table[dtype]


class PipelineLoader:
    def __init__(self, data_dir: Path, *, dtype: torch.dtype, allow_unsafe_weights: bool) -> None:
        self.data_dir = Path(data_dir)
        self.dtype = dtype
        self.allow_unsafe = allow_unsafe_weights

    def load(self, model: ModelSource, choose_dtype: DtypeChoice | None = None) -> Any:
        """A pipeline for ``model`` on the CPU (the caller moves it to the device), in the
        dtype ``choose_dtype()`` picks once the model's files are at hand (a Hub model's family
        is known only once its model_index.json is downloaded); default: the loader's."""

        def chosen() -> torch.dtype:
            return choose_dtype() if choose_dtype is not None else self.dtype

        if model.kind != "hub":
            dtype = chosen()
        if model.kind == "builtin":
            folder = ensure_demo_model(self.data_dir, model.source)
            return self._from_pretrained(model, str(folder), folder / "model_index.json", {}, dtype)
        if model.kind == "folder":
            folder = Path(model.source)
            if not folder.is_dir():
                raise ModelError(f"model {model.name!r}: folder {model.source!r} is gone")
            return self._from_pretrained(model, str(folder), folder / "model_index.json", {}, dtype)
        if model.kind == "hub":
            from huggingface_hub import hf_hub_download

            extra: dict[str, Any] = {}
            if model.revision:
                extra["revision"] = model.revision
            if offline():
                extra["local_files_only"] = True
            try:
                index = Path(hf_hub_download(model.source, "model_index.json", **extra))
                return self._from_pretrained(model, model.source, index, extra, chosen())
            except EaselError:
                raise
            except Exception as e:
                raise hub_error(model, e) from e
        if model.kind == "single_file":
            return self._from_single_file(model, dtype)
        raise ModelError(f"model {model.name!r}: cannot render with a {model.kind!r} model")

    def _from_pretrained(
        self,
        model: ModelSource,
        where: str,
        index_file: Path,
        extra: dict[str, Any],
        dtype: torch.dtype | None = None,
    ) -> Any:
        try:
            index = json.loads(index_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ModelError(f"model {model.name!r}: unreadable model_index.json: {e}") from e
        kwargs: dict[str, Any] = dict(extra)
        if "safety_checker" in index:
            kwargs.update(safety_checker=None, requires_safety_checker=False)
        kwargs["use_safetensors"] = None if self.allow_unsafe else True
        try:
            kwargs[_DTYPE_KW] = dtype or self.dtype
            # An SDXL refiner has no text-to-image: the text-to-image auto pipeline would load
            # it as a base pipeline without its aesthetic-score conditioning.
            drawing = model_family(model).draws
            auto = _d.AutoPipelineForText2Image if drawing else _d.AutoPipelineForImage2Image
            return auto.from_pretrained(where, **kwargs)
        except EaselError:
            raise
        except Exception as e:
            if is_oom(e):
                raise
            hint = ""
            if not self.allow_unsafe and "safetensors" in str(e).lower():
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
        family = model_family(model)  # from the checkpoint's tensor names
        cls_name, example = _SINGLE_FILE.get(family.name, _SINGLE_FILE["sd1"])
        cls = getattr(_d, cls_name)
        kwargs: dict[str, Any] = {_DTYPE_KW: dtype, "local_files_only": True}
        if model.config:
            kwargs["config"] = model.config
        if cls_name == "StableDiffusionPipeline":
            kwargs.update(safety_checker=None, requires_safety_checker=False)
        try:
            return cls.from_single_file(str(path), **kwargs)
        except Exception as e:
            if is_oom(e):
                raise
            hint = (
                f"the config {model.config!r} does not fit this checkpoint"
                if model.config
                else "diffusers needs the model's config files locally and found none: register it "
                f"again with --config <a local diffusers folder of the same architecture, or a "
                f"cached Hub id such as {example}>"
            )
            raise ModelError(
                f"model {model.name!r} ({family.label} single file) could not be loaded: {hint} "
                f"({type(e).__name__}: {e})"
            ) from e
