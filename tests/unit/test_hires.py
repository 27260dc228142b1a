"""The hires fix's sizes and infotext keys (pure): AUTOMATIC1111's calculate_target_resolution,
rounded to multiples of 8, and its crop of a resize box of another shape."""

from __future__ import annotations

import pytest

from generation.hires import (
    builtin_upscaler,
    cover_size,
    crop_box,
    infotext_items,
    is_latent,
    target_size,
)
from generation.spec import GenerationSpec, Hires, Mode


@pytest.mark.parametrize(
    ("first", "scale", "resize", "final"),
    [
        ((512, 512), 2.0, (0, 0), (1024, 1024)),
        ((512, 768), 1.5, (0, 0), (768, 1152)),
        ((512, 512), 1.3, (0, 0), (664, 664)),  # int(665.6) = 665, rounded down to 8s
        ((512, 768), 2.0, (1000, 0), (1000, 1496)),  # 1000 x 768 // 512 = 1500 -> 1496
        ((512, 768), 2.0, (0, 1024), (680, 1024)),  # 1024 x 512 // 768 = 682 -> 680
        ((512, 768), 2.0, (1024, 1024), (1024, 1024)),  # both: the box (cropped)
    ],
)
def test_target_size_is_a1111s(
    first: tuple[int, int], scale: float, resize: tuple[int, int], final: tuple[int, int]
) -> None:
    assert target_size(*first, scale, *resize) == final


def test_a_box_of_another_shape_is_covered_then_cropped_in_the_middle() -> None:
    cover = cover_size((512, 768), (1024, 1024))  # taller than the box: the width fits
    assert cover == (1024, 1536)
    assert crop_box(cover, (1024, 1024)) == (0, 256, 1024, 1280)
    wide = cover_size((768, 512), (1024, 1024))
    assert wide == (1536, 1024) and crop_box(wide, (1024, 1024)) == (256, 0, 1280, 1024)
    # An odd number of latent cells to drop: one fewer on the left, as A1111's truncate // 2.
    assert crop_box((1048, 512), (1024, 512)) == (8, 0, 1032, 512)
    assert cover_size((512, 512), (1024, 1024)) == (1024, 1024)  # same shape: no crop


def test_upscaler_names_any_case_and_latent_modes() -> None:
    assert builtin_upscaler("latent (bicubic ANTIALIASED)") == "Latent (bicubic antialiased)"
    assert builtin_upscaler(" lanczos ") == "Lanczos" and builtin_upscaler("none") == "None"
    assert builtin_upscaler("R-ESRGAN 4x+") is None
    assert is_latent("Latent (nearest-exact)") and not is_latent("Nearest")


def test_infotext_items_in_a1111s_order() -> None:
    scaled = Hires(width=1024, height=1024, upscaler="Latent", strength=0.7)
    assert infotext_items(scaled) == {"Hires upscale": 2.0, "Hires upscaler": "Latent"}
    boxed = Hires(1000, 1496, "Lanczos", 0.5, steps=10, resize_x=1000, resize_y=0)
    assert list(infotext_items(boxed).items()) == [
        ("Hires resize", "1000x0"),
        ("Hires steps", 10),
        ("Hires upscaler", "Lanczos"),
    ]


def test_only_text_to_image_keeps_a_hires_fix() -> None:
    hires = Hires(width=128, height=128, upscaler="Latent", strength=0.5)
    spec = GenerationSpec(Mode.TXT2IMG, "p", "", "demo", "Euler", 64, 64, 4, 7.0, 1, hires=hires)
    assert spec.output_size == (128, 128) and spec.hires == hires
    assert GenerationSpec.from_dict(spec.to_dict()) == spec  # what a cluster ticket carries
    for mode in (Mode.IMG2IMG, Mode.UPSCALE, Mode.INPAINT):
        child = GenerationSpec(mode, "p", "", "demo", "Euler", 64, 64, 4, 7.0, 1, hires=hires)
        assert child.hires is None and child.output_size == (64, 64)
