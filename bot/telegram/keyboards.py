"""The inline keyboard under a result, and what its buttons' callback data means (pure).

Callback data (at most 64 bytes) carries the action and the job id, so buttons keep working
after a restart: ``r:<job>`` reroll, ``i:<job>`` info, ``u:<job>:<i>`` upscale image i,
``v:<job>:<i>`` vary image i, ``p:<job>:<i>`` send image i as a lossless PNG document. The data
is only a request: the job is looked up as whoever pressed the button, from where they pressed it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from storage.records import JobRecord

ROW_LIMIT = 5  # buttons per keyboard row (Telegram allows 8; 5 stays readable on phones)

ACTIONS = {"r": "reroll", "u": "upscale", "v": "vary", "i": "info", "p": "png"}
_CALLBACK_RE = re.compile(r"^([ruvip]):([a-z0-9]{1,32})(?::(\d{1,2}))?$")


@dataclass(frozen=True)
class ButtonPress:
    action: str  # reroll | upscale | vary | info | png
    job_id: str
    index: int  # 0-based image index (0 where it does not apply)


def callback_data(code: str, job_id: str, index: int | None = None) -> str:
    data = f"{code}:{job_id}" if index is None else f"{code}:{job_id}:{index}"
    assert len(data.encode()) <= 64, data
    return data


def parse_callback(data: str | None) -> ButtonPress | None:
    match = _CALLBACK_RE.match(data or "")
    if match is None:
        return None
    code, job_id, index = match.groups()
    return ButtonPress(ACTIONS[code], job_id, int(index) if index else 0)


def _rows(buttons: list[InlineKeyboardButton]) -> list[list[InlineKeyboardButton]]:
    return [buttons[start : start + ROW_LIMIT] for start in range(0, len(buttons), ROW_LIMIT)]


def result_keyboard(job: JobRecord) -> InlineKeyboardMarkup:
    """🔄 Reroll, ⬆️ Upscale 1..n, 🎨 Vary 1..n, ℹ️ Info, 📄 PNG 1..n."""
    n = len(job.images)

    def button(text: str, code: str, index: int | None = None) -> InlineKeyboardButton:
        return InlineKeyboardButton(text, callback_data=callback_data(code, job.id, index))

    if n <= 1:
        return InlineKeyboardMarkup(
            [
                [button("🔄 Reroll", "r"), button("⬆️ Upscale", "u", 0), button("🎨 Vary", "v", 0)],
                [button("ℹ️ Info", "i"), button("📄 PNG", "p", 0)],
            ]
        )
    rows = [[button("🔄 Reroll", "r"), button("ℹ️ Info", "i")]]
    rows += _rows([button(f"⬆️ U{i + 1}", "u", i) for i in range(n)])
    rows += _rows([button(f"🎨 V{i + 1}", "v", i) for i in range(n)])
    rows += _rows([button(f"📄 PNG {i + 1}", "p", i) for i in range(n)])
    return InlineKeyboardMarkup(rows)
