"""Platform-neutral requests that adapters build and the Service consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Origin:
    """Who asked, where, and where the answer goes.

    ``platform`` is "cli", "web", "api", "discord" or "telegram"; ``scope_id`` is the server,
    chat or client the request came from; ``reply_target`` is adapter-private data (channel and
    message ids...) stored with the job so the result can be delivered after a restart.
    """

    platform: str
    scope_id: str
    user_id: str
    user_name: str = ""
    scope_name: str = ""
    reply_target: dict[str, Any] = field(default_factory=dict)
    is_admin: bool = False


@dataclass(frozen=True)
class DrawRequest:
    """A text- or image-to-image request. ``None`` means "use the model's/server's default"."""

    prompt: str
    negative_prompt: str = ""
    seed: int | None = None
    steps: int | None = None
    cfg: float | None = None
    width: int | None = None
    height: int | None = None
    aspect: str | None = None  # "3:2"; used when width/height are not given
    sampler: str | None = None
    model: str | None = None
    count: int | None = None
    strength: float | None = None
    init_image: bytes | None = None  # raw upload bytes; validated and re-encoded by the service
