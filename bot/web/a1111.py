"""AUTOMATIC1111-compatible generation endpoints under ``/sdapi/v1`` (A1111-API.md §4–§5).

``txt2img`` and ``img2img`` run a normal Easel job as the API client (platform "api", scope
"api"; the credential is the same person as on ``/api``), so they share the fair queue, limits
and history with everyone else, then wait for it and answer A1111's ``{images, parameters,
info}`` (images in the ``samples_format`` of the client options, see ``a1111_options``).
img2img with a ``mask`` is an inpaint job and txt2img with ``enable_hr`` a hires fix job (what
their fields become, and what ``info`` says of them: ``a1111_jobs``).
``progress``, ``interrupt`` and ``skip`` follow A1111's shapes and see only the caller's own
jobs (an admin's: every job); ``progress``'s ``eta_relative`` is the Service's time left, the
number every front end shows. Read-only lists, png-info and extras are in ``a1111_info``;
``/options`` in ``a1111_options``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.web import a1111_options
from bot.web.a1111_jobs import (
    hires_of,
    info_extras,
    inpaint_of,
    inpaint_size,
    inpainting_conditioning,
)
from bot.web.a1111_models import (
    GenerationRequest,
    Img2ImgRequest,
    Txt2ImgRequest,
    a1111_sampler_of,
    find_checkpoint,
    resolve_a1111_sampler,
    validate,
)
from bot.web.auth import principal
from bot.web.common import api_origin, decode_image, read_json, wait_for_job
from bot.web.errors import A1111HTTPError, A1111Validation, JobFailed, JobTimeout
from bot.web.keys import app_of, state_of
from generation.errors import InvalidRequest
from generation.metadata import PARAMETERS_KEY, read_png_text, short_hash
from generation.rendering import denoising_strength
from generation.requests import DrawRequest, HiresRequest, InpaintRequest
from storage.records import JobRecord, ModelRecord

if TYPE_CHECKING:
    from bot.app import App

VERSION = "Easel"


def _timestamp(job: JobRecord) -> str:
    return job.created_at.strftime("%Y%m%d%H%M%S")


def _single(value: str | list[str] | None, field: str) -> str:
    """A1111 allows one prompt per image; Easel renders one prompt per request."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    distinct = set(value)
    if len(distinct) > 1:
        raise InvalidRequest(f"{field}: Easel renders one prompt per request; send a string.")
    return value[0] if value else ""


def _refuse_unsupported(req: GenerationRequest) -> None:
    """What would change the picture but Easel cannot do: a clear 422, not a silent ignore."""
    if req.script_name:
        raise A1111HTTPError(422, f"Script '{req.script_name}' not found")
    if req.alwayson_scripts:
        raise A1111HTTPError(422, f"Script '{next(iter(req.alwayson_scripts))}' not found")
    if req.restore_faces:
        raise InvalidRequest(
            "Easel has no face restorers (GFPGAN, CodeFormer): send restore_faces false."
        )


async def _checkpoint(app: App, wanted: object, loc: list[str]) -> ModelRecord:
    """The registered model an ``sd_model_checkpoint`` value names (title, name or hash)."""
    if not isinstance(wanted, str):
        raise A1111Validation([{"loc": loc, "msg": "str type expected", "type": "type_error.str"}])
    model = find_checkpoint(await app.service.list_models(), wanted)
    if model is None:
        raise InvalidRequest(f"model {wanted!r} not found")
    return model


async def _model_override(app: App, req: GenerationRequest) -> str | None:
    wanted = (req.override_settings or {}).get("sd_model_checkpoint")
    if wanted is None or wanted == "":
        return None
    loc = ["body", "override_settings", "sd_model_checkpoint"]
    return (await _checkpoint(app, wanted, loc)).name


