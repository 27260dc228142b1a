"""The Discord front end: ``create_bot(app)`` returns a ``commands.Bot`` wired to the engine.

One process runs Discord next to Telegram and the web page on the one shared worker::

    bot = create_bot(app)            # the front end registers itself with app.delivery
    await bot.start(token)           # slash commands are synced in setup_hook

Users: ``/draw`` (options, or the shared ``--no --seed --ar ...`` grammar inside the prompt),
``/rerun``, ``/show``, ``/history``, ``/queue``, ``/cancel``; buttons and reactions on results
(:mod:`bot.discord.actions`). Admins: :mod:`bot.discord.admin`. Delivery and progress:
:mod:`bot.discord.delivery`. Intents: guilds and reactions only (no message content).

Errors: a refusal is answered in words only the requester sees; anything unexpected is logged
with the command, user and server, answered with a short apology, and never stops the bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.chat.texts import describe_error
from bot.discord.actions import DiscordActions
from bot.discord.admin import AdminCommands
from bot.discord.buttons import ResultButton
from bot.discord.commands import UserCommands
from bot.discord.delivery import DiscordFrontEnd
from bot.discord.origin import NO_MENTIONS, reply, scope_of
from bot.discord.region import RegionSelect
from generation.errors import EaselError

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger("easel.discord")

ASPECTS = ("1:1", "3:2", "2:3", "16:9", "9:16")


class EaselTree(app_commands.CommandTree["EaselBot"]):
    async def on_error(
        self, interaction: discord.Interaction[EaselBot], error: app_commands.AppCommandError
    ) -> None:
        original = getattr(error, "original", error)
        command = interaction.command.qualified_name if interaction.command else "?"
        if isinstance(original, EaselError):
            text = describe_error(original)
        elif isinstance(error, app_commands.CheckFailure):
            text = f"🚫 {error}"
        else:
            log.error(
                "/%s failed for user %s in %s (interaction %s)",
                command,
                interaction.user.id,
                scope_of(interaction.guild_id, interaction.user.id),
                interaction.id,
                exc_info=original,
            )
            text = (
                "⚠️ Something went wrong on Easel's side; it was logged "
                f"(reference {interaction.id}). Try again in a moment."
            )
        try:
            await reply(interaction, text)
        except discord.HTTPException:
            log.warning(
                "could not tell user %s about an error in /%s", interaction.user.id, command
            )


class EaselBot(commands.Bot):
    def __init__(self, app: App, *, now: Callable[[], datetime] | None = None) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_reactions = True
        intents.dm_reactions = True
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            help_command=None,
            tree_cls=EaselTree,
            allowed_mentions=NO_MENTIONS,
        )
        self.app = app
        self.settings = app.config.discord
        self.front_end = DiscordFrontEnd(
            self, app, edit_interval=self.settings.status_edit_interval, now=now
        )
        self.easel_buttons = DiscordActions(self, app, self.front_end)

    async def setup_hook(self) -> None:
        self.add_dynamic_items(ResultButton, RegionSelect)
        await self.add_cog(UserCommands(self))
        await self.add_cog(AdminCommands(self.app, self.easel_buttons))
        if self.settings.sync_commands:
            synced = await self.tree.sync()
            log.info("synced %d slash commands with Discord", len(synced))
        self.app.delivery.register(self.front_end)

    async def close(self) -> None:
        self.app.delivery.unregister(self.front_end.platform)
        await self.front_end.close()
        await super().close()

    async def on_ready(self) -> None:
        log.info("Discord bot ready as %s in %d server(s)", self.user, len(self.guilds))

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        try:
            await self.easel_buttons.on_reaction(payload)
        except discord.HTTPException as error:
            log.warning("reaction %s on message %s: %s", payload.emoji, payload.message_id, error)

    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        # Modals are sent stopped (discord.py keeps none): their submissions come here.
        await self.easel_buttons.region.on_modal_interaction(interaction)

    async def on_error(self, event_method: str, /, *args: Any, **kwargs: Any) -> None:
        log.exception("error in Discord event %s", event_method)


def create_bot(app: App, *, now: Callable[[], datetime] | None = None) -> EaselBot:
    """A Discord bot for ``app``; ``now`` replaces the clock for the token-age check (tests)."""
    return EaselBot(app, now=now)


class DiscordRunner:
    """The bot running as a task next to the other front ends (``easel serve``)."""

    def __init__(self, bot: EaselBot, token: str) -> None:
        self.bot = bot
        self.task = asyncio.create_task(self._run(token), name="easel-discord")

    async def _run(self, token: str) -> None:
        env = self.bot.settings.token_env
        try:
            await self.bot.start(token)
        except discord.LoginFailure:
            log.error("Discord refused the bot token in $%s; the Discord bot is not running", env)
        except Exception:
            log.exception("the Discord bot stopped")

    async def stop(self) -> None:
        await self.bot.close()
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def start_discord(app: App) -> DiscordRunner | None:
    """Start the Discord bot when the environment variable named in the config holds a token."""
    token = app.config.token("discord")
    if token is None:
        return None
    return DiscordRunner(create_bot(app), token)
