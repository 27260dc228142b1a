"""Read-only A1111 endpoints, png-info and extras (A1111-API.md §4.3–§4.18).

Lists describe what Easel has: its diffusion models (``sd-models``), samplers and the two
schedule types it renders (Automatic, Karras), and the upscalers ``extra-single-image`` can run.
Everything Easel has none of answers an empty list (hypernetworks, face restorers...);
LoRA and embeddings are listed by ``a1111_addons``.

``latent-upscale-modes`` lists A1111's latent modes, which the hires fix (``enable_hr``) takes
as ``hr_upscaler`` besides the ``upscalers``.

``extra-single-image`` resizes an uploaded image with Pillow (Lanczos by default, or Nearest;
"None" returns it unchanged), keeping its text chunks and adding A1111's ``postprocessing``
chunk. It runs in a thread, one at a time, bounded by ``generation.max_upscale_pixels``; it does
not use the GPU queue. Registered ESRGAN upscalers run only on Easel jobs (the job's upscale
action), because the engine upscales stored images, not uploads.
"""

from __future__ import annotations

import asyncio
import base64
import html
import io
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from PIL import Image, PngImagePlugin

from bot.web import a1111_addons
from bot.web.a1111_models import (
    A1111_SAMPLERS,
    A1111_SCHEDULERS,
    SUPPORTED_SCHEDULERS,
    ExtrasBatchRequest,
    ExtrasRequest,
    ImageRequest,
    sd_model_entry,
    validate,
)
from bot.web.common import decode_image, read_json
from bot.web.errors import A1111HTTPError
from bot.web.keys import app_of, state_of
from generation.errors import ImageRejected, InvalidRequest
from generation.hires import LATENT_MODES
from generation.metadata import PARAMETERS_KEY, parse_infotext, read_png_text
from generation.uploads import load_upload

if TYPE_CHECKING:
    from bot.app import App

_RESAMPLERS: dict[str, Image.Resampling | None] = {
    "None": None,
    "Lanczos": Image.Resampling.LANCZOS,
    "Nearest": Image.Resampling.NEAREST,
}
# Image-info keys png-info leaves out of ``items`` (§4.4).
_TECHNICAL = {
    "exif", "dpi", "jfif", "jfif_version", "jfif_unit", "jfif_density", "icc_profile", "loop",
    "duration", "background", "timestamp", "progressive", "progression", "chromaticity",
    "photoshop", "transparency", "gamma", "srgb", "aspect",
}  # fmt: skip
# §6.5 step 5: keys A1111's parser adds when the infotext lacks them.
_PARSE_DEFAULTS: dict[str, Any] = {
    "Clip skip": "1",
    "Hires resize-1": 0,
    "Hires resize-2": 0,
    "Hires sampler": "Use same sampler",
    "Hires schedule type": "Use same scheduler",
    "Hires checkpoint": "Use same checkpoint",
    "Hires prompt": "",
    "Hires negative prompt": "",
    "Mask mode": "Inpaint masked",
    "Masked content": "original",
    "Inpaint area": "Whole picture",
    "Masked area padding": 32,
    "RNG": "GPU",
    "Schedule type": "Automatic",
    "Schedule max sigma": 0,
    "Schedule min sigma": 0,
    "Schedule rho": 0,
    "VAE Encoder": "Full",
    "VAE Decoder": "Full",
    "FP8 weight": "Disable",
    "Refiner switch by sampling steps": False,
}


# ---------------------------------------------------------------------- lists


def _constant(value: Any) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(value)

    return handler


async def sd_models(request: web.Request) -> web.Response:
    models = await app_of(request).service.list_models()
    return web.json_response([sd_model_entry(m) for m in models if m.kind != "upscaler"])


async def samplers(request: web.Request) -> web.Response:
    entries = [
        {"name": name, "aliases": list(aliases), "options": options}
        for name, aliases, options, _ in A1111_SAMPLERS
    ]
    return web.json_response(entries)


async def schedulers(request: web.Request) -> web.Response:
    entries = [
        {
            "name": name,
            "label": label,
            "aliases": list(aliases) or None,
            "default_rho": 7.0 if name == "karras" else -1,
            "need_inner_model": False,
        }
        for name, label, aliases in A1111_SCHEDULERS
        if name in SUPPORTED_SCHEDULERS
    ]
    return web.json_response(entries)