async def _refiner(app: App, req: GenerationRequest) -> tuple[str | None, float | None]:
    """A1111's ``refiner_checkpoint`` (a title, name or hash; "None" or empty: no refiner) as
    the registered refiner's name, and ``refiner_switch_at`` (None: 0.8). A switch at 1 or
    more never switches in A1111: no refiner stage either."""
    wanted = req.refiner_checkpoint
    switch_at = req.refiner_switch_at
    if wanted is None or wanted.strip() in ("", "None", "none"):
        return None, None
    if switch_at is not None and switch_at >= 1.0:
        return None, None
    model = await _checkpoint(app, wanted, ["body", "refiner_checkpoint"])
    return model.name, switch_at


async def draw_request(
    app: App,
    req: GenerationRequest,
    init_image: bytes | None,
    strength: float | None,
    *,
    mask: InpaintRequest | None = None,
    hires: HiresRequest | None = None,
) -> DrawRequest:
    sampler = resolve_a1111_sampler(req.sampler_name, req.sampler_index, req.scheduler)
    seed = req.seed if req.seed is not None and req.seed != -1 else None
    width, height = req.width, req.height
    if mask is not None and mask.inpaint_full_res and init_image is not None:
        # "Only masked" pastes the repainted box back into the picture: its own size.
        width, height = inpaint_size(init_image) or (width, height)
    refiner, switch_at = await _refiner(app, req)
    return DrawRequest(
        prompt=_single(req.prompt, "prompt"),
        negative_prompt=_single(req.negative_prompt, "negative_prompt"),
        seed=seed,
        steps=req.steps,
        cfg=req.cfg_scale,
        width=width,
        height=height,
        sampler=sampler[0] if sampler else None,
        model=await _model_override(app, req),
        count=(req.batch_size or 1) * (req.n_iter or 1),
        strength=strength,
        init_image=init_image,
        mask=mask,
        hires=hires,
        styles=tuple(req.styles or ()),
        refiner=refiner,
        refiner_switch_at=switch_at,
    )


def build_info(
    job: JobRecord, req: GenerationRequest, texts: list[str], *, inpainting_model: bool = False
) -> dict[str, Any]:
    """The ``info`` document (§5); serialised into a string by the caller. ``width`` and
    ``height`` are the first pass's for a hires fix, as A1111's; ``inpainting_model``: the
    job's model has a 9-channel UNet."""
    sampler, schedule = a1111_sampler_of(job.sampler)
    n = len(job.images) or job.count
    subseed = req.subseed if req.subseed is not None and req.subseed >= 0 else job.seed
    denoising = req.denoising_strength if isinstance(req, Txt2ImgRequest) else None
    strength = denoising_strength(job.spec)
    return {
        "prompt": job.prompt,
        "all_prompts": [job.prompt] * n,
        "negative_prompt": job.negative_prompt,
        "all_negative_prompts": [job.negative_prompt] * n,
        "seed": job.seed,
        "all_seeds": job.seeds[:n],
        "subseed": subseed,
        "all_subseeds": [subseed + i for i in range(n)],
        "subseed_strength": req.subseed_strength or 0.0,
        "width": job.width,
        "height": job.height,
        "sampler_name": sampler,
        "cfg_scale": job.cfg,
        "steps": job.steps,
        "batch_size": req.batch_size or 1,
        "restore_faces": False,
        "face_restoration_model": None,
        "sd_model_name": job.model,
        "sd_model_hash": short_hash(job.model_revision),
        "sd_vae_name": None,
        "sd_vae_hash": None,
        "seed_resize_from_w": -1,
        "seed_resize_from_h": -1,
        # img2img and hires: the strength used; txt2img: the request's value, like A1111.
        "denoising_strength": strength if strength is not None else denoising,
        "extra_generation_params": info_extras(job, schedule),
        "index_of_first_image": 0,
        "infotexts": texts,
        "styles": list(req.styles or []),
        "job_timestamp": _timestamp(job),
        "clip_skip": 1,
        "is_using_inpainting_conditioning": inpainting_model,
        "version": VERSION,
        "easel_job_id": job.id,
        "easel_status": str(job.status),
    }


