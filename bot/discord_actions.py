"""What the buttons and reactions under a result do, and the shared "queue it and say so" step.

Buttons (:mod:`bot.discord_views`) and reactions lead to the same use cases:

=========  ===========  ===========================================
button     reaction     does
=========  ===========  ===========================================
🔄         🔄           reroll: same parameters, new seed
U1..U4     ⬆️ + 1️⃣..4️⃣    upscale image n
V1..V4     🎨 + 1️⃣..4️⃣    a variation of image n
ℹ️         -            every parameter, only to whoever asked
🗑️         -            delete the message (requester or admin)
=========  ===========  ===========================================

A number reaction chooses the image for ⬆️/🎨 whichever comes first; a result with one image
needs no number. Reactions carry no interaction, so their status is a reply in the channel, the
result is a channel message mentioning the requester, and a refusal goes by direct message
(or, where DMs are closed, to the channel for 30 seconds).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import discord

from bot.discord_common import (
    NO_MENTIONS,
    PLATFORM,
    describe_error,
    interaction_is_admin,
    interaction_origin,
    is_admin_member,
    nsfw_mode_for,
    reply,
    requester_id,
    scope_of,
)
from bot.discord_render import info_text, queued_text
from bot.discord_views import job_id_of_message
from generation.errors import EaselError, InvalidRequest
from generation.policy import check_nsfw
from generation.requests import Origin
from generation.service import Accepted

if TYPE_CHECKING:
    from bot.app import App
    from bot.discord_frontend import DiscordFrontEnd

log = logging.getLogger("easel.discord")

VS16 = "\ufe0f"
REACTION_ACTIONS = {"🔄": "reroll", "⬆": "up", "🎨": "var"}
NUMBER_REACTIONS = {f"{n}\u20e3": n - 1 for n in range(1, 5)}  # 1️⃣..4️⃣ without VS16
Runner = Callable[[Origin], Awaitable[Accepted]]


def normalize_emoji(text: str) -> str:
    return text.replace(VS16, "")


class DiscordActions:
    def __init__(self, bot: discord.Client, app: App, front_end: DiscordFrontEnd) -> None:
        self.bot = bot
        self.app = app
        self.front_end = front_end

    @property
    def owner_ids(self) -> tuple[int, ...]:
        return tuple(self.app.config.discord.owner_ids)

    # ------------------------------------------------------------------ shared steps

    async def check_nsfw(self, origin: Origin, prompt: str, channel_id: int | None) -> None:
        if channel_id is None:
            return
        settings = await self.app.service.scope_settings(origin)
        channel = self.bot.get_channel(channel_id)
        default = self.app.config.discord.nsfw_default
        check_nsfw(prompt, nsfw_mode_for(settings, str(channel_id), channel, default))

    async def submit(self, interaction: discord.Interaction[Any], run: Runner) -> Accepted | None:
        """Defer (only the requester sees the status), run, then say where the job stands.

        The deferred reply becomes the job's status message: its id goes into the origin's
        reply target, so progress edits reach it even from a restarted bot.
        """
        self.front_end.remember_interaction(interaction)  # its token stays in memory only
        callback = await interaction.response.defer(ephemeral=True, thinking=True)
        status_id = callback.message_id if callback is not None else None
        origin = interaction_origin(interaction, self.owner_ids, status_message_id=status_id)
        try:
            accepted = await run(origin)
        except EaselError as error:
            await interaction.edit_original_response(content=describe_error(error))
            return None

        async def edit(text: str) -> None:
            await interaction.edit_original_response(content=text)

        text = queued_text(accepted.job, accepted.position, accepted.eta_seconds)
        await self.front_end.show_queued(accepted.job.id, text, edit)
        return accepted

    async def run_action(
        self, origin: Origin, action: str, job_id: str, index: int, channel_id: int | None
    ) -> Accepted:
        """Reroll, upscale, vary or rerun a job visible from where ``origin`` asks."""
        parent = await self.app.service.job_for(origin, job_id)
        await self.check_nsfw(origin, parent.prompt, channel_id)
        service = self.app.service
        if action == "reroll":
            return await service.reroll(origin, parent.id)
        if action == "up":
            return await service.upscale(origin, parent.id, index)
        if action == "var":
            return await service.vary(origin, parent.id, index)
        if action == "rerun":
            return await service.rerun(origin, parent.id)
        raise InvalidRequest(f"Unknown action {action!r}.")

    # ------------------------------------------------------------------ buttons

    async def on_result_button(
        self, interaction: discord.Interaction[Any], action: str, job_id: str, index: int
    ) -> None:
        try:
            if action == "info":
                await self._info(interaction, job_id)
            elif action == "del":
                await self._delete(interaction, job_id)
            else:
                channel_id = interaction.channel_id

                async def run(origin: Origin) -> Accepted:
                    return await self.run_action(origin, action, job_id, index, channel_id)

                await self.submit(interaction, run)
        except EaselError as error:
            await reply(interaction, describe_error(error))
        except Exception:
            log.exception(
                "button %s on job %s failed for user %s (interaction %s)",
                action,
                job_id,
                interaction.user.id,
                interaction.id,
            )
            await reply(
                interaction,
                "⚠️ Something went wrong on Easel's side; it was logged "
                f"(reference {interaction.id}). Try again in a moment.",
            )

    async def _info(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        origin = interaction_origin(interaction, self.owner_ids)
        job = await self.app.service.job_for(origin, job_id)
        await reply(interaction, info_text(job))

    async def _delete(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        job = await self.app.service.get_job(job_id)
        owner = await requester_id(self.app.store, job)
        allowed = owner == str(interaction.user.id) or interaction_is_admin(
            interaction, self.owner_ids
        )
        if not allowed:
            await reply(
                interaction, "🚫 Only whoever asked for this image, or an admin, can delete it."
            )
            return
        await interaction.response.send_message("🗑️ Deleted.", ephemeral=True)
        if interaction.message is not None:
            await interaction.message.delete()

    # ------------------------------------------------------------------ reactions

    async def on_reaction(self, payload: discord.RawReactionActionEvent) -> None:
        me = self.bot.user
        if me is None or payload.user_id == me.id:
            return
        name = normalize_emoji(str(payload.emoji))
        if name not in REACTION_ACTIONS and name not in NUMBER_REACTIONS:
            return
        channel = self.bot.get_channel(payload.channel_id)
        if channel is None:
            channel = await self.bot.fetch_channel(payload.channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            return
        message = await channel.fetch_message(payload.message_id)
        job_id = job_id_of_message(message) if message.author.id == me.id else None
        if job_id is None:
            return
        for action, index in await self._reaction_requests(message, name, payload.user_id, job_id):
            await self._react(message, payload, action, job_id, index)

    async def _reaction_requests(
        self, message: discord.Message, name: str, user_id: int, job_id: str
    ) -> list[tuple[str, int]]:
        """The (action, image index) pairs this reaction completes for this user."""
        if name == "🔄":
            return [("reroll", 0)]
        if name in REACTION_ACTIONS:
            job = await self.app.store.get_job(job_id)
            if job is None:
                return []
            if max(job.count, len(job.images)) <= 1:
                return [(REACTION_ACTIONS[name], 0)]
            numbers = await self._reacted(message, user_id, NUMBER_REACTIONS)
            return [(REACTION_ACTIONS[name], NUMBER_REACTIONS[n]) for n in numbers]
        actions = await self._reacted(message, user_id, {"⬆": 0, "🎨": 0})
        return [(REACTION_ACTIONS[a], NUMBER_REACTIONS[name]) for a in actions]

    async def _reacted(
        self, message: discord.Message, user_id: int, names: dict[str, int]
    ) -> list[str]:
        found = []
        for reaction in message.reactions:
            name = normalize_emoji(str(reaction.emoji))
            if name in names:
                async for user in reaction.users():
                    if user.id == user_id:
                        found.append(name)
                        break
        return sorted(found, key=lambda n: names[n])

    async def _react(
        self,
        message: discord.Message,
        payload: discord.RawReactionActionEvent,
        action: str,
        job_id: str,
        index: int,
    ) -> None:
        member = payload.member
        guild = message.guild
        user: discord.User | discord.Member | None = member or self.bot.get_user(payload.user_id)
        if user is None:
            user = await self.bot.fetch_user(payload.user_id)
        permissions = member.guild_permissions if member is not None else None
        status = await message.reply(
            f"⏳ {user.mention}: working on it…", mention_author=False, allowed_mentions=NO_MENTIONS
        )
        origin = Origin(
            platform=PLATFORM,
            scope_id=scope_of(payload.guild_id, payload.user_id),
            user_id=str(payload.user_id),
            user_name=user.display_name,
            scope_name=guild.name if guild is not None else "direct messages",
            reply_target={
                "channel_id": str(payload.channel_id),
                "guild_id": str(payload.guild_id) if payload.guild_id else None,
                "user_id": str(payload.user_id),
                "status_message_id": str(status.id),
            },
            is_admin=is_admin_member(user, permissions, self.owner_ids),
        )
        try:
            accepted = await self.run_action(origin, action, job_id, index, payload.channel_id)
        except EaselError as error:
            await status.delete()
            await self._tell_privately(user, message, describe_error(error))
            return

        async def edit(text: str) -> None:
            await status.edit(content=f"{user.mention} {text}", allowed_mentions=NO_MENTIONS)

        text = queued_text(accepted.job, accepted.position, accepted.eta_seconds)
        await self.front_end.show_queued(accepted.job.id, text, edit)

    async def _tell_privately(
        self, user: discord.User | discord.Member, message: discord.Message, text: str
    ) -> None:
        try:
            await user.send(text, allowed_mentions=NO_MENTIONS)
        except discord.HTTPException:  # DMs closed: a short-lived note in the channel
            await message.channel.send(
                f"{user.mention} {text}", delete_after=30, allowed_mentions=NO_MENTIONS
            )
