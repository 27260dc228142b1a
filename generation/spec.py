"""The frozen parameters of one job: everything needed to render it again exactly."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any

MAX_SEED = 2**32 - 1


class Mode(StrEnum):
    """What the backend does."""

    TXT2IMG = "txt2img"
    IMG2IMG = "img2img"
    UPSCALE = "upscale"


class Action(StrEnum):
    """How a job came to be (its lineage)."""

    DRAW = "draw"
    RERUN = "rerun"
    REROLL = "reroll"
    UPSCALE = "upscale"
    VARY = "vary"


VARY_STRENGTHS: dict[str, float] = {"subtle": 0.35, "strong": 0.7}


@dataclass(frozen=True)
class GenerationSpec:
    """Resolved, validated parameters. Image ``i`` of a job uses seed ``seed + i``.

    ``width``/``height`` are the output size. ``init_image`` is the sha256 of a stored image
    (an upload, or the parent's image for vary/upscale). For ``Mode.UPSCALE`` ``upscaler`` is
    ``"hires"`` (Lanczos, then image-to-image at ``strength``) or a registered upscaler name.
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
        return cls(**fields)

    def batch_key(self) -> tuple[object, ...]:
        """Jobs with equal keys can share one pipeline call (text-to-image only)."""
        return (self.mode, self.model, self.sampler, self.width, self.height, self.steps, self.cfg)
