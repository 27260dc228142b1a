"""The inline keyboards under a result and under the Vary (Region) menu, and what their
buttons' callback data means (pure).

Callback data (at most 64 bytes) carries the action and the job id, so buttons keep working
after a restart:

    r:<job>               reroll            i:<job>              info
    u:<job>:<i>           upscale image i   v:<job>:<i>          vary image i
    p:<job>:<i>           image i as a lossless PNG document
    o:<job>:<i>:<code>    zoom out / pan image i (``code``: z15 z2 pl pr pu pd,
                          :data:`bot.chat.actions.OUTPAINTS`)
    m:<job>:<i>           the Vary (Region) menu for image i
    g:<job>:<i>:<region>  repaint a preset region of image i (left right top bottom centre)

The data is only a request: the job is looked up as whoever pressed the button, from where they
pressed it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.chat.actions import OUTPAINTS, REGION_LABELS, button_text, outpaint_button
from generation.regions import PRESETS
from storage.records import JobRecord

ACTIONS = {
    "r": "reroll",
    "u": "upscale",
    "v": "vary",
    "i": "info",
    "p": "png",
    "o": "outpaint",
    "m": "region",
    "g": "preset",
}
# The codes whose data carries an option, and the options each allows.
_OPTIONS: dict[str, frozenset[str]] = {"o": frozenset(OUTPAINTS), "g": frozenset(PRESETS)}
_CALLBACK_RE = re.compile(r"^([ruvipomg]):([a-z0-9]{1,32})(?::(\d{1,2}))?(?::([a-z0-9]{1,8}))?$")

# The Vary (Region) menu's preset buttons, two to a row (a phone shows them in full).
PRESET_BUTTONS: tuple[tuple[tuple[str, str], ...], ...] = tuple(
    tuple((key, REGION_LABELS[key]) for key in row)
    for row in (("left", "right"), ("top", "bottom"), ("centre",))
)


@dataclass(frozen=True)
class ButtonPress:
    action: str  # reroll | upscale | vary | info | png | outpaint | region | preset
    job_id: str
    index: int  # 0-based image index (0 where it does not apply)
    option: str = ""  # outpaint: its short code ("z2", "pl"); preset: the region ("left")


def callback_data(code: str, job_id: str, index: int | None = None, option: str = "") -> str:
    data = f"{code}:{job_id}" if index is None else f"{code}:{job_id}:{index}"
    if option:
        data += f":{option}"
    assert len(data.encode()) <= 64, data
    return data


def parse_callback(data: str | None) -> ButtonPress | None:
    match = _CALLBACK_RE.match(data or "")
    if match is None:
        return None
    code, job_id, index, option = match.groups()
    allowed = _OPTIONS.get(code)
    if allowed is None and option is not None:
        return None
    if allowed is not None and (option not in allowed or index is None):
        return None
    return ButtonPress(ACTIONS[code], job_id, int(index) if index else 0, option or "")


def result_keyboard(job: JobRecord) -> InlineKeyboardMarkup:
    """One image: 🔄 Reroll, ⬆️ Upscale, 🎨 Vary; 🔍 Zoom Out 1.5x/2x; the four pans (arrows
    alone, as Midjourney shows them); 🖌️ Vary (Region); ℹ️ Info, 📄 PNG. Several images:
    🔄 Reroll, ℹ️ Info, then a row per image (⬆️ Upscale n, 🎨 Vary n, 📄 PNG n): zoom, pan and
    region work on one picture, so they come with the upscaled or varied one (as on Discord).
    Words from :mod:`bot.chat.actions`, as on Discord."""
    n = len(job.images)

    def button(
        action: str, code: str, index: int | None = None, *, numbered: bool = True
    ) -> InlineKeyboardButton:
        text = button_text(action, index if numbered else None)
        return InlineKeyboardButton(text, callback_data=callback_data(code, job.id, index))

    def outpaint(code: str, *, emoji_only: bool = False) -> InlineKeyboardButton:
        emoji, label = outpaint_button(code)
        text = emoji if emoji_only else f"{emoji} {label}"
        return InlineKeyboardButton(text, callback_data=callback_data("o", job.id, 0, code))

    if n <= 1:  # one image: its buttons need no number
        return InlineKeyboardMarkup(
            [
                [
                    button("reroll", "r"),
                    button("upscale", "u", 0, numbered=False),
                    button("vary", "v", 0, numbered=False),
                ],
                [outpaint("z15"), outpaint("z2")],
                [outpaint(code, emoji_only=True) for code in ("pl", "pr", "pu", "pd")],
                [button("region", "m", 0, numbered=False)],
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


def region_keyboard(job_id: str, index: int) -> InlineKeyboardMarkup:
    """The Vary (Region) menu: a button per preset region of image ``index``."""
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(text, callback_data=callback_data("g", job_id, index, region))
                for region, text in row
            ]
            for row in PRESET_BUTTONS
        ]
    )
