"""Sending to Telegram: retries that honour ``RetryAfter``, and finished results.

A result is one photo, or albums of up to 10 photos plus a message carrying the keyboard,
replying to the command. Photos Telegram refuses (dimensions) are sent as files instead. Every
call honours ``RetryAfter`` (:func:`with_retry`, and :class:`FloodGate` per chat); other errors
propagate, so :class:`generation.delivery.DeliveryDispatcher` records them and tries again
later. Which message shows which image is remembered (``Service.messages``), for reactions.
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from telegram import (
    Bot,
    InlineKeyboardMarkup,
    InputMediaDocument,
    InputMediaPhoto,
    Message,
    ReplyParameters,
)
from telegram.error import BadRequest, RetryAfter

from bot.telegram.keyboards import result_keyboard
from bot.telegram.origin import PLATFORM
from bot.telegram.texts import (
    ALBUM_LIMIT,
    album_item_caption,
    album_keyboard_text,
    result_caption,
)
from storage.records import JobRecord

if TYPE_CHECKING:
    from generation.service import Service

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
MAX_RETRY_WAIT = 300.0

T = TypeVar("T")


def retry_seconds(error: RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the int form is deprecated in v22; both are handled
        value: int | timedelta = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def is_not_modified(error: BadRequest) -> bool:
    return "message is not modified" in error.message.lower()


async def with_retry(call: Callable[[], Awaitable[T]], what: str) -> T:
    """Run ``call``; on ``RetryAfter`` wait as long as Telegram asks and call it again."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return await call()
        except RetryAfter as error:
            wait = retry_seconds(error)
            if attempt == MAX_ATTEMPTS or wait > MAX_RETRY_WAIT:
                raise
            log.warning("telegram: flood control on %s; retrying in %.0f s", what, wait)
            await asyncio.sleep(wait)
    raise AssertionError("unreachable")


def reply_to(message_id: Any) -> ReplyParameters | None:
    if not message_id:
        return None
    return ReplyParameters(message_id=int(message_id), allow_sending_without_reply=True)


class FloodGate:
    """Per chat: when Telegram's flood control (a ``RetryAfter``) lets the bot send again."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.monotonic = monotonic
        self._until: dict[int, float] = {}

    def block(self, chat_id: int, seconds: float) -> None:
        self._until[chat_id] = max(self._until.get(chat_id, 0.0), self.monotonic() + seconds)

    def wait_time(self, chat_id: int) -> float:
        return max(0.0, self._until.get(chat_id, 0.0) - self.monotonic())

    async def wait(self, chat_id: int) -> None:
        if (delay := self.wait_time(chat_id)) > 0:
            await asyncio.sleep(delay)


class ResultSender:
    def __init__(self, bot: Bot, service: Service, gate: FloodGate) -> None:
        self.bot = bot
        self.service = service
        self.gate = gate

    async def send_result(
        self, job: JobRecord, chat_id: int, reply_to_id: Any = None, thread_id: int | None = None
    ) -> list[int]:
        """The job's images with caption and keyboard; returns the message ids."""
        images = await self.service.read_images(job)
        if thread_id is None and job.reply_target.get("chat_id") == chat_id:
            thread_id = job.reply_target.get("thread_id")
        reply = reply_to(reply_to_id)
        keyboard = result_keyboard(job)
        await self.gate.wait(chat_id)
        if len(images) == 1:
            message = await self._send_one(
                chat_id, job, images[0], result_caption(job), keyboard, reply, thread_id
            )
            pairs = [(message.message_id, 0)]
        else:
            pairs = []
            for start in range(0, len(images), ALBUM_LIMIT):
                chunk = list(enumerate(images))[start : start + ALBUM_LIMIT]
                messages = await self._send_album(chat_id, job, chunk, reply, thread_id)
                pairs += [(m.message_id, i) for m, (i, _) in zip(messages, chunk, strict=True)]
            carrier = await with_retry(
                lambda: self.bot.send_message(
                    chat_id,
                    album_keyboard_text(job),
                    reply_markup=keyboard,
                    reply_parameters=reply_to(pairs[0][0]),
                    message_thread_id=thread_id,
                ),
                "sendMessage",
            )
            pairs.append((carrier.message_id, 0))
        await self.service.messages.remember_result(
            PLATFORM, str(chat_id), job.id, [(str(m), index) for m, index in pairs]
        )
        return [message_id for message_id, _ in pairs]

    async def _send_one(
        self,
        chat_id: int,
        job: JobRecord,
        data: bytes,
        caption: str,
        keyboard: InlineKeyboardMarkup | None,
        reply: ReplyParameters | None,
        thread_id: int | None,
    ) -> Message:
        name = f"easel-{job.id}.png"
        try:
            return await with_retry(
                lambda: self.bot.send_photo(
                    chat_id,
                    data,
                    caption=caption,
                    reply_markup=keyboard,
                    reply_parameters=reply,
                    message_thread_id=thread_id,
                    filename=name,
                ),
                "sendPhoto",
            )
        except BadRequest as error:  # e.g. dimensions Telegram refuses for photos
            log.info("telegram: sending job %s as a file instead (%s)", job.id, error)
            return await with_retry(
                lambda: self.bot.send_document(
                    chat_id,
                    data,
                    filename=name,
                    caption=caption,
                    reply_markup=keyboard,
                    reply_parameters=reply,
                    message_thread_id=thread_id,
                ),
                "sendDocument",
            )

    async def _send_album(
        self,
        chat_id: int,
        job: JobRecord,
        chunk: Sequence[tuple[int, bytes]],
        reply: ReplyParameters | None,
        thread_id: int | None,
    ) -> Sequence[Message]:
        def caption(index: int) -> str:
            return result_caption(job) if index == 0 else album_item_caption(job, index)

        if len(chunk) == 1:
            index, data = chunk[0]
            return [
                await self._send_one(chat_id, job, data, caption(index), None, reply, thread_id)
            ]

        def media(documents: bool) -> list[InputMediaPhoto | InputMediaDocument]:
            kind = InputMediaDocument if documents else InputMediaPhoto
            return [
                kind(data, caption=caption(i), filename=f"easel-{job.id}-{i + 1}.png")
                for i, data in chunk
            ]

        async def send(documents: bool) -> Sequence[Message]:
            return await self.bot.send_media_group(
                chat_id, media(documents), reply_parameters=reply, message_thread_id=thread_id
            )

        try:
            return await with_retry(lambda: send(False), "sendMediaGroup")
        except BadRequest as error:
            log.info("telegram: sending job %s as files instead (%s)", job.id, error)
            return await with_retry(lambda: send(True), "sendMediaGroup")

    async def send_png(
        self, job: JobRecord, index: int, chat_id: int, reply_to_id: Any, thread_id: int | None
    ) -> None:
        """Image ``index`` as a lossless PNG document, its ``parameters`` metadata intact."""
        image = job.images[index]
        data = (await self.service.read_images(job))[index]
        await with_retry(
            lambda: self.bot.send_document(
                chat_id,
                data,
                filename=f"easel-{job.id}-{index + 1}.png",
                caption=f"📄 Job {job.id}, image {index + 1} · seed {image.seed}",
                reply_parameters=reply_to(reply_to_id),
                message_thread_id=thread_id,
                disable_content_type_detection=True,
            ),
            "sendDocument",
        )
