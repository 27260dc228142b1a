"""What only the Telegram bot writes: result captions, the help text, the command list (pure).

Status lines, info, history and queue texts are shared with Discord: :mod:`bot.chat.texts`.
"""

from __future__ import annotations

from bot.chat.texts import (
    PLAIN,
    accepted_images,
    clip,
    result_headline,
    seeds_text,
)
from generation.regions import USAGE as REGION_USAGE
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
  Options: --sampler "Euler a", --model NAME, --n 4 (images), --cfg 7, --size 512x768,
  --hires 2 (render, then twice as large in a second pass: AUTOMATIC1111's hires fix),
  --refiner NAME (SDXL models: a refiner finishes the picture; --switch-at 0.8 says when).
  "prompt | negative prompt" is a shorthand for --no.
  Send a photo with a /draw caption (or reply /draw to a photo) to start from that image;
  --strength 0.6 sets how much it may change.
Buttons under a result: 🔄 Reroll (new seed), ⬆️ Upscale, 🎨 Vary, ℹ️ Info, 📄 PNG (lossless); \
under a single picture also 🔍 Zoom Out 1.5x/2x, ⬅️ ➡️ ⬆️ ⬇️ Pan (more picture that way) and \
🖌️ Vary (Region) (repaint a part).
Reply to a result with a black-and-white mask (white = repaint; a photo or a file, its caption \
the new prompt) or with /region left|right|top|bottom|centre|X,Y,W,H [new prompt] to repaint \
that part.
{reactions}
/rerun ID – the same job again, same seed
/show ID – show a job and its buttons
/history – your latest jobs
/queue – the queue and your place in it
/cancel ID – cancel a job that has not finished
/styles – the prompt styles here (--style NAME in a /draw)
Chat admins: /models, /setmodel NAME, /limits [key=value ...], /blocklist [add|remove words],
/styles add NAME {{prompt}}, style words | negative words, /styles remove NAME"""


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
    ("region", "Reply to a result: repaint part of it, /region left a red hat"),
    ("queue", "The queue and your place in it"),
    ("cancel", "Cancel a job: /cancel ID"),
    ("help", "How to use Easel"),
    ("models", "Admins: list the models"),
    ("setmodel", "Admins: this chat's default model"),
    ("limits", "Admins: this chat's limits"),
    ("blocklist", "Admins: this chat's blocked words"),
    ("styles", "Prompt styles for --style (admins: /styles add NAME prompt | negative)"),
)


# ---------------------------------------------------------------------- Vary (Region)

REGION_EXAMPLE = "/region 10,20,50,40 a red hat"


def region_menu_text(job_id: str, index: int) -> str:
    """The message the 🖌️ Vary (Region) button answers with, above the preset buttons."""
    return (
        f"🖌️ Vary (Region) of image {index + 1} of {job_id}: which part should I repaint?\n"
        "• Tap a region below to repaint it with the same prompt.\n"
        "• Or reply to the picture (or to this message) with a black-and-white mask, white = "
        "repaint, as a photo or a file; its caption, if any, is the new prompt.\n"
        f"• Or reply to it with /region REGION [new prompt], e.g. {REGION_EXAMPLE}. "
        f"REGION is {REGION_USAGE}."
    )


def region_usage() -> str:
    """The answer to a /region that is not a reply to a result, or says no region."""
    return (
        "Reply to one of my pictures with /region REGION [new prompt], e.g. "
        f"{REGION_EXAMPLE}. REGION is {REGION_USAGE}."
    )


# The answer to a mask or /region replying to a message that shows no result.
NOT_A_RESULT = (
    "🚫 That message is not one of my pictures, so there is nothing to repaint. Reply to a "
    "result (or its 🖌️ Vary (Region) message) with a black-and-white mask (white = repaint) "
    "or with /region REGION [new prompt]."
)


def not_a_mask(kind: str | None) -> str:
    """The refusal of a reply to a result with a file that is not a picture."""
    what = f"That file ({kind})" if kind else "That file"
    return (
        f"🚫 {what} is not a mask I can use. Reply to the result with a black-and-white "
        f"{accepted_images()} image (white = repaint), as a photo or a file."
    )
