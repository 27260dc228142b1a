"""The local web page's routes: ``/`` (draw, gallery, history), ``/admin`` and ``/static/*``.

The files live in ``bot/web/static`` (plain HTML/CSS/JS, no build step, nothing from another
host). Pages are always reachable without credentials; the JSON API behind them decides who may
do what. Every response forbids loading anything from elsewhere (Content-Security-Policy), so a
page that worked offline in a test works offline everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Handler

if TYPE_CHECKING:
    from bot.app import App

STATIC_DIR = Path(__file__).resolve().parent / "static"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
}

# Scripts, styles and connections only from this server; images also as data:/blob: URLs
# (live previews arrive as data URLs, the img2img upload preview is one).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)

_COMMON_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _file_response(path: Path) -> web.FileResponse:
    headers = {
        **_COMMON_HEADERS,
        "Content-Type": CONTENT_TYPES.get(path.suffix, "application/octet-stream"),
        # Revalidate every time (cheap: ETag / Last-Modified answer 304), so an upgraded server
        # never runs with a stale script in the browser's cache.
        "Cache-Control": "no-cache",
    }
    return web.FileResponse(path, headers=headers)


def _static_files(directory: Path) -> dict[str, Path]:
    """The servable files by name: a fixed allow-list, so no request path reaches the disk."""
    return {
        entry.name: entry
        for entry in sorted(directory.iterdir())
        if entry.is_file() and entry.suffix in CONTENT_TYPES
    }


def setup_pages(web_app: web.Application, app: App) -> None:
    """Add the page routes to ``web_app``; ``app`` is the engine (unused by static pages)."""
    del app  # the pages talk to the engine only through the JSON API
    files = _static_files(STATIC_DIR)

    def page(name: str) -> Handler:
        path = files[name]

        async def handler(request: web.Request) -> web.StreamResponse:
            return _file_response(path)

        return handler

    async def static(request: web.Request) -> web.StreamResponse:
        path = files.get(request.match_info["name"])
        if path is None:
            raise web.HTTPNotFound(text="No such file.")
        return _file_response(path)

    web_app.router.add_get("/", page("index.html"), name="page_index")
    web_app.router.add_get("/admin", page("admin.html"), name="page_admin")
    web_app.router.add_get("/static/{name}", static, name="page_static")


__all__ = ["CONTENT_SECURITY_POLICY", "STATIC_DIR", "setup_pages"]
