"""AUTOMATIC1111 sampler names and the diffusers schedulers they map to (pure, no torch).

``backend.py`` turns a :class:`SchedulerChoice` into a scheduler object with
``getattr(diffusers, choice.class_name).from_config(base_config, **choice.options)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from generation.errors import InvalidRequest, shown


@dataclass(frozen=True)
class SchedulerChoice:
    class_name: str
    options: dict[str, Any] = field(default_factory=dict)


_KARRAS: dict[str, Any] = {"use_karras_sigmas": True}

# Canonical A1111 names, in the order /samplers lists them. Legacy "<name> Karras" spellings are
# their own entries because users type them and older infotexts carry them.
SAMPLERS: dict[str, SchedulerChoice] = {
    "DPM++ 2M": SchedulerChoice("DPMSolverMultistepScheduler"),
    "DPM++ 2M Karras": SchedulerChoice("DPMSolverMultistepScheduler", _KARRAS),
    "DPM++ 2M SDE": SchedulerChoice(
        "DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}
    ),
    "DPM++ 2M SDE Karras": SchedulerChoice(
        "DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", **_KARRAS}
    ),
    "DPM++ SDE": SchedulerChoice("DPMSolverSinglestepScheduler"),
    "DPM++ SDE Karras": SchedulerChoice("DPMSolverSinglestepScheduler", _KARRAS),
    "Euler a": SchedulerChoice("EulerAncestralDiscreteScheduler"),
    "Euler": SchedulerChoice("EulerDiscreteScheduler"),
    "LMS": SchedulerChoice("LMSDiscreteScheduler"),
    "LMS Karras": SchedulerChoice("LMSDiscreteScheduler", _KARRAS),
    "Heun": SchedulerChoice("HeunDiscreteScheduler"),
    "DDIM": SchedulerChoice("DDIMScheduler"),
    "UniPC": SchedulerChoice("UniPCMultistepScheduler"),
    "LCM": SchedulerChoice("LCMScheduler"),
    # A1111's PLMS (from the original CompVis code) is PNDM without its Runge-Kutta warm-up.
    "PLMS": SchedulerChoice("PNDMScheduler", {"skip_prk_steps": True}),
}

# Aliases A1111 accepts when pasting infotexts (k-diffusion names), matched case-insensitively.
_ALIASES: dict[str, str] = {
    "k_dpmpp_2m": "DPM++ 2M",
    "k_dpmpp_2m_ka": "DPM++ 2M Karras",
    "k_dpmpp_2m_sde": "DPM++ 2M SDE",
    "k_dpmpp_sde": "DPM++ SDE",
    "k_euler_a": "Euler a",
    "k_euler": "Euler",
    "k_lms": "LMS",
    "k_heun": "Heun",
    "ddim": "DDIM",
    "unipc": "UniPC",
    "lcm": "LCM",
    "plms": "PLMS",
}

_BY_LOWER: dict[str, str] = {name.lower(): name for name in SAMPLERS} | _ALIASES


def resolve_sampler(name: str) -> str:
    """Return the canonical spelling of ``name`` or raise :class:`InvalidRequest` listing choices.

    Accepts canonical names, legacy ``"<name> Karras"`` combinations and k-diffusion aliases,
    case-insensitively; a trailing ``" Automatic"`` scheduler label is ignored.
    """
    key = " ".join(name.split()).lower()
    key = key.removesuffix(" automatic")
    if key in _BY_LOWER:
        return _BY_LOWER[key]
    raise InvalidRequest(f"Unknown sampler {shown(name)}. Choose one of: {', '.join(SAMPLERS)}.")


def scheduler_for(sampler: str) -> SchedulerChoice:
    return SAMPLERS[resolve_sampler(sampler)]
