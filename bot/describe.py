"""Platform-neutral words and fields about jobs, shared by the CLI, the web and the chats."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from generation.limits import format_retry
from storage.records import JobRecord


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def job_to_dict(job: JobRecord, image_location: Callable[[str], str]) -> dict[str, Any]:
    """Every stored parameter of a job, JSON-ready; ``images`` are ``image_location(sha256)``
    (file paths for the CLI, URLs for the web)."""
    return {
        "id": job.id,
        "status": job.status,
        "action": job.action,
        "mode": job.mode,
        "prompt": job.prompt,
        "negative_prompt": job.negative_prompt,
        "model": job.model,
        "model_revision": job.model_revision,
        "sampler": job.sampler,
        "width": job.width,
        "height": job.height,
        "steps": job.steps,
        "cfg": job.cfg,
        "seed": job.seed,
        "seeds": job.seeds,
        "count": job.count,
        "strength": job.strength,
        "init_image": job.init_image,
        "upscaler": job.upscaler,
        "mask_image": job.mask_image,  # inpaint jobs: the mask's sha256, else None
        "inpaint": job.inpaint,  # inpaint jobs: A1111's inpaint options, else None
        # hires fix jobs: final width/height, upscaler, strength, steps, scale/resize; else None
        "hires": job.hires,
        # refined SDXL jobs: the refiner's name, switch_at and revision; else None
        "refiner": job.refiner,
        # LoRA and embeddings the job used ({"name", "sha256", "weight"}), and how its prompt
        # was read ("a1111" or "plain")
        "loras": list(job.loras),
        "embeddings": list(job.embeddings),
        "prompt_syntax": job.prompt_syntax,
        "parent_id": job.parent_id,
        "parent_index": job.parent_index,
        "platform": job.platform,
        "user_id": job.user_id,
        "attempt": job.attempt,
        "error": job.error,
        "created_at": _time(job.created_at),
        "started_at": _time(job.started_at),
        "finished_at": _time(job.finished_at),
        "delivered_at": _time(job.delivered_at),
        "images": [image_location(image.sha256) for image in job.images],
        "image_seeds": [image.seed for image in job.images],
        "image_sha256": [image.sha256 for image in job.images],
    }


def describe_params(job: JobRecord) -> str:
    """One line: model, size, steps, sampler, cfg (and strength where it applies)."""
    parts = [
        f"model {job.model}",
        f"{job.width}x{job.height}",
        f"{job.steps} steps",
        job.sampler,
        f"cfg {job.cfg:g}",
    ]
    if job.strength is not None:
        parts.append(f"strength {job.strength:g}")
    hires = job.spec.hires
    if hires is not None:
        parts.append(
            f"hires fix to {hires.width}x{hires.height} ({hires.upscaler}, "
            f"strength {hires.strength:g})"
        )
    refiner = job.spec.refiner
    if refiner is not None:
        parts.append(f"refined by {refiner.model} from {refiner.switch_at:.0%} of the steps")
    return ", ".join(parts)


def describe_queue(position: int, eta_seconds: float, seconds_left: float | None = None) -> str:
    """Where a queued job stands: "position 3 in the queue, starts in 8 s, done in 12 s"
    (``seconds_left``: until it should be done, when known). The engine's estimates, the same
    numbers on every front end."""
    where = "next in line" if position == 0 else f"position {position + 1} in the queue"
    if position > 0:
        where += f", starts {format_retry(eta_seconds)}"
    return where if seconds_left is None else f"{where}, done {format_retry(seconds_left)}"
