"""Checks and re-encodes uploaded images before anything else touches them.

Rules (DESIGN §4): size checked first, formats allow-listed, decompression bombs refused,
first frame only, re-encoded as a plain RGB PNG (which drops any payload a polyglot carried).
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

from generation.errors import ImageRejected

ALLOWED_FORMATS = frozenset({"PNG", "JPEG", "WEBP", "GIF", "BMP"})
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_PIXELS = 4096 * 4096


def check_upload_size(size: int, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    """Adapters call this with the announced size *before* downloading an attachment."""
    if size > max_bytes:
        raise ImageRejected(
            f"The image is {size / 1_048_576:.1f} MB; the limit is "
            f"{max_bytes / 1_048_576:g} MB. Send a smaller image."
        )


def load_upload(
    data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Image.Image:
    """Decode an untrusted upload into a fresh RGB image, or raise :class:`ImageRejected`."""
    check_upload_size(len(data), max_bytes)
    if not data:
        raise ImageRejected("The image is empty.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            fmt = image.format or "unknown"
            if fmt not in ALLOWED_FORMATS:
                raise ImageRejected(
                    f"{fmt} images are not accepted. Send PNG, JPEG, WebP, GIF or BMP."
                )
            width, height = image.size
            # The header is read lazily before any pixel is decoded: refuse bombs here.
            if width * height > max_pixels:
                raise ImageRejected(
                    f"The image is {width}x{height} pixels; the limit is {max_pixels:,} pixels."
                )
            image.seek(0)  # first frame only
            image.load()
            return image.convert("RGB")
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected("The image is too large to decode safely.") from None
    except UnidentifiedImageError:
        raise ImageRejected(
            "That file is not an image Easel can read. Send PNG, JPEG, WebP, GIF or BMP."
        ) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageRejected(f"The image could not be decoded ({error}).") from None


def reencode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def clean_upload(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """:func:`load_upload` then :func:`reencode_png`: the PNG Easel stores for an upload.

    Decoding a large upload takes seconds: call it in a thread, never on the event loop.
    """
    return reencode_png(load_upload(data, max_bytes=max_bytes))


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG this module produced; reads the header only."""
    with Image.open(io.BytesIO(data)) as image:
        return image.size
