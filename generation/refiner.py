"""The SDXL refiner stage (AUTOMATIC1111's "Refiner"), what it accepts and how it is written down.

PURE (no torch). A text-to-image job on an SDXL model may name a registered refiner (``--refiner
NAME``, A1111's ``refiner_checkpoint``): the job's model denoises the first ``switch_at`` of
the noise schedule and hands its latents, still noisy, to the refiner, which finishes them with
the same prompts, sampler, steps, CFG and seed (diffusers' "ensemble of expert denoisers":
``denoising_end`` on the base call, ``denoising_start`` on the refiner's image-to-image call).

    refiner = checked_refiner(base_family, refiner_model, refiner_family, switch_at)
    infotext_items(refiner)  # {"Refiner": "xl-refiner [a1b2c3d4e5]", "Refiner switch at": 0.8}

Which models pair: the base must be SDXL (``Family.takes_refiner``); the refiner an SDXL
refiner or another SDXL model (``Family.refines``: the same latent space, so latents pass
straight across). ``switch_at`` is a fraction of the schedule strictly between 0 and 1 (A1111's
0.8 by default); A1111 switches after that fraction of the *steps*, diffusers at that fraction
of the *noise schedule*, which is the same point for evenly spaced timesteps.
"""

from __future__ import annotations

import math

from generation.errors import InvalidRequest, shown
from generation.families import Family
from generation.metadata import short_hash
from generation.spec import Refiner

DEFAULT_SWITCH_AT = 0.8  # A1111's default


def check_switch_at(switch_at: float) -> float:
    """``switch_at`` as a float, refused unless strictly between 0 and 1."""
    value = float(switch_at)
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        raise InvalidRequest(
            f"Refiner switch {switch_at!r} is not allowed: it is the fraction of the steps the "
            "model does before the refiner takes over, more than 0 and less than 1 "
            f"(e.g. --switch-at {DEFAULT_SWITCH_AT:g})."
        )
    return value


def checked_refiner(
    base: Family,
    base_name: str,
    refiner: Family,
    refiner_name: str,
    revision: str | None,
    switch_at: float | None,
) -> Refiner:
    """The :class:`Refiner` of a job on ``base_name`` (family ``base``) refined by
    ``refiner_name`` (family ``refiner``), or a refusal saying why the two do not pair."""
    if not base.takes_refiner:
        raise InvalidRequest(
            f"{shown(base_name)} is a {base.label} model: only Stable Diffusion XL models take a "
            "refiner. Leave out the refiner, or draw with an SDXL model."
        )
    if not refiner.refines:
        raise InvalidRequest(
            f"{shown(refiner_name)} cannot refine {shown(base_name)}: it is a {refiner.label} "
            "model, and a refiner continues from the SDXL model's latents. Use an SDXL refiner "
            "(or another SDXL model)."
        )
    at = DEFAULT_SWITCH_AT if switch_at is None else check_switch_at(switch_at)
    return Refiner(model=refiner_name, switch_at=at, revision=revision)


def infotext_items(refiner: Refiner) -> dict[str, object]:
    """A1111's refiner keys: ``Refiner: name [hash]`` and ``Refiner switch at``."""
    digest = short_hash(refiner.revision)
    name = f"{refiner.model} [{digest}]" if digest else refiner.model
    return {"Refiner": name, "Refiner switch at": refiner.switch_at}
