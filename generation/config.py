"""The generation and limits sections of the config: typed, validated, frozen.

They live here, not in ``bot/``, so the engine never imports a front end; ``bot.config`` puts them
into the whole :class:`bot.config.Config` next to the front ends' own sections.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Section(BaseModel):
    """A config section: unknown keys are errors, values are frozen after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StyleConfig(Section):
    """A prompt style every scope may use (``[generation.styles.NAME]``; see
    :mod:`generation.styles`): ``{prompt}`` in ``prompt`` takes the request's prompt."""

    prompt: str = Field("", max_length=2000)
    negative_prompt: str = Field("", max_length=2000)


class GenerationConfig(Section):
    device: Literal["auto", "cuda", "mps", "cpu"] = "auto"
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = "auto"
    # CPU offload for models bigger than the GPU (generation.backend.family_calls.place).
    offload: Literal["none", "model", "sequential"] = "none"
    max_width: int = Field(1536, ge=64, le=8192)
    max_height: int = Field(1536, ge=64, le=8192)
    max_pixels: int = Field(1024 * 1024, ge=64 * 64)
    max_upscale_pixels: int = Field(2048 * 2048, ge=64 * 64)
    max_steps: int = Field(60, ge=1, le=500)
    max_count: int = Field(4, ge=1, le=16)
    min_cfg: float = Field(0.0, ge=0.0)
    max_cfg: float = Field(30.0, ge=0.0, le=100.0)
    max_prompt_length: int = Field(1500, ge=1, le=100_000)
    # "refuse": out-of-range values are errors; "clamp": they are moved into range.
    on_excess: Literal["refuse", "clamp"] = "refuse"
    upscale_strength: float = Field(0.3, gt=0.0, le=1.0)
    max_batch: int = Field(4, ge=1, le=64)
    max_attempts: int = Field(3, ge=1, le=20)
    resident_models: int = Field(2, ge=1, le=16)
    cpu_threads: int = Field(0, ge=0, le=256)  # 0 = torch's default (all cores)
    previews: bool = True
    # TAESD AutoencoderTiny (local folder or Hub id) decoding previews; "" = latent projection.
    preview_decoder: str = Field("", max_length=500)
    # torch.compile the UNet (CUDA only; pipeline calls are padded to power-of-two batch sizes).
    compile: bool = False
    # Byte budget of resident pipelines in GiB (least recently used evicted); 0 = count only.
    resident_memory_gb: float = Field(0.0, ge=0.0, le=4096.0)
    allow_unsafe_weights: bool = False
    shutdown_grace_seconds: float = Field(20.0, ge=0.0)
    # Seconds a 512x512, 20-step, one-image job is assumed to take until real timings exist
    # (generation/estimate.py scales it to each job's size).
    initial_job_seconds: float = Field(10.0, gt=0.0)
    # Prompt styles for every scope, by name (servers and chats add their own).
    styles: dict[str, StyleConfig] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_sizes(self) -> GenerationConfig:
        if self.max_width % 8 or self.max_height % 8:
            raise ValueError("generation.max_width and max_height must be multiples of 8")
        if self.min_cfg > self.max_cfg:
            raise ValueError("generation.min_cfg must not exceed generation.max_cfg")
        return self


class LimitsConfig(Section):
    rate_per_minute: float = Field(6.0, gt=0.0)
    burst: int = Field(3, ge=1)
    max_queued_per_user: int = Field(5, ge=1)
    daily_quota: int = Field(0, ge=0)  # 0 = unlimited
    max_queue: int = Field(1000, ge=1)
    # Admins skip the per-user limits above (rate, burst, waiting cap, daily quota); the global
    # queue cap and the size/steps limits still hold for them.
    exempt_admins: bool = True
