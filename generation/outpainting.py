"""Outpainting: Zoom Out and Pan, built on inpainting (pure: Pillow and numpy, no torch).

An outpaint is an inpaint of a larger canvas: the picture is placed on it, the new border is
painted white in the mask, and the engine repaints the border (``Mode.INPAINT``, strength 1,
A1111's "fill" start). The canvas and the mask are stored like any upload, so a rerun is
identical and the job's lineage points at the picture it extends.

    zoom out F   the picture centred on a canvas F times its size (1 < F <= 2)
    pan left     the canvas extended by half the picture's width on the left (right, up, down
                 likewise: half the width, or half the height)

The canvas keeps the model's multiple of 8 (its sides are rounded up, so the picture keeps its
pixels) and the admin's size limits (the Service's policy refuses it, or with
``generation.on_excess = "clamp"`` shrinks the canvas and the picture with it). The mask
reaches ``OVERLAP`` px into the picture on each side that grows, so the seam is repainted
too; beyond that and the blur band the picture's pixels are unchanged.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from generation.errors import InvalidRequest, shown
from generation.spec import GenerationSpec, Mode
from storage.records import JobRecord

ZOOM_FACTORS = (1.5, 2.0)  # what buttons offer; the CLI and API take any factor in (1, 2]
MAX_ZOOM = 2.0
PAN_DIRECTIONS = ("left", "right", "up", "down")
PAN_GROWTH = 0.5  # a pan adds half a side
OVERLAP = 8  # px of the picture repainted along each new edge (one latent pixel)
MASK_BLUR = 8  # A1111's outpainting scripts' default blur
STRENGTH = 1.0  # the border starts from noise: there is nothing there to keep
FILL = 0  # A1111's "fill": the border starts from the picture's colours, blurred outwards


@dataclass(frozen=True)
class Outpaint:
    """How much the canvas grows on each side, as fractions of the picture's width/height."""

    name: str  # "zoom 2", "pan left": stored with the job, shown in headlines
    left: float
    top: float
    right: float
    bottom: float

    @property
    def kind(self) -> str:
        """ "zoom" or "pan"."""
        return self.name.split(" ", 1)[0]

    @property
    def value(self) -> str:
        """The factor of a zoom ("2", "1.5"), the direction of a pan ("left")."""
        return self.name.split(" ", 1)[1]

    @property
    def label(self) -> str:
        """How people read it: "Zoom out 2x", "Pan left"."""
        return f"Zoom out {self.value}x" if self.kind == "zoom" else f"Pan {self.value}"

    def canvas_size(self, width: int, height: int) -> tuple[int, int]:
        """The canvas for a ``width x height`` picture before any size limit: each side grown,
        rounded up to a multiple of 8 so the picture fits at its own size."""
        grown_w = width * (1 + self.left + self.right)
        grown_h = height * (1 + self.top + self.bottom)
        return _round_up(grown_w), _round_up(grown_h)


def _round_up(value: float) -> int:
    return max(8, math.ceil(value / 8 - 1e-9) * 8)


def zoom_out(factor: float | str) -> Outpaint:
    """Zoom out by ``factor`` (1 < factor <= 2; "1.5", "2x" accepted): the picture centred."""
    text = str(factor).strip().lower().removesuffix("x")
    try:
        value = float(text)
    except ValueError:
        raise InvalidRequest(
            f"Zoom out factor must be a number above 1 and at most {MAX_ZOOM:g}, e.g. 1.5 or 2; "
            f"got {shown(str(factor).strip())}."
        ) from None
    if not (math.isfinite(value) and 1.0 < value <= MAX_ZOOM):
        raise InvalidRequest(
            f"Zoom out factor must be above 1 and at most {MAX_ZOOM:g} (e.g. 1.5 or 2); "
            f"got {value:g}."
        )
    value = round(value, 2)
    side = (value - 1) / 2
    return Outpaint(f"zoom {value:g}", side, side, side, side)


