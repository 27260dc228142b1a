"""Rendering a batch and turning images into Easel's PNG files: the part of a worker that does
not care where it runs (the engine's own worker thread, or ``easel worker`` on another machine).

    outcomes = render_all(backend, render_jobs, progress, should_stop)   # on a render thread
    pngs = job_pngs(RenderMeta.of(job), outcome.images)                  # bytes with metadata

A batch that runs out of memory together is rendered again job by job, and every job gets its
own outcome (images, or the reason it failed); a stop or cancel raises ``JobInterrupted``.
No torch here: the backend is whatever implements :class:`generation.render.Backend`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from PIL import Image

from generation.addon_prompts import infotext_items as addon_items
from generation.errors import EaselError, OutOfMemory
from generation.hires import infotext_items as hires_items
from generation.metadata import build_infotext, encode_png, short_hash
from generation.refiner import infotext_items as refiner_items
from generation.render import Backend, ProgressFn, RenderJob, StopFn
from generation.spec import GenerationSpec, Mode
from storage.records import JobRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rendered:
    images: list[Image.Image]


@dataclass(frozen=True)
class RenderFailure:
    reason: str


Outcome = Rendered | RenderFailure


def render_all(
    backend: Backend, jobs: Sequence[RenderJob], progress: ProgressFn, should_stop: StopFn
) -> list[Outcome]:
    """Each job's outcome, in order (blocking: call it on a render thread)."""
    try:
        if len(jobs) == 1:
            return [Rendered(backend.render(jobs[0], progress, should_stop))]
        return [
            Rendered(images) for images in backend.render_batch(list(jobs), progress, should_stop)
        ]
    except OutOfMemory as error:
        if len(jobs) == 1:
            return [RenderFailure(error.message)]
        # Together they did not fit in memory; each alone may. Each gets its own outcome.
        log.warning("batch of %d ran out of memory; rendering one by one", len(jobs))
        return [render_all(backend, [job], progress, should_stop)[0] for job in jobs]
    except EaselError as error:
        return [RenderFailure(error.message)] * len(jobs)


@dataclass(frozen=True)
class RenderMeta:
    """What a job's PNG files say about it (A1111's ``parameters`` text and the job id)."""

    job_id: str
    spec: GenerationSpec
    model_revision: str | None = None
    parent_id: str | None = None
    parent_index: int | None = None

    @classmethod
    def of(cls, job: JobRecord) -> RenderMeta:
        return cls(job.id, job.spec, job.model_revision, job.parent_id, job.parent_index)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (what a cluster batch carries to ``easel worker``)."""
        return {**asdict(self), "spec": self.spec.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RenderMeta:
        return cls(**{**data, "spec": GenerationSpec.from_dict(data["spec"])})


@dataclass(frozen=True)
class EncodedPng:
    data: bytes
    width: int
    height: int
    seed: int


_MASKED_CONTENT = ("fill", "original", "latent noise", "latent nothing")


def denoising_strength(spec: GenerationSpec) -> float | None:
    """A1111's ``Denoising strength``: image-to-image's, or the hires fix's second pass's."""
    return spec.hires.strength if spec.hires is not None else spec.strength


def extra_generation_params(spec: GenerationSpec) -> dict[str, object]:
    """The infotext keys of the job's mode beyond the common ones, in A1111's order (``None``
    values are left out of the text); A1111's API answers them as ``extra_generation_params``."""
    extra: dict[str, object] = {}
    if spec.mode == Mode.UPSCALE:
        extra["Hires upscaler"] = spec.upscaler or "hires"
    if spec.hires is not None:  # A1111's hires keys; Size stays the first pass's, as there
        extra.update(hires_items(spec.hires))
    if spec.refiner is not None:  # "Refiner: name [hash], Refiner switch at: 0.8"
        extra.update(refiner_items(spec.refiner))
    if spec.mode == Mode.INPAINT:  # A1111's img2img init: in its order, only what differs
        extra["Mask mode"] = "Inpaint not masked" if spec.mask_invert else None
        extra["Mask blur"] = spec.mask_blur or None
        if spec.inpaint_full_res:
            extra["Inpaint area"] = "Only masked"
            extra["Masked area padding"] = spec.inpaint_full_res_padding
        original = spec.inpainting_fill == _MASKED_CONTENT.index("original")  # its default
        extra["Masked content"] = None if original else _MASKED_CONTENT[spec.inpainting_fill]
    extra.update(  # LoRA and embeddings: A1111's hash lists (generation.addon_prompts)
        addon_items(
            [(a.name, a.sha256) for a in spec.loras], [(a.name, a.sha256) for a in spec.embeddings]
        )
    )
    return extra


def job_pngs(meta: RenderMeta, images: Sequence[Image.Image]) -> list[EncodedPng]:
    """The job's images as Easel PNG files, image ``i`` with seed ``seed + i`` (blocking)."""
    spec = meta.spec
    extra = extra_generation_params(spec)
    strength = denoising_strength(spec)
    if meta.parent_id:
        extra["Easel parent"] = f"{meta.parent_id}/{(meta.parent_index or 0) + 1}"
    encoded = []
    for seed, image in zip(spec.seeds, images, strict=True):
        text = build_infotext(
            prompt=spec.prompt,
            negative_prompt=spec.negative_prompt,
            steps=spec.steps,
            sampler=spec.sampler,
            cfg=spec.cfg,
            seed=seed,
            width=spec.width if spec.hires is not None else image.width,
            height=spec.height if spec.hires is not None else image.height,
            model=spec.model,
            model_hash=short_hash(meta.model_revision),
            job_id=meta.job_id,
            strength=strength,
            extra=extra,
        )
        data = encode_png(image, text, meta.job_id)
        encoded.append(EncodedPng(data, image.width, image.height, seed))
    return encoded
