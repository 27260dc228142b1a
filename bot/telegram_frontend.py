"""The Telegram front end: live status messages and delivery of finished jobs.

Status: each job has one status message (sent by the handler that accepted the job, then
attached here). Queue position, start and step progress edit it through :class:`EditThrottle`
(one edit per ``status_edit_interval`` per message, at least 3 s apart in groups, coalesced to
the latest text, never the same text twice). A ``RetryAfter`` pauses every edit in that chat
for as long as Telegram asks. While a job renders, the ``upload_photo`` chat action is repeated.

Delivery: :class:`bot.telegram_send.ResultSender` sends the images; then the status message
shows the outcome (or, with no status message, a reply says it). Errors while sending propagate
so :class:`bot.delivery.DeliveryDispatcher` records them and tries again later; refusals that
retrying cannot fix (the bot was blocked or kicked, the chat is gone: 403, 400) propagate as
:class:`bot.delivery.Undeliverable`, so they are recorded and not retried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from telegram import Bot
from telegram.constants import ChatAction
from telegram.error import BadRequest, ChatMigrated, Forbidden, RetryAfter, TelegramError

from bot.app import App
from bot.delivery import Undeliverable
from bot.telegram_index import PLATFORM as PLATFORM
from bot.telegram_index import MessageIndex
from bot.telegram_send import (
    FloodGate,
    ResultSender,
    is_not_modified,
    reply_to,
    retry_seconds,
    with_retry,
)
from bot.telegram_views import final_text, progress_text, queued_text, started_text
from bot.throttle import EditThrottle
from generation.events import JobEvent, JobFinished, JobProgress, JobQueued, JobStarted
from storage.records import JobRecord

log = logging.getLogger(__name__)

GROUP_MIN_INTERVAL = 3.0  # 20 messages a minute per group
CHAT_ACTION_EVERY = 4.5  # a chat action shows for 5 s
CHAT_ACTION_MAX = 900.0


@dataclass
class _Status:
    job_id: str
    chat_id: int
    thread_id: int | None
    message_id: int | None = None
    shown: str | None = None  # the text the message shows now
    latest: str | None = None  # the newest text it should show
    rank: int = -1  # queued 0, started 1, progress 2 + step: late events never go back
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    editor: asyncio.Task[None] | None = None
    action: asyncio.Task[None] | None = None

    @property
    def key(self) -> str:
        return f"{self.chat_id}:{self.message_id}"


class TelegramFrontEnd:
    platform = PLATFORM

    def __init__(
        self,
        bot: Bot,
        app: App,
        index: MessageIndex,
        *,
        edit_interval: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bot = bot
        self.app = app
        self.index = index
        self._monotonic = monotonic
        self._throttle = EditThrottle(edit_interval)
        self._group_throttle = EditThrottle(max(edit_interval, GROUP_MIN_INTERVAL))
        self._statuses: dict[str, _Status] = {}
        self._finished: OrderedDict[str, JobRecord] = OrderedDict()  # delivered, recently
        self.gate = FloodGate(monotonic)
        self.sender = ResultSender(bot, app.images, index, self.gate)

    async def close(self) -> None:
        tasks = []
        for status in self._statuses.values():
            tasks += [t for t in (status.editor, status.action) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._statuses.clear()

    # ------------------------------------------------------------------ live events

    async def on_event(self, event: JobEvent) -> None:
        if isinstance(event, JobQueued):
            status = await self._status_for(event.job)
            self._show(status, queued_text(event.job.id, event.position, event.eta_seconds), 0)
        elif isinstance(event, JobStarted):
            status = await self._status_for(event.job)
            self._show(status, started_text(event.job.id), 1)
            if status.action is None:
                status.action = asyncio.create_task(self._chat_action(status))
        elif isinstance(event, JobProgress):
            known = self._statuses.get(event.job_id)
            if known is not None:
                text = progress_text(event.job_id, event.step, event.total)
                self._show(known, text, 2 + event.step)
        elif isinstance(event, JobFinished):
            pass  # deliver() gets it

    async def attach_status(self, job: JobRecord, message_id: int, text: str) -> None:
        """The handler sent ``job``'s status message showing ``text``: keep it up to date."""
        status = self._new_status(job)
        status.message_id, status.shown = message_id, text
        self._throttle_for(status.chat_id).force(status.key, text, self._monotonic())
        await self.index.remember_status(job.id, status.chat_id, message_id)
        finished = self._finished.get(job.id)
        if finished is not None:  # delivered before the status message existed
            await self._finish_status(finished, status)
        elif status.latest is not None and status.latest != text:
            self._wake(status)

    def _new_status(self, job: JobRecord) -> _Status:
        status = self._statuses.get(job.id)
        if status is None:
            target = job.reply_target
            thread = target.get("thread_id")
            status = _Status(job.id, int(target["chat_id"]), int(thread) if thread else None)
            self._statuses[job.id] = status
        return status

    async def _status_for(self, job: JobRecord) -> _Status:
        fresh = job.id not in self._statuses
        status = self._new_status(job)
        if fresh and status.message_id is None:  # after a restart: find the status message
            known = await self.index.status_of(job.id)
            if known is not None and status.message_id is None:
                status.message_id = known[1]
                if status.latest is not None:
                    self._wake(status)
        return status

    def _show(self, status: _Status, text: str, rank: int) -> None:
        if rank < status.rank or status.job_id in self._finished:
            return
        status.rank, status.latest = rank, text
        if status.message_id is not None:
            self._wake(status)

    def _wake(self, status: _Status) -> None:
        if status.editor is None or status.editor.done():
            status.editor = asyncio.create_task(self._editor(status))
        status.changed.set()

    def _throttle_for(self, chat_id: int) -> EditThrottle:
        return self._group_throttle if chat_id < 0 else self._throttle

    async def _editor(self, status: _Status) -> None:
        """Edits one status message, one edit at a time, as fast as the throttle allows."""
        throttle = self._throttle_for(status.chat_id)
        while True:
            await status.changed.wait()
            status.changed.clear()
            while status.message_id is not None and status.latest not in (None, status.shown):
                now = self._monotonic()
                wait = max(throttle.wait_time(status.key, now), self.gate.wait_time(status.chat_id))
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
                text = status.latest
                assert text is not None
                if not throttle.should_send(status.key, text, now):
                    break
                if not await self._edit(status, text, throttle):
                    break

    async def _edit(self, status: _Status, text: str, throttle: EditThrottle) -> bool:
        """One edit; False when the status message cannot be edited any more for now."""
        assert status.message_id is not None
        try:
            await self.bot.edit_message_text(
                text, chat_id=status.chat_id, message_id=status.message_id
            )
        except RetryAfter as error:
            self.gate.block(status.chat_id, retry_seconds(error))
            throttle.forget(status.key)  # the text did not get through
            if status.shown is not None:
                throttle.force(status.key, status.shown, self._monotonic())
            log.info("telegram: flood control in chat %s; status edits paused", status.chat_id)
            return True
        except BadRequest as error:
            if is_not_modified(error):
                status.shown = text
                return True
            log.info("telegram: status message of job %s is gone (%s)", status.job_id, error)
            status.message_id = None
            return False
        except TelegramError as error:
            log.info("telegram: could not edit the status of job %s (%s)", status.job_id, error)
            return False
        status.shown = text
        return True

    async def _chat_action(self, status: _Status) -> None:
        deadline = self._monotonic() + CHAT_ACTION_MAX
        while self._monotonic() < deadline:
            try:
                await self.bot.send_chat_action(
                    status.chat_id, ChatAction.UPLOAD_PHOTO, message_thread_id=status.thread_id
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
        status = self._statuses.get(job.id)
        if status is None:
            status = self._new_status(job)
            known = await self.index.status_of(job.id)
            if known is not None:
                status.message_id = known[1]
        if status.action is not None:
            status.action.cancel()
            status.action = None
        if job.status == "succeeded" and job.images:
            await self.sender.send_result(job, int(target["chat_id"]), target.get("message_id"))
            await self._finish_status(job, status)
            return
        if not await self._finish_status(job, status):
            await with_retry(
                lambda: self.bot.send_message(
                    int(target["chat_id"]),
                    final_text(job),
                    reply_parameters=reply_to(target.get("message_id")),
                    message_thread_id=status.thread_id,
                ),
                "sendMessage",
            )

    async def _finish_status(self, job: JobRecord, status: _Status) -> bool:
        """Show the final text on the status message; False when there is none to edit."""
        self._finished[job.id] = job
        while len(self._finished) > 1000:
            self._finished.popitem(last=False)
        for task in (status.editor, status.action):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        status.editor = status.action = None
        self._statuses.pop(job.id, None)
        if status.message_id is None:
            return False
        text = final_text(job)
        edited = False
        if text != status.shown:
            await self.gate.wait(status.chat_id)
            try:
                await with_retry(
                    lambda: self.bot.edit_message_text(
                        text, chat_id=status.chat_id, message_id=status.message_id
                    ),
                    "editMessageText",
                )
                edited = True
            except BadRequest as error:
                edited = is_not_modified(error)
            except TelegramError as error:
                log.info("telegram: could not finish the status of job %s (%s)", job.id, error)
        self._throttle_for(status.chat_id).forget(status.key)
        await self.index.forget_status(job.id)
        return edited or text == status.shown
