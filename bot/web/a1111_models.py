"""AUTOMATIC1111 request models, FastAPI-style validation errors, samplers and checkpoint names.

Request models follow A1111-API.md §4.1/§4.2: every field optional and nullable, unknown keys
ignored, pydantic's lax coercion (``"7"`` is 7). A body that does not fit gives FastAPI's 422
``{"detail": [{"loc": ["body", "steps"], "msg": ..., "type": "type_error.integer"}]}``.
Fields where Easel has nothing to offer (scripts, face restoration, a second checkpoint for the
hires pass) are refused with a clear 422 by the handlers rather than silently ignored; cosmetic
ones are ignored. Masks and the hires fix become Easel requests in ``a1111_jobs``.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.web.errors import A1111Validation
from generation.errors import InvalidRequest
from generation.metadata import short_hash
from generation.samplers import SAMPLERS
from storage.records import ModelRecord

# ---------------------------------------------------------------------- request models

M = TypeVar("M", bound=BaseModel)


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)


class GenerationRequest(_Request):
    """Fields shared by txt2img and img2img (§4.1). ``None`` = Easel's or the model's default."""

    prompt: str | list[str] | None = ""
    negative_prompt: str | list[str] | None = ""
    styles: list[str] | None = None
    seed: int | None = -1
    subseed: int | None = -1
    subseed_strength: float | None = 0.0
    seed_resize_from_h: int | None = -1
    seed_resize_from_w: int | None = -1
    sampler_name: str | None = None
    sampler_index: str | None = None
    scheduler: str | None = None
    batch_size: int | None = Field(1, ge=1)
    n_iter: int | None = Field(1, ge=1)
    steps: int | None = None
    cfg_scale: float | None = None
    width: int | None = None
    height: int | None = None
    restore_faces: bool | None = None
    tiling: bool | None = None
    do_not_save_samples: bool | None = False
    do_not_save_grid: bool | None = False
    eta: float | None = None
    s_min_uncond: float | None = None
    s_churn: float | None = None
    s_tmax: float | None = None
    s_tmin: float | None = None
    s_noise: float | None = None
    override_settings: dict[str, Any] | None = None
    override_settings_restore_afterwards: bool | None = True
    refiner_checkpoint: str | None = None
    refiner_switch_at: float | None = None
    disable_extra_networks: bool | None = False
    comments: dict[str, Any] | None = None
    script_name: str | None = None
    script_args: list[Any] | None = None
    send_images: bool | None = True
    save_images: bool | None = False
    alwayson_scripts: dict[str, Any] | None = None
    infotext: str | None = None
    force_task_id: str | None = None


class Txt2ImgRequest(GenerationRequest):
    enable_hr: bool | None = False
    denoising_strength: float | None = None
    firstphase_width: int | None = 0
    firstphase_height: int | None = 0
    hr_scale: float | None = 2.0
    hr_upscaler: str | None = None
    hr_second_pass_steps: int | None = 0
    hr_resize_x: int | None = 0
    hr_resize_y: int | None = 0
    hr_checkpoint_name: str | None = None
    hr_sampler_name: str | None = None
    hr_scheduler: str | None = None
    hr_prompt: str | None = ""
    hr_negative_prompt: str | None = ""
    firstpass_image: str | None = None


class Img2ImgRequest(GenerationRequest):
    init_images: list[str] | None = None
    denoising_strength: float | None = 0.75
    resize_mode: int | None = 0
    image_cfg_scale: float | None = None
    mask: str | None = None
    mask_blur_x: int | None = 4
    mask_blur_y: int | None = 4
    mask_blur: int | None = None
    mask_round: bool | None = True
    inpainting_fill: int | None = 0
    inpaint_full_res: bool | int | None = True
    inpaint_full_res_padding: int | None = 0
    inpainting_mask_invert: int | None = 0
    initial_noise_multiplier: float | None = None
    latent_mask: str | None = None
    include_init_images: bool | None = False


class ImageRequest(_Request):
    """png-info."""

    image: str | None = ""


class ExtrasRequest(_Request):
    """extra-single-image (§4.3)."""

    image: str | None = ""
    resize_mode: int | None = Field(0, ge=0, le=1)
    show_extras_results: bool | None = True
    gfpgan_visibility: float | None = 0.0
    codeformer_visibility: float | None = 0.0
    codeformer_weight: float | None = 0.0
    upscaling_resize: float | None = Field(2.0, gt=0)
    upscaling_resize_w: int | None = Field(512, ge=1)
    upscaling_resize_h: int | None = Field(512, ge=1)
    upscaling_crop: bool | None = True
    upscaler_1: str | None = None
    upscaler_2: str | None = "None"
    extras_upscaler_2_visibility: float | None = 0.0
    upscale_first: bool | None = False


class BatchItem(_Request):
    data: str
    name: str | None = ""


class ExtrasBatchRequest(ExtrasRequest):
    imageList: list[BatchItem] | None = None  # A1111's spelling


# pydantic v2 error types -> pydantic v1 wording, which A1111 (FastAPI 0.94) answers with.
_V1: dict[str, tuple[str, str]] = {
    "int_parsing": ("value is not a valid integer", "type_error.integer"),
    "int_type": ("value is not a valid integer", "type_error.integer"),
    "int_from_float": ("value is not a valid integer", "type_error.integer"),
    "float_parsing": ("value is not a valid float", "type_error.float"),
    "float_type": ("value is not a valid float", "type_error.float"),
    "finite_number": ("value is not a valid float", "type_error.float"),
    "string_type": ("str type expected", "type_error.str"),
    "bool_parsing": ("value could not be parsed to a boolean", "type_error.bool"),
    "bool_type": ("value could not be parsed to a boolean", "type_error.bool"),
    "list_type": ("value is not a valid list", "type_error.list"),
    "dict_type": ("value is not a valid dict", "type_error.dict"),
    "model_type": ("value is not a valid dict", "type_error.dict"),
    "model_attributes_type": ("value is not a valid dict", "type_error.dict"),
    "missing": ("field required", "value_error.missing"),
}
_LIMITS: dict[str, tuple[str, str, str]] = {
    "greater_than_equal": ("ge", "greater than or equal to", "not_ge"),
    "greater_than": ("gt", "greater than", "not_gt"),
    "less_than_equal": ("le", "less than or equal to", "not_le"),
    "less_than": ("lt", "less than", "not_lt"),
}


def _v1_errors(error: ValidationError) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    for item in error.errors():
        raw_loc = item["loc"]
        # Drop pydantic v2's union-member tags ("str", "list[str]"): keep fields and indexes.
        loc: list[Any] = ["body"]
        if raw_loc:
            loc.append(raw_loc[0])
            loc.extend(part for part in raw_loc[1:] if isinstance(part, int))
        key = tuple(loc)
        if key in seen:
            continue
        seen.add(key)
        kind = item["type"]
        entry: dict[str, Any]
        if kind in _LIMITS:
            ctx_key, words, suffix = _LIMITS[kind]
            limit = (item.get("ctx") or {}).get(ctx_key)
            entry = {
                "loc": loc,
                "msg": f"ensure this value is {words} {limit}",
                "type": f"value_error.number.{suffix}",
                "ctx": {"limit_value": limit},
            }
        else:
            msg, v1_type = _V1.get(kind, (item["msg"], kind))
            entry = {"loc": loc, "msg": msg, "type": v1_type}
        out.append(entry)
    return out


def validate(model: type[M], body: Any) -> M:
    """``body`` as ``model``, or :class:`A1111Validation` with FastAPI's error list."""
    if body is None:
        raise A1111Validation(
            [{"loc": ["body"], "msg": "field required", "type": "value_error.missing"}]
        )
    try:
        return model.model_validate(body)
    except ValidationError as error:
        raise A1111Validation(_v1_errors(error)) from None


