"""The hires fix's policy (pure, no torch): upscaler names, sizes, and the :class:`Hires` a
request resolves to. The backend's half is ``generation.backend.hires``.

A text-to-image job with a hires fix renders its first pass at the spec's size, upscales each
image to the final size, and runs the Upscale action's image-to-image second pass on it (one
implementation for both: see ``DiffusersBackend._second_pass``).

Sizes follow AUTOMATIC1111's ``calculate_target_resolution``:

* ``resize_x`` = ``resize_y`` = 0: the final size is ``int(side * scale)``;
* one of them set: that side, the other keeps the aspect ratio (integer division, as A1111);
* both set: the picture is upscaled to cover that box, then cropped to it (A1111 crops the
  latents, ``truncate_x // 2`` latent columns on the left; here the same box in pixels).

Every size is then rounded down to a multiple of 8 (diffusers refuses others; A1111 loses the
remainder in the VAE). The admin's size limits apply to the final size: refused, or shrunk
with ``generation.on_excess = "clamp"`` (then the infotext says the size it became, as
``Hires resize``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from generation.errors import InvalidRequest
from generation.requests import HiresRequest
from generation.spec import Hires

# A1111's ``shared.latent_upscale_modes``: name -> (torch interpolate mode, antialias).
LATENT_MODES: dict[str, tuple[str, bool]] = {
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}
# Pixel upscalers every Easel has; "None" is A1111's plain Lanczos resize.
PIXEL_UPSCALERS = ("None", "Lanczos", "Nearest")
DEFAULT_UPSCALER = "Lanczos"  # the Upscale action's ("hires": Lanczos, then image-to-image)
MIN_SCALE, MAX_SCALE = 1.0, 4.0
MAX_RESIZE = 8192

# (width, height) -> the size within the admin's limits (or a refusal), see AdmissionPolicy.
SizeFit = Callable[[int, int], tuple[int, int]]


def builtin_upscaler(name: str) -> str | None:
    """The canonical spelling of a latent mode or pixel upscaler (any case), else None."""
    wanted = " ".join(name.split()).lower()
    for known in (*LATENT_MODES, *PIXEL_UPSCALERS):
        if known.lower() == wanted:
            return known
    return None


def is_latent(upscaler: str) -> bool:
    return upscaler in LATENT_MODES


def _multiple_of_8(value: int) -> int:
    return max(8, value // 8 * 8)


def target_size(
    width: int, height: int, scale: float, resize_x: int, resize_y: int
) -> tuple[int, int]:
    """The final size, before limits (A1111's ``hr_upscale_to`` or its resize box)."""
    if resize_x == 0 and resize_y == 0:
        final = int(width * scale), int(height * scale)
    elif resize_y == 0:
        final = resize_x, resize_x * height // width
    elif resize_x == 0:
        final = resize_y * width // height, resize_y
    else:
        final = resize_x, resize_y
    return _multiple_of_8(final[0]), _multiple_of_8(final[1])


def cover_size(first: tuple[int, int], final: tuple[int, int]) -> tuple[int, int]:
    """What the first pass is upscaled to before the crop to ``final``: A1111's rule for a
    resize box of another shape (the side that fits, the other from the aspect ratio)."""
    (width, height), (target_w, target_h) = first, final
    if width / height < target_w / target_h:
        cover = target_w, target_w * height // width
    else:
        cover = target_h * width // height, target_h
    return max(target_w, _multiple_of_8(cover[0])), max(target_h, _multiple_of_8(cover[1]))


def crop_box(cover: tuple[int, int], final: tuple[int, int]) -> tuple[int, int, int, int]:
    """The part of ``cover`` kept: A1111 drops ``truncate // 2`` latent cells on the left or
    top and the rest on the right or bottom (8 px per cell)."""
    left = (cover[0] - final[0]) // 8 // 2 * 8
    top = (cover[1] - final[1]) // 8 // 2 * 8
    return left, top, left + final[0], top + final[1]


def resolve(
    request: HiresRequest,
    width: int,
    height: int,
    *,
    default_strength: float,
    max_steps: int,
    fit: SizeFit,
) -> Hires:
    """The job's :class:`Hires` for a first pass of ``width`` x ``height``, or a refusal
    saying what is allowed. Registered upscalers are checked at admission (the store knows
    them); here any other name is passed on as given."""
    resize_x, resize_y = request.resize_x, request.resize_y
    if not (0 <= resize_x <= MAX_RESIZE and 0 <= resize_y <= MAX_RESIZE):
        raise InvalidRequest(f"Hires resize must be 0 (not set) to {MAX_RESIZE} pixels per side.")
    scale = request.scale
    if resize_x == 0 and resize_y == 0 and not (
        math.isfinite(scale) and MIN_SCALE < scale <= MAX_SCALE
    ):
        raise InvalidRequest(
            f"Hires scale {scale:g} is not allowed: it must be more than {MIN_SCALE:g} and at "
            f"most {MAX_SCALE:g} (e.g. --hires 2)."
        )
    strength = default_strength if request.strength is None else request.strength
    if not (math.isfinite(strength) and 0.0 < strength <= 1.0):
        raise InvalidRequest("Hires denoising strength must be greater than 0 and at most 1.")
    if not 0 <= request.steps <= max_steps:
        raise InvalidRequest(
            f"Hires steps must be 0 (the same as steps) to {max_steps}; got {request.steps}."
        )
    upscaler = DEFAULT_UPSCALER if request.upscaler is None else request.upscaler.strip()
    if not upscaler:
        upscaler = DEFAULT_UPSCALER
    upscaler = builtin_upscaler(upscaler) or upscaler
    final = target_size(width, height, scale, resize_x, resize_y)
    fitted = fit(*final)
    if fitted != final:  # shrunk to the limits: say the size it became
        resize_x, resize_y = fitted
    return Hires(
        width=fitted[0],
        height=fitted[1],
        upscaler=upscaler,
        strength=float(strength),
        steps=request.steps,
        scale=float(scale),
        resize_x=resize_x,
        resize_y=resize_y,
    )


def infotext_items(hires: Hires) -> dict[str, object]:
    """A1111's hires keys, in its order (``Denoising strength`` is written by the caller)."""
    items: dict[str, object] = {}
    if hires.resize_x == 0 and hires.resize_y == 0:
        items["Hires upscale"] = float(hires.scale)  # "2.0", as A1111's API writes it
    else:
        items["Hires resize"] = f"{hires.resize_x}x{hires.resize_y}"
    if hires.steps:
        items["Hires steps"] = hires.steps
    items["Hires upscaler"] = hires.upscaler
    return items

