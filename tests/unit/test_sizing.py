from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from generation.errors import InvalidRequest
from generation.sizing import (
    aspect_of,
    parse_aspect,
    parse_size,
    round_to_multiple,
    size_for_aspect,
)


@pytest.mark.parametrize(
    ("value", "expected"), [(512, 512), (515, 512), (516, 520), (3, 8), (0, 8), (-40, 8), (7.9, 8)]
)
def test_round_to_multiple(value: float, expected: int) -> None:
    assert round_to_multiple(value, 8) == expected


def test_round_to_other_multiples() -> None:
    assert round_to_multiple(100, 64) == 128
    with pytest.raises(ValueError, match="multiple"):
        round_to_multiple(10, 0)
    with pytest.raises(ValueError, match="finite"):
        round_to_multiple(float("inf"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512x768", (512, 768)),
        (" 640 X 480 ", (640, 480)),
        ("1024×1024", (1024, 1024)),
        ("8*8", (8, 8)),
    ],
)
def test_parse_size(text: str, expected: tuple[int, int]) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "text", ["512", "512x", "x512", "axb", "512x768x2", "-512x512", "1.5x2", ""]
)
def test_parse_size_rejects_shapes(text: str) -> None:
    with pytest.raises(InvalidRequest, match=r"^Size must be WIDTHxHEIGHT in pixels, e\.g\."):
        parse_size(text)


def test_parse_size_rejects_zero() -> None:
    with pytest.raises(InvalidRequest, match="at least 1 pixel"):
        parse_size("0x512")


def test_parse_aspect() -> None:
    assert parse_aspect("3:2") == (3, 2)
    assert parse_aspect("16/9") == (16, 9)
    assert parse_aspect("1:4") == (1, 4)
    assert parse_aspect("4:1") == (4, 1)
    with pytest.raises(InvalidRequest, match="between 1:4 and 4:1"):
        parse_aspect("17:4")
    with pytest.raises(InvalidRequest, match="two whole numbers"):
        parse_aspect("1.5:1")


@pytest.mark.parametrize(
    ("aspect", "base", "expected"),
    [
        ("1:1", (512, 512), (512, 512)),
        ("16:9", (512, 512), (680, 384)),
        ("2:3", (512, 512), (416, 624)),
        ("3:2", (1024, 1024), (1256, 840)),
        ("4:1", (512, 512), (1024, 256)),
    ],
)
def test_size_for_aspect(aspect: str, base: tuple[int, int], expected: tuple[int, int]) -> None:
    assert size_for_aspect(aspect, *base) == expected


@given(st.integers(1, 16), st.integers(1, 16), st.integers(64, 2048), st.integers(64, 2048))
def test_size_for_aspect_keeps_area_and_ratio(a: int, b: int, bw: int, bh: int) -> None:
    if a > 4 * b or b > 4 * a:
        return
    width, height = size_for_aspect(f"{a}:{b}", bw, bh)
    assert width % 8 == 0 and height % 8 == 0
    assert width >= 8 and height >= 8
    # Rounding each side by at most 4 px moves the area and the ratio only a little.
    assert abs(width * height - bw * bh) <= 4 * (width + height) + 16 + 64 * 64
    assert abs(width / height - a / b) <= 0.1 * (a / b) + 8 / height


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1024, 683), "3:2"),
        ((683, 1024), "2:3"),
        ((1920, 1080), "16:9"),
        ((64, 64), "1:1"),
        ((5000, 100), "4:1"),
        ((100, 5000), "1:4"),
        ((1000, 750), "4:3"),
        ((1000, 777), "76:59"),
    ],
)
def test_aspect_of_a_picture(size: tuple[int, int], expected: str) -> None:
    assert aspect_of(*size) == expected


@given(st.integers(1, 20_000), st.integers(1, 20_000))
def test_aspect_of_is_always_accepted_and_close(width: int, height: int) -> None:
    a, b = parse_aspect(aspect_of(width, height))  # never refused by the parser
    ratio = min(max(width / height, 0.25), 4.0)
    assert abs(a / b - ratio) / ratio < 0.01
