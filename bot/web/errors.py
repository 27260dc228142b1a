"""Errors of the web layer and how each API shapes them.

Easel's JSON API (``/api``) answers ``{"error": "<readable message>", "type": "<ErrorClass>"}``.
The A1111 API (``/sdapi``) answers A1111's wrapper ``{"error", "detail", "body", "errors"}``
(A1111-API.md §3.1), FastAPI's ``{"detail": [...]}`` for malformed or mistyped bodies (§3.2) and
``{"detail": "Not Found"}`` for unknown routes (§3.3).

    status  what
    400     Rejected: InvalidRequest, BlockedPrompt, ImageRejected, ModelError (/api)
    422     the same for /sdapi, and malformed JSON or wrong types there
    401     missing or wrong credentials          403  PermissionDenied
    404     NotFound                              413  an upload or body over the size limit
    429     RateLimited, QuotaExceeded (with Retry-After), TooManyQueued
    500     a job failed (/sdapi txt2img, img2img) or an unexpected error
    503     Easel is stopping                     504  a synchronous job took too long
"""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from bot.web.auth import Unauthorized
from generation.errors import (
    EaselError,
    ImageRejected,
    InvalidRequest,
    ModelError,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    RateLimited,
    Rejected,
    TooManyQueued,
)


class UploadTooLarge(ImageRejected):
    """An uploaded image (decoded) is larger than ``web.max_upload_mb``."""


class BadJSON(InvalidRequest):
    """The body is not JSON; ``pos``/``lineno``/``colno`` locate the problem when known."""

    def __init__(self, message: str, reason: str, pos: int = 0, lineno: int = 1, colno: int = 1):
        super().__init__(message)
        self.reason = reason
        self.pos = pos
        self.lineno = lineno
        self.colno = colno


class A1111Validation(InvalidRequest):
    """A body that does not fit the A1111 request model: FastAPI's 422 ``detail`` list."""

    def __init__(self, detail: list[dict[str, Any]]) -> None:
        first = detail[0] if detail else {}
        where = ".".join(str(part) for part in first.get("loc", [])[1:])
        super().__init__(f"{where}: {first.get('msg', 'invalid')}" if where else "invalid body")
        self.detail = detail


class A1111HTTPError(EaselError):
    """What A1111 raises as ``HTTPException(status, detail)`` (e.g. "Init image not found")."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


class JobFailed(EaselError):
    """A synchronous A1111 job ended ``failed``; the message is the worker's reason."""


class JobTimeout(EaselError):
    """A synchronous A1111 job did not finish within ``web.sync_timeout_seconds``."""


class Stopping(EaselError):
    """The server is stopping while a request waits for its job."""


def status_for(error: EaselError, *, a1111: bool) -> int:
    if isinstance(error, A1111HTTPError):
        return error.status
    if isinstance(error, Unauthorized):
        return 401
    if isinstance(error, UploadTooLarge):
        return 413
    if isinstance(error, RateLimited | QuotaExceeded | TooManyQueued):
        return 429
    if isinstance(error, PermissionDenied):
        return 403
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, JobTimeout):
        return 504
    if isinstance(error, Stopping):
        return 503
    if type(error) is Rejected:  # "Easel is shutting down"
        return 503
    if isinstance(error, Rejected | ModelError):
        return 422 if a1111 else 400
    return 500


def retry_after(error: EaselError) -> int | None:
    """Whole seconds for a ``Retry-After`` header (rounded up, at least 1), if it applies."""
    if isinstance(error, RateLimited | QuotaExceeded):
        return max(1, math.ceil(error.retry_after))
    return None


def api_error_response(error: EaselError) -> web.Response:
    """Easel's JSON API shape."""
    status = status_for(error, a1111=False)
    headers: dict[str, str] = {}
    wait = retry_after(error)
    if wait is not None:
        headers["Retry-After"] = str(wait)
    if isinstance(error, Unauthorized) and error.challenge:
        # Lets a browser on another machine ask for the basic credentials once.
        headers["WWW-Authenticate"] = 'Basic realm="Easel", charset="UTF-8"'
    body = {"error": error.message, "type": type(error).__name__}
    if isinstance(error, BadJSON | A1111Validation):
        body["type"] = "InvalidRequest"
    return web.json_response(body, status=status, headers=headers)


def a1111_wrapper(error: str, detail: str, errors: str = "") -> dict[str, str]:
    return {"error": error, "detail": detail, "body": "", "errors": errors}


def a1111_error_response(error: EaselError) -> web.Response:
    """A1111's shapes: the validation list, or the ``{"error", "detail", ...}`` wrapper."""
    if isinstance(error, A1111Validation):
        return web.json_response({"detail": error.detail}, status=422)
    if isinstance(error, BadJSON):
        detail = {
            "loc": ["body", error.pos],
            "msg": error.message,
            "type": "value_error.jsondecode",
            "ctx": {
                "msg": error.reason,
                "pos": error.pos,
                "lineno": error.lineno,
                "colno": error.colno,
            },
        }
        return web.json_response({"detail": [detail]}, status=422)
    status = status_for(error, a1111=True)
    headers: dict[str, str] = {}
    wait = retry_after(error)
    if wait is not None:
        headers["Retry-After"] = str(wait)
    if isinstance(error, Unauthorized):
        # A1111's 401 comes from an HTTPException and carries no WWW-Authenticate (§2).
        body = a1111_wrapper("HTTPException", error.detail)
    elif isinstance(error, A1111HTTPError):
        body = a1111_wrapper("HTTPException", error.message)
    else:
        body = a1111_wrapper(type(error).__name__, error.message, error.message)
    return web.json_response(body, status=status, headers=headers)


def http_error_response(error: web.HTTPException, *, a1111: bool) -> web.Response:
    """Routing and size errors (404, 405, 413) in the API's shape."""
    if error.status == 413:
        message = (
            "The request body is larger than this server accepts "
            f"({error.text or 'too large'}). Send a smaller image."
        )
        if a1111:
            return web.json_response(
                a1111_wrapper("HTTPException", message), status=413, headers={}
            )
        return web.json_response({"error": message, "type": "ImageRejected"}, status=413)
    reason = error.reason or "Error"
    headers = {"Allow": error.headers["Allow"]} if "Allow" in error.headers else {}
    if a1111:
        return web.json_response({"detail": reason}, status=error.status, headers=headers)
    message = "No such API route." if error.status == 404 else f"{reason}."
    kind = "NotFound" if error.status == 404 else "HTTPError"
    return web.json_response({"error": message, "type": kind}, status=error.status, headers=headers)
