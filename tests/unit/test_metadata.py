from __future__ import annotations

import io
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from generation.errors import ImageRejected
from generation.metadata import (
    build_infotext,
    encode_png,
    job_id_from_png,
    parse_infotext,
    read_png_text,
)

A1111_EXAMPLE = (
    "a photo of a cat, best quality\n"
    "Negative prompt: blurry, lowres\n"
    "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.0, Seed: 1234567890, "
    "Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Denoising strength: 0.5, "
    "Hires upscale: 2.0, Hires upscaler: Latent, Version: v1.10.1"
)


def _infotext(**overrides: object) -> str:
    fields: dict[str, object] = {
        "prompt": "a castle at dusk",
        "negative_prompt": "blurry",
        "steps": 20,
        "sampler": "DPM++ 2M Karras",
        "cfg": 7,
        "seed": 42,
        "width": 512,
        "height": 768,
        "model": "sd15",
        "model_hash": "6ce0161689abcdef",
        "job_id": "abcd2345",
    }
    fields.update(overrides)
    return build_infotext(**fields)  # type: ignore[arg-type]


def test_build_layout() -> None:
    assert _infotext() == (
        "a castle at dusk\n"
        "Negative prompt: blurry\n"
        "Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7.0, Seed: 42, Size: 512x768, "
        "Model hash: 6ce0161689, Model: sd15, Easel job: abcd2345, Version: Easel"
    )


def test_build_with_strength_extra_and_no_negative() -> None:
    text = _infotext(
        negative_prompt="",
        model_hash=None,
        strength=0.6,
        extra={"Hires upscaler": "Latent", "Skipped": None, "Lora hashes": "a: 1, b: 2"},
        version="Easel 0.1.0",
    )
    assert text == (
        "a castle at dusk\n"
        "Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7.0, Seed: 42, Size: 512x768, "
        'Model: sd15, Denoising strength: 0.6, Hires upscaler: Latent, Lora hashes: "a: 1, b: 2", '
        "Easel job: abcd2345, Version: Easel 0.1.0"
    )


def test_quoting_rule() -> None:
    text = _infotext(model="my:model", extra={"Hires prompt": 'a "b", c\nd'})
    last = text.split("\n")[-1]
    assert 'Model: "my:model"' in last
    assert 'Hires prompt: "a \\"b\\", c\\nd"' in last


def test_empty_prompt_starts_with_params() -> None:
    text = _infotext(prompt="", negative_prompt="")
    assert text.startswith("Steps: 20, ")


def test_reserved_or_bad_extra_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="Seed"):
        _infotext(extra={"Seed": 1})
    with pytest.raises(ValueError, match="bad key"):
        _infotext(extra={"bad key:": 1})


def test_parse_a1111_worked_example() -> None:
    parsed = parse_infotext(A1111_EXAMPLE)
    assert parsed == {
        "Prompt": "a photo of a cat, best quality",
        "Negative prompt": "blurry, lowres",
        "Steps": "20",
        "Sampler": "DPM++ 2M",
        "Schedule type": "Karras",
        "CFG scale": "7.0",
        "Seed": "1234567890",
        "Size-1": "512",
        "Size-2": "768",
        "Model hash": "6ce0161689",
        "Model": "v1-5-pruned-emaonly",
        "Denoising strength": "0.5",
        "Hires upscale": "2.0",
        "Hires upscaler": "Latent",
        "Version": "v1.10.1",
    }


def test_parse_quoted_values_and_multiline_prompts() -> None:
    text = (
        "line one\nline two\nNegative prompt: bad\nworse\n"
        'Steps: 20, Sampler: Euler a, CFG scale: 7, Lora hashes: "add_detail: 7c6bad76eb54, x: 1", '
        'Hires prompt: "a \\"b\\", c\\nd", Hires resize: 1024x1536'
    )
    parsed = parse_infotext(text)
    assert parsed["Prompt"] == "line one\nline two"
    assert parsed["Negative prompt"] == "bad\nworse"
    assert parsed["Lora hashes"] == "add_detail: 7c6bad76eb54, x: 1"
    assert parsed["Hires prompt"] == 'a "b", c\nd'
    assert (parsed["Hires resize-1"], parsed["Hires resize-2"]) == ("1024", "1536")


def test_last_line_without_three_params_is_prompt() -> None:
    parsed = parse_infotext("a cat\nSteps: 20, Sampler: Euler")
    assert parsed == {"Prompt": "a cat\nSteps: 20, Sampler: Euler", "Negative prompt": ""}


def test_round_trip_ours() -> None:
    prompt = "a castle, at: dusk\nwith \"fog\", 50% detail"
    negative = "blurry, text: none\nlowres"
    parsed = parse_infotext(
        _infotext(prompt=prompt, negative_prompt=negative, model="odd, model: name")
    )
    assert parsed["Prompt"] == prompt
    assert parsed["Negative prompt"] == negative
    assert parsed["Steps"] == "20"
    assert parsed["Sampler"] == "DPM++ 2M Karras"
    assert parsed["CFG scale"] == "7.0"
    assert parsed["Seed"] == "42"
    assert (parsed["Size-1"], parsed["Size-2"]) == ("512", "768")
    assert parsed["Model"] == "odd, model: name"
    assert parsed["Easel job"] == "abcd2345"
    assert parsed["Version"] == "Easel"


