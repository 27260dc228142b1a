"""Masked img2img and hires txt2img on the AUTOMATIC1111 API, through a third-party client
(``webuiapi``) over real HTTP, on the demo model: sizes, ``info``, infotexts, the pixels outside
the mask, and every refusal (with nothing queued)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from aiohttp.test_utils import TestClient
from PIL import Image, ImageFilter

from bot.web.a1111_jobs import inpainting_conditioning
from generation.demo_info import DEMO_INPAINT_SOURCE
from generation.metadata import parse_infotext
from generation.requests import Origin, Visibility
from storage.records import ModelRecord
from tests.web.conftest import WebFactory, client_app, nothing_queued, png_b64

webuiapi = pytest.importorskip("webuiapi")

Client = TestClient[Any, Any]
V1 = "/sdapi/v1"
BOX = (16, 8, 40, 40)
OWNER = Origin("cli", "local", "owner", is_admin=True, sees=Visibility.ALL)


def picture(size: tuple[int, int] = (64, 64)) -> Image.Image:
    """Something with detail everywhere, so a repainted pixel shows."""
    rng = np.random.default_rng(7)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def box_mask(size: tuple[int, int] = (64, 64), box: tuple[int, int, int, int] = BOX) -> Image.Image:
    mask = Image.new("L", size, 0)
    mask.paste(255, box)
    return mask


def api_of(client: Client) -> Any:
    return webuiapi.WebUIApi(host="127.0.0.1", port=client.server.port)


def assert_info_shape(info: dict[str, Any]) -> None:
    """The keys A1111's ``info`` has (§5), whatever the job."""
    assert {
        "prompt", "all_prompts", "negative_prompt", "seed", "all_seeds", "subseed", "width",
        "height", "sampler_name", "cfg_scale", "steps", "batch_size", "sd_model_name",
        "sd_model_hash", "denoising_strength", "extra_generation_params", "index_of_first_image",
        "infotexts", "styles", "job_timestamp", "clip_skip", "is_using_inpainting_conditioning",
        "version",
    } <= set(info)  # fmt: skip


async def test_masked_img2img_repaints_the_box_and_keeps_the_rest(web_client: Client) -> None:
    init, mask = picture(), box_mask()

    def call() -> Any:  # webuiapi is synchronous: off the server's loop
        return api_of(web_client).img2img(
            images=[init],
            mask_image=mask,
            prompt="a red dragon",
            seed=5,
            steps=4,
            width=64,
            height=64,
            mask_blur=2,
            inpainting_fill=1,
            inpaint_full_res=False,
            denoising_strength=0.9,
        )

    result = await asyncio.to_thread(call)
    assert len(result.images) == 1 and result.image.size == (64, 64)
    info = result.info
    assert_info_shape(info)
    assert (info["width"], info["height"], info["seed"]) == (64, 64, 5)
    assert info["denoising_strength"] == 0.9
    assert info["is_using_inpainting_conditioning"] is False
    # A1111's keys in its order: "original" is its default, so it is not written.
    assert list(info["extra_generation_params"].items()) == [
        ("Denoising strength", 0.9),
        ("Mask blur", 2),
        ("Schedule type", "Automatic"),  # webuiapi's Euler a
    ]
    text = parse_infotext(info["infotexts"][0])
    assert (text["Mask blur"], text["Denoising strength"]) == ("2", "0.9")
    assert "Inpaint area" not in text and "Masked content" not in text
    assert (text["Size-1"], text["Size-2"]) == ("64", "64")
    # Beyond the blur band the picture is the upload's, pixel for pixel; inside, repainted.
    band = np.asarray(mask.filter(ImageFilter.GaussianBlur(2))) > 0
    ours = np.asarray(result.image.convert("RGB"), dtype=np.int16)
    before = np.asarray(init, dtype=np.int16)
    assert (ours[~band] == before[~band]).all()
    assert np.abs(ours[band] - before[band]).max() > 10
    job = await client_app(web_client).store.get_job(info["easel_job_id"])
    assert job is not None and job.mode == "inpaint" and job.inpaint is not None
    assert job.inpaint["inpainting_fill"] == 1 and not job.inpaint["inpaint_full_res"]


