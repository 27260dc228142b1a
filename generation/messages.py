"""Which chat message shows which job, for front ends that cannot ask the platform.

A Telegram reaction names only the chat and the message, and the Bot API cannot fetch a
message, so the bot remembers (chat, message) -> (job, image) for every result it sends, and
job -> its one status message (to keep editing it after a restart). The map lives in the main
database (:mod:`storage.messages`); ids are stored as text, whatever the platform's type.

Looking a message up gives a job *id*: what the caller may do with that job is still decided by
the Service (``act``, ``job_for``), so a forged or stale lookup reveals nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.repository import Store

RESULT = "result"
STATUS = "status"


@dataclass(frozen=True)
class ShownJob:
    job_id: str
    image_index: int  # 0 where the message shows the whole job


class MessageLog:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def remember_result(
        self, platform: str, chat_id: str, job_id: str, messages: list[tuple[str, int]]
    ) -> None:
        """``messages`` holds (message id, image index) pairs of one result."""
        pairs: list[tuple[str, int | None]] = [(m, index) for m, index in messages]
        await self._store.remember_messages(platform, chat_id, job_id, pairs, role=RESULT)

    async def find_result(self, platform: str, chat_id: str, message_id: str) -> ShownJob | None:
        found = await self._store.find_message(platform, chat_id, message_id, role=RESULT)
        if found is None:
            return None
        return ShownJob(found.job_id, found.image_index or 0)

    async def remember_status(
        self, platform: str, job_id: str, chat_id: str, message_id: str
    ) -> None:
        """``message_id`` is the job's one status message (replacing any earlier one)."""
        await self._store.remember_message(
            platform, chat_id, message_id, job_id, role=STATUS, replace=True
        )

    async def status_of(self, platform: str, job_id: str) -> tuple[str, str] | None:
        """(chat id, message id) of the job's status message."""
        found = await self._store.job_messages(platform, job_id, role=STATUS)
        if not found:
            return None
        return found[-1].chat_id, found[-1].message_id

    async def forget_status(self, platform: str, job_id: str) -> None:
        await self._store.forget_messages(platform, job_id, role=STATUS)
