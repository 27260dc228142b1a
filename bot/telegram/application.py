"""Runs the Telegram bot: builds the python-telegram-bot Application, starts and stops it.

    application = build_application(app)        # handlers registered, nothing sent yet
    await start_application(application)         # getMe, setMyCommands, polling or webhook
    ...
    await stop_application(application)

``telegram.base_url`` / ``base_file_url`` point python-telegram-bot at a self-hosted Bot API
server. Long polling is the default; ``mode = "webhook"`` serves updates on a small aiohttp
server instead. Finished jobs reach the chat through
:class:`bot.telegram.delivery.TelegramFrontEnd`, registered with the engine's delivery
dispatcher while the bot runs (results finished while it was away are sent at start).
The handlers live in :mod:`bot.telegram.handlers`.
"""

from __future__ import annotations

import logging
import os
import secrets
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiohttp import web
from telegram import BotCommand, Update
from telegram.error import TelegramError
from telegram.ext import Application

from bot.config import TelegramConfig
from bot.telegram.handlers import TelegramApplication, TelegramHandlers
from bot.telegram.origin import PLATFORM
from bot.telegram.send import with_retry
from bot.telegram.texts import COMMANDS
from generation.errors import ConfigError

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "callback_query", "message_reaction"]
_HANDLERS = "easel"
_WEBHOOK = "easel_webhook"


async def _start_webhook(application: TelegramApplication, config: TelegramConfig) -> None:
    """Receive updates on an aiohttp server (no extra dependency) and register the webhook."""
    secret = os.environ.get(config.webhook_secret_env) or secrets.token_urlsafe(32)
    path = urlsplit(config.webhook_url).path or "/"
    bot = application.bot
    queue = application.update_queue

    async def receive(request: web.Request) -> web.Response:
        if request.headers.get("X-Telegram-Bot-Api-Secret-Token") != secret:
            return web.Response(status=403)
        try:
            update = Update.de_json(await request.json(), bot)
        except (ValueError, TypeError, KeyError) as error:  # not an update: say so, keep going
            log.warning(
                "telegram: the webhook received something that is not an update (%s)", error
            )
            return web.Response(status=400)
        await queue.put(update)
        return web.Response()

    server = web.Application()
    server.router.add_post(path, receive)
    runner = web.AppRunner(server, access_log=None)
    await runner.setup()
    application.bot_data[_WEBHOOK] = runner
    await web.TCPSite(runner, config.webhook_listen, config.webhook_port).start()
    await with_retry(
        lambda: bot.set_webhook(
            config.webhook_url, secret_token=secret, allowed_updates=ALLOWED_UPDATES
        ),
        "setWebhook",
    )
    log.info("telegram: webhook on %s:%s%s", config.webhook_listen, webhook_port(application), path)


def webhook_port(application: TelegramApplication) -> int | None:
    """The port the webhook server listens on (useful with webhook_port = 0)."""
    runner = application.bot_data.get(_WEBHOOK)
    if not isinstance(runner, web.AppRunner):
        return None
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            return int(server.sockets[0].getsockname()[1])
    return None


def easel_of(application: TelegramApplication) -> TelegramHandlers:
    handlers = application.bot_data[_HANDLERS]
    assert isinstance(handlers, TelegramHandlers)
    return handlers


def build_application(
    app: App, token: str | None = None, *, config: TelegramConfig | None = None
) -> TelegramApplication:
    """A python-telegram-bot Application for ``app``, its handlers registered.

    ``token`` defaults to the variable named by ``telegram.token_env``; ``config`` to
    ``app.config.telegram``.
    """
    config = config or app.config.telegram
    token = token or app.config.token("telegram")
    if not token:
        raise ConfigError(f"Set the Telegram bot token in the {config.token_env} variable.")
    builder = Application.builder().token(token).concurrent_updates(32)
    if config.base_url:
        builder = builder.base_url(config.base_url)
    if config.base_file_url:
        builder = builder.base_file_url(config.base_file_url)
    if config.local_mode:
        builder = builder.local_mode(True)
    if config.mode == "webhook":
        builder = builder.updater(None)
    application: TelegramApplication = builder.build()
    handlers = TelegramHandlers(app, application.bot, config)
    handlers.register(application)
    application.bot_data[_HANDLERS] = handlers
    return application


async def start_application(application: TelegramApplication) -> None:
    """Connect (getMe), register the command list, start handling updates and deliveries."""
    easel = easel_of(application)
    await application.initialize()
    try:
        commands = [BotCommand(name, text) for name, text in COMMANDS]
        await with_retry(lambda: application.bot.set_my_commands(commands), "setMyCommands")
    except TelegramError as error:
        log.warning("telegram: could not register the command list (%s)", error)
    await application.start()
    easel.app.delivery.register(easel.frontend)
    if application.updater is not None:
        await application.updater.start_polling(allowed_updates=ALLOWED_UPDATES)
    else:
        await _start_webhook(application, easel.config)
    log.info("telegram: running as @%s (%s)", application.bot.username, easel.config.mode)


async def start_telegram(app: App) -> TelegramApplication | None:
    """``easel serve``: start the bot when the token variable is set, else return None."""
    if not app.config.token("telegram"):
        log.info(
            "telegram: %s is not set; the Telegram bot stays off", app.config.telegram.token_env
        )
        return None
    application = build_application(app)
    await start_application(application)
    return application


async def stop_application(application: TelegramApplication) -> None:
    easel = easel_of(application)
    easel.app.delivery.unregister(PLATFORM)
    if application.updater is not None and application.updater.running:
        await application.updater.stop()
    runner = application.bot_data.pop(_WEBHOOK, None)
    if isinstance(runner, web.AppRunner):
        await runner.cleanup()
    if application.running:
        await application.stop()
    await easel.frontend.close()
    await application.shutdown()


__all__ = [
    "ALLOWED_UPDATES",
    "TelegramApplication",
    "build_application",
    "easel_of",
    "start_application",
    "start_telegram",
    "stop_application",
    "webhook_port",
]
