"""What the worker hands the backend, and the small interface a backend offers (no torch here)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from PIL import Image

from generation.spec import GenerationSpec

# (step, total steps, preview PNG or None); called from the worker thread. "total steps" is the
# number of denoising steps the pipeline really runs (fewer than ``spec.steps`` for image-to-image,
# more for Heun).
ProgressFn = Callable[[int, int, bytes | None], None]
StopFn = Callable[[], bool]


@dataclass(frozen=True)
class ModelSource:
    """A registered model as the backend needs it."""

    name: str
    source: str  # "builtin:demo", a Hub repo id, a local folder, or a .safetensors file
    kind: str  # "builtin" | "hub" | "folder" | "single_file" | "upscaler"
    revision: str | None
    config: str | None = None  # single-file checkpoints: where their configs come from
    dtype: str | None = None  # on a GPU: float16 | bfloat16 | float32; None = the config's


@dataclass(frozen=True)
class AddOnFile:
    """A LoRA or embedding file a job uses (``generation.addons``): its registered name, kind,
    path and hash (the backend checks the file still has it when it loads it)."""

    name: str
    kind: str  # "lora" | "embedding"
    path: str
    sha256: str


@dataclass(frozen=True)
class RenderJob:
    spec: GenerationSpec
    model: ModelSource
    init_image: Image.Image | None = None
    upscaler: ModelSource | None = None
    mask_image: Image.Image | None = None  # inpaint jobs: the stored mask (white = repaint)
    addon_files: tuple[AddOnFile, ...] = ()  # the files of spec.loras / spec.embeddings
    refiner: ModelSource | None = None  # spec.refiner's model (the SDXL refiner stage)


def loaded_models(backend: object) -> tuple[str, ...]:
    """The models ``backend`` holds loaded now, if it says (``loaded_models()`` is optional)."""
    report = getattr(backend, "loaded_models", None)
    return tuple(report()) if callable(report) else ()


def memory_gb(backend: object) -> tuple[float | None, float | None]:
    """(total, free) device memory in GiB, if ``backend`` says (``memory_gb()`` is optional)."""
    report = getattr(backend, "memory_gb", None)
    return report() if callable(report) else (None, None)


class Backend(Protocol):
    """Renders jobs on one thread. ``render_batch`` takes jobs with equal ``spec.batch_key()``."""

    @property
    def device_name(self) -> str: ...  # "cuda", "mps" or "cpu"

    def render(
        self, job: RenderJob, progress: ProgressFn, should_stop: StopFn
    ) -> list[Image.Image]: ...

    def render_batch(
        self, jobs: list[RenderJob], progress: ProgressFn, should_stop: StopFn
    ) -> list[list[Image.Image]]: ...

    def preload(self, model: ModelSource) -> None: ...

    def close(self) -> None: ...