def pan(direction: str) -> Outpaint:
    """Pan ``direction`` (left, right, up or down): half a side more canvas that way."""
    key = direction.strip().lower()
    key = {"top": "up", "bottom": "down"}.get(key, key)
    if key not in PAN_DIRECTIONS:
        raise InvalidRequest(
            f"Pan direction must be {', '.join(PAN_DIRECTIONS)}; got {shown(direction.strip())}."
        )
    growth = {
        "left": (PAN_GROWTH, 0.0, 0.0, 0.0),
        "up": (0.0, PAN_GROWTH, 0.0, 0.0),
        "right": (0.0, 0.0, PAN_GROWTH, 0.0),
        "down": (0.0, 0.0, 0.0, PAN_GROWTH),
    }[key]
    return Outpaint(f"pan {key}", *growth)


def parse_outpaint(name: str) -> Outpaint:
    """An outpaint from its stored name ("zoom 2", "pan left")."""
    kind, _, value = name.strip().partition(" ")
    if kind == "zoom":
        return zoom_out(value)
    if kind == "pan":
        return pan(value)
    raise InvalidRequest(f"Unknown outpaint {shown(name)}: use 'zoom F' or 'pan DIRECTION'.")


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def compose(picture: Image.Image, how: Outpaint, canvas: tuple[int, int]) -> tuple[bytes, bytes]:
    """The canvas (PNG, RGB) and its mask (PNG, grey, white = the new border) for ``picture``
    extended as ``how`` says on a canvas of ``canvas`` (the policy's size: ``how.canvas_size``
    or smaller, when the admin's limit shrank it; the picture shrinks by the same factor).

    The border starts as the picture's edge pixels stretched outwards (what a person sees as the
    job's starting image); the engine's "fill" replaces it before rendering anyway."""
    width, height = picture.size
    wanted_w, wanted_h = how.canvas_size(width, height)
    scale = min(1.0, canvas[0] / wanted_w, canvas[1] / wanted_h)
    shown_w, shown_h = max(8, round(width * scale)), max(8, round(height * scale))
    rgb = picture.convert("RGB")
    if (shown_w, shown_h) != picture.size:
        rgb = rgb.resize((shown_w, shown_h), Image.Resampling.LANCZOS)
    x0 = _offset(canvas[0] - shown_w, how.left, how.right)
    y0 = _offset(canvas[1] - shown_h, how.top, how.bottom)
    pad = ((y0, canvas[1] - shown_h - y0), (x0, canvas[0] - shown_w - x0), (0, 0))
    extended = Image.fromarray(np.pad(np.asarray(rgb), pad, mode="edge"))
    mask = Image.new("L", canvas, 255)
    keep = (
        x0 + (OVERLAP if x0 > 0 else 0),
        y0 + (OVERLAP if y0 > 0 else 0),
        x0 + shown_w - (OVERLAP if x0 + shown_w < canvas[0] else 0),
        y0 + shown_h - (OVERLAP if y0 + shown_h < canvas[1] else 0),
    )
    mask.paste(0, keep)
    return _png(extended), _png(mask)


def _offset(room: int, before: float, after: float) -> int:
    """Where the picture starts along one side: the spare ``room`` split as the growth is."""
    if room <= 0:
        return 0
    if before + after == 0:
        return room // 2
    return round(room * before / (before + after))


def outpaint_spec(
    parent: JobRecord,
    how: Outpaint,
    canvas: tuple[int, int],
    canvas_sha: str,
    mask_sha: str,
    seed: int,
) -> GenerationSpec:
    """The child job: the canvas inpainted where its mask is white, the parent's prompt."""
    return replace(
        parent.spec,
        mode=Mode.INPAINT,
        width=canvas[0],
        height=canvas[1],
        seed=seed,
        count=1,
        strength=STRENGTH,
        init_image=canvas_sha,
        upscaler=None,
        mask_image=mask_sha,
        mask_blur=MASK_BLUR,
        inpainting_fill=FILL,
        inpaint_full_res=False,
        inpaint_full_res_padding=0,
        mask_invert=False,
        outpaint=how.name,
    )
