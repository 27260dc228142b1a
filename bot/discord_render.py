"""How a job looks on Discord: the result embed, its files, and the status lines (pure).

A result is one message: the image (a 2x2 grid when the job made several, with every single
image attached as well, so each is reachable), an embed with the parameters a person needs to
redo it (prompt, negative prompt, seed, model, steps, job id), and the buttons of
:mod:`bot.discord_views`. In a channel whose NSFW policy is "spoiler" every file is sent as a
spoiler and the embed shows no image (embeds cannot blur).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import discord

from bot.discord_common import clip
from bot.images_grid import grid_png
from bot.views import describe_params, describe_queue
from storage.records import JobRecord

# Discord's smallest upload limit is 10 MiB per message; stay below it with some room.
UPLOAD_BUDGET = 9 * 1024 * 1024
EMBED_COLOUR = discord.Colour(0x7C5CFF)

ACTION_WORDS = {
    "draw": "Drawing",
    "rerun": "Re-running",
    "reroll": "Rerolling",
    "upscale": "Upscaling",
    "vary": "Varying",
}


@dataclass(frozen=True)
class RenderedResult:
    embed: discord.Embed
    files: list[discord.File]


def seeds_text(job: JobRecord) -> str:
    seeds = [image.seed for image in job.images] if job.images else job.seeds
    if len(seeds) == 1:
        return str(seeds[0])
    return f"{seeds[0]}–{seeds[-1]}"


def lineage(job: JobRecord) -> str | None:
    if job.parent_id is None:
        return None
    which = f" image {job.parent_index + 1}" if job.parent_index is not None else ""
    return f"{job.action} of `{job.parent_id}`{which}"


def result_embed(job: JobRecord, image_name: str | None) -> discord.Embed:
    embed = discord.Embed(description=clip(job.prompt, 4000), colour=EMBED_COLOUR)
    embed.title = "Easel"
    if job.negative_prompt:
        embed.add_field(name="Negative prompt", value=clip(job.negative_prompt, 1000), inline=False)
    embed.add_field(name="Seed", value=seeds_text(job))
    embed.add_field(name="Model", value=clip(job.model, 200))
    embed.add_field(name="Steps", value=str(job.steps))
    embed.add_field(name="Size", value=f"{job.width}x{job.height}")
    embed.add_field(name="Sampler", value=job.sampler)
    embed.add_field(name="CFG", value=f"{job.cfg:g}")
    if job.strength is not None:
        embed.add_field(name="Strength", value=f"{job.strength:g}")
    embed.add_field(name="Job", value=f"`{job.id}`")
    origin = lineage(job)
    if origin:
        embed.add_field(name="From", value=origin, inline=False)
    embed.set_footer(text=f"job {job.id}")
    if image_name is not None:
        embed.set_image(url=f"attachment://{image_name}")
    return embed


def result_files(
    job: JobRecord, pngs: Sequence[bytes], *, spoiler: bool, budget: int = UPLOAD_BUDGET
) -> tuple[list[discord.File], str | None]:
    """The files of a result and the name of the one the embed shows (None for spoilers).

    One image: that image. Several: the grid first, then each single image while the upload
    budget lasts (the U buttons reach any that did not fit).
    """
    named: list[tuple[str, bytes]] = []
    if len(pngs) == 1:
        named.append((f"easel_{job.id}.png", pngs[0]))
    else:
        named.append((f"easel_{job.id}_grid.png", grid_png(pngs)))
        for index, data in enumerate(pngs, start=1):
            named.append((f"easel_{job.id}_{index}.png", data))
    files: list[discord.File] = []
    used = 0
    for name, data in named:
        if files and used + len(data) > budget:
            break
        used += len(data)
        files.append(discord.File(io.BytesIO(data), filename=name, spoiler=spoiler))
    shown = None if spoiler else files[0].filename
    return files, shown


def render_result(job: JobRecord, pngs: Sequence[bytes], *, spoiler: bool) -> RenderedResult:
    files, shown = result_files(job, pngs, spoiler=spoiler)
    return RenderedResult(result_embed(job, shown), files)


def info_text(job: JobRecord) -> str:
    lines = [
        f"**Job `{job.id}`** ({job.status})",
        f"**Prompt:** {clip(job.prompt, 1200)}",
    ]
    if job.negative_prompt:
        lines.append(f"**Negative prompt:** {clip(job.negative_prompt, 400)}")
    lines.append(f"**Seeds:** {', '.join(str(s) for s in job.seeds)}")
    lines.append(f"**Parameters:** {describe_params(job)}")
    if job.model_revision:
        lines.append(f"**Model revision:** `{clip(job.model_revision, 64)}`")
    origin = lineage(job)
    if origin:
        lines.append(f"**From:** {origin}")
    lines.append(f"**Created:** {discord.utils.format_dt(job.created_at, 'f')}")
    if job.error:
        lines.append(f"**Error:** {clip(job.error, 300)}")
    return clip("\n".join(lines), 1900)


def queued_text(job: JobRecord, position: int, eta_seconds: float) -> str:
    word = ACTION_WORDS.get(str(job.action), "Drawing")
    return f"⏳ {word} `{job.id}`: {describe_queue(position, eta_seconds)}."


def started_text(job_id: str, action: str) -> str:
    return f"🎨 {ACTION_WORDS.get(action, 'Drawing')} `{job_id}`…"


def progress_text(job_id: str, action: str, step: int, total: int) -> str:
    total = max(total, 1)
    done = min(max(step, 0), total)
    filled = round(10 * done / total)
    bar = "▰" * filled + "▱" * (10 - filled)
    word = ACTION_WORDS.get(action, "Drawing")
    return f"🎨 {word} `{job_id}`: {bar} {round(100 * done / total)}% (step {done}/{total})"


def finished_text(job: JobRecord) -> str:
    if job.status == "succeeded":
        took = ""
        if job.started_at and job.finished_at:
            took = f" in {(job.finished_at - job.started_at).total_seconds():.1f} s"
        return f"✅ `{job.id}` finished{took}."
    if job.status == "cancelled":
        return f"🚫 `{job.id}` was cancelled."
    return f"❌ `{job.id}` failed: {clip(job.error or 'unknown error', 1500)}"
