"""The SDXL refiner stage through the one door (``Service.draw``): a real App, a real SQLite
file, the tiny SDXL model and its tiny refiner. A refined job stores its refiner, writes A1111's
infotext keys, reruns to the same pixels, keeps its refiner on a reroll and not on a variation;
every way of asking for it wrongly is refused with the reason and nothing stored or queued."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from generation.errors import EaselError, InvalidRequest
from generation.metadata import parse_infotext, read_png_text
from generation.requests import HiresRequest, Origin
from generation.spec import Refiner
from storage.records import JobRecord
from tests.e2e.engine_helpers import max_diff, origin, pixels, small, wait_finished

ADMIN = Origin(platform="cli", scope_id="local", user_id="root", is_admin=True)


async def refiner_app(app_factory: Any) -> Any:
    app = await app_factory()
    await app.service.add_model(ADMIN, "xl", "builtin:demo-sdxl")
    await app.service.add_model(ADMIN, "xl-refiner", "builtin:demo-sdxl-refiner")
    await app.service.add_model(ADMIN, "flux", "builtin:demo-flux")
    return app


async def finished(app: Any, job_id: str) -> JobRecord:
    job = await wait_finished(app, job_id)
    assert job.status == "succeeded", job.error
    return job


async def test_a_refined_job_stores_its_refiner_and_reruns_identically(app_factory: Any) -> None:
    app = await refiner_app(app_factory)
    request = small(model="xl", refiner="xl-refiner", refiner_switch_at=0.75, steps=8, count=2)
    job = await finished(app, (await app.service.draw(origin(), request)).job.id)
    refiner = await app.store.get_model("xl-refiner")
    assert job.spec.refiner == Refiner("xl-refiner", 0.75, refiner.revision)
    text = read_png_text(app.images.read(job.images[1].sha256))["parameters"]
    info = parse_infotext(text)
    assert info["Refiner"] == "xl-refiner" and info["Refiner switch at"] == "0.75"
    assert info["Seed"] == "43" and info["Model"] == "xl"

    rerun = await finished(app, (await app.service.rerun(origin(), job.id)).job.id)
    assert rerun.spec == job.spec
    for index in range(2):
        assert max_diff(pixels(app, rerun, index), pixels(app, job, index)) == 0
    plain = await finished(
        app, (await app.service.draw(origin(), small(model="xl", steps=8))).job.id
    )
    assert max_diff(pixels(app, plain), pixels(app, job)) > 2  # the refiner did the last steps

    reroll = await finished(app, (await app.service.reroll(origin(), job.id)).job.id)
    assert reroll.spec.refiner == job.spec.refiner and reroll.seed != job.seed
    vary = await finished(app, (await app.service.vary(origin(), job.id)).job.id)
    assert vary.spec.refiner is None  # an image-to-image child: the model alone
    upscale = await finished(app, (await app.service.upscale(origin(), job.id)).job.id)
    assert upscale.spec.refiner is None


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 30, 30)).save(out, format="PNG")
    return out.getvalue()


REFUSALS: dict[str, tuple[dict[str, Any], str]] = {
    "unknown refiner": (
        {"model": "xl", "refiner": "nope"},
        r"Unknown refiner 'nope'\. Available: xl, xl-refiner\.",
    ),
    "an upscaler as refiner": ({"model": "xl", "refiner": "esrgan"}, "Unknown refiner 'esrgan'"),
    "the refiner as the model": (
        {"model": "xl-refiner"},
        r"'xl-refiner' is an SDXL refiner: it finishes SDXL pictures and cannot draw on its own",
    ),
    "a Flux model with a refiner": (
        {"model": "flux", "refiner": "xl-refiner"},
        r"'flux' is a Flux\.1 model: only Stable Diffusion XL models take a refiner",
    ),
    "a Flux model as refiner": (
        {"model": "xl", "refiner": "flux"},
        r"'flux' cannot refine 'xl': it is a Flux\.1 model",
    ),
    "switch at 1": (
        {"model": "xl", "refiner": "xl-refiner", "refiner_switch_at": 1.0},
        r"Refiner switch 1\.0 is not allowed: it is the fraction of the steps",
    ),
    "switch without refiner": (
        {"model": "xl", "refiner_switch_at": 0.5},
        r"A refiner switch needs a refiner: add --refiner NAME\.",
    ),
    "image-to-image": (
        {"model": "xl", "refiner": "xl-refiner", "init_image": _png()},
        "The refiner finishes text-to-image pictures here",
    ),
    "with the hires fix": (
        {"model": "xl", "refiner": "xl-refiner", "hires": HiresRequest(scale=2)},
        "The refiner and the hires fix cannot be used together yet",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_wrong_refiner_requests_are_refused_and_nothing_is_stored(
    app_factory: Any, tmp_path: Any, case: str
) -> None:
    app = await refiner_app(app_factory)
    if case == "an upscaler as refiner":
        from safetensors.torch import save_file
        from torch import zeros

        file = tmp_path / "esrgan.safetensors"
        save_file({"conv_first.weight": zeros(1)}, str(file))
        await app.store.add_model("esrgan", source=str(file), kind="upscaler")
    fields, message = REFUSALS[case]
    with pytest.raises(InvalidRequest, match=message):
        await app.service.draw(origin(), small(**fields))
    assert await app.store.list_jobs() == []


async def test_scopes_and_defaults_cannot_slip_a_refiner_past_the_rules(app_factory: Any) -> None:
    app = await refiner_app(app_factory)
    admin = origin("boss", admin=True)
    await app.service.update_scope_settings(admin, allowed_models=["xl"])
    with pytest.raises(InvalidRequest, match=r"Refiner 'xl-refiner' is not allowed here\."):
        await app.service.draw(origin(), small(model="xl", refiner="xl-refiner"))
    with pytest.raises(InvalidRequest, match="cannot be the default model"):
        await app.service.set_default_model(ADMIN, "xl-refiner")
    with pytest.raises(InvalidRequest, match="cannot be the default model"):
        await app.service.update_scope_settings(admin, default_model="xl-refiner")
    assert await app.store.list_jobs() == []

    # A refiner removed after a job used it: the rerun is refused before anything is queued.
    await app.service.update_scope_settings(admin, allowed_models=None)
    request = small(model="xl", refiner="xl-refiner")
    job = await finished(app, (await app.service.draw(origin(), request)).job.id)
    await app.service.remove_model(ADMIN, "xl-refiner")
    with pytest.raises(EaselError, match=r"The refiner 'xl-refiner' is no longer registered\."):
        await app.service.rerun(origin(), job.id)
    assert [j.id for j in await app.store.list_jobs()] == [job.id]
