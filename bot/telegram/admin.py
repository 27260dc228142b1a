"""Admin rights on Telegram and the per-chat admin commands: ``/models`` (``allow|deny NAME``:
a model or LoRA; ``add NAME``: an owner's LoRA or embedding file), ``/setmodel``, ``/limits``
and ``/blocklist``, stored per chat (the scope's settings).

Admins of a chat are its creator and administrators as ``getChatMember`` reports them, an
anonymous administrator (a message sent on behalf of the group itself: ``sender_chat`` is the
chat), and the owner ids from the config, who are admins everywhere. In a private chat only
the owners are admins: anyone could otherwise lift the limits for themselves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from telegram import Chat, Message, Update, User
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.chat.addons import OWNERS_ONLY, added_text, addon_lines
from bot.chat.admin import RESET_WORDS, parse_setting_value, split_style, split_words, styles_text
from bot.chat.allowing import allow_or_deny
from bot.chat.texts import LIMIT_KEYS, PLAIN, describe_error, limits_text
from bot.telegram.files import document_of
from bot.telegram.origin import message_origin
from bot.telegram.send import with_retry
from generation.addons import MAX_UPLOAD_BYTES as MAX_ADDON_BYTES
from generation.errors import EaselError, InvalidRequest, PermissionDenied
from generation.policy import ScopeSettings
from generation.requests import Origin

if TYPE_CHECKING:
    from bot.app import App

ADMIN_STATUSES = (ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR)


class AdminCheck:
    def __init__(self, owner_ids: tuple[int, ...]) -> None:
        self.owner_ids = frozenset(owner_ids)

    async def is_admin(self, chat: Chat, user: User | None, sender_chat: Chat | None) -> bool:
        if sender_chat is not None:  # anonymous admin: the group itself is the sender
            return sender_chat.id == chat.id and chat.type != ChatType.CHANNEL
        if user is None:
            return False
        if user.id in self.owner_ids:
            return True
        if chat.type == ChatType.PRIVATE:
            return False
        try:
            member = await with_retry(
                lambda: chat.get_bot().get_chat_member(chat.id, user.id), "getChatMember"
            )
        except TelegramError:
            return False
        return member.status in ADMIN_STATUSES

    async def for_message(self, message: Message) -> bool:
        return await self.is_admin(message.chat, message.from_user, message.sender_chat)


ADD_USAGE = (
    "Reply to a .safetensors file with /models add NAME (a LoRA) or /models add NAME embedding."
)
STYLES_USAGE = "/styles add NAME {prompt}, style words | negative words, or /styles remove NAME"
TEXT_LIMIT = 4096


class AdminCommands:
    """/models, /setmodel, /limits and /blocklist: stored per chat (the scope's settings)."""

    def __init__(self, app: App, check: AdminCheck) -> None:
        self.app = app
        self.check = check

    async def _admin_origin(self, update: Update, command: str) -> tuple[Message, Origin] | None:
        message = update.effective_message
        if message is None:
            return None
        if not await self.check.for_message(message):
            await with_retry(
                lambda: message.reply_text(
                    f"🚫 Only this chat's admins can use /{command}.", do_quote=True
                ),
                "sendMessage",
            )
            return None
        return message, message_origin(message, is_admin=True)

    async def _run(self, update: Update, context: ContextTypes.DEFAULT_TYPE, command: str) -> None:
        found = await self._admin_origin(update, command)
        if found is None:
            return
        message, origin = found
        args = list(context.args or [])
        try:
            text = await getattr(self, f"_{command}")(origin, args)
        except EaselError as error:
            text = describe_error(error)
        await with_retry(lambda: message.reply_text(text, do_quote=True), "sendMessage")

    async def models(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/models lists; /models add NAME [lora|embedding], replying to a .safetensors file,
        registers it (Easel's owners only)."""
        args = list(context.args or [])
        if args and args[0].lower() == "add":
            await self._add_addon(update, args[1:])
            return
        await self._run(update, context, "models")

    async def _add_addon(self, update: Update, args: list[str]) -> None:
        found = await self._admin_origin(update, "models")
        if found is None:
            return
        message, _ = found
        user = message.from_user
        owner = user is not None and user.id in self.check.owner_ids
        origin = message_origin(message, is_admin=True, is_owner=owner)
        kind = args[1].lower() if len(args) > 1 else "lora"
        source = message.reply_to_message
        try:
            if not owner:  # said before a download
                raise PermissionDenied(OWNERS_ONLY)
            if not args or kind not in ("lora", "embedding"):
                raise InvalidRequest(ADD_USAGE)
            data = await document_of(source, MAX_ADDON_BYTES) if source is not None else None
            if data is None:
                raise InvalidRequest(ADD_USAGE)
            text = added_text(
                await self.app.service.add_addon_upload(origin, args[0], data, kind), code=False
            )
        except EaselError as error:
            text = describe_error(error)
        except TelegramError as error:  # e.g. "File is too big": the Bot API hands out 20 MB
            text = (
                f"🚫 Telegram would not hand over the file ({error.message}); bots may download "
                "at most 20 MB unless Easel uses a local Bot API server. Register larger files "
                "on the machine: easel models add NAME FILE --lora."
            )
        await with_retry(lambda: message.reply_text(text, do_quote=True), "sendMessage")

    async def setmodel(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._run(update, context, "setmodel")

    async def limits(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._run(update, context, "limits")

    async def blocklist(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._run(update, context, "blocklist")

    async def styles(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/styles lists this chat's prompt styles (anyone); add and remove are admins'."""
        message = update.effective_message
        if message is None:
            return
        args = list(context.args or [])
        if args and args[0].lower() in ("add", "remove"):
            await self._run(update, context, "styles")
            return
        styles = await self.app.service.styles(message_origin(message))
        text = styles_text(styles, str, TEXT_LIMIT)
        await with_retry(lambda: message.reply_text(text, do_quote=True), "sendMessage")

    # ------------------------------------------------------------------ the commands

    async def _models(self, origin: Origin, args: list[str]) -> str:
        verb = args[0].lower() if args else ""
        if verb in ("allow", "deny"):
            if len(args) < 2:
                return f"🚫 Name the model or LoRA: /models {verb} NAME"
            allow = verb == "allow"
            return await allow_or_deny(self.app.service, origin, args[1], allow=allow, code=False)
        settings = await self.app.service.scope_settings(origin)
        lines = ["🧠 Models:"]
        for model in await self.app.service.list_models():
            marks = []
            if model.kind == "upscaler":
                marks.append("upscaler")
            if model.is_default:
                marks.append("Easel's default")
            if model.name == settings.default_model:
                marks.append("this chat's default")
            if settings.allowed_models is not None and model.name not in settings.allowed_models:
                marks.append("not allowed here")
            lines.append(f"• {model.name}" + (f" ({', '.join(marks)})" if marks else ""))
        lines += addon_lines(
            await self.app.service.list_addons(), code=False, allowed_loras=settings.allowed_loras
        )
        lines.append("Set this chat's default with /setmodel NAME (/setmodel default to reset).")
        lines.append("Allow or deny a model or LoRA here with /models allow|deny NAME.")
        return "\n".join(lines)

    async def _setmodel(self, origin: Origin, args: list[str]) -> str:
        if not args:
            settings = await self.app.service.scope_settings(origin)
            current = settings.default_model or "Easel's default model"
            return f"This chat draws with {current}. Change it with /setmodel NAME."
        name = " ".join(args).strip()
        if name.lower() in RESET_WORDS:
            await self.app.service.update_scope_settings(origin, default_model=None)
            return "✅ This chat now uses Easel's default model."
        await self.app.service.update_scope_settings(origin, default_model=name)
        return f"✅ This chat now draws with {name} unless a request names another --model."

    async def _limits(self, origin: Origin, args: list[str]) -> str:
        if args and args[0].lower() in RESET_WORDS:
            settings = await self.app.service.update_scope_settings(
                origin, **dict.fromkeys(LIMIT_KEYS)
            )
            return "✅ Limits reset to the service's defaults.\n" + self._describe_limits(settings)
        if not args:
            settings = await self.app.service.scope_settings(origin)
            return self._describe_limits(settings) + (
                "\nChange with /limits key=value ... (value 'default' resets one), "
                "or /limits reset."
            )
        changes: dict[str, Any] = {}
        for arg in args:
            key, sep, value = arg.partition("=")
            key = key.strip().lower()
            if not sep or key not in LIMIT_KEYS:
                return f"🚫 Write key=value, with key one of: {', '.join(LIMIT_KEYS)}."
            changes[key] = parse_setting_value(value.strip())
        settings = await self.app.service.update_scope_settings(origin, **changes)
        return "✅ Limits updated.\n" + self._describe_limits(settings)

    def _describe_limits(self, settings: ScopeSettings) -> str:
        config = self.app.config
        return limits_text(
            settings, config.limits, config.generation, PLAIN, heading="📏 Limits in this chat:"
        )

    async def _styles(self, origin: Origin, args: list[str]) -> str:
        verb, name = args[0].lower(), args[1] if len(args) > 1 else ""
        if not name:
            return f"🚫 Name the style: {STYLES_USAGE}"
        if verb == "remove":
            await self.app.service.remove_style(origin, name)
            return f"✅ Style {name} removed from this chat."
        prompt, negative = split_style(" ".join(args[2:]))
        await self.app.service.set_style(origin, name, prompt, negative)
        return f"✅ Style {name} saved: use it with --style {name}."

    async def _blocklist(self, origin: Origin, args: list[str]) -> str:
        verb = args[0].lower() if args else ""
        words = split_words(" ".join(args[1:]))
        if verb in ("add", "remove") and not words:
            return f"🚫 Name the words: /blocklist {verb} word another-word"
        if verb == "add":
            settings = await self.app.service.block_words(origin, words)
        elif verb == "remove":
            settings = await self.app.service.unblock_words(origin, words)
        elif verb == "clear":
            settings = await self.app.service.update_scope_settings(origin, blocklist=None)
        elif not verb:
            settings = await self.app.service.scope_settings(origin)
        else:
            return "🚫 Use /blocklist, /blocklist add WORDS, /blocklist remove WORDS or clear."
        if not settings.blocklist:
            return "🚫 No blocked words in this chat. Add some with /blocklist add WORDS."
        return "🚫 Blocked words in this chat: " + ", ".join(settings.blocklist)
