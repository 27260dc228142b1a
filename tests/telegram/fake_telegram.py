"""A local fake Telegram Bot API server for driving the real python-telegram-bot over HTTP.

It records every call, hands pushed updates to long-polling ``getUpdates``, keeps the messages
the bot sent (so ``editMessageText`` to the same text fails with the real "message is not
modified" 400), serves file downloads, and can be told to fail the next call of a method
(a 429 with ``retry_after``, a 400, ...).

    fake = FakeTelegram(); await fake.start()
    builder...base_url(fake.base_url).base_file_url(fake.base_file_url)
    fake.send_text(chat, user, "/draw a castle")
    call = await fake.wait_call("sendPhoto", chat_id=chat["id"])
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TOKEN = "123456789:TEST_fake_easel_token_for_the_tests_0123456789"
BOT_ID = 123456789
BOT_USERNAME = "EaselTestBot"
BOT_USER = {"id": BOT_ID, "is_bot": True, "first_name": "Easel", "username": BOT_USERNAME}
ANONYMOUS_ADMIN = {
    "id": 1087968824,
    "is_bot": True,
    "first_name": "Group",
    "username": "GroupAnonymousBot",
}
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a content and reply markup of the current message"
)
# Parameters that stay strings; every other form value is JSON-decoded when it parses.
_RAW = {"text", "caption", "callback_query_id", "action", "file_id", "secret_token", "url"}
_ADMIN_RIGHTS = dict.fromkeys(
    [
        "can_be_edited",
        "is_anonymous",
        "can_manage_chat",
        "can_delete_messages",
        "can_manage_video_chats",
        "can_restrict_members",
        "can_promote_members",
        "can_change_info",
        "can_invite_users",
        "can_post_stories",
        "can_edit_stories",
        "can_delete_stories",
    ],
    False,
)


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    files: dict[str, bytes]
    at: float
    status: int = 200
    result: Any = None

    @property
    def chat_id(self) -> Any:
        return self.params.get("chat_id")


@dataclass
class Hold:
    """A call kept waiting: ``arrived`` is set when it comes in, ``release`` lets it answer."""

    method: str
    when: Callable[[Call], bool]
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    call: Call | None = None


@dataclass
class _Failure:
    status: int
    description: str
    retry_after: int | None = None
    chat_id: int | None = None  # only calls for this chat fail


@dataclass
class FakeTelegram:
    calls: list[Call] = field(default_factory=list)
    messages: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    members: dict[tuple[int, int], str] = field(default_factory=dict)
    chats: dict[int, dict[str, Any]] = field(default_factory=dict)
    deleted: list[tuple[int, int]] = field(default_factory=list)  # (chat, message) deleted

    def __post_init__(self) -> None:
        self._updates: list[dict[str, Any]] = []
        self._next_update = 1
        self._next_message = 1000
        self._next_file = 1
        self._failures: dict[str, list[_Failure]] = {}
        self._holds: list[Hold] = []
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._stopping = False
        self.port = 0

    # ------------------------------------------------------------------ server

    async def start(self) -> None:
        server = web.Application(client_max_size=64 * 1024 * 1024)
        server.router.add_route("*", "/bot{token}/{method}", self._handle)
        server.router.add_get("/file/bot{token}/{path:.+}", self._download)
        self._runner = web.AppRunner(server, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        self._stopping = True  # a long poll still waiting answers now, not at its timeout
        async with self._changed:
            self._changed.notify_all()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    # ------------------------------------------------------------------ test helpers

    def fail_next(
        self,
        method: str,
        status: int,
        description: str,
        retry_after: int | None = None,
        *,
        chat_id: int | None = None,
    ) -> None:
        """Answer the next call of ``method`` (for ``chat_id`` if given) with this error."""
        self._failures.setdefault(method.lower(), []).append(
            _Failure(status, description, retry_after, chat_id)
        )

    def hold_next(self, method: str, when: Callable[[Call], bool] = lambda call: True) -> Hold:
        """Keep the next call of ``method`` that ``when`` picks waiting until released (a slow
        Telegram, or a stop that comes while a call is under way)."""
        hold = Hold(method.lower(), when)
        self._holds.append(hold)
        return hold

    def flood_next(self, method: str, retry_after: int = 1, *, chat_id: int | None = None) -> None:
        """The next call of ``method`` gets a 429 asking to retry after ``retry_after`` s."""
        description = f"Too Many Requests: retry after {retry_after}"
        self.fail_next(method, 429, description, retry_after, chat_id=chat_id)

    def private_chat(
        self, user_id: int, name: str = "Alice"
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        user = {"id": user_id, "is_bot": False, "first_name": name}
        chat = {"id": user_id, "type": "private", "first_name": name}
        self.chats[user_id] = chat
        return chat, user

    def group(self, chat_id: int, title: str = "Artists") -> dict[str, Any]:
        chat = {"id": chat_id, "type": "supergroup", "title": title}
        self.chats[chat_id] = chat
        return chat

    def user(self, user_id: int, name: str = "Bob") -> dict[str, Any]:
        return {"id": user_id, "is_bot": False, "first_name": name}

    def set_member(self, chat_id: int, user_id: int, status: str) -> None:
        self.members[(chat_id, user_id)] = status

    def add_file(self, data: bytes, size: int | None = None) -> dict[str, Any]:
        """Store ``data`` for download; ``size`` is what Telegram announces (default: real)."""
        file_id = f"file-{self._next_file}"
        self._next_file += 1
        self.files[file_id] = data
        return {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_size": size or len(data)}

    def photo(self, data: bytes, size: int | None = None) -> list[dict[str, Any]]:
        """A ``photo`` field: a thumbnail and the full size (Telegram lists both)."""
        thumb = self.add_file(data[:100])
        full = self.add_file(data, size)
        return [{**thumb, "width": 90, "height": 90}, {**full, "width": 64, "height": 64}]

    def message(
        self,
        chat: dict[str, Any],
        user: dict[str, Any] | None,
        text: str | None = None,
        *,
        caption: str | None = None,
        photo: list[dict[str, Any]] | None = None,
        document: dict[str, Any] | None = None,
        reply_to: dict[str, Any] | None = None,
        sender_chat: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        self._next_message += 1
        message: dict[str, Any] = {
            "message_id": self._next_message,
            "date": int(time.time()),
            "chat": chat,
        }
        if user is not None:
            message["from"] = user
        if sender_chat is not None:
            message["sender_chat"] = sender_chat
        for key, value, entities in (
            ("text", text, "entities"),
            ("caption", caption, "caption_entities"),
        ):
            if value is None:
                continue
            message[key] = value
            if value.startswith("/"):
                length = len(value.split()[0]) if value.split() else 1
                message[entities] = [{"type": "bot_command", "offset": 0, "length": length}]
        if photo is not None:
            message["photo"] = photo
        if document is not None:
            message["document"] = document
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        self.messages[(chat["id"], message["message_id"])] = message
        return message

    def push(self, **update: Any) -> int:
        update_id = self._next_update
        self._next_update += 1
        self._updates.append({"update_id": update_id, **update})
        asyncio.get_running_loop().create_task(self._notify())
        return update_id

    def send_text(
        self, chat: dict[str, Any], user: dict[str, Any] | None, text: str, **kw: Any
    ) -> dict[str, Any]:
        message = self.message(chat, user, text, **kw)
        self.push(message=message)
        return message

    def send_photo(
        self, chat: dict[str, Any], user: dict[str, Any], photo: list[dict[str, Any]], caption: str
    ) -> dict[str, Any]:
        message = self.message(chat, user, caption=caption, photo=photo)
        self.push(message=message)
        return message

    def press(self, user: dict[str, Any], message: dict[str, Any], data: str) -> str:
        query_id = f"q{self._next_update}"
        self.push(
            callback_query={
                "id": query_id,
                "from": user,
                "message": message,
                "chat_instance": "ci",
                "data": data,
            }
        )
        return query_id

    def react(
        self,
        chat: dict[str, Any],
        user: dict[str, Any],
        message_id: int,
        emoji: str,
        old: tuple[str, ...] = (),
    ) -> None:
        self.push(
            message_reaction={
                "chat": chat,
                "message_id": message_id,
                "user": user,
                "date": int(time.time()),
                "old_reaction": [{"type": "emoji", "emoji": e} for e in old],
                "new_reaction": [{"type": "emoji", "emoji": e} for e in (*old, emoji)],
            }
        )

    def calls_of(self, method: str, chat_id: int | None = None, ok: bool = True) -> list[Call]:
        return [
            call
            for call in self.calls
            if call.method == method
            and (chat_id is None or call.chat_id == chat_id)
            and (not ok or call.status == 200)
        ]

    async def wait_call(
        self,
        method: str,
        chat_id: int | None = None,
        where: Callable[[Call], bool] | None = None,
        *,
        count: int = 1,
        ok: bool = True,
        timeout: float = 30.0,
    ) -> Call:
        """The ``count``-th recorded call of ``method`` that matches (waits for it)."""

        def found() -> list[Call]:
            calls = self.calls_of(method, chat_id, ok)
            return [c for c in calls if where is None or where(c)]

        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(found()) >= count)
        return found()[count - 1]

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # ------------------------------------------------------------------ requests

    async def _params(self, request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
        raw: dict[str, str] = {}
        files: dict[str, bytes] = {}
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if part.filename is not None:  # type: ignore[union-attr]
                    files[str(part.name)] = bytes(await part.read())  # type: ignore[union-attr]
                else:
                    raw[str(part.name)] = await part.text()  # type: ignore[union-attr]
        elif request.content_type == "application/json":
            return dict(await request.json()), files
        elif request.can_read_body:
            raw = {key: str(value) for key, value in (await request.post()).items()}
        params: dict[str, Any] = {}
        for key, value in raw.items():
            if key in _RAW:
                params[key] = value
            else:
                try:
                    params[key] = json.loads(value)
                except ValueError:
                    params[key] = value
        return params, files

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != TOKEN:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        params, files = await self._params(request)
        call = Call(method, params, files, time.monotonic())
        hold = next((h for h in self._holds if h.method == method.lower() and h.when(call)), None)
        if hold is not None:
            self._holds.remove(hold)
            hold.call = call
            hold.arrived.set()
            await hold.release.wait()
        failures = self._failures.get(method.lower(), [])
        failure = next(
            (f for f in failures if f.chat_id is None or f.chat_id == call.chat_id), None
        )
        if failure is not None:
            failures.remove(failure)
            call.status = failure.status
            self._record(call)
            return _error(failure.status, failure.description, failure.retry_after)
        handler = getattr(self, f"_m_{method.lower()}", None)
        if handler is None:
            call.status = 404
            self._record(call)
            return _error(404, "Not Found: method not found")
        if method.lower() == "getupdates":
            self._record(call)
            return _ok(await handler(params, files))
        try:
            result = handler(params, files)
        except _ApiError as error:
            call.status = error.status
            self._record(call)
            return _error(error.status, error.description)
        call.result = result
        self._record(call)
        return _ok(result)

    def _record(self, call: Call) -> None:
        self.calls.append(call)
        asyncio.get_running_loop().create_task(self._notify())

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != TOKEN:
            return web.Response(status=401)
        file_id = request.match_info["path"].rsplit("/", 1)[-1].split(".")[0]
        self.calls.append(Call("download", {"file_id": file_id}, {}, time.monotonic()))
        if file_id not in self.files:
            return web.Response(status=404)
        return web.Response(body=self.files[file_id])

    # ------------------------------------------------------------------ methods

    def _chat(self, chat_id: Any) -> dict[str, Any]:
        chat_id = int(chat_id)
        return self.chats.get(chat_id) or {"id": chat_id, "type": "private", "first_name": "X"}

    def _sent(self, params: dict[str, Any], **content: Any) -> dict[str, Any]:
        self._next_message += 1
        message = {
            "message_id": self._next_message,
            "date": int(time.time()),
            "chat": self._chat(params["chat_id"]),
            "from": BOT_USER,
            **content,
        }
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        self.messages[(message["chat"]["id"], message["message_id"])] = message
        return message

    def _caption(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"caption": params["caption"]} if params.get("caption") else {}

    def _photo(self, data: bytes) -> list[dict[str, Any]]:
        sent = self.add_file(data)
        return [{**sent, "width": 64, "height": 64}]

    def _m_getme(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return {
            **BOT_USER,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _m_getupdates(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        offset = int(params.get("offset") or 0)
        self._updates = [u for u in self._updates if u["update_id"] >= offset]
        timeout = float(params.get("timeout") or 0)
        if not self._updates and timeout > 0:
            try:
                async with asyncio.timeout(timeout), self._changed:
                    await self._changed.wait_for(lambda: bool(self._updates) or self._stopping)
            except TimeoutError:
                pass
        return list(self._updates)

    def _m_deletewebhook(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return True

    _m_setwebhook = _m_deletewebhook
    _m_setmycommands = _m_deletewebhook
    _m_answercallbackquery = _m_deletewebhook
    _m_sendchataction = _m_deletewebhook

    def _m_sendmessage(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return self._sent(params, text=params["text"])

    def _m_sendphoto(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return self._sent(params, photo=self._photo(files["photo"]), **self._caption(params))

    def _m_senddocument(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        document = {
            **self.add_file(files["document"]),
            "file_name": "file.png",
            "mime_type": "image/png",
        }
        return self._sent(params, document=document, **self._caption(params))

    def _m_sendmediagroup(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        sent = []
        for item in params["media"]:
            data = files[item["media"].removeprefix("attach://")]
            content: dict[str, Any] = {"media_group_id": "album"}
            if item["type"] == "photo":
                content["photo"] = self._photo(data)
            else:
                content["document"] = self.add_file(data)
            if item.get("caption"):
                content["caption"] = item["caption"]
            sent.append(self._sent({"chat_id": params["chat_id"]}, **content))
        return sent

    def _edit(self, params: dict[str, Any], key: str) -> Any:
        message = self.messages.get((int(params["chat_id"]), int(params["message_id"])))
        if message is None:
            raise _ApiError(400, "Bad Request: message to edit not found")
        markup = params.get("reply_markup")
        if message.get(key) == params[key] and message.get("reply_markup") == markup:
            raise _ApiError(400, NOT_MODIFIED)
        message[key] = params[key]
        if markup is not None:
            message["reply_markup"] = markup
        return message

    def _m_editmessagetext(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return self._edit(params, "text")

    def _m_editmessagecaption(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return self._edit(params, "caption")

    def _m_deletemessage(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        key = (int(params["chat_id"]), int(params["message_id"]))
        if self.messages.pop(key, None) is None:
            raise _ApiError(400, "Bad Request: message to delete not found")
        self.deleted.append(key)
        return True

    def _m_getchatmember(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        chat_id, user_id = int(params["chat_id"]), int(params["user_id"])
        status = self.members.get((chat_id, user_id), "member")
        member: dict[str, Any] = {"status": status, "user": self.user(user_id)}
        if status == "administrator":
            member.update(_ADMIN_RIGHTS)
        if status == "creator":
            member["is_anonymous"] = False
        return member

    def _m_getfile(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        file_id = params["file_id"]
        if file_id not in self.files:
            raise _ApiError(400, "Bad Request: invalid file_id")
        return {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_size": len(self.files[file_id]),
            "file_path": f"photos/{file_id}.jpg",
        }


class _ApiError(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(status: int, description: str, retry_after: int | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return web.json_response(body, status=status)
