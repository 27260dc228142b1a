"""How a result looks on Discord: the embed and its files (pure; the words are in bot.chat).

A result is one message: the image (a 2x2 grid when the job made several, with every single
image attached as well, so each is reachable), an embed with the parameters a person needs to
redo it (prompt, negative prompt, seed, model, steps, job id), and the buttons of
:mod:`bot.discord.buttons`. In a channel whose NSFW policy is "spoiler" every file is sent as a
spoiler and the embed shows no image (embeds cannot blur).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import discord

from bot.chat.grid import grid_png
from bot.chat.texts import MARKDOWN, clip, lineage, result_headline, seeds_text
from storage.records import JobRecord

# Discord's smallest upload limit is 10 MiB per message; stay below it with some room.
UPLOAD_BUDGET = 9 * 1024 * 1024
EMBED_COLOUR = discord.Colour(0x7C5CFF)


@dataclass(frozen=True)
class RenderedResult:
    embed: discord.Embed
    files: list[discord.File]


def result_content(job: JobRecord, requester: str | None) -> str:
    """The text of a result message: who it is for and the prompt; for a job made from
    another one, first what it is and of what ("Upscale of image 1 of `k7m3xq2p`, for @alice")."""
    prompt = clip(job.prompt, 120)
    headline = result_headline(job, MARKDOWN, requester)
    if headline is not None:
        return f"{headline}\n{prompt}"
    return f"{requester} {prompt}" if requester else prompt


def result_embed(job: JobRecord, image_name: str | None) -> discord.Embed:
    embed = discord.Embed(description=clip(job.prompt, 4000), colour=EMBED_COLOUR)
    embed.title = "Easel"
    if job.negative_prompt:
        embed.add_field(name="Negative prompt", value=clip(job.negative_prompt, 1000), inline=False)
    embed.add_field(name="Seed", value=seeds_text(job))
    embed.add_field(name="Model", value=clip(job.model, 200))
    refiner = job.spec.refiner
    if refiner is not None:
        embed.add_field(
            name="Refiner", value=f"{clip(refiner.model, 200)} at {refiner.switch_at:g}"
        )
    embed.add_field(name="Steps", value=str(job.steps))
    embed.add_field(name="Size", value=f"{job.width}x{job.height}")
    embed.add_field(name="Sampler", value=job.sampler)
    embed.add_field(name="CFG", value=f"{job.cfg:g}")
    if job.strength is not None:
        embed.add_field(name="Strength", value=f"{job.strength:g}")
    embed.add_field(name="Job", value=f"`{job.id}`")
    origin = lineage(job, MARKDOWN)
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
