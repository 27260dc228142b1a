"""The Discord front end of the delivery dispatcher: status messages and result delivery.

Status: each job has one status message — the (ephemeral) answer to the command or button that
asked for it, or the reply to a reaction — kept up to date by :class:`bot.chat.status.
StatusMessages` (state changes at once, progress at most every ``discord.status_edit_interval``
seconds). ``deliver`` posts the finished job from what the job row stores (``reply_target``)
plus, while this process runs, the interaction's token (kept in memory only, never in the
database: it is a credential), so a bot that restarted still delivers results accepted by the
previous process:

* while this process holds the interaction's token and it is younger than ~14 minutes, as a
  follow-up to the interaction;
* otherwise (after a restart, after Discord's 15 minutes, or for reactions, which have no
  token), as a normal channel message that mentions the requester.

When the result (or the failure notice) is out, the status message is deleted — one message per
job — unless ``discord.keep_status_messages``; then, like a cancelled job's, it shows the final
word. A slash command's status stays ephemeral (only the requester ever sees it): folding the
result into it would hide the result from everyone else.

``deliver`` raises when the result could not be posted, so the dispatcher records and retries it;
a refusal that retrying cannot fix (the channel is gone, the bot lost access: 403/404) is raised
as :class:`generation.delivery.Undeliverable`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import discord

from bot.chat.status import EditResult, Rank, StatusMessages
from bot.chat.texts import (
    MARKDOWN,
    doing_key,
    final_text,
    progress_text,
    queued_text,
    started_text,
)
from bot.discord.buttons import result_view
from bot.discord.origin import (
    NO_MENTIONS,
    PLATFORM,
    TOKEN_LIFETIME_SECONDS,
    USER_MENTIONS,
    nsfw_mode_for,
    token_usable,
)
from bot.discord.render import render_result, result_content
from generation.delivery import Undeliverable
from generation.events import JobEvent, JobProgress, JobStarted
from generation.service import Accepted
from storage.records import JobRecord

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger("easel.discord")

MAX_TOKENS = 10_000  # interactions remembered at once (each token is useful for 15 minutes)


class DiscordFrontEnd:
    platform = PLATFORM

    def __init__(
        self,
        bot: discord.Client,
        app: App,
        *,
        edit_interval: float = 2.0,
        now: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self.bot = bot
        self.app = app
        # discord.utils.utcnow is looked up at call time (tests may replace the clock).
        self._now = now or (lambda: discord.utils.utcnow())
        self._monotonic = monotonic or (lambda: time.monotonic())
        self.statuses = StatusMessages(
            self._edit_status, interval=lambda job_id: edit_interval, monotonic=self._monotonic
        )
        self._targets: dict[str, dict[str, Any]] = {}  # job id -> reply target, while it runs
        self._actions: dict[str, str] = {}  # job id -> its doing_key ("draw", "zoom 2", ...)
        # interaction id -> (token, monotonic time it was seen): memory only, never stored
        self._tokens: OrderedDict[str, tuple[str, float]] = OrderedDict()

    async def close(self) -> None:
        await self.statuses.close()

    # ------------------------------------------------------------------ interaction tokens

    def remember_interaction(self, interaction: discord.Interaction[Any]) -> None:
        """Keep ``interaction``'s token (in memory) to answer it when its job is done."""
        now = self._monotonic()
        self._tokens[str(interaction.id)] = (interaction.token, now)
        self._tokens.move_to_end(str(interaction.id))
        while self._tokens:
            oldest, (_, seen) = next(iter(self._tokens.items()))
            if len(self._tokens) <= MAX_TOKENS and now - seen < TOKEN_LIFETIME_SECONDS:
                break
            del self._tokens[oldest]

    def _live(self, target: dict[str, Any]) -> dict[str, Any]:
        """``target`` with its interaction token, while this process knows it."""
        known = self._tokens.get(str(target.get("interaction_id")))
        return {**target, "interaction_token": known[0]} if known else target

    # ------------------------------------------------------------------ status messages

    def track(self, accepted: Accepted) -> None:
        """The command or reaction that queued a job has its status message: show where the
        job stands there (unless it has already moved on) and keep it up to date."""
        job = accepted.job
        self._follow(job)
        text = queued_text(
            job, accepted.position, accepted.eta_seconds, MARKDOWN, accepted.seconds_left
        )
        self.statuses.show(job.id, text, Rank.QUEUED)

    def _follow(self, job: JobRecord) -> None:
        if job.id in self._targets or self.statuses.is_finished(job.id):
            return
        self._targets[job.id] = job.reply_target
        self._actions[job.id] = doing_key(job)
        if job.reply_target.get("status_message_id"):
            self.statuses.ready(job.id)

    async def on_event(self, event: JobEvent) -> None:
        if isinstance(event, JobStarted):
            job = event.job
            self._follow(job)  # also a job queued by an earlier process
            text = started_text(job.id, doing_key(job), MARKDOWN)
            self.statuses.show(job.id, text, Rank.STARTED)
        elif isinstance(event, JobProgress) and event.job_id in self._targets:
            action = self._actions.get(event.job_id, "draw")
            left = self.app.service.seconds_left(event.job_id)
            text = progress_text(event.job_id, action, event.step, event.total, MARKDOWN, left)
            self.statuses.show(event.job_id, text, Rank.progress(event.step))
        # JobQueued: the command that queued the job says where it stands (track);
        # JobFinished: deliver() gets it.

    async def _edit_status(self, job_id: str, text: str) -> EditResult:
        target = self._targets.get(job_id)
        message_id = target.get("status_message_id") if target else None
        if target is None or not message_id:
            return EditResult.GONE
        live = self._live(target)
        usable = token_usable(live, self._now())
        if target.get("interaction_id") and not usable:
            return EditResult.GONE  # an ephemeral status can only be edited through its token
        if target.get("mention_in_status"):  # a reaction's public status names who asked
            text = f"<@{target['user_id']}> {text}"
        try:
            if usable:
                await self._webhook(live).edit_message(int(message_id), content=text)
            else:
                channel = self.bot.get_partial_messageable(int(target["channel_id"]))
                await channel.get_partial_message(int(message_id)).edit(
                    content=text, allowed_mentions=NO_MENTIONS
                )
        except (discord.NotFound, discord.Forbidden) as error:
            log.info("job %s: its status message cannot be edited any more (%s)", job_id, error)
            return EditResult.GONE
        except discord.HTTPException as error:
            log.info("job %s: could not update its status message (%s)", job_id, error)
        return EditResult.DONE

    async def _delete_status(self, job_id: str) -> bool:
        """Delete the job's status message; False when it cannot be (then it is edited)."""
        target = self._targets.get(job_id)
        message_id = target.get("status_message_id") if target else None
        if target is None or not message_id:
            return False
        live = self._live(target)
        try:
            if token_usable(live, self._now()):
                await self._webhook(live).delete_message(int(message_id))
            elif target.get("interaction_id"):
                return False  # an ephemeral status can only be deleted through its token
            else:
                channel = self.bot.get_partial_messageable(int(target["channel_id"]))
                await channel.get_partial_message(int(message_id)).delete()
        except discord.NotFound:
            return True  # already gone
        except discord.HTTPException as error:
            log.info("job %s: could not delete its status message (%s)", job_id, error)
            return False
        return True

    # ------------------------------------------------------------------ delivery

    async def deliver(self, job: JobRecord) -> None:
        finished = await self.statuses.finish(job.id)
        target = self._live(job.reply_target)
        self._targets[job.id] = job.reply_target  # for the last word on the status message
        try:
            try:
                if job.status == "succeeded":
                    await self._post_result(job, target)
                elif job.status == "failed":
                    await self._tell_requester(target, final_text(job, MARKDOWN))
            except (discord.Forbidden, discord.NotFound) as error:
                # Unknown Channel, Missing Access/Permissions, DMs closed: retrying cannot help.
                raise Undeliverable(f"Discord refused the result: {error}") from error
            # The status message's last word (best effort: the result is already out). Where
            # the outcome now has a message of its own, the status goes (one message per job),
            # unless discord.keep_status_messages; a cancelled job's status says so instead.
            keep = self.app.config.discord.keep_status_messages
            removed = False
            if not keep and job.status in ("succeeded", "failed"):
                removed = await self._delete_status(job.id)
            last_word = final_text(job, MARKDOWN)
            if not removed and finished.shown != last_word:
                await self._edit_status(job.id, last_word)
            self._tokens.pop(str(target.get("interaction_id")), None)
        finally:
            self._targets.pop(job.id, None)
            self._actions.pop(job.id, None)

    async def spoiler_for(self, job: JobRecord, channel_id: str) -> bool:
        settings = await self.app.service.scope_settings_of(job)
        channel = self.bot.get_channel(int(channel_id))
        mode = nsfw_mode_for(settings, channel_id, channel, self.app.config.discord.nsfw_default)
        return mode == "spoiler"

    async def _post_result(self, job: JobRecord, target: dict[str, Any]) -> None:
        pngs = await self.app.service.read_images(job)
        spoiler = await self.spoiler_for(job, str(target["channel_id"]))
        content = result_content(job, f"<@{target['user_id']}>")
        rendered = await asyncio.to_thread(render_result, job, pngs, spoiler=spoiler)
        if token_usable(target, self._now()):
            try:
                await self._webhook(target).send(
                    content=content,
                    embed=rendered.embed,
                    files=rendered.files,
                    view=result_view(job.id, len(job.images)),
                    allowed_mentions=USER_MENTIONS,
                    wait=True,
                )
                return
            except discord.NotFound:  # the token expired early or the interaction is gone
                log.info("job %s: interaction token unusable; posting in the channel", job.id)
                # the files were read once: render them again for a second upload
                rendered = await asyncio.to_thread(render_result, job, pngs, spoiler=spoiler)
        channel = await self._channel(target)
        await channel.send(
            content=content,
            embed=rendered.embed,
            files=rendered.files,
            view=result_view(job.id, len(job.images)),
            allowed_mentions=USER_MENTIONS,
        )

    async def _tell_requester(self, target: dict[str, Any], text: str) -> None:
        if token_usable(target, self._now()):
            try:
                await self._webhook(target).send(content=text, ephemeral=True, wait=True)
                return
            except discord.NotFound:
                pass
        channel = await self._channel(target)
        await channel.send(f"<@{target['user_id']}> {text}", allowed_mentions=USER_MENTIONS)

    # ------------------------------------------------------------------ helpers

    def _webhook(self, target: dict[str, Any]) -> discord.Webhook:
        """The interaction's follow-up webhook, rebuilt from its application id and token."""
        webhook = discord.Webhook.partial(
            int(target["application_id"]), str(target["interaction_token"]), client=self.bot
        )
        webhook.type = discord.WebhookType.application  # as Interaction.followup: ephemeral OK
        return webhook

    async def _channel(self, target: dict[str, Any]) -> discord.abc.Messageable:
        channel_id = int(target["channel_id"])
        channel = self.bot.get_channel(channel_id)
        if channel is None:
            channel = await self.bot.fetch_channel(channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            raise TypeError(f"channel {channel_id} cannot receive messages")
        return channel