async def test_only_masked_on_a_9_channel_model_answers_the_pictures_size(
    web_client: Client,
) -> None:
    """webuiapi's defaults (only masked, padding 0, fill) as A1111 answers them: the picture's
    own size, whatever width and height say, on an inpainting model."""
    app = client_app(web_client)
    await app.service.add_model(OWNER, "demo-inpaint", DEMO_INPAINT_SOURCE)
    init = picture((80, 64))
    mask = box_mask((80, 64), (40, 16, 72, 48))

    def call() -> Any:
        return api_of(web_client).img2img(
            images=[init],
            mask_image=mask,
            prompt="a window",
            seed=9,
            steps=4,
            inpaint_full_res_padding=8,
            mask_blur=0,
            override_settings={"sd_model_checkpoint": "demo-inpaint"},
        )  # width and height: webuiapi's 512

    result = await asyncio.to_thread(call)
    assert result.image.size == (80, 64)
    info = result.info
    assert info["is_using_inpainting_conditioning"] is True
    assert info["sd_model_name"] == "demo-inpaint"
    assert list(info["extra_generation_params"].items()) == [
        ("Denoising strength", 0.75),  # webuiapi's
        ("Inpaint area", "Only masked"),  # no blur: no "Mask blur", as A1111
        ("Masked area padding", 8),
        ("Masked content", "fill"),
        ("Schedule type", "Automatic"),
    ]
    text = parse_infotext(info["infotexts"][0])
    assert (text["Inpaint area"], text["Masked area padding"]) == ("Only masked", "8")
    assert text["Masked content"] == "fill" and "Mask blur" not in text
    outside = np.asarray(mask) == 0  # no blur: every unmasked pixel is the picture's
    ours = np.asarray(result.image.convert("RGB"))
    assert (ours[outside] == np.asarray(init)[outside]).all()


def _b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


async def test_bad_masks_are_refused_and_nothing_is_queued(web_factory: WebFactory) -> None:
    client = await web_factory(worker=False)
    init = _b64(picture())
    cases: list[tuple[dict[str, Any], str]] = [
        ({"mask": _b64(box_mask((64, 32), (0, 0, 8, 8)))}, "it must be 64x64"),
        ({"mask": base64.b64encode(b"%PDF-1.4 not a picture").decode()}, "mask was refused"),
        ({"mask": "!!!not base64"}, "base64"),
        ({"mask": png_b64((64, 64), (0, 0, 0))}, "all black"),
        ({"mask": png_b64((64, 64), (255, 255, 255))}, "all white"),
        ({"mask": _b64(Image.new("L", (5000, 5000), 255))}, "pixels"),  # a bomb: a few KB
        ({"mask": _b64(box_mask()), "mask_blur_x": 2, "mask_blur_y": 6}, "blurs masks evenly"),
        ({"mask": _b64(box_mask()), "mask_blur": 100}, "Mask blur must be 0-64"),
        ({"mask": _b64(box_mask()), "inpainting_fill": 7}, "Inpainting fill must be one of"),
        ({"mask": _b64(box_mask()), "inpaint_full_res_padding": -1}, "padding must be 0-256"),
        ({"mask": _b64(box_mask()), "denoising_strength": 0}, "Strength must be greater than 0"),
    ]
    for extra, words in cases:
        body = {"prompt": "x", "init_images": [init], "steps": 2, **extra}
        answer = await client.post(f"{V1}/img2img", json=body)
        text = await answer.text()
        assert answer.status in (413, 422) and words in text, (list(extra), answer.status, text)
        assert set(await answer.json()) == {"error", "detail", "body", "errors"}
    # The mask of an all-white picture, inverted, is all black: refused as such.
    body = {"prompt": "x", "init_images": [init], "mask": png_b64((64, 64), (255, 255, 255))}
    inverted = await client.post(f"{V1}/img2img", json={**body, "inpainting_mask_invert": 1})
    assert inverted.status == 422 and "all black" in await inverted.text()
    await nothing_queued(client_app(client))
    assert await client_app(client).store.list_jobs(limit=5) == []


