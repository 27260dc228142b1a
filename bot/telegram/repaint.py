"""Zoom Out, Pan and Vary (Region) on Telegram: the buttons and replies that extend a result or
repaint part of it (issue 15).

    🔍 Zoom Out 1.5x / 2x, ⬅️ ➡️ ⬆️ ⬇️    ``o:<job>:<i>:<code>`` -> Service.zoom_out / Service.pan
    🖌️ Vary (Region)                    ``m:<job>:<i>`` -> a menu message: preset buttons
                                        ``g:<job>:<i>:<region>`` -> Service.inpaint(region mask)
    a mask replied to a result          a photo or an image file (white = repaint), its caption
                                        the new prompt -> Service.inpaint(that mask)
    /region REGION [prompt] as a reply  a preset or an X,Y,W,H box in percent -> region_mask

A "result" is a message :class:`bot.telegram.send.ResultSender` posted (or the Vary (Region)
menu, remembered the same way): ``Service.messages`` says which job and image it shows. The job
is then looked up as whoever replied or pressed, from where they did; every refusal (not a
result, not a picture, a picture in colour, a bad mask, a bad region) gets an answer and queues
nothing. Replies in a group to other people's messages are none of the bot's business and are
left alone.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from telegram import CallbackQuery, Message, Update
from telegram.ext import CommandHandler, ContextTypes, MessageHandler, filters

from bot.chat.actions import OUTPAINTS, REGION_DOING, outpaint_doing
from bot.chat.texts import describe_error
from bot.telegram.files import (
    MAX_UPLOAD_BYTES,
    attachment_kind,
    check_black_and_white,
    image_of,
    is_picture,
)
from bot.telegram.keyboards import ButtonPress, region_keyboard
from bot.telegram.origin import PLATFORM, message_origin, thread_of
from bot.telegram.send import reply_to, with_retry
from bot.telegram.texts import NOT_A_RESULT, not_a_mask, region_menu_text, region_usage
from generation.actions import parent_image
from generation.errors import EaselError
from generation.messages import ShownJob
from generation.regions import parse_region, region_mask
from generation.requests import InpaintRequest, Origin
from generation.service import Accepted

if TYPE_CHECKING:
    from bot.telegram.handlers import TelegramApplication, TelegramHandlers
    from generation.service import Service

# "/region" arguments: a box (its commas may have spaces around them) or one word, then the
# prompt.
_REGION_ARGS = re.compile(
    r"^\s*(\d{1,3}(?:\s*,\s*\d{1,3}){3}(?=\s|$)(?!\s*,)|\S+)\s*(.*)$", re.DOTALL
)


def split_region(text: str) -> tuple[str, str | None]:
    """``/region``'s arguments as (region, new prompt or None): "10, 20, 50, 40 a red hat" ->
    ("10, 20, 50, 40", "a red hat"); "left" -> ("left", None)."""
    match = _REGION_ARGS.match(text)
    if match is None:
        return "", None
    region, prompt = match.group(1), match.group(2).strip()
    return region, prompt or None


def replied_message(message: Message) -> Message | None:
    """The message ``message`` replies to; in a forum topic, a message that replies to nothing
    points at the topic's first message, which is not a reply."""
    replied = message.reply_to_message
    if replied is None or replied.forum_topic_created is not None:
        return None
    return replied


class RepaintHandlers:
    """Zoom/pan/region buttons, mask replies and /region; uses the handlers' submit and answers."""

    def __init__(self, handlers: TelegramHandlers) -> None:
        self.handlers = handlers

    @property
    def service(self) -> Service:
        return self.handlers.app.service

    def register(self, application: TelegramApplication) -> None:
        """After the /draw handlers: a photo with a /draw caption replying to a result is a
        /draw from that photo, not a mask."""
        new = filters.UpdateType.MESSAGE  # an edited caption must not queue the job again
        application.add_handler(CommandHandler("region", self.region, filters=new))
        masks = new & filters.REPLY & (filters.PHOTO | filters.Document.ALL)
        application.add_handler(MessageHandler(masks, self.mask))

    # ------------------------------------------------------------------ buttons

    async def button(self, query: CallbackQuery, press: ButtonPress, origin: Origin) -> None:
        """An outpaint (zoom/pan), region-menu or preset button was pressed."""
        if press.action == "region":
            await self._menu(query, press, origin)
            return
        if press.action == "outpaint":
            note, act = outpaint_doing(OUTPAINTS[press.option]), self._outpaint(press)
        else:  # a preset region, repainted with the job's prompt
            note, act = REGION_DOING, self._preset(press)

        async def refuse(text: str) -> None:
            await self.handlers.answer(query.answer, text)

        async def accepted(accepted: Accepted) -> None:
            await self.handlers.answer(query.answer, f"{note}: job {accepted.job.id}")

        await self.handlers.submit(origin, act, refuse, accepted)

    def _outpaint(self, press: ButtonPress) -> Callable[[Origin], Awaitable[Accepted]]:
        """Zoom out or pan image ``press.index`` (Service.outpaint, as Discord's buttons)."""
        how = OUTPAINTS[press.option]
        return lambda origin: self.service.outpaint(origin, press.job_id, how, index=press.index)

    def _preset(self, press: ButtonPress) -> Callable[[Origin], Awaitable[Accepted]]:
        return lambda origin: self._region(origin, press.job_id, press.index, press.option, None)

    async def _menu(self, query: CallbackQuery, press: ButtonPress, origin: Origin) -> None:
        """Answer 🖌️ Vary (Region) with the preset buttons and how else to choose a region."""
        message = query.message
        assert message is not None  # checked by the caller
        try:  # as whoever pressed it, from this chat: another chat's job does not exist
            job = await self.service.job_for(origin, press.job_id)
            parent_image(job, press.index)
        except EaselError as error:
            await self.handlers.answer(query.answer, describe_error(error))
            return
        await self.handlers.answer(query.answer, "")
        chat_id = message.chat.id
        thread = thread_of(message) if isinstance(message, Message) else None
        menu = await with_retry(
            lambda: self.handlers.bot.send_message(
                chat_id,
                region_menu_text(job.id, press.index),
                reply_markup=region_keyboard(job.id, press.index),
                reply_parameters=reply_to(message.message_id),
                message_thread_id=thread,
            ),
            "sendMessage",
        )
        # A mask or /region replying to the menu works like one replying to the picture.
        await self.service.messages.remember_result(
            PLATFORM, str(chat_id), job.id, [(str(menu.message_id), press.index)]
        )

    # ------------------------------------------------------------------ replies

    async def _replied_result(
        self, message: Message, context: ContextTypes.DEFAULT_TYPE, *, command: bool
    ) -> ShownJob | None:
        """The job and image the message replies to, or None (answered, where it was meant
        for the bot: a command, a private chat, or a reply to one of the bot's messages)."""
        replied = replied_message(message)
        if replied is None:
            if command:
                await self.handlers.reply(message, region_usage())
            return None
        found = await self.service.messages.find_result(
            PLATFORM, str(message.chat.id), str(replied.message_id)
        )
        if found is not None:
            return found
        to_bot = replied.from_user is not None and replied.from_user.id == context.bot.id
        if command or to_bot or message.chat.type == "private":
            await self.handlers.reply(message, NOT_A_RESULT)
        return None

    async def mask(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A photo or file replying to a result: the mask of a Vary (Region), its caption the
        new prompt."""
        message = update.effective_message
        if message is None:
            return
        found = await self._replied_result(message, context, command=False)
        if found is None:
            return
        if not is_picture(message):
            await self.handlers.reply(message, not_a_mask(attachment_kind(message)))
            return
        try:
            data = await image_of(message)
            assert data is not None  # a picture
            await asyncio.to_thread(check_black_and_white, data)
        except EaselError as error:
            await self.handlers.reply(message, describe_error(error))
            return
        request = InpaintRequest(mask=data, prompt=(message.caption or "").strip() or None)
        await self.handlers.submit(
            message_origin(message),
            lambda origin: self.service.inpaint(
                origin,
                found.job_id,
                request,
                index=found.image_index,
                max_upload_bytes=MAX_UPLOAD_BYTES,
            ),
            lambda refusal: self.handlers.reply(message, refusal),
        )

    async def region(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """``/region REGION [new prompt]`` replying to a result."""
        message = update.effective_message
        if message is None:
            return
        parts = (message.text or "").split(maxsplit=1)
        region, prompt = split_region(parts[1] if len(parts) > 1 else "")
        if not region:
            await self.handlers.reply(message, region_usage())
            return
        found = await self._replied_result(message, context, command=True)
        if found is None:
            return
        await self.handlers.submit(
            message_origin(message),
            lambda origin: self._region(origin, found.job_id, found.image_index, region, prompt),
            lambda refusal: self.handlers.reply(message, refusal),
        )

    async def _region(
        self, origin: Origin, job_id: str, index: int, region: str, prompt: str | None
    ) -> Accepted:
        """Repaint ``region`` (a preset or a box) of image ``index`` of a job the caller sees."""
        parse_region(region)  # a bad region is refused before the job is looked up
        job = await self.service.job_for(origin, job_id)
        image = parent_image(job, index)
        mask = region_mask(region, (image.width, image.height))
        return await self.service.inpaint(
            origin,
            job_id,
            InpaintRequest(mask=mask, prompt=prompt),
            index=index,
            max_upload_bytes=MAX_UPLOAD_BYTES,
        )
