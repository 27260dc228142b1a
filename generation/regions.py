"""Region presets: a mask from a word, for front ends without a brush (pure, Pillow only).

Discord's "🖌️ Vary (Region)", Telegram's keyboard and the CLI's ``--region`` offer:

    left, right, top, bottom   that half of the picture
    centre (or center)         the middle half of each side (a box from 25% to 75%)
    X,Y,W,H                    a box in percent of the picture: from X% across and Y% down,
                               W% wide and H% high ("10,20,50,40")

Each becomes a black picture with the region white (white = repaint), the picture's size, which
the Service checks and stores like a painted mask.
"""

from __future__ import annotations

import io
import re

from PIL import Image, ImageDraw

from generation.errors import InvalidRequest, shown

#: The named presets, as (left, top, right, bottom) fractions of the picture.
PRESETS: dict[str, tuple[float, float, float, float]] = {
    "left": (0.0, 0.0, 0.5, 1.0),
    "right": (0.5, 0.0, 1.0, 1.0),
    "top": (0.0, 0.0, 1.0, 0.5),
    "bottom": (0.0, 0.5, 1.0, 1.0),
    "centre": (0.25, 0.25, 0.75, 0.75),
}
_ALIASES = {"center": "centre", "middle": "centre", "up": "top", "down": "bottom"}
_BOX_RE = re.compile(r"^\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*$")
USAGE = "left, right, top, bottom, centre, or a box X,Y,W,H in percent (e.g. 10,20,50,40)"


def parse_region(text: str) -> tuple[float, float, float, float]:
    """A preset's or a box's (left, top, right, bottom) fractions, or a refusal saying which
    regions exist."""
    key = text.strip().lower()
    key = _ALIASES.get(key, key)
    if key in PRESETS:
        return PRESETS[key]
    match = _BOX_RE.match(key)
    if match is None:
        raise InvalidRequest(f"Unknown region {shown(text.strip())}: use {USAGE}.")
    x, y, w, h = (int(group) for group in match.groups())
    if w < 1 or h < 1 or x + w > 100 or y + h > 100:
        raise InvalidRequest(
            f"Region box {x},{y},{w},{h} must lie inside the picture: X+W and Y+H at most 100, "
            "W and H at least 1 (percent)."
        )
    if w == 100 and h == 100:
        raise InvalidRequest(
            "Region box 0,0,100,100 is the whole picture: use Vary for that, or a smaller box."
        )
    return x / 100, y / 100, (x + w) / 100, (y + h) / 100


def region_mask(text: str, size: tuple[int, int]) -> bytes:
    """The mask of region ``text`` for a picture of ``size``, as a PNG (white = repaint)."""
    left, top, right, bottom = parse_region(text)
    width, height = size
    mask = Image.new("L", size, 0)
    x0, y0 = round(left * width), round(top * height)
    x1, y1 = max(x0 + 1, round(right * width)), max(y0 + 1, round(bottom * height))
    # Pillow's rectangle includes its end point: the last column/row is x1 - 1, y1 - 1.
    ImageDraw.Draw(mask).rectangle((x0, y0, x1 - 1, y1 - 1), fill=255)
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return buffer.getvalue()