async def upscalers(request: web.Request) -> web.Response:
    """Pillow's, then the registered ESRGAN-family upscalers (the hires fix and the Upscale
    action run those; ``extra-single-image`` only Pillow's)."""
    entries = [
        {"name": name, "model_name": None, "model_path": None, "model_url": None, "scale": 4.0}
        for name in _RESAMPLERS
    ]
    for model in await app_of(request).service.list_models():
        if model.kind == "upscaler":
            entries.append(
                {
                    "name": model.name,
                    "model_name": model.name,
                    "model_path": model.source,
                    "model_url": None,
                    "scale": 4.0,
                }
            )
    return web.json_response(entries)


async def latent_upscale_modes(request: web.Request) -> web.Response:
    """A1111's latent modes, which ``hr_upscaler`` accepts (§4.11)."""
    return web.json_response([{"name": name} for name in LATENT_MODES])


async def memory(request: web.Request) -> web.Response:
    ram: dict[str, Any]
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        total = page * os.sysconf("SC_PHYS_PAGES")
        free = page * os.sysconf("SC_AVPHYS_PAGES")
        ram = {"free": float(free), "used": float(total - free), "total": float(total)}
    except (ValueError, OSError, AttributeError):
        ram = {"error": "unavailable"}
    cuda: dict[str, Any] = {"error": "unavailable"}
    torch = sys.modules.get("torch")  # only when the worker already loaded it
    if torch is not None and torch.cuda.is_available():
        free_b, total_b = torch.cuda.mem_get_info()
        allocated = {
            "current": torch.cuda.memory_allocated(),
            "peak": torch.cuda.max_memory_allocated(),
        }
        reserved = {
            "current": torch.cuda.memory_reserved(),
            "peak": torch.cuda.max_memory_reserved(),
        }
        cuda = {
            "system": {"free": free_b, "used": total_b - free_b, "total": total_b},
            "allocated": allocated,
            "reserved": reserved,
        }
    return web.json_response({"ram": ram, "cuda": cuda})


async def interrogate(request: web.Request) -> web.Response:
    raise A1111HTTPError(404, "Model not found")


# ---------------------------------------------------------------------- png-info


def _image_texts(data: bytes) -> dict[str, str]:
    """Text metadata of an image, without decoding its pixels (blocking)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return read_png_text(data)
    try:
        with Image.open(io.BytesIO(data)) as image:
            return {str(k): v for k, v in image.info.items() if isinstance(v, str)}
    except (OSError, ValueError, Image.DecompressionBombError):
        raise ImageRejected("Invalid encoded image: not an image Easel can read.") from None


async def png_info(request: web.Request) -> web.Response:
    app = app_of(request)
    req = validate(ImageRequest, await read_json(request, required=False))
    if not (req.image or "").strip():
        return web.json_response({"info": "", "items": {}, "parameters": {}})
    data = decode_image(req.image or "", app.config.web.max_upload_bytes)
    texts = await asyncio.to_thread(_image_texts, data)
    info = texts.pop(PARAMETERS_KEY, "")
    items = {key: value for key, value in texts.items() if key.lower() not in _TECHNICAL}
    parameters: dict[str, Any] = {}
    if info:
        parameters = dict(parse_infotext(info))
        for key, value in _PARSE_DEFAULTS.items():
            parameters.setdefault(key, value)
    return web.json_response({"info": info, "items": items, "parameters": parameters})


# ---------------------------------------------------------------------- extras


def _target_size(size: tuple[int, int], req: ExtrasRequest) -> tuple[int, int, str]:
    width, height = size
    if req.resize_mode == 1:
        w, h = req.upscaling_resize_w or 512, req.upscaling_resize_h or 512
        return w, h, f"Postprocess upscale to: {w}x{h}"
    scale = 2.0 if req.upscaling_resize is None else req.upscaling_resize
    label = f"{scale:g}"
    return (
        max(1, round(width * scale)),
        max(1, round(height * scale)),
        f"Postprocess upscale by: {label}",
    )


def _upscale(app: App, data: bytes, req: ExtrasRequest, upscaler: str) -> tuple[bytes, str]:
    """Blocking: decode (checked), resize, re-encode with the input's text plus postprocessing."""
    limit = app.config.web.max_upload_bytes
    image = load_upload(data, max_bytes=limit)
    texts = read_png_text(data) if data.startswith(b"\x89PNG\r\n\x1a\n") else {}
    method = _RESAMPLERS[upscaler]
    width, height, how = _target_size(image.size, req)
    max_pixels = app.config.generation.max_upscale_pixels
    if method is not None:
        if width * height > max_pixels:
            raise InvalidRequest(
                f"Upscaling would give {width}x{height}, more than this server's "
                f"{max_pixels:,}-pixel limit for upscales."
            )
        if req.resize_mode == 1 and req.upscaling_crop is not False:
            scale = max(width / image.width, height / image.height)
            cover = (
                max(width, round(image.width * scale)),
                max(height, round(image.height * scale)),
            )
            image = image.resize(cover, method)
            left, top = (cover[0] - width) // 2, (cover[1] - height) // 2
            image = image.crop((left, top, left + width, top + height))
        else:
            image = image.resize((width, height), method)
    note = f"{how}, Postprocess upscaler: {upscaler}"
    info = PngImagePlugin.PngInfo()
    for key, value in texts.items():
        if key != "postprocessing":
            info.add_text(key, value)
    info.add_text("postprocessing", note)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue(), note


