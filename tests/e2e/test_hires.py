"""Hires fix in text-to-image through the one door (``Service.draw``): a real App on the demo
model and a real SQLite file. A hires fix job is its first pass plus the Upscale action's
code, stores what a rerun needs, writes A1111's infotext keys, and keeps the admin's size
limits on its final size."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from generation.errors import InvalidRequest
from generation.events import JobProgress
from generation.metadata import parse_infotext, read_png_text
from generation.requests import HiresRequest
from generation.spec import Hires, Mode
from storage.records import JobRecord
from tests.e2e.engine_helpers import max_diff, origin, pixels, small, wait_finished


def infotext(app: Any, job: JobRecord, index: int = 0) -> dict[str, str]:
    return parse_infotext(read_png_text(app.images.read(job.images[index].sha256))["parameters"])


async def finished(app: Any, job_id: str) -> JobRecord:
    job = await wait_finished(app, job_id)
    assert job.status == "succeeded", job.error
    return job


async def test_hires_is_the_first_pass_then_the_upscale_action_and_reruns_identically(
    app_factory: Any,
) -> None:
    app = await app_factory()
    accepted = await app.service.draw(origin(), small(count=2, hires=HiresRequest(scale=2)))
    job = await finished(app, accepted.job.id)
    strength = app.config.generation.upscale_strength  # the Upscale action's, by default
    assert job.mode is Mode.TXT2IMG and (job.width, job.height) == (64, 64)
    assert job.spec.hires == Hires(width=128, height=128, upscaler="Lanczos", strength=strength)
    assert [(image.width, image.height) for image in job.images] == [(128, 128)] * 2
    info = infotext(app, job, 1)
    assert (info["Size-1"], info["Size-2"], info["Seed"]) == ("64", "64", "43")
    assert info["Hires upscale"] == "2.0" and info["Hires upscaler"] == "Lanczos"
    assert info["Denoising strength"] == str(strength) and "Hires steps" not in info

    # The same seeds without the hires fix, then the Upscale action on each image: the same
    # pixels, because both are one implementation (Lanczos, then image-to-image).
    plain = await finished(app, (await app.service.draw(origin(), small(count=2))).job.id)
    for index in range(2):
        upscaled = await app.service.upscale(origin(), plain.id, index)
        up = await finished(app, upscaled.job.id)
        assert max_diff(pixels(app, up), pixels(app, job, index)) == 0

    rerun = await finished(app, (await app.service.rerun(origin(), job.id)).job.id)
    assert rerun.spec == job.spec
    assert all(max_diff(pixels(app, rerun, i), pixels(app, job, i)) == 0 for i in range(2))
    # Actions on a hires result are ordinary ones: the hires fix is text-to-image's only.
    vary = await finished(app, (await app.service.vary(origin(), job.id)).job.id)
    assert (
        vary.spec.hires is None
        and vary.hires is None
        and (vary.width, vary.height)
        == (
            128,
            128,
        )
    )


async def test_latent_upscaler_resize_box_and_second_pass_steps(app_factory: Any) -> None:
    app = await app_factory()
    hires = HiresRequest(
        resize_x=128, resize_y=96, upscaler="latent (BICUBIC antialiased)", steps=6, strength=0.6
    )
    events = app.bus.subscribe(None)  # before the job exists: nothing of it can be missed
    job = await finished(app, (await app.service.draw(origin(), small(hires=hires))).job.id)
    steps = []
    while not events.queue.empty():
        event = events.get_nowait()
        if isinstance(event, JobProgress) and event.job_id == job.id:
            steps.append((event.step, event.total))
    events.close()
    # One count for both passes: 4 steps, then int(6 x 0.6) = 3 at the final size.
    assert steps == [(step, 7) for step in range(1, 8)]
    assert job.spec.hires == Hires(
        width=128,
        height=96,
        upscaler="Latent (bicubic antialiased)",
        strength=0.6,
        steps=6,
        resize_x=128,
        resize_y=96,
    )
    assert (job.images[0].width, job.images[0].height) == (128, 96)  # covered, then cropped
    info = infotext(app, job)
    assert (info["Hires resize-1"], info["Hires resize-2"], info["Hires steps"]) == (
        "128",
        "96",
        "6",
    )
    assert info["Hires upscaler"] == "Latent (bicubic antialiased)" and "Hires upscale" not in info
    assert info["Denoising strength"] == "0.6"
    rerun = await finished(app, (await app.service.rerun(origin(), job.id)).job.id)
    assert max_diff(pixels(app, rerun), pixels(app, job)) == 0
    nearest = HiresRequest(resize_x=96, upscaler="Nearest")  # the other side from the aspect
    other = await finished(app, (await app.service.draw(origin(), small(hires=nearest))).job.id)
    assert (other.images[0].width, other.images[0].height) == (96, 96)


async def test_bad_hires_requests_are_refused_and_nothing_is_queued(app_factory: Any) -> None:
    app = await app_factory(worker=False, generation={"max_width": 256, "max_height": 256})
    refusals = [
        (HiresRequest(scale=1.0), "more than 1 and at most 4"),
        (HiresRequest(scale=4.5), "more than 1 and at most 4"),
        (HiresRequest(scale=float("nan")), "Hires scale"),
        (HiresRequest(strength=0.0), "greater than 0 and at most 1"),
        (HiresRequest(strength=1.5), "greater than 0 and at most 1"),
        (HiresRequest(steps=-1), "Hires steps"),
        (HiresRequest(steps=10_000), "Hires steps"),
        (HiresRequest(resize_x=-5), "Hires resize"),
        (HiresRequest(upscaler="R-ESRGAN 4x+"), "Hires upscaler 'R-ESRGAN 4x+' not found"),
    ]
    for hires, words in refusals:
        with pytest.raises(InvalidRequest, match=words.replace("+", r"\+")):
            await app.service.draw(origin(), small(hires=hires))
    over = small(width=96, height=96, hires=HiresRequest(scale=3))  # 288x288 > 256
    with pytest.raises(InvalidRequest, match=r"The hires fix's size 288x288 is larger"):
        await app.service.draw(origin(), over)
    with pytest.raises(InvalidRequest, match="hires fix is for text-to-image"):
        await app.service.draw(
            origin(), small(init_image=_png(), strength=0.5, hires=HiresRequest())
        )
    assert len(app.queue) == 0 and await app.store.count_queued(include_running=True) == 0
    fits = await app.service.draw(origin(), small(hires=HiresRequest(scale=4)))  # 256: fits
    assert fits.job.spec.output_size == (256, 256)


async def test_clamp_shrinks_the_final_size_and_says_so(app_factory: Any) -> None:
    app = await app_factory(
        worker=False, generation={"max_width": 160, "max_height": 160, "on_excess": "clamp"}
    )
    accepted = await app.service.draw(origin(), small(hires=HiresRequest(scale=4)))
    hires = accepted.job.spec.hires
    assert hires is not None and (hires.width, hires.height) == (160, 160)
    assert (hires.resize_x, hires.resize_y) == (160, 160)  # the infotext's "Hires resize"


@pytest.mark.skipif(importlib.util.find_spec("spandrel") is not None, reason="spandrel installed")
async def test_a_registered_upscaler_runs_the_upscale_actions_model_step(
    app_factory: Any, tmp_path: Path
) -> None:
    """Named in any case, stored in its own spelling; rendering goes through the Upscale
    action's model loader (here without spandrel: the job says what to install)."""
    from safetensors.torch import save_file

    file = tmp_path / "4x-Test.safetensors"
    save_file({"w": torch.zeros(1)}, str(file))
    app = await app_factory()
    await app.service.add_model(origin(admin=True), "4x-Test", str(file), upscaler=True)
    accepted = await app.service.draw(origin(), small(hires=HiresRequest(upscaler="4X-TEST")))
    assert accepted.job.spec.hires is not None and accepted.job.spec.hires.upscaler == "4x-Test"
    job = await wait_finished(app, accepted.job.id)
    assert job.status == "failed" and "pip install 'easel[upscalers]'" in (job.error or "")


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()
