"""SDXL, SD3 and Flux.1 through the A1111-compatible API: txt2img with
``override_settings.sd_model_checkpoint`` renders with that model's family (its sampler, its
call), what the family cannot do is refused with the reason, and the A1111 lists keep their
shape (``/sd-models`` lists every checkpoint, ``/samplers`` A1111's names)."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from PIL import Image

from generation.requests import Origin
from tests.web.conftest import SMALL, client_app, nothing_queued

Client = TestClient[Any, Any]
V1 = "/sdapi/v1"
ADMIN = Origin(platform="cli", scope_id="local", user_id="root", is_admin=True)


@pytest.mark.parametrize(
    ("family", "sampler"), [("sdxl", "DPM++ 2M"), ("sd3", "Euler"), ("flux", "Euler")]
)
async def test_txt2img_with_each_family(web_client: Client, family: str, sampler: str) -> None:
    app = client_app(web_client)
    await app.service.add_model(ADMIN, family, f"builtin:demo-{family}")
    body = {
        "prompt": "a cat at dusk",
        "seed": 3,
        "sampler_name": sampler,
        "override_settings": {"sd_model_checkpoint": family},
        **SMALL,
    }
    response = await web_client.post(f"{V1}/txt2img", json=body)
    assert response.status == 200, await response.text()
    result = await response.json()
    info = json.loads(result["info"])
    assert info["sampler_name"] == sampler and info["sd_model_name"] == family
    image = Image.open(io.BytesIO(base64.b64decode(result["images"][0])))
    assert image.size == (64, 64)
    job = await app.store.get_job(info["easel_job_id"])
    assert job is not None and job.model == family and job.status == "succeeded"

    names = [m["model_name"] for m in await (await web_client.get(f"{V1}/sd-models")).json()]
    assert family in names
    samplers = [s["name"] for s in await (await web_client.get(f"{V1}/samplers")).json()]
    assert {"DPM++ 2M", "Euler a", "Euler"} <= set(samplers)  # A1111's list, every model


async def test_flux_refuses_a_negative_prompt_and_sd_samplers(web_client: Client) -> None:
    app = client_app(web_client)
    await app.service.add_model(ADMIN, "flux", "builtin:demo-flux")
    override = {"sd_model_checkpoint": "flux"}
    for extra, reason in (
        ({"negative_prompt": "blurry"}, "Flux.1 ignores the negative prompt"),
        ({"sampler_name": "DPM++ 2M Karras"}, "cannot use the sampler"),
    ):
        body = {"prompt": "x", "override_settings": override, **SMALL, **extra}
        response = await web_client.post(f"{V1}/txt2img", json=body)
        assert response.status == 422, await response.text()
        assert reason in await response.text()
    await nothing_queued(app)


async def test_easel_api_registers_a_family_model_and_lists_what_it_supports(
    idle_client: Client,
) -> None:
    body = {"name": "flux", "source": "builtin:demo-flux", "dtype": "bfloat16"}
    created = await idle_client.post("/api/admin/models", json=body)
    assert created.status == 201, await created.text()
    model = (await created.json())["model"]
    assert (model["family"], model["dtype"], model["default_sampler"]) == (
        "flux",
        "bfloat16",
        "Euler",
    )
    listed = {m["name"]: m for m in (await (await idle_client.get("/api/models")).json())["models"]}
    flux, demo = listed["flux"], listed["demo"]
    assert flux["samplers"] == ["Euler"] and flux["negative_prompt"] is False
    assert flux["cfg"] == "distilled" and flux["img2img"] and flux["hires"]
    assert not flux["latent_hires"] and demo["latent_hires"]
    assert demo["family"] == "sd1" and "DPM++ 2M Karras" in demo["samplers"]
    assert demo["negative_prompt"] is True and demo["dtype"] is None
    bad = await idle_client.post("/api/admin/models", json={**body, "name": "x", "dtype": "fp8"})
    assert bad.status == 400 and "dtype 'fp8'" in await bad.text()


async def test_txt2img_with_an_sdxl_refiner(web_client: Client) -> None:
    """A1111's ``refiner_checkpoint`` / ``refiner_switch_at``: the job is refined, ``info`` and
    the PNG say so as A1111 writes it; "None" means no refiner; what cannot refine is a 422."""
    app = client_app(web_client)
    await app.service.add_model(ADMIN, "xl", "builtin:demo-sdxl")
    await app.service.add_model(ADMIN, "xl-refiner", "builtin:demo-sdxl-refiner")
    base = {"prompt": "a cat at dusk", "seed": 3, **SMALL}
    base["override_settings"] = {"sd_model_checkpoint": "xl"}
    body = {**base, "refiner_checkpoint": "xl-refiner", "refiner_switch_at": 0.7}
    response = await web_client.post(f"{V1}/txt2img", json=body)
    assert response.status == 200, await response.text()
    info = json.loads((await response.json())["info"])
    extra = info["extra_generation_params"]
    assert extra["Refiner"] == "xl-refiner" and extra["Refiner switch at"] == 0.7
    assert "Refiner: xl-refiner, Refiner switch at: 0.7" in info["infotexts"][0]
    job = await app.store.get_job(info["easel_job_id"])
    assert job is not None and job.spec.refiner is not None
    assert (job.spec.refiner.model, job.spec.refiner.switch_at) == ("xl-refiner", 0.7)

    for none in (
        {"refiner_checkpoint": "None"},
        {"refiner_checkpoint": "", "refiner_switch_at": 1},
    ):
        response = await web_client.post(f"{V1}/txt2img", json={**base, **none})
        assert response.status == 200, await response.text()
        plain = json.loads((await response.json())["info"])
        assert "Refiner" not in plain["extra_generation_params"]

    for extra_fields, reason in (
        ({"refiner_checkpoint": "nope"}, "model 'nope' not found"),
        ({"refiner_checkpoint": "demo"}, "'demo' cannot refine 'xl'"),
        ({"refiner_checkpoint": "xl-refiner", "refiner_switch_at": 0}, "Refiner switch 0.0"),
        (
            {"refiner_checkpoint": "xl-refiner", "override_settings": {}},
            "only Stable Diffusion XL models take a refiner",
        ),
    ):
        response = await web_client.post(f"{V1}/txt2img", json={**base, **extra_fields})
        assert response.status in (404, 422), await response.text()
        assert reason in await response.text()
    await nothing_queued(app)


async def test_flux_hires_takes_pixel_upscalers_and_refuses_latent_ones(web_client: Client) -> None:
    app = client_app(web_client)
    await app.service.add_model(ADMIN, "flux", "builtin:demo-flux")
    body = {
        "prompt": "a cat", "seed": 2, "enable_hr": True, "hr_scale": 2,
        "override_settings": {"sd_model_checkpoint": "flux"}, **SMALL,
    }  # fmt: skip
    refused = await web_client.post(f"{V1}/txt2img", json=body)  # A1111's default: "Latent"
    assert refused.status == 422
    assert "cannot use the hires upscaler 'Latent'" in await refused.text()
    await nothing_queued(app)
    done = await web_client.post(f"{V1}/txt2img", json={**body, "hr_upscaler": "Lanczos"})
    assert done.status == 200, await done.text()
    image = Image.open(io.BytesIO(base64.b64decode((await done.json())["images"][0])))
    assert image.size == (128, 128)
