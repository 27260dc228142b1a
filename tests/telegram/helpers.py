"""Helpers for the Telegram tests: chats and users, waiting for replies, status messages and
deliveries (see :mod:`tests.telegram.fake_telegram`; the ``env`` fixture is in conftest)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import re
from dataclasses import dataclass
from typing import Any

from PIL import Image

from bot.app import App
from bot.telegram.application import TelegramApplication
from generation.errors import EaselError
from generation.requests import Origin
from storage.records import JobRecord
from tests.telegram.fake_telegram import Call, FakeTelegram

OWNER = 4242
ids = itertools.count(10_000)
# A job id as the status lines write it: "⏳ Drawing k7m3xq2p: ...", "✅ k7m3xq2p finished ...",
# "⏳ Zooming out 2x k7m3xq2p: ...", "⏳ Repainting the region k7m3xq2p: ..."
JOB_RE = re.compile(
    r"(?:[Jj]ob|Drawing|Re-running|Rerolling|Upscaling|Varying|Zooming out [\d.]+x|Panning \w+"
    r"|Repainting the region|[✅🚫❌]) ([a-z0-9]{8})\b"
)


@dataclass
class Env:
    fake: FakeTelegram
    app: App
    application: TelegramApplication


def private(fake: FakeTelegram) -> tuple[dict[str, Any], dict[str, Any]]:
    user_id = next(ids)
    return fake.private_chat(user_id, f"user{user_id}")


def replying_to(message: dict[str, Any]) -> Any:
    def check(call: Call) -> bool:
        reply = call.params.get("reply_parameters") or {}
        return bool(reply.get("message_id") == message["message_id"])

    return check


async def reply_text(fake: FakeTelegram, message: dict[str, Any]) -> str:
    call = await fake.wait_call("sendMessage", message["chat"]["id"], replying_to(message))
    return str(call.params["text"])


def job_id_in(text: str) -> str:
    match = JOB_RE.search(text)
    assert match, text
    return match.group(1)


async def status_of(fake: FakeTelegram, command: dict[str, Any]) -> tuple[str, Call]:
    """The job id and the status message sent in reply to ``command``."""
    text = await reply_text(fake, command)
    assert text.startswith("⏳"), text
    call = fake.calls_of("sendMessage", command["chat"]["id"])
    status = next(c for c in call if c.params["text"] == text)
    return job_id_in(text), status


async def delivered(app: App, job_id: str) -> JobRecord:
    async with asyncio.timeout(60):
        while True:
            job = await app.store.get_job(job_id)
            if job is not None and job.delivered_at is not None:
                return job
            await asyncio.sleep(0.05)


async def drop(app: App, job_id: str) -> None:
    """Cancel a job whose rendering a test does not need (the CPU is shared)."""
    with contextlib.suppress(EaselError):
        await app.service.cancel(Origin("cli", "tests", "tests", is_admin=True), job_id)


async def answered(fake: FakeTelegram, query_id: str) -> Call:
    def check(call: Call) -> bool:
        return bool(call.params["callback_query_id"] == query_id)

    return await fake.wait_call("answerCallbackQuery", where=check)


def buttons(call: Call) -> list[str]:
    rows = call.params["reply_markup"]["inline_keyboard"]
    return [button["callback_data"] for row in rows for button in row]


def png(color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), color).save(buffer, format="PNG")
    return buffer.getvalue()


async def draw(env: Env, text: str) -> tuple[dict[str, Any], JobRecord, Call]:
    """Draw in a new private chat: (the chat's result photo message, the job, the sendPhoto)."""
    chat, user = private(env.fake)
    command = env.fake.send_text(chat, user, text)
    job_id, _ = await status_of(env.fake, command)
    photo = await env.fake.wait_call("sendPhoto", chat["id"])
    return photo.result, await delivered(env.app, job_id), photo
