"""What the actions on a finished job make: the child job's parameters (pure).

    rerun    the same parameters and seeds: identical pixels on the same setup
    reroll   the same parameters, a new seed
    upscale  image ``index`` at twice its size (an ESRGAN upscaler, else Lanczos + img2img)
    vary     image-to-image from image ``index`` with a new seed, "subtle" or "strong"

Every front end names these the same way (``JobAction``); the Service checks that the caller
may see the parent and admits the child like any other job.
"""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum

from generation.errors import InvalidRequest
from generation.spec import VARY_STRENGTHS, Action, GenerationSpec, Mode
from storage.records import ImageRecord, JobRecord


class JobAction(StrEnum):
    RERUN = "rerun"
    REROLL = "reroll"
    UPSCALE = "upscale"
    VARY = "vary"

    @classmethod
    def parse(cls, name: str) -> JobAction:
        try:
            return cls(name.strip().lower())
        except ValueError:
            names = ", ".join(action.value for action in cls)
            raise InvalidRequest(f"Unknown action {name!r}: use one of {names}.") from None

    @property
    def lineage(self) -> Action:
        """How the child records where it came from."""
        return Action(self.value)

    @property
    def uses_image(self) -> bool:
        """Whether the action works on one image of the job (``index``)."""
        return self in (JobAction.UPSCALE, JobAction.VARY)


def vary_strength(name: str | None) -> float:
    """The img2img strength of a variation called ``name`` (default "subtle")."""
    key = (name or "subtle").strip().lower()
    if key not in VARY_STRENGTHS:
        raise InvalidRequest(
            f"Unknown variation strength {name!r}: use {' or '.join(VARY_STRENGTHS)}."
        )
    return VARY_STRENGTHS[key]


def parent_image(parent: JobRecord, index: int) -> ImageRecord:
    """Image ``index`` (0-based) of a finished job, or a refusal that says what exists."""
    if parent.status != "succeeded" or not parent.images:
        raise InvalidRequest(
            f"Job {parent.id} has no images yet ({parent.status}); wait until it finishes."
        )
    if not 0 <= index < len(parent.images):
        raise InvalidRequest(
            f"Job {parent.id} has {len(parent.images)} image(s); choose 1-{len(parent.images)}."
        )
    return parent.images[index]


def upscale_spec(
    parent: JobRecord, image: ImageRecord, *, upscaler: str | None, strength: float
) -> GenerationSpec:
    """Twice the image's size; ``upscaler`` is a registered upscaler's name, None = hires fix."""
    return replace(
        parent.spec,
        mode=Mode.UPSCALE,
        width=image.width * 2,
        height=image.height * 2,
        seed=image.seed,
        count=1,
        strength=strength,
        init_image=image.sha256,
        upscaler=upscaler or "hires",
        mask_image=None,
        outpaint=None,
    )


def vary_spec(
    parent: JobRecord, image: ImageRecord, *, strength: float, seed: int
) -> GenerationSpec:
    return replace(
        parent.spec,
        mode=Mode.IMG2IMG,
        width=image.width,
        height=image.height,
        seed=seed,
        count=1,
        strength=strength,
        init_image=image.sha256,
        upscaler=None,
        mask_image=None,
        outpaint=None,
    )
