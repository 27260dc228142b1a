"""The web server: one ``aiohttp.web`` application in the engine's process and event loop.

    web_app = create_web_app(app)        # routes, auth, error shapes (tests serve this directly)
    server = await start_web(app)        # binds web.host:web.port, logs the URL
    await server.stop()

``create_web_app`` raises :class:`ConfigError` when ``web.host`` is reachable from other
machines and no credentials are configured. The auth policy follows the configured host, made
stricter by the host actually bound: ``start_web(host=..., port=...)`` can bind elsewhere (tests
bind 127.0.0.1:0), but a public bind always needs credentials.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Handler

from bot.web import a1111, a1111_info, admin_addons, api, events
from bot.web.auth import METRICS_PATH, AuthPolicy, auth_middleware, is_loopback
from bot.web.errors import a1111_error_response, api_error_response, http_error_response
from bot.web.keys import APP_KEY, STATE_KEY, WebState
from generation.errors import ConfigError, EaselError
from generation.events import JobEvent
from storage.records import JobRecord

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)


class PulledResults:
    """The delivery front end for the "web" platform: results are fetched, not pushed.

    A finished web job is on the page and in ``GET /api/jobs`` the moment it is stored, so its
    delivery is recorded at once. (An A1111 API job is marked delivered by its synchronous call,
    once its answer is built.)
    """

    platform = "web"

    async def on_event(self, event: JobEvent) -> None:
        return None

    async def deliver(self, job: JobRecord) -> None:
        return None


def _is_a1111(path: str) -> bool:
    return path.startswith("/sdapi/")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Shape every error of ``/api`` and ``/sdapi`` (see ``bot.web.errors``)."""
    path = request.path
    a1111_path = _is_a1111(path)
    in_api = a1111_path or path.startswith("/api/") or path in ("/api", METRICS_PATH)
    started = time.perf_counter()
    response: web.StreamResponse
    try:
        response = await handler(request)
    except web.HTTPException as error:
        if not in_api or error.status not in (404, 405, 413):
            raise
        response = http_error_response(error, a1111=a1111_path)
    except EaselError as error:
        if not in_api:
            raise
        response = a1111_error_response(error) if a1111_path else api_error_response(error)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("web: unexpected error answering %s %s", request.method, path)
        if not in_api:
            raise
        message = "Internal error; the server log has the details."
        if a1111_path:
            body = {"error": "InternalError", "detail": "", "body": "", "errors": message}
            response = web.json_response(body, status=500)
        else:
            response = web.json_response({"error": message, "type": "InternalError"}, status=500)
    if a1111_path and not response.prepared:
        response.headers["X-Process-Time"] = f"{time.perf_counter() - started:.4f}"
    return response


def create_web_app(app: App, *, bind_host: str | None = None) -> web.Application:
    """The aiohttp application for ``app``: API routes, then the page's routes.

    The auth policy follows the configured host, or ``bind_host`` where that one is reachable
    from other machines: the server is open only when both are loopback addresses.
    """
    config = app.config.web
    if bind_host is not None and not is_loopback(bind_host):
        config = config.model_copy(update={"host": bind_host})
    policy = AuthPolicy.from_config(config)
    max_body = int((config.max_upload_mb * 1.4 + 1) * 1024 * 1024)
    web_app = web.Application(
        client_max_size=max_body, middlewares=[error_middleware, auth_middleware(policy)]
    )
    web_app[APP_KEY] = app
    state = WebState(policy=policy)
    web_app[STATE_KEY] = state
    a1111.setup_routes(web_app)
    a1111_info.setup_routes(web_app)
    api.setup_routes(web_app)
    admin_addons.setup_routes(web_app)  # LoRA and embeddings on the admin page
    events.setup_routes(web_app)
    _setup_pages(web_app, app)

    front_end = PulledResults()

    async def on_startup(_: web.Application) -> None:
        app.delivery.register(front_end)

    async def on_shutdown(_: web.Application) -> None:
        state.stopping.set()  # event streams end, waiting A1111 calls answer 503

    async def on_cleanup(_: web.Application) -> None:
        app.delivery.unregister(front_end.platform)

    web_app.on_startup.append(on_startup)
    web_app.on_shutdown.append(on_shutdown)
    web_app.on_cleanup.append(on_cleanup)
    return web_app


def _setup_pages(web_app: web.Application, app: App) -> None:
    """The browser page's routes (``bot.web.pages``), when that module is installed."""
    try:
        pages = importlib.import_module("bot.web.pages")
    except ModuleNotFoundError as error:
        if error.name != "bot.web.pages":
            raise
        return
    pages.setup_pages(web_app, app)


class WebServer:
    """A running server; ``url`` is where it listens."""

    def __init__(self, runner: web.AppRunner, site: web.TCPSite, host: str, port: int) -> None:
        self.runner = runner
        self.site = site
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_web(app: App, *, host: str | None = None, port: int | None = None) -> WebServer:
    """Serve ``app`` on ``host``:``port`` (default: ``web.host``/``web.port`` from the config)."""
    config = app.config.web
    bind_host = host if host is not None else config.host
    bind_port = port if port is not None else config.port
    web_app = create_web_app(app, bind_host=bind_host)
    runner = web.AppRunner(web_app, shutdown_timeout=5.0, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, bind_host, bind_port, shutdown_timeout=5.0)
    try:
        await site.start()
    except OSError as error:
        await runner.cleanup()
        raise ConfigError(
            f"Cannot listen on {bind_host}:{bind_port} ({error.strerror or error}); is another "
            "server using that port? Change web.port in the config."
        ) from None
    actual_port = bind_port
    for address in runner.addresses:  # the bound port, when 0 asked for any free one
        if isinstance(address, tuple) and len(address) >= 2:
            actual_port = int(address[1])
            break
    web_server = WebServer(runner, site, bind_host, actual_port)
    log.info("Easel web page: %s", web_server.url)
    return web_server


__all__ = ["APP_KEY", "STATE_KEY", "WebServer", "WebState", "create_web_app", "start_web"]
