"""What Easel says in a chat, the same on Discord and Telegram (pure).

Each function takes a :class:`Markup`: Discord writes job ids as ``code`` and headings in bold
(Markdown), Telegram sends plain text. Everything else — the words, the order, the limits — is
shared, so the two bots cannot drift apart.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.chat.actions import REGION_DOING, outpaint_doing
from bot.describe import describe_params, describe_queue
from bot.grammar import format_draw
from generation.config import GenerationConfig, LimitsConfig
from generation.errors import EaselError, InvalidRequest
from generation.limits import format_retry
from generation.outpainting import parse_outpaint
from generation.policy import ScopeSettings
from generation.requests import DrawRequest
from generation.service import QueueStatus
from generation.spec import VARY_STRENGTHS, Mode
from generation.uploads import ALLOWED_FORMATS
from storage.records import JobRecord


@dataclass(frozen=True)
class Markup:
    code: Callable[[str], str]  # a job id, a word to type
    bold: Callable[[str], str]  # a heading
    time: Callable[[datetime], str]  # a moment


def _utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


PLAIN = Markup(code=str, bold=str, time=_utc)
MARKDOWN = Markup(
    code=lambda text: f"`{text}`",
    bold=lambda text: f"**{text}**",
    time=lambda moment: f"<t:{int(moment.timestamp())}:f>",  # Discord shows it in local time
)

ACTION_WORDS = {
    "draw": "Drawing",
    "rerun": "Re-running",
    "reroll": "Rerolling",
    "upscale": "Upscaling",
    "vary": "Varying",
}


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: max(0, limit - 1)].rstrip() + "…"


def doing_key(job: JobRecord) -> str:
    """What a job's status messages call it (the ``action`` the texts below take): its action
    ("draw", "upscale"...), or for a repaint of a result what it is: "zoom 2", "pan left",
    "region" (they are all Vary in the job's lineage)."""
    if job.mode == Mode.INPAINT and job.parent_id is not None:
        return str((job.inpaint or {}).get("outpaint") or "region")
    return str(job.action)


def _doing(job: JobRecord | str) -> str:
    """ "Varying", "Zooming out 2x", "Panning left", "Repainting the region"..."""
    key = job if isinstance(job, str) else doing_key(job)
    if key in ACTION_WORDS:
        return ACTION_WORDS[key]
    if key == "region":
        return REGION_DOING.split(" ", 1)[1]
    if key.startswith(("zoom ", "pan ")):
        with contextlib.suppress(InvalidRequest):
            return outpaint_doing(parse_outpaint(key)).split(" ", 1)[1]
    return "Drawing"


# ------------------------------------------------------------------ a job's status message


def queued_text(
    job: JobRecord,
    position: int,
    eta_seconds: float,
    markup: Markup,
    seconds_left: float,
) -> str:
    where = describe_queue(position, eta_seconds, seconds_left)
    return f"⏳ {_doing(job)} {markup.code(job.id)}: {where}."


def started_text(job_id: str, action: str, markup: Markup) -> str:
    """``action``: the job's :func:`doing_key`."""
    return f"🎨 {_doing(action)} {markup.code(job_id)}…"


def progress_text(
    job_id: str,
    action: str,
    step: int,
    total: int,
    markup: Markup,
    seconds_left: float | None = None,
) -> str:
    """The progress bar of a running job, with its time left when the engine knows it."""
    total = max(total, 1)
    done = min(max(step, 0), total)
    filled = round(10 * done / total)
    bar = "▰" * filled + "▱" * (10 - filled)
    percent = round(100 * done / total)
    left = "" if seconds_left is None or done >= total else f", done {format_retry(seconds_left)}"
    return (
        f"🎨 {_doing(action)} {markup.code(job_id)}: {bar} {percent}% (step {done}/{total}{left})"
    )


def final_text(job: JobRecord, markup: Markup) -> str:
    if job.status == "succeeded":
        took = ""
        if job.started_at and job.finished_at:
            took = f" in {(job.finished_at - job.started_at).total_seconds():.1f} s"
        return f"✅ {markup.code(job.id)} finished{took}."
    if job.status == "cancelled":
        return f"🚫 {markup.code(job.id)} was cancelled."
    return f"❌ {markup.code(job.id)} failed: {clip(job.error or 'unknown error', 1500)}"


# ------------------------------------------------------------------ answers


def describe_error(error: EaselError) -> str:
    """A refusal in words, with when to try again where that is known."""
    text = f"🚫 {error.message}"
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None and "try again" not in error.message.lower():
        text += f" Try again {format_retry(retry_after)}."
    return text


_FORMAT_NAMES = {"WEBP": "WebP"}  # how a format is written for people, where not its id
_FORMAT_ORDER = ("PNG", "JPEG", "WEBP", "GIF", "BMP")


def accepted_images() -> str:
    """The picture formats a /draw may start from, in words ("PNG, JPEG, WebP, GIF or BMP"),
    from the upload code's allow-list."""
    known = [f for f in _FORMAT_ORDER if f in ALLOWED_FORMATS]
    names = [_FORMAT_NAMES.get(f, f) for f in known + sorted(ALLOWED_FORMATS - set(known))]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def not_an_image(kind: str | None) -> str:
    """The refusal of a /draw whose attachment is not a picture (``kind``: its type, if known)."""
    what = f"That file ({kind})" if kind else "That file"
    return (
        f"{what} is not a picture I can start from. Send a {accepted_images()} image with your "
        "/draw caption, or /draw with only text."
    )


def seeds_text(job: JobRecord) -> str:
    seeds = [image.seed for image in job.images] or job.seeds
    return str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}–{seeds[-1]}"