# ---------------------------------------------------------------------- samplers (§7)

# (A1111 name, aliases, options as strings like v1.10, Easel's choice for "Automatic")
A1111_SAMPLERS: tuple[tuple[str, tuple[str, ...], dict[str, str], str], ...] = (
    ("DPM++ 2M", ("k_dpmpp_2m",), {"scheduler": "karras"}, "DPM++ 2M Karras"),
    (
        "DPM++ SDE",
        ("k_dpmpp_sde",),
        {"scheduler": "karras", "second_order": "True", "brownian_noise": "True"},
        "DPM++ SDE Karras",
    ),
    ("DPM++ 2M SDE", ("k_dpmpp_2m_sde",), {"brownian_noise": "True"}, "DPM++ 2M SDE"),
    ("Euler a", ("k_euler_a", "k_euler_ancestral"), {"uses_ensd": "True"}, "Euler a"),
    ("Euler", ("k_euler",), {}, "Euler"),
    ("LMS", ("k_lms",), {}, "LMS"),
    ("Heun", ("k_heun",), {"second_order": "True"}, "Heun"),
    ("DDIM", ("ddim",), {}, "DDIM"),
    ("PLMS", ("plms",), {}, "PLMS"),
    ("UniPC", ("unipc",), {}, "UniPC"),
    ("LCM", ("k_lcm",), {}, "LCM"),
)

# A1111's schedulers (name, label, aliases); Easel renders "automatic" and "karras".
A1111_SCHEDULERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("automatic", "Automatic", ()),
    ("uniform", "Uniform", ()),
    ("karras", "Karras", ()),
    ("exponential", "Exponential", ()),
    ("polyexponential", "Polyexponential", ()),
    ("sgm_uniform", "SGM Uniform", ("SGMUniform",)),
    ("kl_optimal", "KL Optimal", ()),
    ("align_your_steps", "Align Your Steps", ()),
    ("simple", "Simple", ()),
    ("normal", "Normal", ()),
    ("ddim", "DDIM", ()),
    ("beta", "Beta", ()),
)
SUPPORTED_SCHEDULERS = ("automatic", "karras")

