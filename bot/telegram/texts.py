"""What only the Telegram bot writes: result captions, the help text, the command list (pure).

Status lines, info, history and queue texts are shared with Discord: :mod:`bot.chat.texts`.
"""

from __future__ import annotations

from bot.chat.texts import PLAIN, clip, result_headline, seeds_text
from generation.spec import Mode
from storage.records import JobRecord

CAPTION_LIMIT = 1024
TEXT_LIMIT = 4096
ALERT_LIMIT = 200  # answerCallbackQuery text shown as an alert
ALBUM_LIMIT = 10  # items in one sendMediaGroup


def _seeds(job: JobRecord) -> str:
    seeds = seeds_text(job)
    return f"seeds {seeds}" if "–" in seeds else f"seed {seeds}"


def result_caption(job: JobRecord) -> str:
    """Prompt, negative prompt, seed(s) and job id, within Telegram's 1024-character caption;
    a job made from another one first says what it is, of what and for whom ("Vary (subtle) of
    image 2 of k7m3xq2p, for @alice": :func:`bot.chat.texts.result_headline`)."""
    headline = result_headline(job, PLAIN, job.reply_target.get("requester"))
    head = f"{headline}\n" if headline else ""
    label = " · 🖼 from your picture" if headline is None and job.mode == Mode.IMG2IMG else ""
    footer = f"🌱 {_seeds(job)} · 🆔 {job.id}{label}"
    negative = f"\n🚫 {clip(job.negative_prompt, 200)}" if job.negative_prompt else ""
    room = CAPTION_LIMIT - len(head) - len(footer) - len(negative) - 1
    return f"{head}{clip(job.prompt, room)}{negative}\n{footer}"


def album_item_caption(job: JobRecord, index: int) -> str:
    return f"#{index + 1} · seed {job.images[index].seed} · 🆔 {job.id}"


def album_keyboard_text(job: JobRecord) -> str:
    return clip(
        f"🖼 {len(job.images)} images for job {job.id}: ⬆️ upscale, 🎨 vary or 📄 get the PNG "
        f"of one by its number.\n{result_caption(job)}",
        TEXT_LIMIT,
    )


HELP_TEXT = """🎨 Easel draws pictures from text.

/draw a castle at dusk --no blurry --seed 42 --steps 20 --ar 3:2
  Options: --sampler "Euler a", --model NAME, --n 4 (images), --cfg 7, --size 512x768.
  "prompt | negative prompt" is a shorthand for --no.
  Send a photo with a /draw caption (or reply /draw to a photo) to start from that image;
  --strength 0.6 sets how much it may change.
Buttons under a result: 🔄 Reroll (new seed), ⬆️ Upscale, 🎨 Vary, ℹ️ Info, 📄 PNG (lossless).
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
