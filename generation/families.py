"""Model families: what kind of diffusion model a registered model is, and what it supports.

PURE (no torch, no files): the family is decided from the pipeline class named in a diffusers
folder's ``model_index.json`` (``family_of_pipeline``) or from a single-file checkpoint's tensor
names (``family_of_keys``); ``generation.model_sources.model_family`` reads those for a model.

    family = FAMILIES["flux"]
    check_spec(family, spec)                 # InvalidRequest naming what does not apply, and why
    family.scheduler("Euler")                # SchedulerChoice("FlowMatchEulerDiscreteScheduler")

Families and why they differ:

* ``sd1``, ``sd2``, ``sdxl`` (Stable Diffusion, epsilon/v-prediction): every A1111 sampler,
  negative prompt, classifier-free guidance (``cfg``). SDXL also takes its size
  micro-conditioning (original/target size = the job's size), and a refiner stage.
* ``sdxl_refiner`` (stabilityai/stable-diffusion-xl-refiner-1.0 and its kind): an
  image-to-image model with only SDXL's second text encoder, made to finish the last steps of
  an SDXL picture (``generation.refiner``). It cannot draw on its own: refused as a job's model.
* ``sd3`` (SD3/3.5, rectified flow): negative prompt and true CFG, but only flow-matching
  samplers: the A1111 names that have a flow-matching scheduler in diffusers are mapped, the
  others are refused (their discrete-time schedulers assume a noise schedule SD3 does not have).
* ``flux`` (Flux.1 dev/schnell): guidance is *distilled*: ``guidance_scale`` is an input of the
  transformer, not classifier-free guidance, so there is no negative prompt (refused, not
  dropped: a user who sends one should learn it does nothing) and cfg means "distilled guidance"
  (3.5 for dev). Only the flow-matching Euler sampler: the Flux pipeline hands the scheduler its
  own sigmas and resolution shift, which only FlowMatchEulerDiscreteScheduler takes.
* ``other``: anything else ``AutoPipelineForText2Image`` loads (Kandinsky, PixArt, ...): passed
  through as Stable Diffusion-like, untested.

What each family needs in memory is in the README ("Model families").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from generation.errors import InvalidRequest, shown
from generation.hires import is_latent
from generation.samplers import SAMPLERS, SchedulerChoice, resolve_sampler
from generation.spec import GenerationSpec, Mode

FLOW_EULER = SchedulerChoice("FlowMatchEulerDiscreteScheduler")
# SD3's pipeline calls set_timesteps(steps) and lets the scheduler shift the sigmas itself:
# both flow-matching schedulers diffusers ships for it take that.
SD3_SAMPLERS: dict[str, SchedulerChoice] = {
    "Euler": FLOW_EULER,
    "Heun": SchedulerChoice("FlowMatchHeunDiscreteScheduler"),
}
FLUX_SAMPLERS: dict[str, SchedulerChoice] = {"Euler": FLOW_EULER}


@dataclass(frozen=True)
class Family:
    """What one model family supports. ``samplers``: A1111 name -> scheduler, in menu order."""

    name: str  # "sd1" | "sd2" | "sdxl" | "sd3" | "flux" | "other"
    label: str  # for people: "Flux.1"
    samplers: Mapping[str, SchedulerChoice] = field(default_factory=lambda: dict(SAMPLERS))
    negative_prompt: bool = True
    cfg: str = "cfg"  # "cfg" (classifier-free guidance) | "distilled" (Flux's guidance input)
    size_conditioning: bool = False  # SDXL: original_size / target_size
    img2img: bool = True
    inpaint: bool = True
    hires: bool = True
    latent_hires: bool = True  # the hires fix's latent upscalers (Stable Diffusion's latents)
    default_width: int = 512
    default_height: int = 512
    default_steps: int = 25
    default_cfg: float = 7.0
    default_sampler: str = "DPM++ 2M Karras"
    draws: bool = True  # False: only ever a refiner (the SDXL refiner has no text-to-image)
    takes_refiner: bool = False  # a refiner can finish its pictures (SDXL)
    refines: bool = False  # it can be the refiner of a ``takes_refiner`` model

    @property
    def sampler_names(self) -> list[str]:
        return list(self.samplers)

    def scheduler(self, sampler: str) -> SchedulerChoice:
        """The scheduler for ``sampler``; unknown or inapplicable names are refused."""
        name = resolve_sampler(sampler)
        choice = self.samplers.get(name)
        if choice is None:
            raise InvalidRequest(self._sampler_refusal(name))
        return choice

    def _sampler_refusal(self, name: str) -> str:
        return (
            f"{self.label} models cannot use the sampler {shown(name)}: they sample a "
            f"flow-matching model, which only {', '.join(self.samplers)} "
            f"{'does' if len(self.samplers) == 1 else 'do'} here."
        )

    def capabilities(self) -> dict[str, object]:
        """What the front ends show (``/api/models``)."""
        return {
            "family": self.name,
            "family_label": self.label,
            "samplers": self.sampler_names,
            "negative_prompt": self.negative_prompt,
            "cfg": self.cfg,
            "img2img": self.img2img,
            "inpaint": self.inpaint,
            "hires": self.hires,
            "latent_hires": self.latent_hires,
            "draws": self.draws,
            "takes_refiner": self.takes_refiner,
            "refines": self.refines,
        }


FAMILIES: dict[str, Family] = {
    "sd1": Family("sd1", "Stable Diffusion 1.x"),
    "sd2": Family(
        "sd2", "Stable Diffusion 2.x", default_width=768, default_height=768,
    ),
    "sdxl": Family(
        "sdxl", "Stable Diffusion XL", size_conditioning=True, default_width=1024,
        default_height=1024, takes_refiner=True, refines=True,
    ),
    "sdxl_refiner": Family(
        "sdxl_refiner", "Stable Diffusion XL refiner", size_conditioning=True, hires=False,
        inpaint=False, default_width=1024, default_height=1024, draws=False, refines=True,
    ),
    "sd3": Family(
        "sd3", "Stable Diffusion 3", samplers=SD3_SAMPLERS, latent_hires=False,
        default_width=1024, default_height=1024, default_steps=28, default_cfg=7.0,
        default_sampler="Euler",
    ),
    "flux": Family(
        "flux", "Flux.1", samplers=FLUX_SAMPLERS, negative_prompt=False, cfg="distilled",
        latent_hires=False, default_width=1024, default_height=1024, default_steps=28,
        default_cfg=3.5, default_sampler="Euler",
    ),
    "other": Family("other", "other diffusers pipeline"),
}  # fmt: skip

# model_index.json's "_class_name" -> family. Any image-to-image / inpainting / ControlNet
# variant of a family names its family too.
_CLASS_PREFIXES: tuple[tuple[str, str], ...] = (
    ("StableDiffusionXL", "sdxl"),
    ("StableDiffusion3", "sd3"),
    ("Flux", "flux"),
    ("StableDiffusion", "sd1"),  # sd2 told apart by its config (see family_of_pipeline)
)


def family_of_pipeline(class_name: str, *, v2: bool = False, first_encoder: bool = True) -> Family:
    """The family of a diffusers pipeline class (``model_index.json``'s ``_class_name``);
    ``v2``: its text encoder is OpenCLIP ViT-H (SD 2.x), which the class does not say;
    ``first_encoder``: it has a ``text_encoder`` (an SDXL pipeline without one is a refiner)."""
    for prefix, name in _CLASS_PREFIXES:
        if class_name.startswith(prefix):
            if name == "sdxl" and not first_encoder:
                return FAMILIES["sdxl_refiner"]
            return FAMILIES["sd2" if name == "sd1" and v2 else name]
    return FAMILIES["other"]


def family_of_keys(keys: Iterable[str]) -> Family:
    """The family of a single-file checkpoint from its tensor names (original-format files:
    SDXL has a second text encoder, its refiner only an OpenCLIP one in the first slot, SD3
    ``joint_blocks``, Flux ``double_blocks``; SD 2.x an OpenCLIP text encoder)."""
    names = set(keys)

    def has(prefix: str) -> bool:
        return any(key.startswith(prefix) for key in names)

    if has("double_blocks.") or has("model.diffusion_model.double_blocks."):
        return FAMILIES["flux"]
    if has("model.diffusion_model.joint_blocks.") or has("joint_blocks."):
        return FAMILIES["sd3"]
    if has("conditioner.embedders.1"):
        return FAMILIES["sdxl"]
    if has("conditioner.embedders.0.model."):  # OpenCLIP alone, in the first slot: the refiner
        return FAMILIES["sdxl_refiner"]
    if has("cond_stage_model.model."):
        return FAMILIES["sd2"]
    return FAMILIES["sd1"]


def check_spec(family: Family, spec: GenerationSpec) -> None:
    """Refuse what ``family`` cannot do with ``spec``, saying why (nothing is queued)."""
    if spec.negative_prompt.strip() and not family.negative_prompt:
        raise InvalidRequest(
            f"{family.label} ignores the negative prompt (its guidance is distilled into the "
            "model, there is no unconditional pass): leave it out and say what you want instead."
        )
    family.scheduler(spec.sampler)
    if spec.mode is Mode.IMG2IMG and not family.img2img:
        raise InvalidRequest(f"{family.label} models cannot start from an image here.")
    if spec.mode is Mode.INPAINT and not family.inpaint:
        raise InvalidRequest(f"{family.label} models cannot repaint part of a picture here.")
    if spec.refiner is not None and not family.takes_refiner:
        raise InvalidRequest(
            f"{family.label} models take no refiner: the refiner stage is SDXL's (its refiner "
            "finishes an SDXL picture's last steps). Leave out --refiner."
        )
    if spec.hires is not None and not family.hires:
        raise InvalidRequest(
            f"The hires fix is not available for {family.label} models: ask for the final "
            "size directly."
        )
    if spec.hires is not None and is_latent(spec.hires.upscaler) and not family.latent_hires:
        raise InvalidRequest(
            f"{family.label} models cannot use the hires upscaler {shown(spec.hires.upscaler)}: "
            "the latent upscalers resize Stable Diffusion's latents, which this family does not "
            "have. Use Lanczos (the default), Nearest or a registered upscaler."
        )


def registration_defaults(
    family: Family, given: Mapping[str, Any], max_pixels: int
) -> dict[str, Any]:
    """``given`` (the admin's ``--default-*`` values, None = not given) completed with the
    family's defaults where the registry's Stable Diffusion 1.x defaults would not apply; the
    family's size only where this server allows it (``max_pixels``)."""
    out = {key: value for key, value in given.items() if value is not None}
    if family.name in {"sd1", "other"}:
        return out  # the registry's own defaults are SD 1.x's
    out.setdefault("sampler", family.default_sampler)
    out.setdefault("steps", family.default_steps)
    out.setdefault("cfg", family.default_cfg)
    fits = family.default_width * family.default_height <= max_pixels
    if "width" not in out and fits:
        out["width"], out["height"] = family.default_width, family.default_height
    return out


def default_sampler(family: Family, registered: str) -> str:
    """The sampler a request that names none gets: the model's registered default, or the
    family's where that one does not apply (a Hub Flux model registered before it was
    downloaded got Stable Diffusion's defaults)."""
    try:
        family.scheduler(registered)
    except InvalidRequest:
        return family.default_sampler
    return registered
