"""Image sizes: "512x768" and "3:2" strings, and sizes that diffusers accepts (pure).

Diffusion models work on latents 8 times smaller than the image, so every size we hand to a
pipeline is a multiple of 8. The grammar and the service share these parsers so that a bad
``--size`` or ``--ar`` reads the same everywhere.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

from generation.errors import InvalidRequest, shown

#: The widest and the tallest aspect ratio we accept (4:1 and 1:4).
MAX_ASPECT_RATIO = 4.0

_SIZE_RE = re.compile(r"^\s*(\d+)\s*[xX×*]\s*(\d+)\s*$")
_ASPECT_RE = re.compile(r"^\s*(\d+)\s*[:xX×/]\s*(\d+)\s*$")
_MAX_DIGITS = 6  # no side or ratio term is a million or more


def _too_many_digits(match: re.Match[str]) -> bool:
    """A million or more on either side: refused before ``int()`` meets a 100,000-digit value."""
    return any(len(group.lstrip("0")) > _MAX_DIGITS for group in match.groups())


def round_to_multiple(value: float, multiple: int = 8) -> int:
    """Round ``value`` to the nearest multiple of ``multiple`` (halves up), at least ``multiple``.

    >>> round_to_multiple(515), round_to_multiple(516), round_to_multiple(3)
    (512, 520, 8)
    """
    if multiple < 1:
        raise ValueError(f"multiple must be at least 1, got {multiple}")
    if not math.isfinite(value):
        raise ValueError(f"value must be a finite number, got {value}")
    return max(multiple, math.floor(value / multiple + 0.5) * multiple)


def parse_size(text: str) -> tuple[int, int]:
    """``"512x768"`` -> ``(512, 768)``. Also accepts ``X``, ``×`` and ``*`` between the numbers.

    Only the shape is checked here (two positive whole numbers); the server's own limits and the
    multiple-of-8 rounding are the service's job.
    """
    match = _SIZE_RE.match(text)
    if match is None:
        raise InvalidRequest(
            f"Size must be WIDTHxHEIGHT in pixels, e.g. 512x768; got {shown(text.strip())}."
        )
    if _too_many_digits(match):
        raise InvalidRequest(
            f"Size {shown(text.strip())} is far larger than any server allows; "
            "give WIDTHxHEIGHT in pixels, e.g. 512x768."
        )
    width, height = int(match.group(1)), int(match.group(2))
    if width < 1 or height < 1:
        raise InvalidRequest(
            "Width and height must both be at least 1 pixel, e.g. 512x768; "
            f"got {shown(text.strip())}."
        )
    return width, height


def parse_aspect(text: str) -> tuple[int, int]:
    """``"3:2"`` -> ``(3, 2)``; also ``3x2`` and ``3/2``. The ratio must lie between 1:4 and 4:1."""
    match = _ASPECT_RE.match(text)
    if match is None:
        raise InvalidRequest(
            f"Aspect ratio must be two whole numbers like 3:2 or 16:9; got {shown(text.strip())}."
        )
    if _too_many_digits(match):
        raise InvalidRequest(
            f"Aspect ratio {shown(text.strip())} is too extreme; it must lie between 1:4 and 4:1."
        )
    w, h = int(match.group(1)), int(match.group(2))
    if w < 1 or h < 1:
        raise InvalidRequest(
            "Both sides of an aspect ratio must be at least 1, e.g. 3:2; "
            f"got {shown(text.strip())}."
        )
    if w > MAX_ASPECT_RATIO * h or h > MAX_ASPECT_RATIO * w:
        raise InvalidRequest(
            f"Aspect ratio {w}:{h} is too extreme; it must lie between 1:4 and 4:1."
        )
    return w, h


def format_aspect(width: int, height: int) -> str:
    return f"{width}:{height}"


def size_for_aspect(aspect: str, base_width: int, base_height: int) -> tuple[int, int]:
    """A size with the ratio ``aspect`` and about the pixel area of ``base_width x base_height``.

    Each side is rounded to the nearest multiple of 8 (at least 8), so the ratio is approximate:
    ``size_for_aspect("16:9", 512, 512)`` is ``(680, 384)``.
    """
    if base_width < 1 or base_height < 1:
        raise ValueError(f"base size must be positive, got {base_width}x{base_height}")
    w, h = parse_aspect(aspect)
    area = base_width * base_height
    width = math.sqrt(area * w / h)
    height = width * h / w
    return round_to_multiple(width), round_to_multiple(height)


def aspect_of(width: int, height: int) -> str:
    """The aspect ratio of a ``width x height`` picture as a short ratio within 1:4..4:1.

    >>> aspect_of(1024, 683), aspect_of(64, 64), aspect_of(4000, 100)
    ('3:2', '1:1', '4:1')
    """
    if width < 1 or height < 1:
        raise ValueError(f"size must be positive, got {width}x{height}")
    ratio = min(max(Fraction(width, height), Fraction(1, 4)), Fraction(4))
    ratio = ratio.limit_denominator(64)
    return format_aspect(ratio.numerator, ratio.denominator)
