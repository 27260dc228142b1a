"""Region presets (generation.regions): the mask each word makes, and the refusals."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from generation.errors import InvalidRequest
from generation.regions import region_mask


def white(text: str, size: tuple[int, int] = (80, 60)) -> tuple[int, int, int, int]:
    """The box the mask paints white: (left, top, right, bottom), right/bottom exclusive."""
    mask = np.asarray(Image.open(io.BytesIO(region_mask(text, size))))
    assert mask.shape == (size[1], size[0]) and set(np.unique(mask)) <= {0, 255}
    rows, cols = np.nonzero(mask)
    box = (int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)
    assert (mask == 255).sum() == (box[2] - box[0]) * (box[3] - box[1])  # one rectangle
    return box


@pytest.mark.parametrize(
    ("text", "box"),
    [
        ("left", (0, 0, 40, 60)),
        ("Right", (40, 0, 80, 60)),
        ("top", (0, 0, 80, 30)),
        ("bottom", (0, 30, 80, 60)),
        ("centre", (20, 15, 60, 45)),
        ("center", (20, 15, 60, 45)),
        ("10,20,50,40", (8, 12, 48, 36)),
        (" 0, 0, 1, 1 ", (0, 0, 1, 1)),
    ],
)
def test_each_region_paints_its_box_white(text: str, box: tuple[int, int, int, int]) -> None:
    assert white(text) == box


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("elsewhere", "Unknown region"),
        ("10,20,50", "Unknown region"),
        ("60,0,50,10", "inside the picture"),
        ("0,0,0,10", "inside the picture"),
        ("0,0,100,100", "whole picture"),
        ("1000,0,1,1", "Unknown region"),
    ],
)
def test_bad_regions_are_refused_saying_what_works(text: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        region_mask(text, (64, 64))