# What a job made from another one is called, first word of its headline.
DERIVED_TITLES = {
    "rerun": "Rerun",
    "reroll": "Reroll",
    "upscale": "Upscale",
    "vary": "Vary",
    "zoom": "Zoom",
    "pan": "Pan",
    "inpaint": "Inpaint",
}


def _vary_word(strength: float | None) -> str | None:
    """ "subtle" or "strong" for a variation's stored strength (None if it is neither)."""
    for word, value in VARY_STRENGTHS.items():
        if strength is not None and abs(strength - value) < 1e-6:
            return word
    return None


def lineage(job: JobRecord, markup: Markup) -> str | None:
    """What a job made from another one is, and of what: "Upscale of image 1 of `k7m3xq2p`",
    "Vary (subtle) of image 2 of `k7m3xq2p`", "Reroll of `k7m3xq2p`" (None for a new drawing).
    The one place both chats (and the result embed) take these words from."""
    if job.parent_id is None:
        return None
    action = str(job.action)
    title = DERIVED_TITLES.get(action, action.capitalize())
    if job.mode == Mode.INPAINT:  # a Vary (Region), or an outpaint: Zoom out 2x, Pan left
        outpaint = (job.inpaint or {}).get("outpaint")
        title = parse_outpaint(str(outpaint)).label if outpaint else "Vary (Region)"
    elif action == "vary" and (word := _vary_word(job.strength)) is not None:
        title = f"{title} ({word})"
    which = ""
    if job.parent_index is not None and action in ("upscale", "vary", "zoom", "pan", "inpaint"):
        which = f" image {job.parent_index + 1} of"
    return f"{title} of{which} {markup.code(job.parent_id)}"


def result_headline(job: JobRecord, markup: Markup, requester: str | None) -> str | None:
    """The first line of a derived result, naming whom it is for ("Upscale of image 1 of
    `k7m3xq2p`, for @alice"); None for a new drawing (its prompt speaks for it)."""
    origin = lineage(job, markup)
    if origin is None:
        return None
    return f"{origin}, for {requester}" if requester else origin


def redo_command(job: JobRecord) -> str:
    """The ``/draw`` command that asks for this text-to-image job again, to edit and send."""
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
    )
    return format_draw(request)


