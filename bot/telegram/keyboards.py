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

from bot.chat.actions import button_text
from storage.records import JobRecord

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


def result_keyboard(job: JobRecord) -> InlineKeyboardMarkup:
    """🔄 Reroll, ⬆️ Upscale 1..n, 🎨 Vary 1..n, ℹ️ Info, 📄 PNG 1..n (words from
    :mod:`bot.chat.actions`, as on Discord; the callback data is unchanged)."""
    n = len(job.images)

    def button(
        action: str, code: str, index: int | None = None, *, numbered: bool = True
    ) -> InlineKeyboardButton:
        text = button_text(action, index if numbered else None)
        return InlineKeyboardButton(text, callback_data=callback_data(code, job.id, index))

    if n <= 1:  # one image: its buttons need no number
        return InlineKeyboardMarkup(
            [
                [
                    button("reroll", "r"),
                    button("upscale", "u", 0, numbered=False),
                    button("vary", "v", 0, numbered=False),
                ],
                [button("info", "i"), button("png", "p", 0, numbered=False)],
            ]
        )
    # One row per image ("⬆️ Upscale 2", "🎨 Vary 2", "📄 PNG 2"): worded buttons stay
    # readable on a phone, and each row is about one picture.
    rows = [[button("reroll", "r"), button("info", "i")]]
    rows += [
        [button("upscale", "u", i), button("vary", "v", i), button("png", "p", i)] for i in range(n)
    ]
    return InlineKeyboardMarkup(rows)