_SAMPLER_BY_LOWER = {
    key.lower(): entry for entry in A1111_SAMPLERS for key in (entry[0], *entry[1])
}
_SCHEDULER_BY_LOWER = {
    key.lower(): name
    for name, label, aliases in A1111_SCHEDULERS
    for key in (name, label, *aliases)
}
_SUFFIX_RE = re.compile(r"^(.*\S)\s+(\S.*)$")


def _scheduler(value: str | None) -> str | None:
    """The scheduler's name, or None for "not set" (an unknown value counts as not set, §7.3)."""
    if value is None or not value.strip():
        return None
    return _SCHEDULER_BY_LOWER.get(" ".join(value.split()).lower())


def _split_legacy(name: str) -> tuple[str, str | None]:
    """``"DPM++ 2M Karras"`` -> ``("DPM++ 2M", "karras")`` (longest scheduler suffix first)."""
    lowered = " ".join(name.split())
    for _, label, aliases in sorted(A1111_SCHEDULERS, key=lambda s: -len(s[1])):
        for suffix in (label, *aliases):
            if lowered.lower().endswith(" " + suffix.lower()):
                base = lowered[: -len(suffix) - 1].strip()
                if base.lower() in _SAMPLER_BY_LOWER:
                    return base, _SCHEDULER_BY_LOWER[suffix.lower()]
    return lowered, None


def resolve_a1111_sampler(
    sampler_name: str | None, sampler_index: str | None, scheduler: str | None
) -> tuple[str, str, str] | None:
    """``(Easel sampler, A1111 sampler, schedule label)``, or None to use the model's default.

    Accepts canonical names, legacy ``"<name> <Scheduler>"`` spellings and k-diffusion aliases,
    case-insensitively. Unlike A1111 (which silently falls back to its first sampler), an
    unknown sampler or a schedule type Easel cannot render is refused with the choices.
    """
    name = (sampler_name or "").strip() or (sampler_index or "").strip()
    if not name:
        return None
    base, suffix_scheduler = _split_legacy(name)
    chosen = _scheduler(scheduler) or suffix_scheduler or "automatic"
    entry = _SAMPLER_BY_LOWER.get(base.lower())
    if entry is None:
        names = ", ".join(s[0] for s in A1111_SAMPLERS)
        raise InvalidRequest(f"Sampler {name!r} not found. Easel's samplers: {names}.")
    canonical, _, options, automatic = entry
    if chosen == "automatic":
        easel = automatic
        label = "Karras" if options.get("scheduler") == "karras" else "Automatic"
    elif chosen == "karras":
        easel = f"{canonical} Karras"
        label = "Karras"
        if easel not in SAMPLERS:
            raise InvalidRequest(f"Sampler {canonical!r} has no Karras schedule in Easel.")
    else:
        raise InvalidRequest(
            f"Schedule type {scheduler or name!r} is not available in Easel: use Automatic or "
            "Karras."
        )
    return easel, canonical, label


def a1111_sampler_of(easel_sampler: str) -> tuple[str, str]:
    """An Easel sampler name as ``(A1111 sampler, schedule label)``."""
    base, scheduler = _split_legacy(easel_sampler)
    entry = _SAMPLER_BY_LOWER.get(base.lower())
    canonical = entry[0] if entry else easel_sampler
    if scheduler == "karras":
        return canonical, "Karras"
    return canonical, "Automatic"


# ---------------------------------------------------------------------- checkpoints (§4.8)


def model_sha256(model: ModelRecord) -> str | None:
    revision = (model.revision or "").lower()
    return revision if re.fullmatch(r"[0-9a-f]{64}", revision) else None


def model_title(model: ModelRecord) -> str:
    short = short_hash(model.revision)
    return f"{model.name} [{short}]" if short else model.name


def sd_model_entry(model: ModelRecord) -> dict[str, Any]:
    return {
        "title": model_title(model),
        "model_name": model.name,
        "hash": short_hash(model.revision),
        "sha256": model_sha256(model),
        "filename": model.source,
        "config": model.config,
    }


def find_checkpoint(models: list[ModelRecord], text: str) -> ModelRecord | None:
    """A diffusion model by any of A1111's aliases: title, name, short hash, sha256, file stem."""
    wanted = text.strip()
    diffusion = [m for m in models if m.kind != "upscaler"]
    for model in diffusion:
        stem = re.sub(r"\.[A-Za-z0-9]+$", "", model.source.replace("\\", "/").rsplit("/", 1)[-1])
        aliases = {model.name, model_title(model), stem}
        short = short_hash(model.revision)
        if short:
            aliases |= {short, f"{model.name} [{short}]"}
        sha = model_sha256(model)
        if sha:
            aliases.add(sha)
        if wanted in aliases:
            return model
    lowered = wanted.lower()
    return next((m for m in diffusion if m.name.lower() == lowered), None)
