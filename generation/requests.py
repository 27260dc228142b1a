"""Platform-neutral requests that adapters build and the Service consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Visibility(StrEnum):
    """Which jobs a caller may read and act on, besides their own.

    The front end decides, because it knows where its results are shown:

    * ``OWN``: only the caller's own jobs (an HTTP API credential: nobody else's prompts);
    * ``SCOPE``: also every job of the caller's scope, where results are posted for everyone in
      it to see (a Discord server, a Telegram chat); other scopes' jobs do not exist for them;
    * ``ALL``: every job (the machine's owner: the command line, a web admin).
    """

    OWN = "own"
    SCOPE = "scope"
    ALL = "all"


@dataclass(frozen=True)
class Origin:
    """Who asked, where, and where the answer goes.

    ``platform`` is where the job's results go: "cli", "web", "api", "discord" or "telegram";
    ``scope_id`` is the server, chat or client the request came from (its settings apply);
    ``reply_target`` is adapter-private data (channel and message ids...) stored with the job so
    the result can be delivered after a restart.

    ``user_platform`` is the platform whose users ``user_id`` names, when that is not
    ``platform``: the A1111 API (platform "api") names the web's credentials, so one credential
    is one person on both HTTP APIs (their jobs, history and rate limit are shared).

    ``channel_id`` and ``nsfw_default`` feed the NSFW check: the scope's setting for that
    channel, else ``nsfw_default`` ("refuse", "spoiler" or "allow"; "allow" checks nothing).

    ``is_owner``: one of the machine's owners (``discord.owner_ids``, ``telegram.owner_ids``):
    may add files every scope shares (a LoRA uploaded in a chat), which a server's or chat's
    admins (``is_admin``) may not.
    """

    platform: str
    scope_id: str
    user_id: str
    user_name: str = ""
    scope_name: str = ""
    reply_target: dict[str, Any] = field(default_factory=dict)
    is_admin: bool = False
    sees: Visibility = Visibility.OWN
    user_platform: str = ""
    channel_id: str | None = None
    nsfw_default: str = "allow"
    is_owner: bool = False

    @property
    def person(self) -> tuple[str, str]:
        """(platform, user id) of the person asking, as the store keys users."""
        return (self.user_platform or self.platform, self.user_id)


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
    # Inpainting an upload (A1111's img2img with a mask): ``init_image`` and its ``mask``, with
    # A1111's inpaint options (see InpaintRequest; its prompt and strength are this request's).
    mask: InpaintRequest | None = None
    # Prompt styles by name (``--style``, A1111's ``styles``), applied in this order.
    styles: tuple[str, ...] = ()
    # Text-to-image only: render, upscale, render again (A1111's "Hires. fix"; ``--hires 2``).
    hires: HiresRequest | None = None
    # Text-to-image on SDXL only: a registered refiner finishes the picture (``--refiner NAME``,
    # A1111's ``refiner_checkpoint``) after ``refiner_switch_at`` of the steps (None = 0.8).
    refiner: str | None = None
    refiner_switch_at: float | None = None


@dataclass(frozen=True)
class HiresRequest:
    """AUTOMATIC1111's hires fix for a text-to-image request (``enable_hr`` and its fields).

    ``scale`` (1 < x <= 4) multiplies the first pass's size unless ``resize_x``/``resize_y``
    (px, 0 = not given) set the final size: one of them keeps the aspect ratio, both crop to
    it. ``upscaler``: an A1111 latent mode ("Latent", "Latent (bicubic)", ...), "Lanczos",
    "Nearest", "None" (a Lanczos resize) or a registered upscaler's name; None = "Lanczos", the
    Upscale action's. ``steps``: the second pass's, 0 = the request's. ``strength``: the second
    pass's denoising strength, None = ``generation.upscale_strength`` (the Upscale action's).
    """

    scale: float = 2.0
    resize_x: int = 0
    resize_y: int = 0
    upscaler: str | None = None
    steps: int = 0
    strength: float | None = None


@dataclass(frozen=True)
class InpaintRequest:
    """Repaint part of a finished job's image (``Service.inpaint``), AUTOMATIC1111's fields.

    ``mask``: raw upload bytes (PNG, JPEG, WebP, GIF or BMP; validated and re-encoded by the
    service), white = repaint, grey levels from 128 count as white; the image's size, or its
    shape (then it is resized). ``prompt``/``negative_prompt``: None keeps the job's.
    ``strength``: None = 0.75. ``inpainting_fill``: 0 fill, 1 original, 2 latent noise,
    3 latent nothing. ``inpaint_full_res``: "only masked", with ``inpaint_full_res_padding`` px.
    ``region``: a preset instead of a mask, for front ends without a brush.
    """

    mask: bytes
    prompt: str | None = None
    negative_prompt: str | None = None
    strength: float | None = None
    mask_blur: int = 4
    inpainting_fill: int = 1
    inpaint_full_res: bool = False
    inpaint_full_res_padding: int = 32
    mask_invert: bool = False
    # Instead of ``mask`` (left empty): a region preset or box of generation.regions ("left",
    # "10,20,50,40"), drawn at the image's size by the Service.
    region: str | None = None
