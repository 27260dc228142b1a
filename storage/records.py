"""Plain frozen records that the repository returns (never ORM objects, nothing lazy)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from generation.spec import INPAINT_KEYS, Action, AddOn, GenerationSpec, Hires, Mode, Refiner


class JobStatus(StrEnum):
    """``queued -> running -> succeeded | failed | cancelled`` (compares equal to the strings)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


@dataclass(frozen=True)
class UserRecord:
    id: int
    platform: str
    platform_user_id: str
    display_name: str
    created_at: datetime


@dataclass(frozen=True)
class ScopeRecord:
    id: int
    platform: str
    platform_scope_id: str
    name: str
    settings: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class ModelRecord:
    name: str
    source: str
    kind: str  # "builtin" | "hub" | "folder" | "single_file" | "upscaler"
    revision: str | None
    config: str | None
    default_width: int
    default_height: int
    default_steps: int
    default_cfg: float
    default_sampler: str
    is_default: bool
    created_at: datetime
    dtype: str | None = None  # on a GPU: float16 | bfloat16 | float32; None = the config's


@dataclass(frozen=True)
class ImageRecord:
    job_id: str
    index: int
    seed: int
    sha256: str
    width: int
    height: int


@dataclass(frozen=True)
class PlatformMessage:
    """A chat message that shows a job (see :class:`storage.models.PlatformMessageRow`)."""

    platform: str
    chat_id: str
    message_id: str
    job_id: str
    image_index: int | None
    role: str  # "result" | "status"
    created_at: datetime


@dataclass(frozen=True)
class NewImage:
    """One rendered image, already saved in the ImageStore under ``sha256``."""

    index: int
    seed: int
    sha256: str
    width: int
    height: int


@dataclass(frozen=True)
class NewJob:
    """What the service hands to :meth:`storage.repository.Store.add_job`."""

    spec: GenerationSpec
    user_id: int
    scope_id: int
    platform: str
    action: Action = Action.DRAW
    model_revision: str | None = None
    parent_id: str | None = None
    parent_index: int | None = None
    reply_target: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobRecord:
    id: str
    seq: int
    mode: Mode
    action: Action
    prompt: str
    negative_prompt: str
    model: str
    model_revision: str | None
    sampler: str
    width: int
    height: int
    steps: int
    cfg: float
    seed: int
    count: int
    strength: float | None
    init_image: str | None
    upscaler: str | None
    parent_id: str | None
    parent_index: int | None
    user_id: int
    scope_id: int
    platform: str
    reply_target: dict[str, Any]
    status: JobStatus
    attempt: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    delivered_at: datetime | None
    delivery_attempts: int
    delivery_error: str | None
    images: tuple[ImageRecord, ...] = ()
    mask_image: str | None = None
    inpaint: dict[str, Any] | None = None  # INPAINT_KEYS -> value, for inpaint jobs
    hires: dict[str, Any] | None = None  # generation.spec.Hires as a dict, hires fix jobs
    refiner: dict[str, Any] | None = None  # generation.spec.Refiner as a dict, refined jobs
    loras: tuple[dict[str, Any], ...] = ()  # generation.spec.AddOn as dicts
    embeddings: tuple[dict[str, Any], ...] = ()
    prompt_syntax: str = "plain"

    @property
    def spec(self) -> GenerationSpec:
        return GenerationSpec(
            mode=self.mode,
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            model=self.model,
            sampler=self.sampler,
            width=self.width,
            height=self.height,
            steps=self.steps,
            cfg=self.cfg,
            seed=self.seed,
            count=self.count,
            strength=self.strength,
            init_image=self.init_image,
            upscaler=self.upscaler,
            mask_image=self.mask_image,
            hires=None if self.hires is None else Hires.from_dict(self.hires),
            refiner=None if self.refiner is None else Refiner.from_dict(self.refiner),
            loras=tuple(AddOn.from_dict(item) for item in self.loras),
            embeddings=tuple(AddOn.from_dict(item) for item in self.embeddings),
            prompt_syntax=self.prompt_syntax,
            **{key: value for key, value in (self.inpaint or {}).items() if key in INPAINT_KEYS},
        )

    @property
    def seeds(self) -> list[int]:
        return [self.seed + i for i in range(self.count)]

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES
