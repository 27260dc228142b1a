"""The Telegram handlers: /draw and the other commands, inline buttons, reactions (Zoom Out,
Pan and Vary (Region), buttons and replies alike, are :mod:`bot.telegram.repaint`'s).

Every request becomes a call to the Service with an :class:`Origin` whose reply target (chat,
message, thread) is stored on the job. An accepted job gets a status message at once, which
:class:`bot.telegram.delivery.TelegramFrontEnd` keeps up to date and finishes; a refusal gets a
short reply saying why and when to retry (for a button: the callback answer).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from telegram import Bot, Message, MessageReactionUpdated, ReactionTypeEmoji, Update
from telegram.constants import ReactionEmoji
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    MessageReactionHandler,
    filters,
)

from bot.chat.actions import DOING, emoji_key
from bot.chat.texts import (
    PLAIN,
    describe_error,
    history_text,
    info_text,
    queue_text,
    queued_text,
)
from bot.config import TelegramConfig
from bot.grammar import parse_draw
from bot.telegram.admin import AdminCheck, AdminCommands
from bot.telegram.delivery import TelegramFrontEnd
from bot.telegram.files import MAX_UPLOAD_BYTES, check_attachment, image_of
from bot.telegram.keyboards import parse_callback
from bot.telegram.origin import PLATFORM, make_origin, message_origin, thread_of
from bot.telegram.repaint import RepaintHandlers
from bot.telegram.send import reply_to, with_retry
from bot.telegram.texts import ALERT_LIMIT, TEXT_LIMIT, help_text
from generation.actions import JobAction
from generation.errors import ConfigError, EaselError, NotFound, PermissionDenied
from generation.requests import Origin
from generation.service import Accepted

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

TelegramApplication: TypeAlias = Application[Any, Any, Any, Any, Any, Any]
_DRAW_CAPTION = re.compile(r"^/(?:draw|imagine)(?:@(\w+))?(?:\s|$)", re.IGNORECASE)
# Callback actions -> what they ask the Service for ("info" and "png" only read the job).
BUTTON_ACTIONS = {"reroll": JobAction.REROLL, "upscale": JobAction.UPSCALE, "vary": JobAction.VARY}


def check_reactions(reactions: dict[str, str]) -> dict[str, str]:
    allowed = {emoji_key(e.value) for e in ReactionEmoji}
    for emoji in reactions:
        if emoji_key(emoji) not in allowed:
            raise ConfigError(
                f"telegram.reactions: {emoji!r} is not one of the reactions Telegram allows "
                f"(e.g. {', '.join(e.value for e in list(ReactionEmoji)[:12])} ...)"
            )
    return {emoji_key(emoji): action for emoji, action in reactions.items()}


class TelegramHandlers:
    """The handlers; one instance per Application, kept in ``application.bot_data``."""

    def __init__(self, app: App, bot: Bot, config: TelegramConfig) -> None:
        self.app = app
        self.bot = bot
        self.config = config
        self.reactions = check_reactions(dict(config.reactions))
        self.frontend = TelegramFrontEnd(bot, app, edit_interval=config.status_edit_interval)
        self.admin_check = AdminCheck(config.owner_ids)
        self.admin = AdminCommands(app, self.admin_check)
        self.repaint = RepaintHandlers(self)

    def register(self, application: TelegramApplication) -> None:
        add = application.add_handler
        add(CommandHandler("draw", self.draw))
        add(CommandHandler("imagine", self.draw))
        add(
            MessageHandler(
                # every attachment with a /draw caption gets an answer: a picture is drawn
                # from, anything else (a PDF, a video...) is refused with what works
                filters.ATTACHMENT & filters.CaptionRegex(_DRAW_CAPTION),
                self.draw,
            )
        )
        self.repaint.register(application)  # /region, and masks replied to results
        for name, callback in (
            ("rerun", self.rerun),
            ("show", self.show),
            ("history", self.history),
            ("queue", self.queue),
            ("cancel", self.cancel),
            ("help", self.help),
            ("start", self.help),
            ("models", self.admin.models),
            ("setmodel", self.admin.setmodel),
            ("limits", self.admin.limits),
            ("blocklist", self.admin.blocklist),
            ("styles", self.admin.styles),
        ):
            add(CommandHandler(name, callback))
        add(CallbackQueryHandler(self.button))
        add(MessageReactionHandler(self.reaction))
        application.add_error_handler(self.error)

    # ------------------------------------------------------------------ helpers

    async def reply(self, message: Message, text: str) -> None:
        await with_retry(lambda: message.reply_text(text, do_quote=True), "sendMessage")

    async def submit(
        self,
        origin: Origin,
        action: Callable[[Origin], Awaitable[Accepted]],
        refuse: Callable[[str], Awaitable[None]],
        accepted_note: Callable[[Accepted], Awaitable[None]] | None = None,
    ) -> Accepted | None:
        """Admit a job, then send its status message (replying where the origin says).

        ``refuse`` gets the reason of a refusal; ``accepted_note`` runs before the status
        message is sent (a button press is answered first).
        """
        try:
            accepted = await action(origin)
        except EaselError as error:
            await refuse(describe_error(error))
            return None
        if accepted_note is not None:
            await accepted_note(accepted)
        job = accepted.job
        text = queued_text(
            job, accepted.position, accepted.eta_seconds, PLAIN, accepted.seconds_left
        )
        target = origin.reply_target
        status = await with_retry(
            lambda: self.bot.send_message(
                target["chat_id"],
                text,
                reply_parameters=reply_to(target.get("message_id")),
                message_thread_id=target.get("thread_id"),
            ),
            "sendMessage",
        )
        await self.frontend.attach_status(job, status.message_id, text)
        return accepted

    # ------------------------------------------------------------------ commands

    async def draw(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """``/draw ...``, a photo with a ``/draw`` caption, or ``/draw`` replying to a photo."""
        message = update.effective_message
        if message is None:
            return
        text = message.text or message.caption or ""
        addressed = _DRAW_CAPTION.match(text)
        me = context.bot.username or ""
        if addressed and addressed.group(1) and addressed.group(1).lower() != me.lower():
            return  # /draw@SomeOtherBot
        try:
            request = parse_draw(text)
            check_attachment(message)
            source = message if (message.photo or message.document) else message.reply_to_message
            image = await image_of(source) if source is not None else None
        except EaselError as error:
            await self.reply(message, describe_error(error))
            return
        if image is not None:
            request = dataclasses.replace(request, init_image=image)
        await self.submit(
            message_origin(message),
            lambda origin: self.app.service.draw(
                origin, request, max_upload_bytes=MAX_UPLOAD_BYTES
            ),
            lambda refusal: self.reply(message, refusal),
        )

    async def rerun(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None:
            return
        if not context.args:
            await self.reply(message, "Which job? /rerun ID (the id is under each result).")
            return
        job_id = context.args[0]
        await self.submit(
            message_origin(message),
            lambda origin: self.app.service.act(origin, JobAction.RERUN, job_id),
            lambda refusal: self.reply(message, refusal),
        )

    async def show(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None:
            return
        if not context.args:
            await self.reply(message, "Which job? /show ID")
            return
        try:  # like Discord's /show: a job of another chat does not exist from here
            job = await self.app.service.job_for(message_origin(message), context.args[0])
        except EaselError as error:
            await self.reply(message, describe_error(error))
            return
        if job.status == "succeeded" and job.images:
            await self.frontend.sender.send_result(
                job, message.chat.id, message.message_id, thread_of(message)
            )
        else:
            await self.reply(message, info_text(job, PLAIN, TEXT_LIMIT))

    async def history(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None:
            return
        jobs = await self.app.service.history(message_origin(message), limit=10)
        await self.reply(message, history_text(jobs, PLAIN, TEXT_LIMIT))

    async def queue(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None:
            return
        status = await self.app.service.queue_status(message_origin(message))
        await self.reply(message, queue_text(status, PLAIN))

    async def cancel(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None:
            return
        if not context.args:
            await self.reply(message, "Which job? /cancel ID")
            return
        job_id = context.args[0]
        try:
            try:
                job = await self.app.service.cancel(message_origin(message), job_id)
            except PermissionDenied:
                if not await self.admin_check.for_message(message):
                    raise
                job = await self.app.service.cancel(message_origin(message, is_admin=True), job_id)
        except EaselError as error:
            await self.reply(message, describe_error(error))
            return
        await self.reply(message, f"🚫 Job {job.id} is cancelled.")

    async def help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is not None:
            await self.reply(message, help_text(self.reactions))

    # ------------------------------------------------------------------ buttons and reactions

    def _act(
        self, action: JobAction, job_id: str, index: int
    ) -> Callable[[Origin], Awaitable[Accepted]]:
        return lambda origin: self.app.service.act(origin, action, job_id, index=index)

    async def button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None:
            return
        press = parse_callback(query.data)
        if press is None or query.message is None:
            await self.answer(query.answer, "This button no longer works.")
            return
        chat, message_id = query.message.chat, query.message.message_id
        thread = thread_of(query.message) if isinstance(query.message, Message) else None
        origin = make_origin(chat, query.from_user, None, message_id, thread)
        if press.action in ("outpaint", "region", "preset"):
            await self.repaint.button(query, press, origin)
            return
        if press.action in ("info", "png"):
            await self.answer(query.answer, "")
            try:  # as whoever pressed it, from this chat: another chat's job does not exist
                job = await self.app.service.job_for(origin, press.job_id)
                if press.action == "png":
                    if not 0 <= press.index < len(job.images):
                        raise NotFound(f"Job {job.id} has no image {press.index + 1}.")
                    await self.frontend.sender.send_png(
                        job, press.index, chat.id, message_id, thread
                    )
                    return
                text = info_text(job, PLAIN, TEXT_LIMIT)
            except EaselError as error:
                text = describe_error(error)
            await with_retry(
                lambda: context.bot.send_message(
                    chat.id, text, reply_parameters=reply_to(message_id), message_thread_id=thread
                ),
                "sendMessage",
            )
            return

        async def refuse(text: str) -> None:
            await self.answer(query.answer, text)

        action = BUTTON_ACTIONS[press.action]

        async def accepted(accepted: Accepted) -> None:
            await self.answer(query.answer, f"{DOING[action]}: job {accepted.job.id}")

        act = self._act(action, press.job_id, press.index)
        await self.submit(origin, act, refuse, accepted)

    async def answer(self, answer: Callable[..., Awaitable[bool]], text: str) -> None:
        try:
            long = len(text) > 64
            await answer(text[:ALERT_LIMIT] or None, show_alert=long)
        except TelegramError as error:  # too old, already answered: nothing to do
            log.debug("telegram: could not answer a callback query (%s)", error)

    async def reaction(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        change = update.message_reaction
        if change is None:
            return
        action = self._reaction_action(change)
        if action is None:
            return
        found = await self.app.service.messages.find_result(
            PLATFORM, str(change.chat.id), str(change.message_id)
        )
        if found is None:
            return  # not one of our results (or older than the message log)
        origin = make_origin(change.chat, change.user, change.actor_chat, change.message_id, None)
        act = self._act(JobAction(action), found.job_id, found.image_index)

        async def refuse(text: str) -> None:
            who = origin.user_name
            await with_retry(
                lambda: context.bot.send_message(
                    change.chat.id, f"{who}: {text}", reply_parameters=reply_to(change.message_id)
                ),
                "sendMessage",
            )

        await self.submit(origin, act, refuse)

    def _reaction_action(self, change: MessageReactionUpdated) -> str | None:
        old = {emoji_key(r.emoji) for r in change.old_reaction if isinstance(r, ReactionTypeEmoji)}
        for reaction in change.new_reaction:
            if isinstance(reaction, ReactionTypeEmoji):
                key = emoji_key(reaction.emoji)
                if key not in old and key in self.reactions:
                    return self.reactions[key]
        return None

    async def error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram: a handler failed", exc_info=context.error)
        if isinstance(update, Update) and update.callback_query is not None:
            await self.answer(update.callback_query.answer, "⚠️ Something went wrong; try again.")
        elif isinstance(update, Update) and update.effective_message is not None:
            with contextlib.suppress(TelegramError):
                await update.effective_message.reply_text(
                    "⚠️ Something went wrong on Easel's side; try again in a minute.",
                    do_quote=True,
                )
