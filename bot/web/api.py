"""Easel's own JSON API under ``/api``: jobs, actions, images, models and admin settings.

Every request is made as the web origin (platform "web", scope "web", the credential's user or
"local"), so it goes through the same admission, limits and fair queue as the bots, and sees
only the caller's own jobs (an admin: every job; see ``bot.web.common``). Errors are
``{"error": "<message>", "type": "<ErrorClass>"}`` (see ``bot.web.errors``). The live events
stream (``GET /api/events``) is in ``bot.web.events``.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from aiohttp import web

from bot.grammar import merge_fields, parse_draw
from bot.web.admin_scopes import list_scopes, scope_key, scope_origin
from bot.web.auth import METRICS_PATH, principal
from bot.web.common import (
    decode_image,
    http_origin,
    int_param,
    job_json,
    read_json,
    web_origin,
)
from bot.web.keys import app_of
from generation.actions import JobAction
from generation.errors import InvalidRequest
from generation.model_sources import model_capabilities
from generation.policy import ScopeSettings
from generation.regions import USAGE as REGION_USAGE
from generation.requests import DrawRequest, InpaintRequest, Origin
from generation.samplers import SAMPLERS, resolve_sampler
from generation.service import Accepted
from generation.sizing import format_aspect, parse_aspect
from storage.records import ModelRecord

_IMAGE_NAME = re.compile(r"^([0-9a-fA-F]{64})\.png$")
ACTIONS = (*(action.value for action in JobAction), "zoom_out", "pan", "cancel")


# ---------------------------------------------------------------------- body fields


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


def _present(body: dict[str, Any], name: str) -> Any:
    value = body.get(name)
    return None if value == "" else value


def opt_int(body: dict[str, Any], name: str) -> int | None:
    value = _present(body, name)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{name} must be a whole number, not {value!r}.")
    return value


def opt_float(body: dict[str, Any], name: str) -> float | None:
    value = _present(body, name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"{name} must be a number, not {value!r}.")
    return float(value)


def opt_str(body: dict[str, Any], name: str) -> str | None:
    value = _present(body, name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string, not {value!r}.")
    return value


def opt_words(body: dict[str, Any], name: str) -> list[str]:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(word, str) for word in value):
        raise InvalidRequest(f"{name} must be a list of strings.")
    return value


def draw_request(body: dict[str, Any], max_upload: int) -> DrawRequest:
    """The page's form: ``prompt`` in the /draw grammar, the other fields as fields; an option
    given both ways follows :func:`bot.grammar.merge_fields` (the prompt's wins)."""
    prompt = _present(body, "prompt")
    if not isinstance(prompt, str):
        raise InvalidRequest("prompt must be a string: what to draw, e.g. a castle at dusk.")
    inline = parse_draw(prompt)
    seed = opt_int(body, "seed")
    aspect = opt_str(body, "aspect")
    if aspect is not None:
        aspect = format_aspect(*parse_aspect(aspect))
    sampler = opt_str(body, "sampler")
    if sampler is not None:
        sampler = resolve_sampler(sampler)
    init = opt_str(body, "init_image")
    fields = DrawRequest(
        prompt="",
        negative_prompt=opt_str(body, "negative_prompt") or "",
        seed=None if seed == -1 else seed,
        steps=opt_int(body, "steps"),
        cfg=opt_float(body, "cfg"),
        width=opt_int(body, "width"),
        height=opt_int(body, "height"),
        aspect=aspect,
        sampler=sampler,
        model=opt_str(body, "model"),
        count=opt_int(body, "count"),
        strength=opt_float(body, "strength"),
        init_image=decode_image(init, max_upload, field="init_image") if init else None,
        # "mask" (and A1111's inpaint options, as /api/jobs/{id}/inpaint takes them): an
        # inpaint of the uploaded image, white = repaint
        mask=inpaint_request(body, max_upload) if body.get("mask") is not None else None,
        styles=tuple(opt_words(body, "styles")),
        # SDXL's refiner stage: a registered refiner's name, and when it takes over (0-1)
        refiner=opt_str(body, "refiner"),
        refiner_switch_at=opt_float(body, "refiner_switch_at"),
    )
    return merge_fields(inline, fields)


# ---------------------------------------------------------------------- jobs


async def _accepted(request: web.Request, accepted: Accepted) -> web.Response:
    app = app_of(request)
    data = {
        "job": await job_json(app, accepted.job),
        "position": accepted.position,
        "eta_seconds": round(accepted.eta_seconds, 1),  # until it starts
        "seconds_left": round(accepted.seconds_left, 1),  # until it is done
    }
    return web.json_response(data, status=202)


async def submit_job(request: web.Request) -> web.Response:
    app = app_of(request)
    body = _object(await read_json(request))
    limit = app.config.web.max_upload_bytes
    draw = draw_request(body, limit)
    accepted = await app.service.draw(web_origin(principal(request)), draw, max_upload_bytes=limit)
    return await _accepted(request, accepted)


async def list_jobs(request: web.Request) -> web.Response:
    app = app_of(request)
    limit = int_param(request, "limit", 20, 1, 200)
    offset = int_param(request, "offset", 0, 0, 10_000_000)
    query = request.query.get("q") or None
    # An admin (everyone on loopback: it is their machine) sees every job; others their own.
    origin = web_origin(principal(request))
    jobs = await app.service.history(origin, limit=limit, offset=offset, query=query)
    data = [await job_json(app, job) for job in jobs]
    return web.json_response({"jobs": data, "limit": limit, "offset": offset})


async def get_job(request: web.Request) -> web.Response:
    app = app_of(request)
    job = await app.service.job_for(web_origin(principal(request)), request.match_info["id"])
    return web.json_response(await job_json(app, job))


async def job_action(request: web.Request) -> web.Response:
    app = app_of(request)
    body = _object(await read_json(request))
    action = body.get("action")
    if action not in ACTIONS:
        raise InvalidRequest(f"action must be one of {', '.join(ACTIONS)}, not {action!r}.")
    index = opt_int(body, "index")
    strength = opt_str(body, "strength")
    job_id = request.match_info["id"]
    origin = web_origin(principal(request))
    if action == "cancel":
        job = await app.service.cancel(origin, job_id)
        return web.json_response({"job": await job_json(app, job)})
    at = 0 if index is None else index
    if action == "zoom_out":  # {"factor": 1.5 | 2 (default) | any in (1, 2]}
        factor = opt_float(body, "factor")
        accepted = await app.service.zoom_out(
            origin, job_id, 2.0 if factor is None else factor, index=at
        )
    elif action == "pan":  # {"direction": "left" | "right" | "up" | "down"}
        direction = opt_str(body, "direction")
        if not direction:
            raise InvalidRequest("direction is required for pan: left, right, up or down.")
        accepted = await app.service.pan(origin, job_id, direction, index=at)
    else:
        accepted = await app.service.act(origin, action, job_id, index=at, strength=strength)
    return await _accepted(request, accepted)


def opt_bool(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is None or isinstance(value, bool):
        return value
    raise InvalidRequest(f"{name} must be true or false, not {value!r}.")


def inpaint_request(body: dict[str, Any], max_upload: int) -> InpaintRequest:
    """``POST /api/jobs/{id}/inpaint``'s body: ``mask`` (base64 or a data: URL; white =
    repaint) or ``region`` (a preset: "left", "10,20,50,40"), and A1111's inpaint options,
    each optional."""
    mask, region = opt_str(body, "mask"), opt_str(body, "region")
    if not mask and not region:
        raise InvalidRequest(
            "mask is required: a black-and-white image, white where to repaint (or a region: "
            f"{REGION_USAGE})."
        )
    defaults = InpaintRequest(mask=b"")
    fill, blur, padding = (opt_int(body, k) for k in ("inpainting_fill", "mask_blur", "padding"))
    only_masked, invert = opt_bool(body, "only_masked"), opt_bool(body, "mask_invert")
    return InpaintRequest(
        mask=decode_image(mask, max_upload, field="mask") if mask else b"",
        region=region,
        prompt=opt_str(body, "prompt"),
        negative_prompt=opt_str(body, "negative_prompt"),
        strength=opt_float(body, "strength"),
        mask_blur=defaults.mask_blur if blur is None else blur,
        inpainting_fill=defaults.inpainting_fill if fill is None else fill,
        inpaint_full_res=defaults.inpaint_full_res if only_masked is None else only_masked,
        inpaint_full_res_padding=defaults.inpaint_full_res_padding if padding is None else padding,
        mask_invert=defaults.mask_invert if invert is None else invert,
    )


async def inpaint_job(request: web.Request) -> web.Response:
    """Repaint the white part of a mask on image ``index`` of a job ("Vary region")."""
    app = app_of(request)
    body = _object(await read_json(request))
    inpaint = inpaint_request(body, app.config.web.max_upload_bytes)
    index = opt_int(body, "index")
    accepted = await app.service.inpaint(
        web_origin(principal(request)),
        request.match_info["id"],
        inpaint,
        index=0 if index is None else index,
        max_upload_bytes=app.config.web.max_upload_bytes,
    )
    return await _accepted(request, accepted)


async def get_image(request: web.Request) -> web.StreamResponse:
    app = app_of(request)
    match = _IMAGE_NAME.match(request.match_info["name"])
    if match is None:
        raise InvalidRequest("Images are named <sha256>.png (64 hexadecimal characters).")
    sha = match.group(1).lower()
    # Only an image of a job the caller may see (else 404, like a missing one).
    path = await app.service.image_file(web_origin(principal(request)), sha)
    headers = {
        "Content-Type": "image/png",
        "Content-Disposition": f'inline; filename="easel-{sha[:10]}.png"',
        "Cache-Control": "private, max-age=31536000, immutable",  # content-addressed
        "X-Content-Type-Options": "nosniff",
    }
    return web.FileResponse(path, headers=headers)


def model_json(model: ModelRecord) -> dict[str, Any]:
    return {
        "name": model.name,
        "kind": model.kind,
        "source": model.source,
        "revision": model.revision,
        "is_default": model.is_default,
        "default_width": model.default_width,
        "default_height": model.default_height,
        "default_steps": model.default_steps,
        "default_cfg": model.default_cfg,
        "default_sampler": model.default_sampler,
        "dtype": model.dtype,
        **model_capabilities(model),
    }


async def list_models(request: web.Request) -> web.Response:
    service = app_of(request).service
    models = await service.list_models()
    addons = [  # LoRA and embeddings a prompt may name (README: LoRA and embeddings)
        {"name": a.name, "kind": a.kind, "family": a.family} for a in await service.list_addons()
    ]
    return web.json_response(
        {"models": [model_json(m) for m in models], "samplers": list(SAMPLERS), "addons": addons}
    )


async def engine_status(request: web.Request) -> web.Response:
    """Whether the engine is loading its model (the page shows it while jobs wait)."""
    return web.json_response({"loading": app_of(request).service.loading()})


# ---------------------------------------------------------------------- admin


def _admin_origin(request: web.Request) -> Origin:
    """The admin acting on the scope ``?scope=web`` (default: the page) or ``?scope=api``."""
    scope = request.query.get("scope", "web")
    if scope not in ("web", "api"):
        raise InvalidRequest("scope must be web (the page and /api) or api (/sdapi clients).")
    return http_origin(principal(request), scope)


def _settings_json(origin: Origin, settings: ScopeSettings, request: web.Request) -> dict[str, Any]:
    config = app_of(request).config
    g = config.generation
    server = {
        "limits": config.limits.model_dump(),
        "generation": {
            "max_width": g.max_width,
            "max_height": g.max_height,
            "max_pixels": g.max_pixels,
            "max_upscale_pixels": g.max_upscale_pixels,
            "max_steps": g.max_steps,
            "max_count": g.max_count,
            "min_cfg": g.min_cfg,
            "max_cfg": g.max_cfg,
            "max_prompt_length": g.max_prompt_length,
            "on_excess": g.on_excess,
        },
        "web": {"max_upload_mb": config.web.max_upload_mb},
    }
    scope = scope_key(origin.platform, origin.scope_id)
    return {"scope": scope, "settings": settings.to_dict(), "server": server}


async def list_workers(request: web.Request) -> web.Response:
    """What renders: the engine's own thread, or the ``easel worker`` processes."""
    service = app_of(request).service
    statuses = service.workers(_admin_origin(request))
    return web.json_response({"workers": [dataclasses.asdict(s) for s in statuses]})


async def metrics(request: web.Request) -> web.Response:
    accept = request.headers.get("Accept", "")
    body, content_type = app_of(request).service.metrics_text(_admin_origin(request), accept)
    return web.Response(body=body, headers={"Content-Type": content_type})


async def get_settings(request: web.Request) -> web.Response:
    origin = await scope_origin(request)
    settings = await app_of(request).service.scope_settings(origin)
    return web.json_response(_settings_json(origin, settings, request))


async def update_settings(request: web.Request) -> web.Response:
    origin = await scope_origin(request)
    changes = _object(await read_json(request))
    settings = await app_of(request).service.update_scope_settings(origin, **changes)
    return web.json_response(_settings_json(origin, settings, request))


async def update_blocklist(request: web.Request) -> web.Response:
    origin = await scope_origin(request)
    body = _object(await read_json(request))
    add, remove = opt_words(body, "add"), opt_words(body, "remove")
    service = app_of(request).service
    settings = await service.scope_settings(origin)
    if add:
        settings = await service.block_words(origin, add)
    if remove:
        settings = await service.unblock_words(origin, remove)
    return web.json_response(_settings_json(origin, settings, request))


async def update_styles(request: web.Request) -> web.Response:
    """``{"add": {"name", "prompt", "negative_prompt"}}`` or ``{"remove": "name"}``."""
    origin = await scope_origin(request)
    body = _object(await read_json(request))
    service = app_of(request).service
    added, removed = body.get("add"), body.get("remove")
    if isinstance(removed, str) and added is None:
        settings = await service.remove_style(origin, removed)
    else:  # the Service checks the caller is an admin before it reads the style
        style = added if isinstance(added, dict) else {}
        settings = await service.set_style(
            origin,
            str(style.get("name", "")),
            style.get("prompt", ""),
            style.get("negative_prompt", ""),
        )
    return web.json_response(_settings_json(origin, settings, request))


async def list_styles(request: web.Request) -> web.Response:
    """The prompt styles the page may name with --style (this scope's and the config's)."""
    styles = await app_of(request).service.styles(web_origin(principal(request)))
    listed = [{"name": s.name, **s.texts()} for s in styles]
    return web.json_response({"styles": listed})


async def add_model(request: web.Request) -> web.Response:
    body = _object(await read_json(request))
    name, source = opt_str(body, "name"), opt_str(body, "source")
    if not name or not source:
        raise InvalidRequest("name and source are required (source: Hub id, folder or file).")
    upscaler = body.get("upscaler", False)
    if not isinstance(upscaler, bool):
        raise InvalidRequest("upscaler must be true or false.")
    defaults = body.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise InvalidRequest("defaults must be an object (steps, cfg, sampler, width, height).")
    for key, value in defaults.items():
        if key == "sampler":
            if not isinstance(value, str | None):
                raise InvalidRequest("defaults.sampler must be a sampler name.")
        elif value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise InvalidRequest(f"defaults.{key} must be a number.")
    model = await app_of(request).service.add_model(
        web_origin(principal(request)),
        name,
        source,
        upscaler=upscaler,
        config_source=opt_str(body, "config"),
        defaults=defaults,
        dtype=opt_str(body, "dtype"),  # float16 | bfloat16 | float32; None = the config's
    )
    return web.json_response({"model": model_json(model)}, status=201)


async def remove_model(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    await app_of(request).service.remove_model(web_origin(principal(request)), name)
    return web.json_response({"removed": name})


async def default_model(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    model = await app_of(request).service.set_default_model(web_origin(principal(request)), name)
    return web.json_response({"model": model_json(model)})


def setup_routes(web_app: web.Application) -> None:
    r = web_app.router
    r.add_post("/api/jobs", submit_job)
    r.add_get("/api/jobs", list_jobs)
    r.add_get("/api/jobs/{id}", get_job)
    r.add_post("/api/jobs/{id}/actions", job_action)
    r.add_post("/api/jobs/{id}/inpaint", inpaint_job)
    r.add_get("/api/images/{name}", get_image)
    r.add_get("/api/models", list_models)
    r.add_get("/api/status", engine_status)
    r.add_get("/api/admin/workers", list_workers)
    r.add_get(METRICS_PATH, metrics)
    r.add_get("/api/admin/scopes", list_scopes)
    r.add_get("/api/admin/settings", get_settings)
    r.add_post("/api/admin/settings", update_settings)
    r.add_post("/api/admin/blocklist", update_blocklist)
    r.add_post("/api/admin/styles", update_styles)
    r.add_get("/api/styles", list_styles)
    r.add_post("/api/admin/models", add_model)
    r.add_delete("/api/admin/models/{name}", remove_model)
    r.add_post("/api/admin/models/{name}/default", default_model)
