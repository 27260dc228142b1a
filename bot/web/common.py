"""Shared by both APIs: request bodies, uploaded images, origins, job JSON, waiting for jobs.

Who sees what (both APIs, and the page through ``/api``): a credential is one person on both
``/api`` and ``/sdapi`` (the A1111 API names the web's users) and sees only its own jobs; an
admin (the admin token, or anyone when the server listens on loopback only) sees every job.
To anyone else a job is 404, exactly like one that does not exist.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.describe import job_to_dict
from bot.web.auth import LOCAL_USER, Principal
from bot.web.errors import BadJSON, Stopping, UploadTooLarge
from generation.errors import ImageRejected, InvalidRequest
from generation.events import JobFinished
from generation.requests import Origin, Visibility
from generation.visibility import EventWatch
from storage.records import JobRecord

if TYPE_CHECKING:
    from bot.app import App

_WHITESPACE = re.compile(r"\s+")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


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


def http_origin(who: Principal, scope: str) -> Origin:
    """A caller of the HTTP APIs in ``scope``: "web" (the page and ``/api``) or "api" (A1111
    clients), each with its own settings. The user is the credential ("local" on loopback),
    the same person in both scopes; an admin sees every job, anyone else their own."""
    return origin_in(who, scope, scope)


def origin_in(who: Principal, platform: str, scope_id: str) -> Origin:
    """An HTTP caller acting in the scope ``scope_id`` of ``platform`` (the admin page also
    edits Discord servers' and Telegram chats' settings), as the web user they are."""
    name = who.name if who.authenticated else LOCAL_USER
    return Origin(
        platform=platform,
        scope_id=scope_id,
        user_id=name,
        user_name=name,
        is_admin=who.is_admin,
        sees=Visibility.ALL if who.is_admin else Visibility.OWN,
        user_platform="web",
    )


def web_origin(who: Principal) -> Origin:
    return http_origin(who, "web")


def api_origin(who: Principal) -> Origin:
    return http_origin(who, "api")


# ---------------------------------------------------------------------- jobs as JSON


def image_url(sha256: str) -> str:
    return f"/api/images/{sha256}.png"


async def job_json(app: App, job: JobRecord) -> dict[str, Any]:
    """``bot.describe.job_to_dict`` with image URLs, queue position and waiting times, and
    infotexts. A queued job has ``position``, ``eta_seconds`` (until it starts) and
    ``seconds_left`` (until it is done); a running job ``seconds_left``."""
    data = job_to_dict(job, image_url)
    data["init_image_url"] = image_url(job.init_image) if job.init_image else None
    data["mask_image_url"] = image_url(job.mask_image) if job.mask_image else None
    if job.status == "queued":
        place = app.service.place_in_queue(job)
        if place is not None:
            data["position"] = place[0]
            data["eta_seconds"] = round(place[1], 1)  # until it starts
    if job.status in ("queued", "running"):
        left = app.service.seconds_left(job.id)
        if left is not None:
            data["seconds_left"] = round(left, 1)  # until it is done
    if job.status == "succeeded":
        data["infotexts"] = await app.service.infotexts(job)
    return data


# ---------------------------------------------------------------------- waiting


async def wait_for_job(
    app: App,
    origin: Origin,
    events: EventWatch,
    job_id: str,
    *,
    timeout: float,
    stopping: asyncio.Event,
    poll_seconds: float = 5.0,
) -> JobRecord:
    """The job's final record, from ``events`` (opened before anything could be missed).

    Asks the Service every ``poll_seconds`` too, so a missed event cannot hang the caller.
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
            get_task = asyncio.ensure_future(events.get())
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
            record = await app.service.job_for(origin, job_id)
            if record.is_terminal:
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
