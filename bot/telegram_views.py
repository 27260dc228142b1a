"""What the Telegram bot writes: captions, status lines, info texts, inline keyboards (pure).

Callback data (at most 64 bytes) carries the action and the job id, so buttons keep working
after a restart: ``r:<job>`` reroll, ``i:<job>`` info, ``u:<job>:<i>`` upscale image i,
``v:<job>:<i>`` vary image i, ``p:<job>:<i>`` send image i as a lossless PNG document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.grammar import format_draw
from bot.views import describe_params, describe_queue
from generation.limits import format_retry
from generation.requests import DrawRequest
from generation.spec import Mode
from storage.records import JobRecord

CAPTION_LIMIT = 1024
TEXT_LIMIT = 4096
ALERT_LIMIT = 200  # answerCallbackQuery text shown as an alert
ALBUM_LIMIT = 10  # items in one sendMediaGroup
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


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 1)].rstrip() + "…"


def _seeds(job: JobRecord) -> str:
    seeds = [image.seed for image in job.images] or job.seeds
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    return f"seeds {seeds[0]}–{seeds[-1]}"


def result_caption(job: JobRecord) -> str:
    """Prompt, negative prompt, seed(s) and job id, within Telegram's 1024-character caption."""
    label = {Mode.UPSCALE: "⬆️ upscaled", Mode.IMG2IMG: "🎨 from an image"}.get(job.mode)
    footer = f"🌱 {_seeds(job)} · 🆔 {job.id}" + (f" · {label}" if label else "")
    negative = f"\n🚫 {_clip(job.negative_prompt, 200)}" if job.negative_prompt else ""
    room = CAPTION_LIMIT - len(footer) - len(negative) - 1
    return f"{_clip(job.prompt, room)}{negative}\n{footer}"


def album_item_caption(job: JobRecord, index: int) -> str:
    return f"#{index + 1} · seed {job.images[index].seed} · 🆔 {job.id}"


def album_keyboard_text(job: JobRecord) -> str:
    return _clip(
        f"🖼 {len(job.images)} images for job {job.id}: ⬆️ upscale, 🎨 vary or 📄 get the PNG "
        f"of one by its number.\n{result_caption(job)}",
        TEXT_LIMIT,
    )


def redo_command(job: JobRecord) -> str:
    request = DrawRequest(
        prompt=job.prompt,
        negative_prompt=job.negative_prompt,
        seed=job.seed,
        steps=job.steps,
        cfg=job.cfg,
        width=job.width,
        height=job.height,
        sampler=job.sampler,
        model=job.model,
        count=job.count if job.count > 1 else None,
        strength=job.strength if job.mode == Mode.IMG2IMG else None,
    )
    return format_draw(request)


def info_text(job: JobRecord) -> str:
    lines = [f"ℹ️ Job {job.id} · {job.status} ({job.action})", f"Prompt: {job.prompt}"]
    if job.negative_prompt:
        lines.append(f"Negative: {job.negative_prompt}")
    lines.append(describe_params(job))
    lines.append(_seeds(job).capitalize())
    if job.parent_id:
        which = f", image {job.parent_index + 1}" if job.parent_index is not None else ""
        lines.append(f"From job {job.parent_id}{which}")
    if job.error:
        lines.append(f"Error: {job.error}")
    lines.append(f"Redo exactly: /rerun {job.id}")
    if job.mode == Mode.TXT2IMG:
        lines.append(f"Or edit: {redo_command(job)}")
    return _clip("\n".join(lines), TEXT_LIMIT)


# ------------------------------------------------------------------ status lines


def queued_text(job_id: str, position: int, eta_seconds: float) -> str:
    return f"⏳ Job {job_id}: {describe_queue(position, eta_seconds)}."


def started_text(job_id: str) -> str:
    return f"🎨 Job {job_id}: drawing…"


def progress_text(job_id: str, step: int, total: int) -> str:
    total = max(total, 1)
    step = min(max(step, 0), total)
    filled = round(10 * step / total)
    return f"🎨 Job {job_id}: {'▰' * filled}{'▱' * (10 - filled)} step {step}/{total}"


def final_text(job: JobRecord) -> str:
    if job.status == "succeeded":
        return f"✅ Job {job.id} is done."
    if job.status == "cancelled":
        return f"🚫 Job {job.id} was cancelled."
    return _clip(f"❌ Job {job.id} failed: {job.error or 'unknown error'}", TEXT_LIMIT)


def retry_hint(seconds: float) -> str:
    return f"Try again {format_retry(seconds)}."


def history_text(jobs: list[JobRecord]) -> str:
    if not jobs:
        return "You have no drawings yet. Try /draw a castle at dusk"
    lines = ["🗂 Your latest jobs (newest first):"]
    for job in jobs:
        lines.append(f"{job.id} · {job.status} · {_clip(job.prompt, 60)}")
    lines.append("Show one with /show ID, redo it with /rerun ID.")
    return _clip("\n".join(lines), TEXT_LIMIT)


HELP_TEXT = """🎨 Easel draws pictures from text.

/draw a castle at dusk --no blurry --seed 42 --steps 20 --ar 3:2
  Options: --sampler "Euler a", --model NAME, --n 4 (images), --cfg 7, --size 512x768.
  "prompt | negative prompt" is a shorthand for --no.
  Send a photo with a /draw caption (or reply /draw to a photo) to start from that image;
  --strength 0.6 sets how much it may change.
Buttons under a result: 🔄 reroll (new seed), ⬆️ upscale, 🎨 vary, ℹ️ info, 📄 lossless PNG.
{reactions}
/rerun ID – the same job again, same seed
/show ID – show a job and its buttons
/history – your latest jobs
/queue – the queue and your place in it
/cancel ID – cancel a job that has not finished
Chat admins: /models, /setmodel NAME, /limits [key=value ...], /blocklist [add|remove words]"""


def help_text(reactions: dict[str, str]) -> str:
    if reactions:
        pairs = ", ".join(f"{emoji} {action}" for emoji, action in reactions.items())
        line = f"Reactions on a result (where I am an admin): {pairs}."
    else:
        line = ""
    return HELP_TEXT.format(reactions=line)


COMMANDS: tuple[tuple[str, str], ...] = (
    ("draw", "Draw a picture: /draw a castle at dusk --no blurry"),
    ("rerun", "Redo a job exactly: /rerun ID"),
    ("show", "Show a job: /show ID"),
    ("history", "Your latest jobs"),
    ("queue", "The queue and your place in it"),
    ("cancel", "Cancel a job: /cancel ID"),
    ("help", "How to use Easel"),
    ("models", "Admins: list the models"),
    ("setmodel", "Admins: this chat's default model"),
    ("limits", "Admins: this chat's limits"),
    ("blocklist", "Admins: this chat's blocked words"),
)
