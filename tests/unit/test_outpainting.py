"""Zoom out and pan's geometry (generation.outpainting): the canvas, where the picture goes,
which part the mask repaints, and the refusals."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from generation.errors import InvalidRequest
from generation.outpainting import OVERLAP, Outpaint, compose, pan, parse_outpaint, zoom_out


def picture(width: int = 64, height: int = 48) -> Image.Image:
    rng = np.random.default_rng(3)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


@pytest.mark.parametrize(
    ("how", "canvas", "at"),
    [
        (zoom_out(2), (128, 96), (32, 24)),
        (zoom_out("1.5x"), (96, 72), (16, 12)),
        (pan("left"), (96, 48), (32, 0)),
        (pan("right"), (96, 48), (0, 0)),
        (pan("up"), (64, 72), (0, 24)),
        (pan("down"), (64, 72), (0, 0)),
    ],
)
def test_the_picture_keeps_its_pixels_where_the_outpaint_puts_it(
    how: Outpaint, canvas: tuple[int, int], at: tuple[int, int]
) -> None:
    source = picture()
    assert how.canvas_size(*source.size) == canvas
    canvas_png, mask_png = compose(source, how, canvas)
    image, mask = decoded(canvas_png), decoded(mask_png)
    assert image.shape == (canvas[1], canvas[0], 3) and mask.shape == (canvas[1], canvas[0])
    x, y = at
    assert (image[y : y + 48, x : x + 64] == np.asarray(source)).all()
    # The mask repaints everything new and OVERLAP px of the picture along each new edge.
    inside = mask[y : y + 48, x : x + 64]
    kept = inside == 0
    rows, cols = np.nonzero(kept)
    top = OVERLAP if y > 0 else 0
    left = OVERLAP if x > 0 else 0
    bottom = 48 - (OVERLAP if y + 48 < canvas[1] else 0)
    right = 64 - (OVERLAP if x + 64 < canvas[0] else 0)
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (top, bottom, left, right)
    assert kept.sum() == (bottom - top) * (right - left)
    assert (mask == 255).sum() == mask.size - kept.sum()
    # The new border starts as the picture's edge stretched outwards.
    assert (image[:, :x] == image[:, x : x + 1]).all()


def test_a_canvas_shrunk_by_the_size_limit_shrinks_the_picture_with_it() -> None:
    how = zoom_out(2)
    canvas_png, mask_png = compose(picture(), how, (64, 48))  # half of 128x96
    image, mask = decoded(canvas_png), decoded(mask_png)
    assert image.shape == (48, 64, 3)
    kept = np.argwhere(mask == 0)
    assert kept.min(axis=0).tolist() == [12 + OVERLAP, 16 + OVERLAP]  # the picture at 32x24
    assert (kept.max(axis=0) + 1).tolist() == [36 - OVERLAP, 48 - OVERLAP]


def test_canvas_sides_are_rounded_up_to_multiples_of_eight() -> None:
    assert zoom_out(1.5).canvas_size(72, 64) == (112, 96)  # 108 -> 112
    assert pan("left").canvas_size(72, 64) == (112, 64)


@pytest.mark.parametrize("text", ["1", "0.5", "2.5", "nan", "inf", "big", ""])
def test_zoom_factors_outside_1_to_2_are_refused(text: str) -> None:
    with pytest.raises(InvalidRequest, match="Zoom out factor"):
        zoom_out(text)


@pytest.mark.parametrize("text", ["sideways", "", "north"])
def test_unknown_pan_directions_are_refused_with_the_four(text: str) -> None:
    with pytest.raises(InvalidRequest, match="left, right, up, down"):
        pan(text)


def test_names_and_labels_round_trip() -> None:
    assert parse_outpaint("zoom 1.5") == zoom_out(1.5)
    assert parse_outpaint("pan up") == pan("top")
    assert (zoom_out("2x").label, pan("Left").label) == ("Zoom out 2x", "Pan left")
    with pytest.raises(InvalidRequest):
        parse_outpaint("shrink 2")
