"""The Telegram front end: live status messages and delivery of finished jobs.

Status: each job has one status message (sent by the handler that accepted the job, then
attached here; after a restart it is found again through ``Service.messages``). Queue position,
start and step progress edit it through :class:`bot.chat.status.StatusMessages` (progress at
most once per ``status_edit_interval`` per message, at least 3 s apart in groups, coalesced to
the latest text, never the same text twice). A ``RetryAfter`` pauses every edit in that chat for
as long as Telegram asks (:class:`bot.telegram.send.FloodGate`). While a job renders, the
``upload_photo`` chat action is repeated.

Delivery: the status editor is stopped first (an edit already on its way is waited for, so no
late "step 1/1" lands after the photo); :class:`bot.telegram.send.ResultSender` sends the images;
then the status message is deleted (one message per job; ``telegram.keep_status_messages``
keeps it, showing the outcome). A failed or cancelled job's status shows the outcome (or, with
no status message, a reply says it). Errors while sending propagate
so :class:`generation.delivery.DeliveryDispatcher` records them and tries again later; refusals
that retrying cannot fix (the bot was blocked or kicked, the chat is gone: 403, 400) propagate
as :class:`generation.delivery.Undeliverable`, so they are recorded and not retried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from telegram import Bot
from telegram.constants import ChatAction
from telegram.error import BadRequest, ChatMigrated, Forbidden, RetryAfter, TelegramError

from bot.chat.status import EditResult, Finished, Rank, StatusMessages
from bot.chat.texts import (
    PLAIN,
    doing_key,
    final_text,
    progress_text,
    queued_text,
    started_text,
)
from bot.telegram.origin import PLATFORM
from bot.telegram.send import (
    FloodGate,
    ResultSender,
    is_not_modified,
    reply_to,
    retry_seconds,
    with_retry,
)
from generation.delivery import Undeliverable
from generation.events import JobEvent, JobProgress, JobQueued, JobStarted
from storage.records import JobRecord

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

GROUP_MIN_INTERVAL = 3.0  # 20 messages a minute per group
CHAT_ACTION_EVERY = 4.5  # a chat action shows for 5 s
CHAT_ACTION_MAX = 900.0
DELIVERED_REMEMBERED = 1000


@dataclass
class _Where:
    """Where a job's status message is."""

    chat_id: int
    thread_id: int | None
    action: str  # the job's doing_key: "draw", "zoom 2"... (progress events do not say)
    message_id: int | None = None


