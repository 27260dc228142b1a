"""Which chat message shows which job (the ``platform_messages`` table).

A Telegram reaction names only the chat and the message, and the Bot API cannot fetch a message,
so the bot remembers (chat, message) -> (job, image) for every result it sends, and job -> its
status message (to keep editing it after a restart).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, Delete, delete, select

from storage.base import Repository
from storage.convert import message_record
from storage.jobs import normalize_job_id
from storage.models import MESSAGE_ROLES, PlatformMessageRow
from storage.records import PlatformMessage


class Messages(Repository):
    async def remember_messages(
        self,
        platform: str,
        chat_id: str,
        job_id: str,
        messages: Sequence[tuple[str, int | None]],
        *,
        role: str = "result",
        replace: bool = False,
    ) -> None:
        """Remember that ``messages`` ((message id, image index) pairs) in ``chat_id`` show a job.

        A message already remembered under ``role`` now points at this job. With ``replace`` the
        job's earlier ``role`` messages on ``platform`` are forgotten first (one status message).
        """
        _check_role(role)
        job_id = normalize_job_id(job_id)
        async with self.db.write() as session:
            if replace:
                await session.execute(_job_messages_delete(platform, job_id, role))
            now = self.now()
            for message_id, image_index in messages:
                stmt = self.upsert(PlatformMessageRow).values(
                    platform=platform,
                    chat_id=chat_id,
                    message_id=message_id,
                    job_id=job_id,
                    image_index=image_index,
                    role=role,
                    created_at=now,
                )
                await session.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["platform", "chat_id", "message_id", "role"],
                        set_={
                            "job_id": stmt.excluded.job_id,
                            "image_index": stmt.excluded.image_index,
                            "created_at": stmt.excluded.created_at,
                        },
                    )
                )

    async def remember_message(
        self,
        platform: str,
        chat_id: str,
        message_id: str,
        job_id: str,
        image_index: int | None = None,
        *,
        role: str = "result",
        replace: bool = False,
    ) -> None:
        """One message; see :meth:`remember_messages`."""
        await self.remember_messages(
            platform, chat_id, job_id, [(message_id, image_index)], role=role, replace=replace
        )

    async def find_message(
        self, platform: str, chat_id: str, message_id: str, *, role: str = "result"
    ) -> PlatformMessage | None:
        """The job shown by a message, or None if it is not one Easel remembered."""
        stmt = select(PlatformMessageRow).where(
            PlatformMessageRow.platform == platform,
            PlatformMessageRow.chat_id == chat_id,
            PlatformMessageRow.message_id == message_id,
            PlatformMessageRow.role == role,
        )
        async with self.db.read() as session:
            row = (await session.execute(stmt)).scalar_one_or_none()
            return None if row is None else message_record(row)

    async def job_messages(
        self, platform: str, job_id: str, *, role: str | None = None
    ) -> list[PlatformMessage]:
        """The job's messages on ``platform`` (of one ``role``, or all), oldest first."""
        stmt = select(PlatformMessageRow).where(
            PlatformMessageRow.platform == platform,
            PlatformMessageRow.job_id == normalize_job_id(job_id),
        )
        if role is not None:
            stmt = stmt.where(PlatformMessageRow.role == role)
        async with self.db.read() as session:
            rows = (await session.execute(stmt.order_by(PlatformMessageRow.id))).scalars()
            return [message_record(row) for row in rows]

    async def forget_messages(self, platform: str, job_id: str, *, role: str | None = None) -> int:
        """Forget the job's messages on ``platform`` (of one ``role``, or all); how many went."""
        async with self.db.write() as session:
            result = await session.execute(
                _job_messages_delete(platform, normalize_job_id(job_id), role)
            )
            return cast("CursorResult[Any]", result).rowcount


def _check_role(role: str) -> None:
    if role not in MESSAGE_ROLES:
        raise ValueError(f"unknown message role {role!r}; use one of: {', '.join(MESSAGE_ROLES)}")


def _job_messages_delete(platform: str, job_id: str, role: str | None) -> Delete:
    stmt = delete(PlatformMessageRow).where(
        PlatformMessageRow.platform == platform, PlatformMessageRow.job_id == job_id
    )
    return stmt if role is None else stmt.where(PlatformMessageRow.role == role)
