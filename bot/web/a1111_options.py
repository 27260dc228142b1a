"""``/sdapi/v1/options``: AUTOMATIC1111's settings as its clients read and set them.

``POST`` takes a JSON object of option names and values and keeps every key, its value as sent,
in the API scope's client options (in the store: a restart keeps them). Options are the
server's in A1111, and here every client of the API scope reads them, so only an admin may set
them (on loopback everyone is). ``GET`` answers A1111's defaults of the keys clients read,
overlaid with what was stored.

Keys Easel applies:

    sd_model_checkpoint  makes that model the default (not stored: GET reads the registry)
    samples_format       png (the default), jpg, jpeg or webp: the format of the base64 images
                         txt2img and img2img answer (also per request in override_settings);
                         JPEG and WebP carry the infotext as EXIF UserComment, as A1111's do
    jpeg_quality         1-100 (80): JPEG's and lossy WebP's quality
    webp_lossless        true or false (false)

Every other key (``send_seed``, ``CLIP_stop_at_last_layers``, ``eta_noise_seed_delta``,
``sd_vae``...) is stored and given back unchanged, not applied. ``sd_checkpoint_hash`` is always
the current model's.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from PIL import Image

from bot.web.a1111_models import find_checkpoint, model_sha256, model_title
from bot.web.auth import principal
from bot.web.common import api_origin, read_json
from bot.web.errors import A1111Validation
from bot.web.keys import app_of
from generation.errors import InvalidRequest

FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP"}
EXIF_IFD, USER_COMMENT = 0x8769, 0x9286


def _invalid(key: str, message: str, kind: str) -> A1111Validation:
    return A1111Validation([{"loc": ["body", key], "msg": message, "type": kind}])


def check_applied(options: Mapping[str, Any], where: str = "body") -> None:
    """Refuse values of the keys Easel applies that it cannot apply (a 422 naming the key)."""
    fmt = options.get("samples_format")
    if fmt is not None and (not isinstance(fmt, str) or fmt.lower() not in FORMATS):
        raise InvalidRequest(
            f"{where}.samples_format: {fmt!r} is not a format Easel writes; "
            f"use one of {', '.join(FORMATS)}."
        )
    quality = options.get("jpeg_quality")
    if quality is not None and (
        isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100
    ):
        raise InvalidRequest(f"{where}.jpeg_quality must be a whole number from 1 to 100.")
    lossless = options.get("webp_lossless")
    if lossless is not None and not isinstance(lossless, bool):
        raise InvalidRequest(f"{where}.webp_lossless must be true or false.")


class ImageFormat:
    """How the A1111 API hands images out: the stored options, a request's overrides on top."""

    def __init__(self, options: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> None:
        merged = {**options, **(overrides or {})}
        self.format = FORMATS[str(merged.get("samples_format") or "png").lower()]
        self.quality = int(merged.get("jpeg_quality") or 80)
        self.lossless = bool(merged.get("webp_lossless", False))

    def encode(self, png: bytes, infotext: str) -> bytes:
        """The stored PNG as is, or re-encoded with the infotext in EXIF (blocking)."""
        if self.format == "PNG":
            return png
        with Image.open(io.BytesIO(png)) as source:
            image = source.convert("RGB")
        exif = Image.Exif()
        # piexif's "unicode" UserComment, which A1111 writes and reads: a prefix, UTF-16 BE.
        exif.get_ifd(EXIF_IFD)[USER_COMMENT] = b"UNICODE\0" + infotext.encode("utf-16-be")
        out = io.BytesIO()
        extra: dict[str, Any] = {"lossless": self.lossless} if self.format == "WEBP" else {}
        image.save(out, format=self.format, exif=exif, quality=self.quality, **extra)
        return out.getvalue()


async def get_options(request: web.Request) -> web.Response:
    app = app_of(request)
    origin = api_origin(principal(request))
    model = await app.service.current_model(origin)
    options: dict[str, Any] = {
        "sd_model_checkpoint": None,
        "sd_checkpoint_hash": None,
        "sd_vae": "Automatic",
        "CLIP_stop_at_last_layers": 1,
        "samples_format": "png",
        "grid_format": "png",
        "jpeg_quality": 80,
        "webp_lossless": False,
        "enable_pnginfo": True,
        "eta_noise_seed_delta": 0,
        "live_previews_enable": app.config.generation.previews,
        "show_progress_every_n_steps": 1,
        "add_model_hash_to_info": True,
        "add_model_name_to_info": True,
        "add_version_to_infotext": True,
    }
    options.update(await app.service.client_options(origin))
    options["sd_model_checkpoint"] = model_title(model) if model else None
    options["sd_checkpoint_hash"] = model_sha256(model) if model else None
    return web.json_response(options)


async def set_options(request: web.Request) -> web.Response:
    """Store what the client sent (see the module docstring); A1111 answers ``null``."""
    app = app_of(request)
    origin = api_origin(principal(request))
    body = await read_json(request)
    if not isinstance(body, dict):
        raise A1111Validation(
            [
                {
                    "loc": ["body"],
                    "msg": "value is not a valid dict: send a JSON object of option names "
                    'and values, e.g. {"samples_format": "png"}',
                    "type": "type_error.dict",
                }
            ]
        )
    changes = dict(body)
    check_applied(changes)
    wanted = changes.pop("sd_model_checkpoint", None)
    changes.pop("sd_checkpoint_hash", None)  # the current model's, always
    model = None
    if wanted is not None:  # checked before anything is stored
        if not isinstance(wanted, str):
            raise _invalid("sd_model_checkpoint", "str type expected", "type_error.str")
        model = find_checkpoint(await app.service.list_models(), wanted)
        if model is None:
            raise InvalidRequest(f"model {wanted!r} not found")
    if changes:
        await app.service.set_client_options(origin, changes)
    if model is not None and not model.is_default:
        await app.service.set_default_model(origin, model.name)
    return web.json_response(None)


def setup_routes(web_app: web.Application) -> None:
    web_app.router.add_get("/sdapi/v1/options", get_options)
    web_app.router.add_post("/sdapi/v1/options", set_options)
