"""The Discord front end of the delivery dispatcher: progress edits and result delivery.

``on_event`` keeps each job's status message up to date, through :class:`bot.throttle.EditThrottle`
(at most one edit per ``discord.status_edit_interval`` seconds per job, never the same text twice,
the latest text sent when the interval has passed). ``deliver`` posts the finished job from what
the job row stores (``reply_target``) plus, while this process runs, the interaction's token
(kept in memory only, never in the database: it is a credential), so a bot that restarted still
delivers results accepted by the previous process:

* while this process holds the interaction's token and it is younger than ~14 minutes, as a
  follow-up to the interaction;
* otherwise (after a restart, after Discord's 15 minutes, or for reactions, which have no
  token), as a normal channel message that mentions the requester.

``deliver`` raises when the result could not be posted, so the dispatcher records and retries it;
a refusal that retrying cannot fix (the channel is gone, the bot lost access: 403/404) is raised
as :class:`bot.delivery.Undeliverable`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import discord

from bot.delivery import Undeliverable
from bot.discord_common import (
    TOKEN_LIFETIME_SECONDS,
    clip,
    nsfw_mode_for,
    token_usable,
)
from bot.discord_render import (
    finished_text,
    progress_text,
    render_result,
    started_text,
)
from bot.discord_views import result_view
from bot.throttle import EditThrottle
from generation.events import JobEvent, JobProgress, JobQueued, JobStarted
from generation.policy import ScopeSettings
from storage.records import JobRecord

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger("easel.discord")

USER_MENTIONS = discord.AllowedMentions(everyone=False, roles=False, users=True)
MAX_TOKENS = 10_000  # interactions remembered at once (each token is useful for 15 minutes)


class DiscordFrontEnd:
    platform = "discord"

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
        self.throttle = EditThrottle(edit_interval)
        # discord.utils.utcnow is looked up at call time (tests may replace the clock).
        self._now = now or (lambda: discord.utils.utcnow())
        self._monotonic = monotonic or (lambda: time.monotonic())
        self._jobs: dict[str, tuple[dict[str, Any], str]] = {}  # job id -> (target, action)
        self._locks: dict[str, asyncio.Lock] = {}
        self._flushes: dict[str, asyncio.Task[None]] = {}
        # Jobs whose status is past "queued" (started, or finished: a bounded memory), so a
        # late "queued" edit from the command that accepted the job never hides newer news.
        self._started: OrderedDict[str, None] = OrderedDict()
        # interaction id -> (token, monotonic time it was seen): memory only, never stored
        self._tokens: OrderedDict[str, tuple[str, float]] = OrderedDict()

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

    # ------------------------------------------------------------------ progress

    async def show_queued(
        self, job_id: str, text: str, edit: Callable[[str], Awaitable[object]]
    ) -> None:
        """The accepting command's "queued" line, unless the job has already moved on."""
        async with self._lock(job_id):
            if job_id in self._started:
                return
            self.throttle.force(job_id, text, self._monotonic())
            await edit(text)

    async def on_event(self, event: JobEvent) -> None:
        if isinstance(event, JobQueued):
            self._jobs[event.job.id] = (event.job.reply_target, str(event.job.action))
            return  # the command that queued it says where it stands (show_queued)
        if isinstance(event, JobStarted):
            job = event.job
            self._jobs[job.id] = (job.reply_target, str(job.action))
            self._mark_started(job.id)
            await self._status(job.id, started_text(job.id, str(job.action)))
        elif isinstance(event, JobProgress):
            known = self._jobs.get(event.job_id)
            if known is not None:
                text = progress_text(event.job_id, known[1], event.step, event.total)
                await self._status(event.job_id, text)

    def _mark_started(self, job_id: str) -> None:
        self._started[job_id] = None
        self._started.move_to_end(job_id)
        while len(self._started) > 4096:
            self._started.popitem(last=False)

    def _lock(self, job_id: str) -> asyncio.Lock:
        return self._locks.setdefault(job_id, asyncio.Lock())

    async def _status(self, job_id: str, text: str) -> None:
        if self.throttle.should_send(job_id, text, self._monotonic()):
            await self._edit_status(job_id, text)
        elif self.throttle.pending(job_id) is not None and job_id not in self._flushes:
            wait = self.throttle.wait_time(job_id, self._monotonic())
            task = asyncio.create_task(self._flush_after(job_id, wait))
            self._flushes[job_id] = task

    async def _flush_after(self, job_id: str, wait: float) -> None:
        try:
            await asyncio.sleep(wait)
        finally:
            self._flushes.pop(job_id, None)
        text = self.throttle.take_pending(job_id, self._monotonic())
        if text is not None:
            await self._edit_status(job_id, text)

    async def _edit_status(
        self, job_id: str, text: str, target: dict[str, Any] | None = None
    ) -> None:
        if target is None:
            known = self._jobs.get(job_id)
            if known is None:
                return  # finished meanwhile (or never seen): the last word was said
            target = known[0]
        message_id = target.get("status_message_id")
        if not message_id:
            return
        target = self._live(target)
        usable = token_usable(target, self._now())
        from_interaction = target.get("interaction_id") or target.get("interaction_token")
        if from_interaction and not usable:
            return  # an interaction's (ephemeral) status can only be edited through its token
        async with self._lock(job_id):
            try:
                if usable:
                    webhook = self._webhook(target)
                    await webhook.edit_message(int(message_id), content=text)
                else:
                    channel = self.bot.get_partial_messageable(int(target["channel_id"]))
                    await channel.get_partial_message(int(message_id)).edit(content=text)
            except discord.HTTPException as error:
                log.info("job %s: could not update its status message (%s)", job_id, error)

    # ------------------------------------------------------------------ delivery

    async def deliver(self, job: JobRecord) -> None:
        flush = self._flushes.pop(job.id, None)
        if flush is not None:
            flush.cancel()
        self._mark_started(job.id)
        self._jobs.pop(job.id, None)  # later progress edits (if any) are dropped
        target = self._live(job.reply_target)
        try:
            if job.status == "succeeded":
                await self._post_result(job, target)
            elif job.status == "failed":
                await self._tell_requester(target, finished_text(job))
        except (discord.Forbidden, discord.NotFound) as error:
            # Unknown Channel, Missing Access/Permissions, DMs closed: retrying cannot help.
            raise Undeliverable(f"Discord refused the result: {error}") from error
        # The status message's last word (best effort: the result is already out).
        self.throttle.force(job.id, finished_text(job), self._monotonic())
        await self._edit_status(job.id, finished_text(job), target)
        self.throttle.forget(job.id)
        self._locks.pop(job.id, None)
        self._tokens.pop(str(target.get("interaction_id")), None)

    async def spoiler_for(self, job: JobRecord, channel_id: str) -> bool:
        scope = await self.app.store.get_scope(job.scope_id)
        settings = ScopeSettings.from_dict(scope.settings if scope else None)
        channel = self.bot.get_channel(int(channel_id))
        mode = nsfw_mode_for(settings, channel_id, channel, self.app.config.discord.nsfw_default)
        return mode == "spoiler"

    async def _post_result(self, job: JobRecord, target: dict[str, Any]) -> None:
        pngs = [await asyncio.to_thread(self.app.images.read, image.sha256) for image in job.images]
        spoiler = await self.spoiler_for(job, str(target["channel_id"]))
        mention = f"<@{target['user_id']}>"
        content = f"{mention} {clip(job.prompt, 120)}"
        if token_usable(target, self._now()):
            rendered = await asyncio.to_thread(render_result, job, pngs, spoiler=spoiler)
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
