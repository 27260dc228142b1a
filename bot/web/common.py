"""Shared by both APIs: request bodies, uploaded images, origins, job JSON, waiting for jobs."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
from typing import Any

from aiohttp import web

from bot.app import App
from bot.views import job_to_dict
from bot.web.auth import LOCAL_USER, Principal
from bot.web.errors import BadJSON, Stopping, UploadTooLarge
from generation.errors import ImageRejected, InvalidRequest
from generation.events import JobFinished, Subscription
from generation.metadata import PARAMETERS_KEY, read_png_text
from generation.requests import Origin
from storage.records import JobRecord

_WHITESPACE = re.compile(r"\s+")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_PNG_HEAD_BYTES = 64 * 1024  # text chunks precede the pixels in every PNG Easel writes


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


async def read_json(request: web.Request, *, required: bool = True) -> Any:
    """The parsed body; :class:`BadJSON` when it is not JSON (NaN and Infinity included).

    Bodies over the server's limit raise aiohttp's 413 before they are read. An empty body is
    ``None`` when ``required`` is false.
    """
    data = await request.read()
    if not data.strip():
        if required:
            raise BadJSON("The request body is empty: send a JSON object.", "empty body")
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadJSON("The request body is not UTF-8 JSON.", "not UTF-8", pos=error.start) from None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise BadJSON(
            "The request body is nested too deeply to be a request.", "nested too deeply"
        ) from None
    except json.JSONDecodeError as error:
        raise BadJSON(
            f"The request body is not valid JSON: {error}",
            error.msg,
            pos=error.pos,
            lineno=error.lineno,
            colno=error.colno,
        ) from None
    except ValueError as error:
        raise BadJSON(f"The request body is not valid JSON: {error}", str(error)) from None
    if _SURROGATE_ESCAPE.search(text):  # "\ud800" alone decodes to a str nothing can store
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise BadJSON(
                "The request body is not valid text: it has an unpaired UTF-16 surrogate "
                "escape (\\ud800-\\udfff).",
                "unpaired surrogate",
            ) from None
    return value


def decode_image(value: str, max_bytes: int, *, field: str = "image") -> bytes:
    """Raw bytes of a base64 image or ``data:`` URL (A1111-API.md §1); nothing is fetched.

    Raises :class:`UploadTooLarge` past ``max_bytes`` (checked before decoding) and
    :class:`ImageRejected` for anything that is not base64.
    """
    text = value.strip()
    if text.startswith(("http://", "https://")):
        raise ImageRejected(f"{field}: Easel does not fetch image URLs; send the image as base64.")
    if text.startswith("data:"):
        header, comma, text = text.partition(",")
        if not comma or not header.endswith(";base64"):
            raise ImageRejected(f"{field}: a data URL must be base64 (data:image/png;base64,...).")
    text = _WHITESPACE.sub("", text)
    limit_mb = max_bytes / 1_048_576
    if len(text) * 3 // 4 - 2 > max_bytes:  # "- 2": padding
        raise UploadTooLarge(
            f"{field}: the image is about {len(text) * 3 / 4 / 1_048_576:.1f} MB; the limit is "
            f"{limit_mb:g} MB. Send a smaller image."
        )
    if not text:
        raise ImageRejected(f"{field}: the image is empty.")
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ImageRejected(f"{field}: Invalid encoded image (not base64).") from None
    if len(data) > max_bytes:
        raise UploadTooLarge(
            f"{field}: the image is {len(data) / 1_048_576:.1f} MB; the limit is "
            f"{limit_mb:g} MB. Send a smaller image."
        )
    return data


# ---------------------------------------------------------------------- origins


def web_origin(who: Principal) -> Origin:
    """The web page and Easel's JSON API: one scope, "web"; each credential is a user."""
    name = who.name if who.authenticated else LOCAL_USER
    return Origin(
        platform="web", scope_id="web", user_id=name, user_name=name, is_admin=who.is_admin
    )


def api_origin(who: Principal) -> Origin:
    """A1111 API clients: one scope, "api"; each credential is a user."""
    name = who.name if who.authenticated else LOCAL_USER
    return Origin(
        platform="api", scope_id="api", user_id=name, user_name=name, is_admin=who.is_admin
    )


async def user_key(app: App, origin: Origin) -> int:
    """The store's id for the origin's user (jobs carry it as ``user_id``)."""
    user = await app.store.get_or_create_user(origin.platform, origin.user_id, origin.user_name)
    return user.id


# ---------------------------------------------------------------------- jobs as JSON


def image_url(sha256: str) -> str:
    return f"/api/images/{sha256}.png"


def read_infotext(app: App, sha256: str) -> str:
    """The ``parameters`` text of a stored image (blocking: call it in a thread)."""
    path = app.images.path_for(sha256)
    with path.open("rb") as handle:
        head = handle.read(_PNG_HEAD_BYTES)
        texts = read_png_text(head)
        if PARAMETERS_KEY not in texts:
            texts = read_png_text(head + handle.read())
    return texts.get(PARAMETERS_KEY, "")


async def infotexts(app: App, job: JobRecord) -> list[str]:
    def read_all() -> list[str]:
        out = []
        for image in job.images:
            try:
                out.append(read_infotext(app, image.sha256))
            except (OSError, ImageRejected):
                out.append("")
        return out

    return await asyncio.to_thread(read_all)


async def job_json(app: App, job: JobRecord) -> dict[str, Any]:
    """``bot.views.job_to_dict`` with image URLs, queue position/ETA and infotexts."""
    data = job_to_dict(job, app.images)
    data["images"] = [image_url(image.sha256) for image in job.images]
    data["init_image_url"] = image_url(job.init_image) if job.init_image else None
    if job.status == "queued":
        position = app.queue.position(job.id)
        eta = app.queue.eta(job.id)
        if position is not None:
            data["position"] = position
            data["eta_seconds"] = round(eta or 0.0, 1)
    if job.status == "succeeded":
        data["infotexts"] = await infotexts(app, job)
    return data


# ---------------------------------------------------------------------- waiting


async def wait_for_job(
    app: App,
    subscription: Subscription,
    job_id: str,
    *,
    timeout: float,
    stopping: asyncio.Event,
    poll_seconds: float = 5.0,
) -> JobRecord:
    """The job's final record, from ``subscription`` (opened before the job was submitted).

    Checks the store every ``poll_seconds`` too, so a missed event cannot hang the caller.
    Raises TimeoutError after ``timeout`` and :class:`Stopping` when the server stops first.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    stop_task = asyncio.ensure_future(stopping.wait())
    try:
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            get_task = asyncio.ensure_future(subscription.get())
            done, _ = await asyncio.wait(
                {get_task, stop_task},
                timeout=min(poll_seconds, remaining),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if get_task not in done:
                get_task.cancel()
            if stop_task in done:
                raise Stopping(
                    f"Easel is stopping; job {job_id} is kept and finishes after the restart."
                )
            if get_task in done:
                event = get_task.result()
                if isinstance(event, JobFinished) and event.job.id == job_id:
                    return event.job
                continue
            record = await app.store.get_job(job_id)
            if record is not None and record.is_terminal:
                return record
    finally:
        stop_task.cancel()


def int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be a whole number, not {raw!r}.") from None
    if not low <= value <= high:
        raise InvalidRequest(f"{name} must be between {low} and {high}.")
    return value