def echo_parameters(req: GenerationRequest, job: JobRecord) -> dict[str, Any]:
    """The request echoed back with the values Easel used where it left them out (§4.1)."""
    params = req.model_dump()
    sampler, schedule = a1111_sampler_of(job.sampler)
    filled = {
        "steps": job.steps,
        "cfg_scale": job.cfg,
        "width": job.width,
        "height": job.height,
        "sampler_name": sampler,
        "sampler_index": "Euler",  # A1111 echoes its legacy default here (§4.1)
        "scheduler": schedule,
        "styles": [],
        "script_args": [],
        "alwayson_scripts": {},
    }
    for key, value in filled.items():
        if params.get(key) is None:
            params[key] = value
    if isinstance(req, Img2ImgRequest) and not req.include_init_images:
        params["init_images"] = None
        params["mask"] = None
    return params


async def run_sync(request: web.Request, req: GenerationRequest, draw: DrawRequest) -> web.Response:
    """Submit as the API client, wait for the job, answer A1111's response."""
    app, state = app_of(request), state_of(request)
    origin = api_origin(principal(request))
    limit = app.config.web.max_upload_bytes
    a1111_options.check_applied(req.override_settings or {}, "override_settings")
    image_format = a1111_options.ImageFormat(
        await app.service.client_options(origin), req.override_settings
    )
    accepted = await app.service.draw(origin, draw, max_upload_bytes=limit)
    job_id = accepted.job.id
    # No await since the job was queued: nothing of it can have been missed.
    events = app.service.watch_job(accepted.job, max_progress=0)  # only its end matters here
    timeout = app.config.web.sync_timeout_seconds
    try:
        job = await wait_for_job(
            app, origin, events, job_id, timeout=timeout, stopping=state.stopping
        )
    except TimeoutError:
        raise JobTimeout(
            f"Job {job_id} did not finish within {timeout:g} s (web.sync_timeout_seconds); it "
            f"carries on: GET /api/jobs/{job_id}."
        ) from None
    finally:
        events.close()
    if job.status == "failed":
        raise JobFailed(job.error or f"Job {job_id} failed.")
    pngs = await app.service.read_images(job)

    def encode() -> tuple[list[str], list[str]]:  # in a thread: base64 of MBs takes a while
        texts = [read_png_text(data).get(PARAMETERS_KEY, "") for data in pngs]
        if req.send_images is False:
            return [], texts
        files = [image_format.encode(data, text) for data, text in zip(pngs, texts, strict=True)]
        return [base64.b64encode(data).decode("ascii") for data in files], texts

    images, texts = await asyncio.to_thread(encode)
    models = {model.name: model for model in await app.service.list_models()}
    nine = await asyncio.to_thread(
        inpainting_conditioning, models.get(job.model), app.config.data_dir
    )
    info = build_info(job, req, texts, inpainting_model=nine)
    body = {
        "images": images,
        "parameters": echo_parameters(req, job),
        "info": json.dumps(info, ensure_ascii=False),
    }
    await app.service.delivered(job)
    return web.json_response(body)


async def txt2img(request: web.Request) -> web.Response:
    app = app_of(request)
    req = validate(Txt2ImgRequest, await read_json(request, required=False))
    _refuse_unsupported(req)
    draw = await draw_request(app, req, None, None, hires=hires_of(req))
    return await run_sync(request, req, draw)


async def img2img(request: web.Request) -> web.Response:
    app = app_of(request)
    req = validate(Img2ImgRequest, await read_json(request, required=False))
    _refuse_unsupported(req)
    if not req.init_images:
        raise A1111HTTPError(404, "Init image not found")
    if len(set(req.init_images)) > 1:
        raise InvalidRequest("Easel takes one init image per img2img request.")
    limit = app.config.web.max_upload_bytes
    init = decode_image(req.init_images[0], limit, field="init_images")
    mask = inpaint_of(req, limit)  # checked against the picture by the Service
    strength = 0.75 if req.denoising_strength is None else req.denoising_strength
    draw = await draw_request(app, req, init, strength, mask=mask)
    return await run_sync(request, req, draw)


