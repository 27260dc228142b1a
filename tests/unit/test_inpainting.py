"""Inpainting's pure policy: mask checks, option bounds, the child spec (no torch, no store)."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
from PIL import Image

from generation.errors import ImageRejected, InvalidRequest
from generation.inpainting import check_options, clean_mask
from generation.requests import InpaintRequest
from generation.spec import GenerationSpec, Mode


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def half_mask(size: tuple[int, int] = (64, 48), mode: str = "L") -> bytes:
    mask = Image.new(mode, size, 0)
    mask.paste((255,) * len(mode) if mode != "L" else 255, (0, 0, size[0] // 2, size[1]))
    return png(mask)


def test_a_mask_is_stored_grey_at_the_images_size_as_given() -> None:
    stored = Image.open(io.BytesIO(clean_mask(half_mask(), (64, 48), invert=False)))
    assert stored.mode == "L" and stored.size == (64, 48)
    assert stored.getpixel((0, 0)) == 255 and stored.getpixel((63, 0)) == 0
    # an RGB(A) mask (what painters export) counts by its grey level; invert is kept for later
    stored = Image.open(io.BytesIO(clean_mask(half_mask(mode="RGBA"), (64, 48), invert=True)))
    assert stored.getpixel((0, 0)) == 255


def test_a_mask_of_the_same_shape_is_resized_another_shape_is_refused() -> None:
    stored = Image.open(io.BytesIO(clean_mask(half_mask((128, 96)), (64, 48), invert=False)))
    assert stored.size == (64, 48)
    with pytest.raises(ImageRejected, match="is 64x64; it must be 64x48"):
        clean_mask(half_mask((64, 64)), (64, 48), invert=False)


@pytest.mark.parametrize(
    ("data", "invert", "message"),
    [
        (png(Image.new("L", (8, 8), 0)), False, "all black: nothing to repaint"),
        (png(Image.new("L", (8, 8), 127)), False, "all black"),
        (png(Image.new("L", (8, 8), 255)), True, "all black"),
        (png(Image.new("L", (8, 8), 255)), False, "all white.*Use Vary"),
        (png(Image.new("L", (8, 8), 0)), True, "all white"),
        (b"GIF89a but not really", False, "The mask was refused: That file is not an image"),
        (b"\x00\x01", False, "The mask was refused: That file is not an image"),
    ],
)
def test_bad_masks_say_what_is_wrong(data: bytes, invert: bool, message: str) -> None:
    with pytest.raises(ImageRejected, match=message):
        clean_mask(data, (8, 8), invert=invert)


def test_a_bomb_is_refused_before_decoding() -> None:
    with pytest.raises(ImageRejected, match="5000x5000 pixels; the limit"):
        clean_mask(png(Image.new("L", (5000, 5000), 255)), (64, 64), invert=False)


def test_options_have_bounds_and_a1111_defaults() -> None:
    assert check_options(InpaintRequest(b"")) == 0.75
    assert check_options(InpaintRequest(b"", strength=1.0)) == 1.0
    bad = [
        {"strength": 1.5},
        {"strength": float("nan")},
        {"mask_blur": 65},
        {"inpainting_fill": -1},
        {"inpaint_full_res_padding": -1},
    ]
    for fields in bad:
        with pytest.raises(InvalidRequest):
            check_options(InpaintRequest(b"", **fields))  # type: ignore[arg-type]


def test_spec_carries_inpaint_options_through_dicts_and_only_for_inpaint_jobs() -> None:
    spec = GenerationSpec(
        mode=Mode.INPAINT,
        prompt="p",
        negative_prompt="",
        model="demo",
        sampler="Euler a",
        width=64,
        height=64,
        steps=4,
        cfg=7.0,
        seed=1,
        strength=0.5,
        init_image="a" * 64,
        mask_image="b" * 64,
        inpainting_fill=3,
        inpaint_full_res=True,
    )
    assert GenerationSpec.from_dict(spec.to_dict()) == spec  # what a cluster batch carries
    assert spec.inpaint_options() == {
        "mask_blur": 4,
        "inpainting_fill": 3,
        "inpaint_full_res": True,
        "inpaint_full_res_padding": 32,
        "mask_invert": False,
    }
    assert replace(spec, mode=Mode.IMG2IMG).inpaint_options() is None
