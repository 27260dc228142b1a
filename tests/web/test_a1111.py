"""The AUTOMATIC1111-compatible API (/sdapi/v1) over real HTTP, on the demo model."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from PIL import Image, PngImagePlugin

from generation.config import LimitsConfig
from generation.metadata import read_png_text
from generation.requests import Origin
from tests.web.conftest import SMALL, WebFactory, client_app, nothing_queued, png_b64

Client = TestClient[Any, Any]
V1 = "/sdapi/v1"


async def test_read_only_endpoints_answer_json(idle_client: Client) -> None:
    async def get(path: str) -> Any:
        response = await idle_client.get(f"{V1}/{path}")
        assert response.status == 200, (path, await response.text())
        assert "X-Process-Time" in response.headers
        return await response.json()

    assert await get("scripts") == {"txt2img": [], "img2img": []}
    models = await get("sd-models")
    assert [m["model_name"] for m in models] == ["demo"]
    assert set(models[0]) == {"title", "model_name", "hash", "sha256", "filename", "config"}
    samplers = await get("samplers")
    names = [s["name"] for s in samplers]
    assert names[0] == "DPM++ 2M" and "Euler a" in names and "k_euler_a" in samplers[3]["aliases"]
    assert "PLMS" in names  # listed by A1111 1.10, used by old scripts
    assert samplers[0]["options"] == {"scheduler": "karras"}
    assert [s["name"] for s in await get("schedulers")] == ["automatic", "karras"]
    assert [u["name"] for u in await get("upscalers")] == ["None", "Lanczos", "Nearest"]
    options = await get("options")
    assert options["sd_model_checkpoint"] == "demo" and options["samples_format"] == "png"
    for empty in ("hypernetworks", "face-restorers", "realesrgan-models", "prompt-styles",
                  "loras", "sd-vae", "sd-modules", "script-info",
                  "extensions"):  # fmt: skip
        assert await get(empty) == []
    latent = [mode["name"] for mode in await get("latent-upscale-modes")]
    assert latent[:2] == ["Latent", "Latent (antialiased)"] and len(latent) == 6
    assert await get("embeddings") == {"loaded": {}, "skipped": {}}
    assert await get("cmd-flags") == {}
    assert set(await get("memory")) == {"ram", "cuda"}
    idle = await get("progress")
    assert idle["progress"] == 0 and idle["state"]["job_count"] == 0
    assert idle["current_image"] is None
    for path, expected in [("refresh-checkpoints", None), ("reload-checkpoint", {})]:
        response = await idle_client.post(f"{V1}/{path}")
        assert response.status == 200 and await response.json() == expected
    missing = await idle_client.get(f"{V1}/no-such-thing")
    assert missing.status == 404 and await missing.json() == {"detail": "Not Found"}
    wrong = await idle_client.get(f"{V1}/txt2img")
    assert wrong.status == 405 and await wrong.json() == {"detail": "Method Not Allowed"}
    interrogate = await idle_client.post(f"{V1}/interrogate", json={"image": png_b64()})
    assert interrogate.status == 404 and (await interrogate.json())["detail"] == "Model not found"


async def test_bad_requests_are_clear_4xx_and_queue_nothing(web_factory: WebFactory) -> None:
    client = await web_factory(worker=False, web={"max_upload_mb": 1})
    app = client_app(client)

    async def post(path: str, status: int, **kwargs: Any) -> Any:
        response = await client.post(f"{V1}/{path}", **kwargs)
        assert response.status == status, (path, kwargs.get("json"), await response.text())
        return await response.json()

    bad = await post("txt2img", 422, data=b"{bad", headers={"Content-Type": "application/json"})
    assert bad["detail"][0]["loc"] == ["body", 1]
    assert bad["detail"][0]["type"] == "value_error.jsondecode"
    typed = await post("txt2img", 422, json={"prompt": "x", "steps": "ten", "width": [1]})
    assert [(d["loc"], d["type"]) for d in typed["detail"]] == [
        (["body", "steps"], "type_error.integer"),
        (["body", "width"], "type_error.integer"),
    ]
    assert (await post("txt2img", 422, json=["x"]))["detail"][0]["type"] == "type_error.dict"
    assert (await post("txt2img", 422, data=b""))["detail"][0]["type"] == "value_error.missing"
    batch = await post("txt2img", 422, json={"prompt": "x", "batch_size": 0})
    assert batch["detail"][0]["type"] == "value_error.number.not_ge"

    def wrapped(body: Any, *words: str) -> None:
        assert set(body) == {"error", "detail", "body", "errors"}
        assert all(word in body["detail"] for word in words), body

    wrapped(await post("txt2img", 422, json={"prompt": "x", "sampler_name": "Bogus"}), "Bogus")
    wrapped(
        await post(
            "txt2img",
            422,
            json={"prompt": "x", "sampler_name": "Euler", "scheduler": "SGM Uniform"},
        ),
        "not available",
    )
    wrapped(
        await post(
            "txt2img",
            422,
            json={"prompt": "x", "override_settings": {"sd_model_checkpoint": "nope"}},
        ),
        "model 'nope' not found",
    )
    wrapped(
        await post("txt2img", 422, json={"prompt": "x", "enable_hr": True, "hr_scale": 9}),
        "Hires scale 9",
    )
    wrapped(await post("txt2img", 422, json={"prompt": "x", "restore_faces": True}), "face")
    wrapped(await post("txt2img", 422, json={"prompt": "x", "script_name": "xyz"}), "Script 'xyz'")
    wrapped(await post("txt2img", 422, json={"prompt": "x", "steps": 1000}), "Steps 1000")
    wrapped(
        await post("txt2img", 422, json={"prompt": "x", "batch_size": 4, "n_iter": 2}), "Count 8"
    )
    wrapped(await post("txt2img", 422, json={"prompt": "   "}), "prompt is empty")
    wrapped(await post("img2img", 404, json={"prompt": "x"}), "Init image not found")
    wrapped(
        await post("img2img", 422, json={"prompt": "x", "init_images": ["!!notbase64"]}), "base64"
    )
    not_image = base64.b64encode(b"hello world").decode()
    wrapped(
        await post("img2img", 422, json={"prompt": "x", "init_images": [not_image]}), "not an image"
    )
    big = base64.b64encode(b"\0" * (1024 * 1024 + 10)).decode()  # decoded > max_upload_mb
    wrapped(await post("img2img", 413, json={"prompt": "x", "init_images": [big]}), "limit is 1 MB")
    huge = "A" * (3 * 1024 * 1024)  # the body itself is over 1.4 x 1 MB + 1 MB
    assert (await post("img2img", 413, json={"prompt": "x", "init_images": [huge]}))["error"]
    wrapped(await post("png-info", 422, json={"image": "%%%"}), "base64")
    wrapped(
        await post("extra-single-image", 422, json={"image": png_b64(), "upscaler_1": "Nope"}),
        "Nope",
    )
    await nothing_queued(app)


async def test_txt2img_png_info_round_trip(web_client: Client) -> None:
    app = client_app(web_client)
    body = {
        "prompt": "a castle at dusk",
        "negative_prompt": "blurry",
        "seed": 1234,
        "batch_size": 2,
        "sampler_name": "DPM++ 2M",
        "scheduler": "Karras",
        "cfg_scale": 6,
        "override_settings": {"sd_model_checkpoint": "demo"},
        **SMALL,
    }
    response = await web_client.post(f"{V1}/txt2img", json=body)
    assert response.status == 200, await response.text()
    result = await response.json()
    info = json.loads(result["info"])
    assert info["all_seeds"] == [1234, 1235] and info["seed"] == 1234
    assert info["sampler_name"] == "DPM++ 2M"
    assert info["extra_generation_params"] == {"Schedule type": "Karras"}
    assert (info["width"], info["height"], info["steps"], info["cfg_scale"]) == (64, 64, 4, 6.0)
    assert info["prompt"] == "a castle at dusk" and info["negative_prompt"] == "blurry"
    assert info["sd_model_name"] == "demo" and len(info["all_prompts"]) == 2
    assert result["parameters"]["steps"] == 4 and result["parameters"]["seed"] == 1234
    assert len(result["images"]) == 2 == len(info["infotexts"])
    for encoded, infotext in zip(result["images"], info["infotexts"], strict=True):
        data = base64.b64decode(encoded)  # plain base64, no data: prefix
        assert Image.open(io.BytesIO(data)).size == (64, 64)
        assert read_png_text(data)["parameters"] == infotext
    assert "Sampler: DPM++ 2M Karras" in info["infotexts"][0]
    job = await app.store.get_job(info["easel_job_id"])
    assert job is not None and job.platform == "api" and job.delivered_at is not None

    png_info = await web_client.post(f"{V1}/png-info", json={"image": result["images"][1]})
    assert png_info.status == 200
    parsed = await png_info.json()
    assert parsed["info"] == info["infotexts"][1]
    params = parsed["parameters"]
    assert (params["Prompt"], params["Negative prompt"]) == ("a castle at dusk", "blurry")
    assert (params["Seed"], params["Size-1"], params["Steps"]) == ("1235", "64", "4")
    assert params["Clip skip"] == "1"  # A1111's parser defaults are added
    assert parsed["items"]["easel_job_id"] == job.id


async def test_img2img_from_a_data_url_and_a_failing_job(
    web_client: Client, tmp_path: Path
) -> None:
    body = {
        "prompt": "a red square",
        "init_images": ["data:image/png;base64," + png_b64((80, 80))],
        "denoising_strength": 0.5,
        "sampler_name": "Euler a",
        "include_init_images": False,
        **SMALL,
    }
    response = await web_client.post(f"{V1}/img2img", json=body)
    assert response.status == 200, await response.text()
    result = await response.json()
    info = json.loads(result["info"])
    assert info["denoising_strength"] == 0.5 and info["sampler_name"] == "Euler a"
    assert "Denoising strength: 0.5" in info["infotexts"][0]
    assert result["parameters"]["init_images"] is None
    app = client_app(web_client)
    job = await app.store.get_job(info["easel_job_id"])
    assert job is not None and job.mode == "img2img" and job.strength == 0.5

    broken = tmp_path / "broken"
    shutil.copytree(app.config.data_dir / "models" / "demo", broken)
    admin = Origin(platform="cli", scope_id="local", user_id="root", is_admin=True)
    await app.service.add_model(admin, "broken", str(broken))
    shutil.rmtree(broken)  # the weights vanish after registration: the job fails
    override = {"sd_model_checkpoint": "broken"}
    failed = await web_client.post(
        f"{V1}/txt2img", json={"prompt": "x", "override_settings": override, **SMALL}
    )
    assert failed.status == 500
    body = await failed.json()
    assert body["error"] == "JobFailed" and body["errors"]


async def test_progress_then_interrupt(web_client: Client) -> None:
    body = {"prompt": "a long one", "seed": 5, "width": 256, "height": 256, "steps": 60}
    waiting = asyncio.create_task(web_client.post(f"{V1}/txt2img", json=body))
    seen: dict[str, Any] = {}
    async with asyncio.timeout(60):
        while True:
            seen = await (await web_client.get(f"{V1}/progress")).json()
            if seen["state"]["sampling_step"] >= 1 or waiting.done():
                break
            await asyncio.sleep(0.02)
    assert not waiting.done(), "the job finished before it could be interrupted"
    assert 0 < seen["progress"] <= 1 and seen["state"]["job_count"] == 1
    assert seen["state"]["job"] == "scripts_txt2img" and seen["state"]["sampling_steps"] > 0
    if seen["current_image"] is not None:
        Image.open(io.BytesIO(base64.b64decode(seen["current_image"]))).verify()
    interrupted = await web_client.post(f"{V1}/interrupt")
    assert interrupted.status == 200 and await interrupted.json() == {}
    response = await waiting
    assert response.status == 200
    result = await response.json()
    assert result["images"] == [] and json.loads(result["info"])["easel_status"] == "cancelled"
    idle = await (await web_client.get(f"{V1}/progress")).json()
    assert idle["progress"] == 0 and idle["state"]["job_count"] == 0
    skipped = await web_client.post(f"{V1}/skip")
    assert skipped.status == 200 and await skipped.json() is None


async def test_options_switch_the_default_model(idle_client: Client, data_dir: Any) -> None:
    app = client_app(idle_client)
    admin = Origin(platform="cli", scope_id="local", user_id="root", is_admin=True)
    await app.service.add_model(admin, "mine", str(data_dir / "models" / "demo"))
    titles = [m["title"] for m in await (await idle_client.get(f"{V1}/sd-models")).json()]
    mine = next(title for title in titles if title.startswith("mine ["))
    response = await idle_client.post(f"{V1}/options", json={"sd_model_checkpoint": mine})
    assert response.status == 200 and await response.json() is None
    options = await (await idle_client.get(f"{V1}/options")).json()
    assert options["sd_model_checkpoint"] == mine
    default = await app.store.default_model()
    assert default is not None and default.name == "mine"
    unknown = await idle_client.post(f"{V1}/options", json={"sd_model_checkpoint": "nope"})
    assert unknown.status == 422 and "model 'nope' not found" in (await unknown.json())["errors"]
    typed = await idle_client.post(f"{V1}/options", json={"sd_model_checkpoint": 3})
    assert typed.status == 422 and (await typed.json())["detail"][0]["type"] == "type_error.str"
    assert (await idle_client.post(f"{V1}/options", json={"samples_format": "png"})).status == 200


def _png_with_text(size: tuple[int, int]) -> str:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat\nSteps: 4, Sampler: Euler, CFG scale: 7.0, Seed: 1")
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(buffer, format="PNG", pnginfo=info)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


async def test_extras_upscale_keeps_metadata(idle_client: Client) -> None:
    async def extras(status: int, **fields: Any) -> Any:
        response = await idle_client.post(f"{V1}/extra-single-image", json=fields)
        assert response.status == status, await response.text()
        return await response.json()

    source = _png_with_text((32, 24))
    result = await extras(200, image="data:image/png;base64," + source, upscaler_1="Lanczos")
    data = base64.b64decode(result["image"])
    assert Image.open(io.BytesIO(data)).size == (64, 48)
    texts = read_png_text(data)
    assert texts["parameters"].startswith("a cat")
    assert texts["postprocessing"] == "Postprocess upscale by: 2, Postprocess upscaler: Lanczos"
    assert result["html_info"].startswith("<p>Postprocess upscale by: 2")
    unchanged = await extras(200, image=source, upscaler_1="None")
    assert Image.open(io.BytesIO(base64.b64decode(unchanged["image"]))).size == (32, 24)
    exact = await extras(
        200, image=source, upscaler_1="Nearest", resize_mode=1, upscaling_resize_w=40,
        upscaling_resize_h=40,
    )  # fmt: skip
    assert Image.open(io.BytesIO(base64.b64decode(exact["image"]))).size == (40, 40)
    batch = await idle_client.post(
        f"{V1}/extra-batch-images",
        json={"imageList": [{"data": source, "name": "a"}], "upscaling_resize": 3},
    )
    assert batch.status == 200
    (image,) = (await batch.json())["images"]
    assert Image.open(io.BytesIO(base64.b64decode(image))).size == (96, 72)
    too_big = await extras(422, image=source, upscaling_resize=1000)
    assert "pixel limit" in too_big["detail"]
    assert "face" in (await extras(422, image=source, gfpgan_visibility=1))["detail"]
    typed = await extras(422, image=source, upscaling_resize="double")
    assert typed["detail"][0]["loc"] == ["body", "upscaling_resize"]
    jpeg = io.BytesIO()
    Image.new("RGB", (8, 8)).save(jpeg, format="JPEG")
    info = await idle_client.post(
        f"{V1}/png-info", json={"image": base64.b64encode(jpeg.getvalue()).decode()}
    )
    assert (await info.json())["info"] == ""
    empty = await idle_client.post(f"{V1}/png-info", json={"image": ""})
    assert await empty.json() == {"info": "", "items": {}, "parameters": {}}


async def test_a_script_looping_over_prompts_on_loopback_is_never_throttled(
    web_factory: WebFactory,
) -> None:
    # The shipped limits (6/min, burst 3, 5 waiting), not the tests' generous ones: on
    # loopback the caller is the machine's owner, who is exempt (limits.exempt_admins).
    client = await web_factory(limits=LimitsConfig().model_dump())
    for n in range(20):
        body = {"prompt": f"prompt {n}", "seed": n, **SMALL, "steps": 1}
        answer = await client.post(f"{V1}/txt2img", json=body)
        assert answer.status == 200, (n, await answer.text())
        assert len((await answer.json())["images"]) == 1


async def test_rate_limit_and_sync_timeout(web_factory: WebFactory) -> None:
    client = await web_factory(
        worker=False,
        # On loopback the caller is the owner, exempt unless the admin says otherwise.
        limits={"burst": 1, "rate_per_minute": 1, "exempt_admins": False},
        web={"sync_timeout_seconds": 0.3},
    )
    first = await client.post(f"{V1}/txt2img", json={"prompt": "x", **SMALL})
    assert first.status == 504  # nothing renders without a worker: the call gives up
    assert "carries on" in (await first.json())["detail"]
    second = await client.post(f"{V1}/txt2img", json={"prompt": "y", **SMALL})
    assert second.status == 429
    assert int(second.headers["Retry-After"]) >= 1
    assert (await second.json())["error"] == "RateLimited"
    app = client_app(client)
    assert len(app.queue) == 1  # the first job only


def test_sampler_and_schedule_resolution() -> None:
    from bot.web.a1111_models import resolve_a1111_sampler as resolve
    from generation.errors import InvalidRequest

    assert resolve(None, None, None) is None  # the model's default sampler
    assert resolve("PLMS", None, None) == ("PLMS", "PLMS", "Automatic")
    assert resolve("DPM++ 2M", None, "Karras") == ("DPM++ 2M Karras", "DPM++ 2M", "Karras")
    assert resolve("DPM++ 2M Karras", None, None) == ("DPM++ 2M Karras", "DPM++ 2M", "Karras")
    assert resolve("dpm++ 2m", None, "automatic")[0] == "DPM++ 2M Karras"  # A1111's default
    assert resolve("DPM++ 2M SDE", None, None)[0] == "DPM++ 2M SDE"
    assert resolve("", "Euler a", "no-such-schedule") == ("Euler a", "Euler a", "Automatic")
    assert resolve("k_euler_a", None, None)[0] == "Euler a"
    assert resolve("LMS", None, "karras")[0] == "LMS Karras"
    for name, schedule in [("Bogus", None), ("Euler a", "Karras"), ("Euler", "Exponential")]:
        with pytest.raises(InvalidRequest):
            resolve(name, None, schedule)


# ---------------------------------------------------------------------- options


async def test_options_are_stored_given_back_and_survive_a_restart(
    web_factory: WebFactory,
) -> None:
    client = await web_factory(worker=False)
    sent = {
        "send_seed": False,
        "CLIP_stop_at_last_layers": 2,
        "eta_noise_seed_delta": 31337,
        "sd_vae": "vae-ft-mse.safetensors",
        "some_extension_setting": {"nested": [1, 2.5, None, "x"], "on": True},
    }
    response = await client.post(f"{V1}/options", json=sent)
    assert response.status == 200 and await response.json() is None
    options = await (await client.get(f"{V1}/options")).json()
    assert {key: options.get(key) for key in sent} == sent
    assert options["sd_model_checkpoint"] == "demo" and options["samples_format"] == "png"
    more = await client.post(f"{V1}/options", json={"send_seed": True, "samples_format": "webp"})
    assert more.status == 200
    app = client_app(client)
    await client.close()
    await app.stop()

    again = await web_factory(worker=False)  # the same data folder, a new engine
    options = await (await again.get(f"{V1}/options")).json()
    assert options["send_seed"] is True and options["samples_format"] == "webp"
    assert options["CLIP_stop_at_last_layers"] == 2 and options["eta_noise_seed_delta"] == 31337
    assert options["some_extension_setting"] == sent["some_extension_setting"]


async def test_options_refuse_what_cannot_be_kept_or_applied(idle_client: Client) -> None:
    async def refused(body: Any) -> Any:
        response = await idle_client.post(f"{V1}/options", json=body)
        assert response.status == 422, (body, await response.text())
        return await response.json()

    for not_an_object in ([{"send_seed": False}], "send_seed", 3):
        detail = (await refused(not_an_object))["detail"][0]
        assert detail["loc"] == ["body"] and "JSON object" in detail["msg"]
    empty = (await refused(None))["detail"][0]  # no body at all
    assert "JSON object" in empty["msg"]
    too_big = await refused({"notes": "x" * 70_000})
    assert "at most 65,536" in too_big["detail"] and "64 KB" in too_big["detail"]
    assert "webp" in (await refused({"samples_format": "tiff"}))["detail"]
    assert "1 to 100" in (await refused({"jpeg_quality": 0}))["detail"]
    assert "true or false" in (await refused({"webp_lossless": "yes"}))["detail"]
    # One bad key refuses the whole body: nothing of it is stored.
    await refused({"send_seed": False, "sd_model_checkpoint": "nope"})
    options = await (await idle_client.get(f"{V1}/options")).json()
    assert "send_seed" not in options and "notes" not in options
    assert options["samples_format"] == "png"


async def test_only_admins_set_options_on_a_public_bind(
    web_factory: WebFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EASEL_API_AUTH", "alice:wonderland")
    monkeypatch.setenv("EASEL_ADMIN_TOKEN", "admin-token-123456")
    client = await web_factory(worker=False, web={"host": "0.0.0.0"})
    alice = aiohttp.BasicAuth("alice", "wonderland")
    admin = {"Authorization": "Bearer admin-token-123456"}
    denied = await client.post(f"{V1}/options", json={"samples_format": "jpg"}, auth=alice)
    assert denied.status == 403
    allowed = await client.post(f"{V1}/options", json={"samples_format": "jpg"}, headers=admin)
    assert allowed.status == 200
    seen = await (await client.get(f"{V1}/options", auth=alice)).json()
    assert seen["samples_format"] == "jpg"  # every client of the API reads them


def _decoded(answer: dict[str, Any]) -> Image.Image:
    (image,) = answer["images"]
    return Image.open(io.BytesIO(base64.b64decode(image)))


async def test_samples_format_chooses_the_images_format(web_client: Client) -> None:
    body = {"prompt": "a red fox", "seed": 3, **SMALL}

    async def txt2img(**extra: Any) -> dict[str, Any]:
        response = await web_client.post(f"{V1}/txt2img", json={**body, **extra})
        assert response.status == 200, await response.text()
        return dict(await response.json())

    png = await txt2img()
    assert _decoded(png).format == "PNG"
    assert (await web_client.post(f"{V1}/options", json={"samples_format": "jpg"})).status == 200
    answer = await txt2img()
    jpeg = _decoded(answer)
    assert jpeg.format == "JPEG" and jpeg.size == (64, 64)
    comment = jpeg.getexif().get_ifd(0x8769)[0x9286]  # EXIF UserComment, as A1111 writes it
    infotext = json.loads(answer["info"])["infotexts"][0]
    assert comment == b"UNICODE\0" + infotext.encode("utf-16-be")
    webp = await txt2img(override_settings={"samples_format": "webp", "webp_lossless": True})
    assert _decoded(webp).format == "WEBP"
    assert (await web_client.post(f"{V1}/options", json={"samples_format": "png"})).status == 200
    assert _decoded(await txt2img()).format == "PNG"
    bad = await web_client.post(
        f"{V1}/txt2img", json={**body, "override_settings": {"samples_format": "bmp"}}
    )
    assert bad.status == 422 and "override_settings.samples_format" in (await bad.json())["detail"]


async def test_webuiapi_loops_twenty_txt2img_calls_with_the_shipped_limits(
    web_factory: WebFactory,
) -> None:
    webuiapi = pytest.importorskip("webuiapi")
    client = await web_factory(limits=LimitsConfig().model_dump())
    port = client.server.port
    assert port is not None

    def loop() -> list[Any]:  # webuiapi is synchronous (requests): off the server's loop
        api = webuiapi.WebUIApi(host="127.0.0.1", port=port)  # it calls the server at once
        return [
            api.txt2img(prompt=f"prompt {n}", seed=n, width=64, height=64, steps=1)
            for n in range(20)
        ]

    results = await asyncio.to_thread(loop)
    assert len(results) == 20
    assert all(result.image is not None and result.image.size == (64, 64) for result in results)
    assert [result.info["seed"] for result in results] == list(range(20))