# ---------------------------------------------------------------------- progress, interrupt


async def progress(request: web.Request) -> web.Response:
    """§4.5, for the caller's own jobs (an admin's, so everyone's on loopback: every job)."""
    app = app_of(request)
    origin = api_origin(principal(request))
    skip_image = request.query.get("skip_current_image", "false").lower() in ("true", "1")
    running = await app.service.running(origin, previews=not skip_image)
    queue = await app.service.queue_status(origin)
    queued = queue.length if origin.is_admin else len(queue.your_jobs)
    job_count = queued + len(running)
    state_json: dict[str, Any] = {
        "skipped": False,
        "interrupted": False,
        "stopping_generation": False,
        "job": "",
        "job_count": job_count,
        "job_timestamp": "0",
        "job_no": 0,
        "sampling_step": 0,
        "sampling_steps": 0,
    }
    body: dict[str, Any] = {
        "progress": 0.0,
        "eta_relative": 0.0,
        "state": state_json,
        "current_image": None,
        "textinfo": "Loading model" if not running and app.service.loading() else None,
    }
    if running:
        current = running[0]
        fraction = current.step / current.total if current.total else 0.0
        done = min(1.0, 0.01 + fraction)
        body["progress"] = round(done, 4)
        # The same time left as the page, the chat front ends and the CLI show.
        left = app.service.seconds_left(current.job.id)
        body["eta_relative"] = round(left or 0.0, 2)
        state_json.update(
            job="scripts_img2img" if current.job.mode != "txt2img" else "scripts_txt2img",
            job_timestamp=_timestamp(current.job),
            sampling_step=current.step,
            sampling_steps=current.total,
        )
        if current.preview_png is not None and not skip_image:
            body["current_image"] = base64.b64encode(current.preview_png).decode("ascii")
    elif queue.your_jobs:  # until the caller's next job is done, as A1111 counts it
        next_job = min(queue.your_jobs, key=lambda entry: entry[2])[0]
        body["eta_relative"] = round(queue.seconds_left.get(next_job, 0.0), 2)
    return web.json_response(body)


async def _stop_running(request: web.Request) -> None:
    app = app_of(request)
    origin = api_origin(principal(request))
    for entry in await app.service.running(origin):
        with contextlib.suppress(InvalidRequest):  # finished meanwhile
            await app.service.cancel(origin, entry.job.id)


async def interrupt(request: web.Request) -> web.Response:
    """Stop the caller's running job (§4.6); its waiting txt2img call answers what it has."""
    await _stop_running(request)
    return web.json_response({})


async def skip(request: web.Request) -> web.Response:
    """A1111 skips one batch iteration; an Easel job renders its batch at once, so: stop it."""
    await _stop_running(request)
    return web.json_response(None)


async def prompt_styles(request: web.Request) -> web.Response:
    """The prompt styles this client may name in ``styles``: the API scope's and the config's."""
    styles = await app_of(request).service.styles(api_origin(principal(request)))
    return web.json_response([{"name": s.name, **s.texts()} for s in styles])


def setup_routes(web_app: web.Application) -> None:
    r = web_app.router
    r.add_post("/sdapi/v1/txt2img", txt2img)
    r.add_post("/sdapi/v1/img2img", img2img)
    r.add_get("/sdapi/v1/progress", progress)
    r.add_get("/sdapi/v1/prompt-styles", prompt_styles)
    r.add_post("/sdapi/v1/interrupt", interrupt)
    r.add_post("/sdapi/v1/skip", skip)
    a1111_options.setup_routes(web_app)
