"""Who is asking on Telegram: origins and admin rights.

The :class:`generation.requests.Origin` of a Telegram request has the chat as its scope: results
are posted in the chat, so its members see its jobs (``Visibility.SCOPE``) and no other chat's.
``sender_chat`` (anonymous admins, channels) wins over the placeholder user it comes with.

Who is an admin of a chat: :class:`bot.telegram.admin.AdminCheck`.
"""

from __future__ import annotations

from typing import Any

from telegram import Chat, Message, User

from generation.requests import Origin, Visibility

PLATFORM = "telegram"


def chat_name(chat: Chat) -> str:
    return chat.title or chat.full_name or chat.username or str(chat.id)


def thread_of(message: Message) -> int | None:
    return message.message_thread_id if message.is_topic_message else None


def make_origin(
    chat: Chat,
    user: User | None,
    sender_chat: Chat | None,
    reply_to_message: int | None,
    thread_id: int | None,
    *,
    is_admin: bool = False,
    is_owner: bool = False,
) -> Origin:
    if sender_chat is not None:
        user_id, user_name = str(sender_chat.id), chat_name(sender_chat)
        handle = sender_chat.username
    elif user is not None:
        user_id, user_name = str(user.id), user.full_name or user.username or str(user.id)
        handle = user.username
    else:
        user_id, user_name = str(chat.id), chat_name(chat)
        handle = None
    target: dict[str, Any] = {
        "chat_id": chat.id,
        "message_id": reply_to_message,
        # whom a result is for, as its caption says it ("for @alice")
        "requester": f"@{handle}" if handle else user_name,
    }
    if thread_id is not None:
        target["thread_id"] = thread_id
    return Origin(
        platform=PLATFORM,
        scope_id=str(chat.id),
        user_id=user_id,
        user_name=user_name,
        scope_name=chat_name(chat),
        reply_target=target,
        is_admin=is_admin,
        sees=Visibility.SCOPE,
        is_owner=is_owner,
    )


def message_origin(message: Message, *, is_admin: bool = False, is_owner: bool = False) -> Origin:
    return make_origin(
        message.chat,
        message.from_user,
        message.sender_chat,
        message.message_id,
        thread_of(message),
        is_admin=is_admin,
        is_owner=is_owner,
    )