_line = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\n\r")).map(
    str.strip
)
_multiline = st.lists(_line, min_size=1, max_size=3).map("\n".join).filter(
    lambda s: s == s.strip() and "Negative prompt:" not in s
)


@settings(max_examples=300)
@given(
    prompt=_multiline,
    negative=_multiline,
    model=st.text(min_size=1).filter(lambda s: s.strip() != ""),
    seed=st.integers(0, 2**32 - 1),
    cfg=st.floats(0, 30, allow_nan=False),
)
def test_round_trip_property(prompt: str, negative: str, model: str, seed: int, cfg: float) -> None:
    if not prompt:  # an empty prompt cannot be told apart after the whole text is stripped
        prompt = "x"
    parsed = parse_infotext(
        _infotext(prompt=prompt, negative_prompt=negative, model=model, seed=seed, cfg=cfg)
    )
    assert parsed["Prompt"] == prompt
    assert parsed["Negative prompt"] == negative
    assert parsed["Model"] == model
    assert parsed["Seed"] == str(seed)
    assert float(parsed["CFG scale"]) == cfg
    assert parsed["Easel job"] == "abcd2345"


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    pos = 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        out.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def _image() -> Image.Image:
    return Image.new("RGB", (16, 8), (200, 30, 60))


def test_png_has_parameters_text_chunk_before_pixels() -> None:
    text = _infotext()
    data = encode_png(_image(), text, "abcd2345")
    chunks = _chunks(data)
    kinds = [kind for kind, _ in chunks]
    assert (b"tEXt", b"parameters\0" + text.encode("latin-1")) in chunks
    assert (b"tEXt", b"easel_job_id\0abcd2345") in chunks
    assert kinds.index(b"tEXt") < kinds.index(b"IDAT")
    with Image.open(io.BytesIO(data)) as image:
        assert image.info["parameters"] == text  # what A1111 and sd-parsers read
        assert image.size == (16, 8)


def test_non_latin1_prompt_goes_to_itxt_and_round_trips() -> None:
    text = _infotext(prompt="城の夕暮れ, ☃ — “quoted”")
    data = encode_png(_image(), text, "abcd2345")
    itxt = [body for kind, body in _chunks(data) if kind == b"iTXt"]
    assert len(itxt) == 1
    assert itxt[0].startswith(b"parameters\0\0\0\0\0")  # uncompressed, no language/keyword
    assert read_png_text(data)["parameters"] == text
    assert parse_infotext(read_png_text(data)["parameters"])["Prompt"] == "城の夕暮れ, ☃ — “quoted”"


def test_encoding_is_deterministic() -> None:
    text = _infotext()
    assert encode_png(_image(), text, "j1") == encode_png(_image(), text, "j1")


def test_read_png_text_reads_all_chunk_kinds() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("plain", "hello")
    info.add_text("zipped", "compressed " * 20, zip=True)
    info.add_itxt("utf", "ünïcødé ☃", zip=True)
    buffer = io.BytesIO()
    _image().save(buffer, format="PNG", pnginfo=info)
    assert read_png_text(buffer.getvalue()) == {
        "plain": "hello",
        "zipped": "compressed " * 20,
        "utf": "ünïcødé ☃",
    }


def test_read_png_text_finds_chunks_after_the_pixels() -> None:
    data = encode_png(_image(), "x", "j1")
    iend = data.rindex(b"IEND") - 4
    body = b"late\0after idat"
    crc = struct.pack(">I", zlib.crc32(b"tEXt" + body))
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + crc
    data = data[:iend] + chunk + data[iend:]
    assert read_png_text(data)["late"] == "after idat"


def test_read_png_text_refuses_non_png_and_tolerates_truncation() -> None:
    with pytest.raises(ImageRejected, match="Not a PNG"):
        read_png_text(b"GIF89a...")
    data = encode_png(_image(), "x", "j1")
    assert read_png_text(data[:60]) in ({}, {"parameters": "x"})


def test_read_png_text_caps_zip_bombs() -> None:
    body = b"bomb\0\0" + zlib.compress(b"\0" * (4 << 20))
    chunk = struct.pack(">I", len(body)) + b"zTXt" + body + b"\0\0\0\0"
    data = encode_png(_image(), "x", "j1")
    with pytest.raises(ImageRejected, match="too large"):
        read_png_text(data[:33] + chunk + data[33:])


def test_job_id_from_png() -> None:
    text = _infotext(job_id="zzzz9999")
    assert job_id_from_png(encode_png(_image(), text, "zzzz9999")) == "zzzz9999"
    # Without our chunk (e.g. re-saved by another tool that kept "parameters" only).
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", text)
    buffer = io.BytesIO()
    _image().save(buffer, format="PNG", pnginfo=info)
    assert job_id_from_png(buffer.getvalue()) == "zzzz9999"
    plain = io.BytesIO()
    _image().save(plain, format="PNG")
    assert job_id_from_png(plain.getvalue()) is None
    assert job_id_from_png(b"not a png") is None
