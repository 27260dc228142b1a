"""The frozen parameters of one job: everything needed to render it again exactly."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

MAX_SEED = 2**32 - 1


class Mode(StrEnum):
    """What the backend does."""

    TXT2IMG = "txt2img"
    IMG2IMG = "img2img"
    UPSCALE = "upscale"
    INPAINT = "inpaint"


class Action(StrEnum):
    """How a job came to be (its lineage)."""

    DRAW = "draw"
    RERUN = "rerun"
    REROLL = "reroll"
    UPSCALE = "upscale"
    VARY = "vary"


VARY_STRENGTHS: dict[str, float] = {"subtle": 0.35, "strong": 0.7}

# The inpaint options a job stores (the store keeps them together, in the ``inpaint`` column).
INPAINT_KEYS = (
    "mask_blur",
    "inpainting_fill",
    "inpaint_full_res",
    "inpaint_full_res_padding",
    "mask_invert",
    "outpaint",
)


# How a job's prompt is read. "plain": handed to the pipeline as text (every job before issue
# 16, and their reruns); "a1111": AUTOMATIC1111's syntax (emphasis, 75-token chunks, BREAK).
PROMPT_SYNTAXES = ("plain", "a1111")


@dataclass(frozen=True)
class AddOn:
    """A LoRA or an embedding a job used: the registered name, the file's sha256 when the job
    was admitted (a rerun refuses a changed file) and, for a LoRA, its weight."""

    name: str
    sha256: str
    weight: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AddOn:
        return cls(**data)


@dataclass(frozen=True)
class Hires:
    """A text-to-image job's hires fix (AUTOMATIC1111's "Hires. fix"): the first pass at the
    spec's size, upscaled to ``width`` x ``height`` by ``upscaler``, then the upscale action's
    image-to-image second pass at ``strength`` for ``steps`` (0 = the job's steps).

    ``upscaler``: one of A1111's latent modes ("Latent", "Latent (antialiased)", ...), "Lanczos",
    "Nearest", or a registered upscaler's name (see :mod:`generation.hires`). ``scale``,
    ``resize_x`` and ``resize_y`` are what was asked, as A1111's infotext says it (``Hires
    upscale`` or ``Hires resize``); ``width``/``height`` the final size they resolved to.
    """

    width: int
    height: int
    upscaler: str
    strength: float
    steps: int = 0
    scale: float = 2.0
    resize_x: int = 0
    resize_y: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hires:
        return cls(**data)


@dataclass(frozen=True)
class Refiner:
    """A text-to-image job's SDXL refiner stage (AUTOMATIC1111's "Refiner"): the job's model
    denoises the first ``switch_at`` of the noise schedule, the registered model ``model``
    (at ``revision`` when the job was admitted; its infotext hash) finishes from its latents
    with the same prompts, sampler, steps, CFG and seeds (see :mod:`generation.refiner`)."""

    model: str
    switch_at: float = 0.8
    revision: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Refiner:
        return cls(**data)


@dataclass(frozen=True)
class GenerationSpec:
    """Resolved, validated parameters. Image ``i`` of a job uses seed ``seed + i``.

    ``width``/``height`` are the output size. ``init_image`` is the sha256 of a stored image
    (an upload, or the parent's image for vary/upscale). For ``Mode.UPSCALE`` ``upscaler`` is
    ``"hires"`` (Lanczos, then image-to-image at ``strength``) or a registered upscaler name.

    ``Mode.INPAINT`` repaints the white part of ``mask_image`` (the sha256 of a stored grey
    mask, the size of ``init_image``) as AUTOMATIC1111 does: ``mask_blur`` (px, Gaussian),
    ``inpainting_fill`` (what the masked area starts from: 0 fill, 1 original, 2 latent noise,
    3 latent nothing), ``inpaint_full_res`` ("only masked": render the mask's box plus
    ``inpaint_full_res_padding`` px at the job's size, paste it back) and ``mask_invert``.
    ``outpaint`` names an outpaint ("zoom 2", "zoom 1.5", "pan left"...): the inpaint of a
    larger canvas (``init_image``) whose new border is the mask; None for other inpaints.
    Other modes leave these at their defaults.

    ``hires``: a ``Mode.TXT2IMG`` job's hires fix (``width``/``height`` are then the first
    pass's size, as in A1111's infotext; :attr:`output_size` the images'); any other mode
    drops it, so a child made with ``replace(parent.spec, mode=...)`` never inherits it.

    ``refiner``: a ``Mode.TXT2IMG`` job's refiner stage (:class:`Refiner`); dropped by other
    modes as ``hires`` is.

    ``loras``/``embeddings``: the add-on files the job used (:class:`AddOn`);
    ``prompt_syntax``: how its prompts are read (:data:`PROMPT_SYNTAXES`).
    """

    mode: Mode
    prompt: str
    negative_prompt: str
    model: str
    sampler: str
    width: int
    height: int
    steps: int
    cfg: float
    seed: int
    count: int = 1
    strength: float | None = None
    init_image: str | None = None
    upscaler: str | None = None
    mask_image: str | None = None
    mask_blur: int = 4
    inpainting_fill: int = 1
    inpaint_full_res: bool = False
    inpaint_full_res_padding: int = 32
    mask_invert: bool = False
    outpaint: str | None = None
    hires: Hires | None = field(default=None)
    loras: tuple[AddOn, ...] = ()
    embeddings: tuple[AddOn, ...] = ()
    prompt_syntax: str = "plain"
    refiner: Refiner | None = None

    def __post_init__(self) -> None:
        if self.mode is not Mode.TXT2IMG:  # the hires fix and the refiner: text-to-image only
            if self.hires is not None:
                object.__setattr__(self, "hires", None)
            if self.refiner is not None:
                object.__setattr__(self, "refiner", None)

    @property
    def output_size(self) -> tuple[int, int]:
        """The size of the job's images: the hires fix's final size, else the spec's."""
        if self.hires is not None:
            return self.hires.width, self.hires.height
        return self.width, self.height

    def inpaint_options(self) -> dict[str, Any] | None:
        """The inpaint options as the store keeps them; None for other modes."""
        if self.mode is not Mode.INPAINT:
            return None
        options = {key: getattr(self, key) for key in INPAINT_KEYS}
        if self.outpaint is None:  # a plain inpaint: only A1111's options
            del options["outpaint"]
        return options

    @property
    def seeds(self) -> list[int]:
        return [self.seed + i for i in range(self.count)]

    def with_seed(self, seed: int) -> GenerationSpec:
        return replace(self, seed=seed)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mode"] = self.mode.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationSpec:
        fields = dict(data)
        fields["mode"] = Mode(fields["mode"])
        if fields.get("hires") is not None:
            fields["hires"] = Hires.from_dict(fields["hires"])
        if fields.get("refiner") is not None:
            fields["refiner"] = Refiner.from_dict(fields["refiner"])
        for key in ("loras", "embeddings"):
            fields[key] = tuple(AddOn.from_dict(item) for item in fields.get(key) or ())
        return cls(**fields)

    def batch_key(self) -> tuple[object, ...]:
        """Jobs with equal keys can share one pipeline call (text-to-image only)."""
        return (
            self.mode,
            self.model,
            self.sampler,
            self.width,
            self.height,
            self.steps,
            self.cfg,
            self.hires,
            self.loras,  # adapters are set per pipeline call
            self.embeddings,
            self.prompt_syntax,
            self.refiner,
        )
