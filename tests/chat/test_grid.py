"""Contact-sheet grids of a job's images."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from bot.chat.grid import GAP, cell_box, grid_png, grid_size


def png(colour: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]


def test_four_images_make_a_two_by_two_grid_in_reading_order() -> None:
    grid = Image.open(io.BytesIO(grid_png([png(c) for c in COLOURS])))
    assert grid.format == "PNG"
    assert grid.size == (2 * 64 + GAP, 2 * 48 + GAP)
    for index, colour in enumerate(COLOURS):
        left, top, right, bottom = cell_box(index, 4, (64, 48))
        assert grid.getpixel(((left + right) // 2, (top + bottom) // 2)) == colour


@pytest.mark.parametrize(("count", "shape"), [(1, (1, 1)), (2, (2, 1)), (3, (2, 2)), (4, (2, 2))])
def test_grid_shapes(count: int, shape: tuple[int, int]) -> None:
    assert grid_size(count) == shape
    grid = Image.open(io.BytesIO(grid_png([png(c) for c in COLOURS[:count]])))
    cols, rows = shape
    assert grid.size == (cols * 64 + (cols - 1) * GAP, rows * 48 + (rows - 1) * GAP)


def test_smaller_images_are_centred_in_their_cell() -> None:
    grid = Image.open(io.BytesIO(grid_png([png(COLOURS[0], (64, 64)), png(COLOURS[1], (32, 32))])))
    assert grid.size == (2 * 64 + GAP, 64)
    assert grid.getpixel((64 + GAP + 32, 32)) == COLOURS[1]
    assert grid.getpixel((64 + GAP + 2, 2)) != COLOURS[1]  # background around it


def test_an_empty_grid_is_refused() -> None:
    with pytest.raises(ValueError):
        grid_size(0)
