"""What the buttons and reactions under a result do, and the shared "queue it and say so" step.

Buttons (:mod:`bot.discord.buttons`) and reactions lead to the same Service call, ``act``:

==================  ===========  ===========================================
button              reaction     does
==================  ===========  ===========================================
🔄 Reroll           🔄           reroll: same parameters, new seed
⬆️ Upscale 1..4     ⬆️ + 1️⃣..4️⃣    upscale image n
🎨 Vary 1..4        🎨 + 1️⃣..4️⃣    a variation of image n
ℹ️ Info             -            every parameter, only to whoever asked
🗑️ Delete           -            delete the message (requester or admin)
🔍 Zoom Out 1.5x/2x -            the picture centred on a larger canvas (outpaint)
⬅️➡️⬆️⬇️ Pan        -            half a side more canvas that way (outpaint)
🖌️ Vary (Region)    -            repaint a part (:mod:`bot.discord.region`)
==================  ===========  ===========================================

Zoom Out and Pan are ``Service.outpaint`` with the chats' shared short codes
(``bot.chat.actions.OUTPAINTS``), on the single image of a result (or image n of a grid).

Every job is looked up as the clicking member (``Service.job_for``/``act``): a job of another
server does not exist from here. A number reaction chooses the image for ⬆️/🎨 whichever comes
first; a result with one image needs no number. Reactions carry no interaction, so their status
is a reply in the channel (naming the requester, to its last edit; deleted when the result
comes unless ``discord.keep_status_messages``), the result is a channel message that says what
it is and mentions the requester, and a refusal goes by direct message (or, where DMs are
closed, to the channel for 30 seconds).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import discord

from bot.chat.actions import OUTPAINTS, emoji_key
from bot.chat.texts import MARKDOWN, describe_error, info_text
from bot.discord.buttons import REGION, job_id_of_message
from bot.discord.origin import (
    NO_MENTIONS,
    PLATFORM,
    channel_nsfw_default,
    interaction_origin,
    is_admin_member,
    reply,
    scope_of,
)
from bot.discord.region import RegionFlow
from generation.actions import JobAction
from generation.errors import EaselError, NotFound
from generation.requests import Origin, Visibility
from generation.service import Accepted

if TYPE_CHECKING:
    from bot.app import App
    from bot.discord.delivery import DiscordFrontEnd

log = logging.getLogger("easel.discord")

# Button codes (the middle of ``easel:<code>:<job>``; kept short and stable: old messages keep
# their buttons) and reactions -> actions.
BUTTON_ACTIONS = {"reroll": JobAction.REROLL, "up": JobAction.UPSCALE, "var": JobAction.VARY}
REACTION_ACTIONS = {"🔄": JobAction.REROLL, "⬆": JobAction.UPSCALE, "🎨": JobAction.VARY}
PICK_IMAGE = {"⬆", "🎨"}  # reactions that need an image number on a multi-image result
NUMBER_REACTIONS = {f"{n}\u20e3": n - 1 for n in range(1, 5)}  # 1️⃣..4️⃣ without VS16
INFO_LIMIT = 1900
Runner = Callable[[Origin], Awaitable[Accepted]]
Step = Callable[[], Awaitable[None]]


class DiscordActions:
    def __init__(self, bot: discord.Client, app: App, front_end: DiscordFrontEnd) -> None:
        self.bot = bot
        self.app = app
        self.front_end = front_end
        self.region = RegionFlow(self)

    @property
    def owner_ids(self) -> tuple[int, ...]:
        return tuple(self.app.config.discord.owner_ids)

    def origin(
        self, interaction: discord.Interaction[Any], status_message_id: int | None = None
    ) -> Origin:
        return interaction_origin(
            interaction,
            self.owner_ids,
            self.app.config.discord.nsfw_default,
            status_message_id=status_message_id,
        )

    # ------------------------------------------------------------------ the shared step

    async def submit(self, interaction: discord.Interaction[Any], run: Runner) -> Accepted | None:
        """Defer (only the requester sees the status), run, then say where the job stands.

        The deferred reply becomes the job's status message: its id goes into the origin's
        reply target, so progress edits reach it even from a restarted bot.
        """
        self.front_end.remember_interaction(interaction)  # its token stays in memory only
        callback = await interaction.response.defer(ephemeral=True, thinking=True)
        status_id = callback.message_id if callback is not None else None
        try:
            accepted = await run(self.origin(interaction, status_id))
        except EaselError as error:
            await interaction.edit_original_response(content=describe_error(error))
            return None
        self.front_end.track(accepted)
        return accepted

    # ------------------------------------------------------------------ buttons

    async def on_result_button(
        self, interaction: discord.Interaction[Any], code: str, job_id: str, index: int
    ) -> None:
        async def step() -> None:
            await self._button(interaction, code, job_id, index)

        await self.guarded(interaction, f"button {code}", job_id, step)

    async def _button(
        self, interaction: discord.Interaction[Any], code: str, job_id: str, index: int
    ) -> None:
        if code == "info":
            job = await self.app.service.job_for(self.origin(interaction), job_id)
            await reply(interaction, info_text(job, MARKDOWN, INFO_LIMIT))
        elif code == "del":
            await self._delete(interaction, job_id)
        elif code == REGION:
            await self.region.offer(interaction, job_id, index)
        elif code in OUTPAINTS:
            how = OUTPAINTS[code]

            async def outpaint(origin: Origin) -> Accepted:
                return await self.app.service.outpaint(origin, job_id, how, index=index)

            await self.submit(interaction, outpaint)
        else:
            action = BUTTON_ACTIONS[code]

            async def run(origin: Origin) -> Accepted:
                return await self.app.service.act(origin, action, job_id, index=index)

            await self.submit(interaction, run)

    async def guarded(
        self, interaction: discord.Interaction[Any], what: str, job_id: str, step: Step
    ) -> None:
        """Run one step of a button, menu or form: a refusal is answered in words only the
        member sees; anything unexpected is logged, answered with an apology, and survived."""
        try:
            await step()
        except EaselError as error:
            await reply(interaction, describe_error(error))
        except Exception:
            log.exception(
                "%s on job %s failed for user %s (interaction %s)",
                what,
                job_id,
                interaction.user.id,
                interaction.id,
            )
            await reply(
                interaction,
                "⚠️ Something went wrong on Easel's side; it was logged "
                f"(reference {interaction.id}). Try again in a moment.",
            )

    async def _delete(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        origin = self.origin(interaction)
        job = await self.app.service.job_for(origin, job_id)
        if not (origin.is_admin or await self.app.service.owns(origin, job)):
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
        name = emoji_key(str(payload.emoji))
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
        user: discord.User | discord.Member | None = payload.member or self.bot.get_user(
            payload.user_id
        )
        if user is None:
            user = await self.bot.fetch_user(payload.user_id)
        for action, index in await self._reaction_requests(message, payload, user, name, job_id):
            await self._react(message, payload, user, action, job_id, index)

    def _reaction_origin(
        self,
        payload: discord.RawReactionActionEvent,
        user: discord.User | discord.Member,
        guild: discord.Guild | None,
        status_message_id: int | None = None,
    ) -> Origin:
        permissions = payload.member.guild_permissions if payload.member is not None else None
        target: dict[str, Any] = {
            "channel_id": str(payload.channel_id),
            "guild_id": str(payload.guild_id) if payload.guild_id else None,
            "user_id": str(payload.user_id),
            "mention_in_status": True,
        }
        if status_message_id is not None:
            target["status_message_id"] = str(status_message_id)
        channel = self.bot.get_channel(payload.channel_id)
        return Origin(
            platform=PLATFORM,
            scope_id=scope_of(payload.guild_id, payload.user_id),
            user_id=str(payload.user_id),
            user_name=user.display_name,
            scope_name=guild.name if guild is not None else "direct messages",
            reply_target=target,
            is_admin=is_admin_member(user, permissions, self.owner_ids),
            sees=Visibility.SCOPE,
            channel_id=str(payload.channel_id),
            nsfw_default=channel_nsfw_default(channel, self.app.config.discord.nsfw_default),
        )

    async def _reaction_requests(
        self,
        message: discord.Message,
        payload: discord.RawReactionActionEvent,
        user: discord.User | discord.Member,
        name: str,
        job_id: str,
    ) -> list[tuple[JobAction, int]]:
        """The (action, image index) pairs this reaction completes for this user."""
        if name == "🔄":
            return [(JobAction.REROLL, 0)]
        if name in REACTION_ACTIONS:
            origin = self._reaction_origin(payload, user, message.guild)
            try:
                job = await self.app.service.job_for(origin, job_id)
            except NotFound:
                return []
            if max(job.count, len(job.images)) <= 1:
                return [(REACTION_ACTIONS[name], 0)]
            numbers = await self._reacted(message, payload.user_id, NUMBER_REACTIONS)
            return [(REACTION_ACTIONS[name], NUMBER_REACTIONS[n]) for n in numbers]
        picks = await self._reacted(message, payload.user_id, dict.fromkeys(PICK_IMAGE, 0))
        return [(REACTION_ACTIONS[pick], NUMBER_REACTIONS[name]) for pick in picks]

    async def _reacted(
        self, message: discord.Message, user_id: int, names: dict[str, int]
    ) -> list[str]:
        found = []
        for reaction in message.reactions:
            name = emoji_key(str(reaction.emoji))
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
        user: discord.User | discord.Member,
        action: JobAction,
        job_id: str,
        index: int,
    ) -> None:
        status = await message.reply(
            f"⏳ {user.mention}: working on it…", mention_author=False, allowed_mentions=NO_MENTIONS
        )
        origin = self._reaction_origin(payload, user, message.guild, status.id)
        try:
            accepted = await self.app.service.act(origin, action, job_id, index=index)
        except EaselError as error:
            await status.delete()
            await self._tell_privately(user, message, describe_error(error))
            return
        self.front_end.track(accepted)

    async def _tell_privately(
        self, user: discord.User | discord.Member, message: discord.Message, text: str
    ) -> None:
        try:
            await user.send(text, allowed_mentions=NO_MENTIONS)
        except discord.HTTPException:  # DMs closed: a short-lived note in the channel
            await message.channel.send(
                f"{user.mention} {text}", delete_after=30, allowed_mentions=NO_MENTIONS
            )
