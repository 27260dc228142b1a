"""Which Telegram message shows which job: for reactions and for status messages after a restart.

A reaction update names only the chat and the message, and the Bot API cannot fetch a message,
so the bot remembers (chat, message) -> (job id, image index) for every result it sends, and
job id -> its status message. The map lives in the main database (the ``platform_messages``
table, see :meth:`storage.repository.Store.remember_messages`); this class only converts
Telegram's integer ids to and from the stored text.
"""

from __future__ import annotations

from storage.repository import Store

PLATFORM = "telegram"
RESULT = "result"
STATUS = "status"


class MessageIndex:
    """Telegram's view of the Store's message map (coroutines: await them)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def remember_result(
        self, chat_id: int, job_id: str, messages: list[tuple[int, int]]
    ) -> None:
        """``messages`` holds (message id, image index) pairs of one result."""
        pairs: list[tuple[str, int | None]] = [(str(m), index) for m, index in messages]
        await self.store.remember_messages(PLATFORM, str(chat_id), job_id, pairs, role=RESULT)

    async def lookup(self, chat_id: int, message_id: int) -> tuple[str, int] | None:
        found = await self.store.find_message(PLATFORM, str(chat_id), str(message_id), role=RESULT)
        if found is None:
            return None
        return found.job_id, found.image_index or 0

    async def remember_status(self, job_id: str, chat_id: int, message_id: int) -> None:
        """``message_id`` is the job's one status message (replacing any earlier one)."""
        await self.store.remember_message(
            PLATFORM, str(chat_id), str(message_id), job_id, role=STATUS, replace=True
        )

    async def status_of(self, job_id: str) -> tuple[int, int] | None:
        """(chat id, message id) of the job's status message."""
        found = await self.store.job_messages(PLATFORM, job_id, role=STATUS)
        if not found:
            return None
        return int(found[-1].chat_id), int(found[-1].message_id)

    async def forget_status(self, job_id: str) -> None:
        await self.store.forget_messages(PLATFORM, job_id, role=STATUS)