async def test_enable_hr_txt2img_as_a1111_answers_it(web_client: Client) -> None:
    def call() -> tuple[Any, Any]:
        api = api_of(web_client)
        scaled = api.txt2img(
            prompt="a lighthouse", seed=3, steps=4, width=64, height=64, enable_hr=True, hr_scale=2
        )  # webuiapi's defaults: hr_upscaler "Latent", denoising_strength 0.7
        boxed = api.txt2img(
            prompt="a lighthouse",
            seed=3,
            steps=4,
            width=64,
            height=64,
            enable_hr=True,
            hr_resize_x=128,
            hr_resize_y=96,
            hr_upscaler="Lanczos",
            hr_second_pass_steps=3,
            denoising_strength=0.5,
        )
        return scaled, boxed

    scaled, boxed = await asyncio.to_thread(call)
    assert scaled.image.size == (128, 128)
    info = scaled.info
    assert_info_shape(info)
    assert (info["width"], info["height"]) == (64, 64)  # the first pass's, as A1111's
    assert info["denoising_strength"] == 0.7
    assert list(info["extra_generation_params"].items()) == [
        ("Denoising strength", 0.7),
        ("Hires upscale", 2.0),
        ("Hires upscaler", "Latent"),
        ("Schedule type", "Automatic"),  # webuiapi's Euler a
    ]
    text = parse_infotext(info["infotexts"][0])
    assert (text["Size-1"], text["Size-2"], text["Denoising strength"]) == ("64", "64", "0.7")
    assert (text["Hires upscale"], text["Hires upscaler"]) == ("2.0", "Latent")
    assert "Hires steps" not in text and "Hires resize-1" not in text

    assert boxed.image.size == (128, 96)
    text = parse_infotext(boxed.info["infotexts"][0])
    assert (text["Hires resize-1"], text["Hires resize-2"]) == ("128", "96")
    assert (text["Hires steps"], text["Hires upscaler"]) == ("3", "Lanczos")
    assert "Hires upscale" not in text
    job = await client_app(web_client).store.get_job(boxed.info["easel_job_id"])
    assert job is not None and job.hires is not None and job.hires["steps"] == 3
    shown = await (await web_client.get(f"/api/jobs/{job.id}")).json()
    assert shown["hires"] == job.hires  # the job JSON shows the hires options


async def test_bad_hires_requests_are_refused_and_nothing_is_queued(
    web_factory: WebFactory,
) -> None:
    client = await web_factory(worker=False, generation={"max_width": 256, "max_height": 256})
    base = {"prompt": "x", "width": 64, "height": 64, "enable_hr": True}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"hr_scale": 5}, "at most 4"),
        ({"hr_scale": 1}, "more than 1"),
        ({"hr_upscaler": "SwinIR 4x"}, "Hires upscaler 'SwinIR 4x' not found"),
        ({"hr_second_pass_steps": 1000}, "Hires steps"),
        ({"denoising_strength": 1.5}, "Hires denoising strength"),
        ({"hr_resize_x": 512, "hr_resize_y": 512}, "The hires fix's size 512x512 is larger"),
        ({"hr_sampler_name": "Euler"}, "hr_sampler_name"),
        ({"hr_checkpoint_name": "other"}, "hr_checkpoint_name"),
        ({"hr_prompt": "something else"}, "hr_prompt"),
    ]
    for extra, words in cases:
        answer = await client.post(f"{V1}/txt2img", json={**base, **extra})
        text = await answer.text()
        assert answer.status == 422 and words in text, (extra, answer.status, text)
    typed = await client.post(f"{V1}/txt2img", json={**base, "hr_scale": "big"})
    assert typed.status == 422 and (await typed.json())["detail"][0]["loc"] == ["body", "hr_scale"]
    await nothing_queued(client_app(client))


def test_inpainting_conditioning_is_read_from_the_models_unet(tmp_path: Path) -> None:
    """A 9-channel UNet in a diffusers folder or a single checkpoint's header (no weights
    read); a Hub id only by its name."""
    from safetensors.torch import save_file

    def record(kind: str, source: str) -> ModelRecord:
        return ModelRecord(
            name="m", source=source, kind=kind, revision=None, config=None, default_width=512,
            default_height=512, default_steps=20, default_cfg=7.0, default_sampler="Euler",
            is_default=False,
            created_at=datetime.now(UTC),
        )  # fmt: skip

    for channels in (4, 9):
        folder = tmp_path / f"folder{channels}"
        (folder / "unet").mkdir(parents=True)
        (folder / "unet" / "config.json").write_text(json.dumps({"in_channels": channels}))
        file = tmp_path / f"single{channels}.safetensors"
        weight = torch.zeros(2, channels, 3, 3)
        save_file({"model.diffusion_model.input_blocks.0.0.weight": weight}, str(file))
        expected = channels == 9
        assert inpainting_conditioning(record("folder", str(folder)), tmp_path) is expected
        assert inpainting_conditioning(record("single_file", str(file)), tmp_path) is expected
    assert inpainting_conditioning(record("builtin", DEMO_INPAINT_SOURCE), tmp_path)
    assert not inpainting_conditioning(record("builtin", "builtin:demo"), tmp_path)
    assert inpainting_conditioning(record("hub", "runwayml/stable-diffusion-inpainting"), tmp_path)
    assert not inpainting_conditioning(record("folder", str(tmp_path / "gone")), tmp_path)
    assert not inpainting_conditioning(None, tmp_path)
