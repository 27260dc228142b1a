"""The Discord front end: ``create_bot(app)`` returns a ``commands.Bot`` wired to the engine.

One process runs Discord next to Telegram and the web page on the one shared worker::

    bot = create_bot(app)            # the front end registers itself with app.delivery
    await bot.start(token)           # slash commands are synced in setup_hook

Users: ``/draw`` (options, or the shared ``--no --seed --ar ...`` grammar inside the prompt),
``/rerun``, ``/show``, ``/history``, ``/queue``, ``/cancel``; buttons and reactions on results
(:mod:`bot.discord_actions`). Admins: :mod:`bot.discord_admin`. Delivery and progress:
:mod:`bot.discord_frontend`. Intents: guilds and reactions only (no message content).

Errors: a refusal is answered in words only the requester sees; anything unexpected is logged
with the command, user and server, answered with a short apology, and never stops the bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord_actions import DiscordActions
from bot.discord_admin import AdminCommands
from bot.discord_common import (
    NO_MENTIONS,
    clip,
    describe_error,
    interaction_origin,
    reply,
    requester_id,
    scope_of,
)
from bot.discord_frontend import DiscordFrontEnd
from bot.discord_render import render_result
from bot.discord_views import ResultButton, result_view
from bot.grammar import parse_draw
from generation.errors import EaselError, ImageRejected, NotFound, PermissionDenied
from generation.limits import format_retry
from generation.requests import DrawRequest, Origin
from generation.samplers import SAMPLERS
from generation.service import Accepted
from generation.sizing import parse_size
from generation.spec import MAX_SEED
from generation.uploads import check_upload_size

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
        self.add_dynamic_items(ResultButton)
        await self.add_cog(UserCommands(self))
        await self.add_cog(AdminCommands(self.app))
        if self.settings.sync_commands:
            synced = await self.tree.sync()
            log.info("synced %d slash commands with Discord", len(synced))
        self.app.delivery.register(self.front_end)

    async def close(self) -> None:
        self.app.delivery.unregister(self.front_end.platform)
        await super().close()

    async def on_ready(self) -> None:
        log.info("Discord bot ready as %s in %d server(s)", self.user, len(self.guilds))

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        try:
            await self.easel_buttons.on_reaction(payload)
        except discord.HTTPException as error:
            log.warning("reaction %s on message %s: %s", payload.emoji, payload.message_id, error)

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


def merge_options(parsed: DrawRequest, **options: Any) -> DrawRequest:
    """The prompt's own ``--options`` with the slash command's options on top."""
    changes = {key: value for key, value in options.items() if value is not None}
    negative = changes.pop("negative_prompt", None)
    if negative:
        joined = ", ".join(part for part in (parsed.negative_prompt, negative) if part)
        changes["negative_prompt"] = joined
    size = changes.pop("size", None)
    if size is not None:
        changes["width"], changes["height"] = parse_size(size)
        changes["aspect"] = None
    elif changes.get("aspect") is not None:
        changes["width"] = changes["height"] = None
    return replace(parsed, **changes)


class UserCommands(commands.Cog):
    def __init__(self, bot: EaselBot) -> None:
        self.bot = bot
        self.app = bot.app
        self.actions = bot.easel_buttons

    def _origin(self, interaction: discord.Interaction[Any]) -> Origin:
        return interaction_origin(interaction, self.app.config.discord.owner_ids)

    @app_commands.command(name="draw", description="Draw a picture from a text prompt")
    @app_commands.describe(
        prompt="What to draw; --no, --seed, --ar, --steps, --sampler, --model, --n work too",
        negative="What to keep out of the picture",
        seed="Seed (the same seed and settings redo the same picture)",
        steps="Denoising steps",
        cfg="How closely to follow the prompt (CFG scale)",
        size="WIDTHxHEIGHT in pixels, e.g. 512x768",
        aspect="Aspect ratio (keeps the usual size, changes the shape)",
        sampler="Sampler",
        model="Model (those this server allows)",
        count="How many pictures (1-4)",
        image="A picture to start from (image-to-image)",
        strength="How far to move away from the picture (0-1, image-to-image)",
    )
    @app_commands.choices(
        aspect=[app_commands.Choice(name=a, value=a) for a in ASPECTS],
        sampler=[app_commands.Choice(name=s, value=s) for s in SAMPLERS],
    )
    async def draw(
        self,
        interaction: discord.Interaction[Any],
        prompt: app_commands.Range[str, 1, 1500],
        negative: str | None = None,
        seed: app_commands.Range[int, 0, MAX_SEED] | None = None,
        steps: app_commands.Range[int, 1, 500] | None = None,
        cfg: app_commands.Range[float, 0.0, 100.0] | None = None,
        size: str | None = None,
        aspect: str | None = None,
        sampler: str | None = None,
        model: str | None = None,
        count: app_commands.Range[int, 1, 4] | None = None,
        image: discord.Attachment | None = None,
        strength: app_commands.Range[float, 0.01, 1.0] | None = None,
    ) -> None:
        try:
            request = merge_options(
                parse_draw(prompt),
                negative_prompt=negative,
                seed=seed,
                steps=steps,
                cfg=cfg,
                size=size,
                aspect=aspect,
                sampler=sampler,
                model=model,
                count=count,
                strength=strength,
            )
            if image is not None:  # checked before anything is downloaded
                check_upload_size(image.size, self.bot.settings.max_upload_bytes)
                if image.content_type and not image.content_type.startswith("image/"):
                    raise ImageRejected("The attachment is not an image. Send PNG, JPEG or WebP.")
        except EaselError as error:
            await reply(interaction, describe_error(error))
            return

        async def run(origin: Origin) -> Accepted:
            await self.actions.check_nsfw(origin, request.prompt, interaction.channel_id)
            final = request
            if image is not None:
                final = replace(request, init_image=await image.read())
            return await self.app.service.draw(origin, final)

        await self.actions.submit(interaction, run)

    @draw.autocomplete("model")
    async def model_autocomplete(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        settings = await self.app.service.scope_settings(self._origin(interaction))
        names = [
            m.name
            for m in await self.app.service.list_models()
            if m.kind != "upscaler"
            and (settings.allowed_models is None or m.name in settings.allowed_models)
        ]
        needle = current.lower()
        return [app_commands.Choice(name=n, value=n) for n in names if needle in n.lower()][:25]

    @app_commands.command(name="rerun", description="Draw a job again with the same seeds")
    @app_commands.describe(id="The job id (from the result or /history)")
    async def rerun(self, interaction: discord.Interaction[Any], id: str) -> None:
        channel_id = interaction.channel_id

        async def run(origin: Origin) -> Accepted:
            return await self.actions.run_action(origin, "rerun", id, 0, channel_id)

        await self.actions.submit(interaction, run)

    @app_commands.command(name="show", description="Post a job again, with its buttons")
    @app_commands.describe(id="The job id")
    async def show(self, interaction: discord.Interaction[Any], id: str) -> None:
        try:
            job = await self.app.service.job_for(self._origin(interaction), id)
        except NotFound as error:
            await reply(interaction, describe_error(error))
            return
        if job.status != "succeeded":
            await reply(interaction, f"Job `{job.id}` is {job.status}; nothing to show yet.")
            return
        await interaction.response.defer(thinking=True)
        pngs = [self.app.images.read(image.sha256) for image in job.images]
        channel_id = str(interaction.channel_id)
        rendered = render_result(
            job, pngs, spoiler=await self.bot.front_end.spoiler_for(job, channel_id)
        )
        await interaction.followup.send(
            content=clip(job.prompt, 120),
            embed=rendered.embed,
            files=rendered.files,
            view=result_view(job.id, len(job.images)),
        )

    @app_commands.command(name="history", description="Your recent jobs (only you see this)")
    @app_commands.describe(search="Only prompts containing this text", limit="How many (1-25)")
    async def history(
        self,
        interaction: discord.Interaction[Any],
        search: str | None = None,
        limit: app_commands.Range[int, 1, 25] = 10,
    ) -> None:
        jobs = await self.app.service.history(self._origin(interaction), limit=limit, query=search)
        if not jobs:
            await reply(interaction, "You have no jobs yet. Try /draw.")
            return
        lines = ["**Your recent jobs**"]
        for job in jobs:
            seeds = str(job.seed) if job.count == 1 else f"{job.seed}–{job.seed + job.count - 1}"
            lines.append(f"`{job.id}` · seed {seeds} · {job.status} · {clip(job.prompt, 60)}")
        await reply(interaction, "\n".join(lines))

    @app_commands.command(name="queue", description="Where your jobs are in the queue")
    async def queue(self, interaction: discord.Interaction[Any]) -> None:
        status = await self.app.service.queue_status(self._origin(interaction))
        lines = [f"**Queue:** {status.length} waiting, {status.running} drawing now."]
        if not status.your_jobs:
            lines.append("You have nothing waiting.")
        for job_id, position, eta in status.your_jobs:
            when = "next" if position == 0 else f"position {position + 1}"
            lines.append(f"`{job_id}`: {when}, starts {format_retry(eta)}")
        await reply(interaction, "\n".join(lines))

    @app_commands.command(name="cancel", description="Cancel a queued or running job")
    @app_commands.describe(id="The job id")
    async def cancel(self, interaction: discord.Interaction[Any], id: str) -> None:
        origin = self._origin(interaction)
        try:
            job = await self.app.service.job_for(origin, id)
            own = await requester_id(self.app.store, job) == origin.user_id
            if not own and not origin.is_admin:
                raise PermissionDenied(
                    f"Job {job.id} belongs to someone else; only they can cancel it."
                )
            cancelled = await self.app.service.cancel(origin, job.id)
        except EaselError as error:
            await reply(interaction, describe_error(error))
            return
        await reply(interaction, f"🚫 Cancelled `{cancelled.id}`.")