def info_text(job: JobRecord, markup: Markup, limit: int) -> str:
    """Every parameter of a job, and how to redo it, within ``limit`` characters."""
    b = markup.bold
    lines = [
        f"ℹ️ {b('Job')} {markup.code(job.id)} ({job.status}, {job.action})",
        f"{b('Prompt:')} {clip(job.prompt, 1200)}",
    ]
    if job.negative_prompt:
        lines.append(f"{b('Negative prompt:')} {clip(job.negative_prompt, 400)}")
    lines.append(f"{b('Seeds:')} {', '.join(str(seed) for seed in job.seeds)}")
    lines.append(f"{b('Parameters:')} {describe_params(job)}")
    if job.model_revision:
        lines.append(f"{b('Model revision:')} {markup.code(clip(job.model_revision, 64))}")
    origin = lineage(job, markup)
    if origin:
        lines.append(f"{b('From:')} {origin}")
    lines.append(f"{b('Created:')} {markup.time(job.created_at)}")
    if job.error:
        lines.append(f"{b('Error:')} {clip(job.error, 300)}")
    lines.append(f"Redo exactly: {markup.code(f'/rerun {job.id}')}")
    if job.mode == Mode.TXT2IMG:
        lines.append(f"Or edit and send: {markup.code(clip(redo_command(job), 1500))}")
    return clip("\n".join(lines), limit)


def history_text(jobs: Sequence[JobRecord], markup: Markup, limit: int) -> str:
    if not jobs:
        return "You have no jobs yet. Try /draw a castle at dusk"
    lines = [markup.bold("Your recent jobs (newest first)")]
    for job in jobs:
        lines.append(
            f"{markup.code(job.id)} · seed {seeds_text(job)} · {job.status} · "
            f"{clip(job.prompt, 60)}"
        )
    lines.append("Show one with /show ID, redo it with /rerun ID.")
    return clip("\n".join(lines), limit)


def queue_text(status: QueueStatus, markup: Markup) -> str:
    lines = [f"📋 {markup.bold('Queue:')} {status.length} waiting, {status.running} drawing now."]
    if not status.your_jobs:
        lines.append("You have nothing waiting.")
    for job_id, position, eta in status.your_jobs:
        where = describe_queue(position, eta, status.seconds_left.get(job_id))
        lines.append(f"• {markup.code(job_id)}: {where}")
    return "\n".join(lines)


# ------------------------------------------------------------------ admin

LIMIT_KEYS = (
    "rate_per_minute",
    "burst",
    "max_queued_per_user",
    "daily_quota",
    "max_steps",
    "max_count",
    "max_pixels",
)


def limits_text(
    settings: ScopeSettings,
    limits: LimitsConfig,
    generation: GenerationConfig,
    markup: Markup,
    *,
    heading: str,
) -> str:
    """The limits in force here: this scope's own values, else the service's (marked so)."""
    server = {
        "rate_per_minute": limits.rate_per_minute,
        "burst": limits.burst,
        "max_queued_per_user": limits.max_queued_per_user,
        "daily_quota": limits.daily_quota,
        "max_steps": generation.max_steps,
        "max_count": generation.max_count,
        "max_pixels": generation.max_pixels,
    }
    words = {
        "rate_per_minute": "drawings per user per minute",
        "burst": "drawings a user may start at once",
        "max_queued_per_user": "jobs one user may have waiting",
        "daily_quota": "jobs per user per day (0 = unlimited)",
        "max_steps": "most steps",
        "max_count": "most pictures per /draw",
        "max_pixels": "largest picture in pixels",
    }
    lines = [markup.bold(heading)]
    for key in LIMIT_KEYS:
        own, base = getattr(settings, key), server[key]
        if own is None:
            value = f"{_number(base)} (the service's default)"
        elif key in _CAPPED_BY_SERVER and own > base:
            value = f"{_number(base)} (the service's cap; {_number(own)} set here)"
        else:
            value = _number(own)
        lines.append(f"• {markup.code(key)} = {value}: {words[key]}")
    return "\n".join(lines)


_CAPPED_BY_SERVER = ("max_steps", "max_count", "max_pixels")


def _number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"