def _check_extras(req: ExtrasRequest) -> str:
    """The upscaler to use; refuses what Easel does not do (face restoration, a second pass)."""
    if (req.gfpgan_visibility or 0) > 0 or (req.codeformer_visibility or 0) > 0:
        raise InvalidRequest("Easel has no face restorers (GFPGAN, CodeFormer).")
    if (req.extras_upscaler_2_visibility or 0) > 0 and (req.upscaler_2 or "None") != "None":
        raise InvalidRequest("Easel runs one upscaler per request: leave upscaler_2 at None.")
    name = req.upscaler_1 or "Lanczos"
    for known in _RESAMPLERS:
        if name.lower() == known.lower():
            return known
    raise InvalidRequest(
        f"Upscaler {name!r} not found. Available here: {', '.join(_RESAMPLERS)}. Registered "
        "ESRGAN upscalers run on Easel jobs: POST /api/jobs/{id}/actions with action upscale."
    )


async def _run_extras(request: web.Request, data: bytes, req: ExtrasRequest) -> tuple[str, str]:
    app, state = app_of(request), state_of(request)
    upscaler = _check_extras(req)
    async with state.upscale_lock:
        png, note = await asyncio.to_thread(_upscale, app, data, req, upscaler)
    return base64.b64encode(png).decode("ascii"), f"<p>{html.escape(note)}</p>"


async def extra_single_image(request: web.Request) -> web.Response:
    app = app_of(request)
    req = validate(ExtrasRequest, await read_json(request, required=False))
    _check_extras(req)
    data = decode_image(req.image or "", app.config.web.max_upload_bytes)
    image, html_info = await _run_extras(request, data, req)
    return web.json_response({"html_info": html_info, "image": image})


async def extra_batch_images(request: web.Request) -> web.Response:
    app = app_of(request)
    req = validate(ExtrasBatchRequest, await read_json(request, required=False))
    _check_extras(req)
    limit = app.config.web.max_upload_bytes
    items = req.imageList or []
    decoded = [
        decode_image(item.data, limit, field=f"imageList[{i}]") for i, item in enumerate(items)
    ]
    images, html_info = [], ""
    for data in decoded:
        image, html_info = await _run_extras(request, data, req)
        images.append(image)
    return web.json_response({"html_info": html_info, "images": images})


def setup_routes(web_app: web.Application) -> None:
    r = web_app.router
    base = "/sdapi/v1"
    r.add_get(f"{base}/sd-models", sd_models)
    r.add_get(f"{base}/samplers", samplers)
    r.add_get(f"{base}/schedulers", schedulers)
    r.add_get(f"{base}/upscalers", upscalers)
    r.add_get(f"{base}/latent-upscale-modes", latent_upscale_modes)
    r.add_get(f"{base}/memory", memory)
    r.add_post(f"{base}/png-info", png_info)
    r.add_post(f"{base}/extra-single-image", extra_single_image)
    r.add_post(f"{base}/extra-batch-images", extra_batch_images)
    r.add_post(f"{base}/interrogate", interrogate)
    empty_lists = (
        "sd-vae", "sd-modules", "hypernetworks", "face-restorers",
        "realesrgan-models", "script-info", "extensions",
    )  # fmt: skip
    for name in empty_lists:
        r.add_get(f"{base}/{name}", _constant([]))
    a1111_addons.setup_routes(web_app)  # loras, embeddings
    r.add_get(f"{base}/cmd-flags", _constant({}))
    r.add_get(f"{base}/scripts", _constant({"txt2img": [], "img2img": []}))
    for name in ("refresh-checkpoints", "refresh-vae", "refresh-embeddings", "refresh-loras"):
        r.add_post(f"{base}/{name}", _constant(None))
    for name in ("unload-checkpoint", "reload-checkpoint"):
        r.add_post(f"{base}/{name}", _constant({}))