class TelegramFrontEnd:
    platform = PLATFORM

    def __init__(
        self,
        bot: Bot,
        app: App,
        *,
        edit_interval: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bot = bot
        self.app = app
        self._monotonic = monotonic
        self._edit_interval = edit_interval
        self._keep_status = app.config.telegram.keep_status_messages
        self.gate = FloodGate(monotonic)
        self.sender = ResultSender(bot, app.service, self.gate)
        self.statuses = StatusMessages(
            self._edit, interval=self._interval, hold=self._hold, monotonic=monotonic
        )
        self._where: dict[str, _Where] = {}
        self._chat_actions: dict[str, asyncio.Task[None]] = {}
        # Delivered before its status message existed: the handler finishes that message.
        self._delivered: OrderedDict[str, JobRecord] = OrderedDict()

    async def close(self) -> None:
        actions = list(self._chat_actions.values())
        for task in actions:
            task.cancel()
        await asyncio.gather(*actions, return_exceptions=True)
        self._chat_actions.clear()
        await self.statuses.close()

    # ------------------------------------------------------------------ live events

    async def on_event(self, event: JobEvent) -> None:
        if isinstance(event, JobQueued):
            job = event.job
            where = await self._where_of(job)
            text = queued_text(job, event.position, event.eta_seconds, PLAIN, event.seconds_left)
            self.statuses.show(job.id, text, Rank.QUEUED)
        elif isinstance(event, JobStarted):
            job = event.job
            where = await self._where_of(job)
            text = started_text(job.id, where.action, PLAIN)
            self.statuses.show(job.id, text, Rank.STARTED)
            if job.id not in self._chat_actions:
                self._chat_actions[job.id] = asyncio.create_task(self._chat_action(where))
        elif isinstance(event, JobProgress) and event.job_id in self._where:
            where = self._where[event.job_id]
            left = self.app.service.seconds_left(event.job_id)
            text = progress_text(event.job_id, where.action, event.step, event.total, PLAIN, left)
            self.statuses.show(event.job_id, text, Rank.progress(event.step))

    async def attach_status(self, job: JobRecord, message_id: int, text: str) -> None:
        """The handler sent ``job``'s status message showing ``text``: keep it up to date."""
        where = self._new_where(job)
        where.message_id = message_id
        await self.app.service.messages.remember_status(
            PLATFORM, job.id, str(where.chat_id), str(message_id)
        )
        delivered = self._delivered.pop(job.id, None)
        if delivered is not None:  # delivered before the status message existed
            await self._finish_status(delivered, where, Finished(text, True))
            return
        self.statuses.ready(job.id, shown=text)

    def _new_where(self, job: JobRecord) -> _Where:
        where = self._where.get(job.id)
        if where is None:
            target = job.reply_target
            thread = target.get("thread_id")
            chat, action = int(target["chat_id"]), doing_key(job)
            where = _Where(chat, int(thread) if thread else None, action)
            self._where[job.id] = where
        return where

    async def _where_of(self, job: JobRecord) -> _Where:
        """Where ``job``'s status message is; after a restart, found in the message log."""
        fresh = job.id not in self._where
        where = self._new_where(job)
        if fresh and where.message_id is None:
            known = await self.app.service.messages.status_of(PLATFORM, job.id)
            if known is not None and where.message_id is None:
                where.message_id = int(known[1])
                self.statuses.ready(job.id)
        return where

    def _interval(self, job_id: str) -> float:
        where = self._where.get(job_id)
        in_group = where is not None and where.chat_id < 0
        return max(self._edit_interval, GROUP_MIN_INTERVAL) if in_group else self._edit_interval

    def _hold(self, job_id: str) -> float:
        where = self._where.get(job_id)
        return self.gate.wait_time(where.chat_id) if where is not None else 0.0

    async def _edit(self, job_id: str, text: str) -> EditResult:
        where = self._where.get(job_id)
        if where is None or where.message_id is None:
            return EditResult.GONE
        try:
            await self.bot.edit_message_text(
                text, chat_id=where.chat_id, message_id=where.message_id
            )
        except RetryAfter as error:
            self.gate.block(where.chat_id, retry_seconds(error))
            log.info("telegram: flood control in chat %s; status edits paused", where.chat_id)
            return EditResult.RETRY
        except BadRequest as error:
            if is_not_modified(error):
                return EditResult.DONE
            log.info("telegram: status message of job %s is gone (%s)", job_id, error)
            where.message_id = None
            return EditResult.GONE
        except TelegramError as error:
            log.info("telegram: could not edit the status of job %s (%s)", job_id, error)
        return EditResult.DONE

    async def _chat_action(self, where: _Where) -> None:
        deadline = self._monotonic() + CHAT_ACTION_MAX
        while self._monotonic() < deadline:
            try:
                await self.bot.send_chat_action(
                    where.chat_id, ChatAction.UPLOAD_PHOTO, message_thread_id=where.thread_id
                )
            except RetryAfter as error:
                await asyncio.sleep(retry_seconds(error))
                continue
            except TelegramError as error:
                log.debug("telegram: chat action failed (%s)", error)
            await asyncio.sleep(CHAT_ACTION_EVERY)

    # ------------------------------------------------------------------ delivery

    async def deliver(self, job: JobRecord) -> None:
        try:
            await self._deliver(job)
        except (Forbidden, BadRequest, ChatMigrated) as error:
            # "bot was blocked by the user", "bot was kicked", "chat not found", a group that
            # became a supergroup: the same request would be refused again.
            raise Undeliverable(f"Telegram refused the result: {error.message}") from error

    async def _deliver(self, job: JobRecord) -> None:
        target = job.reply_target
        where = await self._where_of(job)
        action = self._chat_actions.pop(job.id, None)
        if action is not None:
            action.cancel()
        finished = await self.statuses.finish(job.id)
        if where.message_id is None:  # the handler may still be sending it
            self._delivered[job.id] = job
            while len(self._delivered) > DELIVERED_REMEMBERED:
                self._delivered.popitem(last=False)
        if job.status == "succeeded" and job.images:
            await self.sender.send_result(job, int(target["chat_id"]), target.get("message_id"))
            await self._finish_status(job, where, finished)
            return
        if not await self._finish_status(job, where, finished):
            await with_retry(
                lambda: self.bot.send_message(
                    int(target["chat_id"]),
                    final_text(job, PLAIN),
                    reply_parameters=reply_to(target.get("message_id")),
                    message_thread_id=where.thread_id,
                ),
                "sendMessage",
            )

    async def _finish_status(self, job: JobRecord, where: _Where, finished: Finished) -> bool:
        """The status message's end: deleted once the pictures are out (one message per job,
        unless ``telegram.keep_status_messages``), else showing the final text; False when
        there is no status message.

        Deleted rather than turned into the photo: ``editMessageMedia`` only replaces media in
        a message that already has some, and a text message cannot become a photo."""
        self._where.pop(job.id, None)
        if where.message_id is None:
            return False
        self._delivered.pop(job.id, None)
        shown_elsewhere = job.status == "succeeded" and bool(job.images)
        if shown_elsewhere and not self._keep_status and await self._delete_status(job, where):
            await self.app.service.messages.forget_status(PLATFORM, job.id)
            return True
        text = final_text(job, PLAIN)
        edited = False
        if text != finished.shown:
            await self.gate.wait(where.chat_id)
            try:
                await with_retry(
                    lambda: self.bot.edit_message_text(
                        text, chat_id=where.chat_id, message_id=where.message_id
                    ),
                    "editMessageText",
                )
                edited = True
            except BadRequest as error:
                edited = is_not_modified(error)
            except TelegramError as error:
                log.info("telegram: could not finish the status of job %s (%s)", job.id, error)
        await self.app.service.messages.forget_status(PLATFORM, job.id)
        return edited or text == finished.shown

    async def _delete_status(self, job: JobRecord, where: _Where) -> bool:
        """Delete the job's status message; False when Telegram will not (then it is edited)."""
        assert where.message_id is not None
        message_id = where.message_id
        await self.gate.wait(where.chat_id)
        try:
            await with_retry(
                lambda: self.bot.delete_message(where.chat_id, message_id), "deleteMessage"
            )
        except BadRequest as error:
            if "not found" in error.message.lower():
                return True  # already gone
            log.info("telegram: could not delete the status of job %s (%s)", job.id, error)
            return False
        except TelegramError as error:
            log.info("telegram: could not delete the status of job %s (%s)", job.id, error)
            return False
        return True
