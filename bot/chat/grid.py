"""Contact-sheet grids of a job's images (platform-neutral, Pillow only).

``grid_png([a, b, c, d])`` lays PNG images out two per row (a 2x2 grid for four, 2x1 for two,
2x2 with one empty cell for three) with a small gap, and returns the grid as PNG bytes. Cells are
the size of the largest image; smaller images are centred in their cell.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from PIL import Image

GAP = 4
BACKGROUND = (24, 24, 27)


def grid_size(count: int, columns: int = 2) -> tuple[int, int]:
    """(columns, rows) of the grid for ``count`` images."""
    if count < 1:
        raise ValueError("a grid needs at least one image")
    cols = min(columns, count)
    return cols, math.ceil(count / cols)


def grid_image(images: Sequence[Image.Image], columns: int = 2, gap: int = GAP) -> Image.Image:
    cols, rows = grid_size(len(images), columns)
    cell_w = max(image.width for image in images)
    cell_h = max(image.height for image in images)
    sheet = Image.new(
        "RGB", (cols * cell_w + (cols - 1) * gap, rows * cell_h + (rows - 1) * gap), BACKGROUND
    )
    for index, image in enumerate(images):
        row, col = divmod(index, cols)
        x = col * (cell_w + gap) + (cell_w - image.width) // 2
        y = row * (cell_h + gap) + (cell_h - image.height) // 2
        sheet.paste(image.convert("RGB"), (x, y))
    return sheet


def grid_png(pngs: Sequence[bytes], columns: int = 2, gap: int = GAP) -> bytes:
    """PNG bytes of the grid of ``pngs`` (encoded images, in order, left to right)."""
    images = [Image.open(io.BytesIO(data)) for data in pngs]
    buffer = io.BytesIO()
    grid_image(images, columns, gap).save(buffer, format="PNG")
    return buffer.getvalue()


def cell_box(
    index: int, count: int, cell: tuple[int, int], columns: int = 2, gap: int = GAP
) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) box of image ``index`` in a grid of equal ``cell`` sizes."""
    cols, _ = grid_size(count, columns)
    row, col = divmod(index, cols)
    left, top = col * (cell[0] + gap), row * (cell[1] + gap)
    return left, top, left + cell[0], top + cell[1]
