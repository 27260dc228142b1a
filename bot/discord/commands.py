"""The members' slash commands: ``/draw``, ``/rerun``, ``/show``, ``/history``, ``/queue``,
``/cancel``. (Admins' commands: :mod:`bot.discord.admin`.)

``/draw`` takes the shared ``/draw`` grammar in its prompt (``--no``, ``--seed``, ``--ar`` ...)
and the same options as slash options; an option given both ways follows the one rule of
:func:`bot.grammar.merge_fields` (the prompt's wins; negative prompts are joined).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.chat.texts import MARKDOWN, describe_error, history_text, not_an_image, queue_text
from bot.discord.buttons import result_view
from bot.discord.origin import MESSAGE_LIMIT, reply
from bot.discord.render import render_result, result_content
from bot.grammar import merge_fields, parse_draw
from generation.actions import JobAction
from generation.errors import EaselError, ImageRejected
from generation.model_sources import model_capabilities
from generation.requests import DrawRequest, Origin
from generation.samplers import SAMPLERS
from generation.service import Accepted
from generation.sizing import parse_size
from generation.spec import MAX_SEED
from generation.uploads import check_upload_size

if TYPE_CHECKING:
    from bot.discord.client import EaselBot

ASPECTS = ("1:1", "3:2", "2:3", "16:9", "9:16")
DISCORD_OPTION_MAX = 6000  # the longest string option Discord accepts


def limit_text_options(
    command: app_commands.Command[Any, Any, Any], names: tuple[str, ...], limit: int
) -> None:
    """Declare ``names`` (string options of ``command``) at most ``limit`` characters long.

    The limit is the config's, known only when the bot is built, while the decorator runs at
    import; the cog's copy of the command gets parameters of its own (the class's are shared
    by every copy, so they are replaced, not changed).
    """
    params = dict(command._params)
    for name in names:
        params[name] = replace(params[name], max_value=limit)
    command._params = params


def slash_fields(**options: Any) -> DrawRequest:
    """The slash command's own options as a request (``size`` is "WIDTHxHEIGHT")."""
    given = {key: value for key, value in options.items() if value is not None}
    size = given.pop("size", None)
    if size is not None:
        given["width"], given["height"] = parse_size(size)
    style = given.pop("style", None)
    if style is not None:  # "cinematic, ink": several, in order, as --style takes them
        given["styles"] = tuple(part.strip() for part in style.split(",") if part.strip())
    return DrawRequest(prompt="", **given)


class UserCommands(commands.Cog):
    def __init__(self, bot: EaselBot) -> None:
        self.bot = bot
        self.app = bot.app
        self.actions = bot.easel_buttons
        # Discord refuses longer text before Easel sees it: declare the configured prompt limit
        # (at most Discord's own), not a fixed number.
        limit = min(self.app.config.generation.max_prompt_length, DISCORD_OPTION_MAX)
        limit_text_options(self.draw, ("prompt", "negative"), limit)

    def _origin(self, interaction: discord.Interaction[Any]) -> Origin:
        return self.actions.origin(interaction)

    @app_commands.command(name="draw", description="Draw a picture from a text prompt")
    @app_commands.describe(
        prompt="What to draw; --no, --seed, --ar, --steps, --model, --n, --hires, --refiner too",
        negative="What to keep out of the picture",
        seed="Seed (the same seed and settings redo the same picture)",
        steps="Denoising steps",
        cfg="How closely to follow the prompt (CFG scale)",
        size="WIDTHxHEIGHT in pixels, e.g. 512x768",
        aspect="Aspect ratio (keeps the usual size, changes the shape)",
        sampler="Sampler",
        model="Model (those this server allows)",
        count="How many pictures (1-4)",
        image="A picture to start from (image-to-image)",
        strength="How far to move away from the picture (0-1, image-to-image)",
        style="A prompt style of this server (/styles list)",
        refiner="SDXL models: a refiner that finishes the picture",
    )
    @app_commands.choices(aspect=[app_commands.Choice(name=a, value=a) for a in ASPECTS])
    async def draw(
        self,
        interaction: discord.Interaction[Any],
        prompt: app_commands.Range[str, 1, DISCORD_OPTION_MAX],  # see limit_text_options
        negative: app_commands.Range[str, 1, DISCORD_OPTION_MAX] | None = None,
        seed: app_commands.Range[int, 0, MAX_SEED] | None = None,
        steps: app_commands.Range[int, 1, 500] | None = None,
        cfg: app_commands.Range[float, 0.0, 100.0] | None = None,
        size: str | None = None,
        aspect: str | None = None,
        sampler: str | None = None,
        model: str | None = None,
        count: app_commands.Range[int, 1, 4] | None = None,
        image: discord.Attachment | None = None,
        strength: app_commands.Range[float, 0.01, 1.0] | None = None,
        style: app_commands.Range[str, 1, 200] | None = None,
        refiner: str | None = None,
    ) -> None:
        settings = self.bot.settings
        try:
            fields = slash_fields(
                negative_prompt=negative,
                seed=seed,
                steps=steps,
                cfg=cfg,
                size=size,
                aspect=aspect,
                sampler=sampler,
                model=model,
                count=count,
                strength=strength,
                style=style,
                refiner=refiner,
            )
            request = merge_fields(parse_draw(prompt), fields)
            if image is not None:  # checked before anything is downloaded
                check_upload_size(image.size, settings.max_upload_bytes)
                if image.content_type and not image.content_type.startswith("image/"):
                    raise ImageRejected(not_an_image(image.content_type.split(";")[0]))
        except EaselError as error:
            await reply(interaction, describe_error(error))
            return

        async def run(origin: Origin) -> Accepted:
            final = request
            if image is not None:
                final = replace(request, init_image=await image.read())
            return await self.app.service.draw(
                origin, final, max_upload_bytes=settings.max_upload_bytes
            )

        await self.actions.submit(interaction, run)

    @draw.autocomplete("model")
    async def model_autocomplete(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        return await self._models_offered(interaction, current, "draws")

    @draw.autocomplete("refiner")
    async def refiner_autocomplete(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        return await self._models_offered(interaction, current, "refines")

    async def _models_offered(
        self, interaction: discord.Interaction[Any], current: str, able: str
    ) -> list[app_commands.Choice[str]]:
        """The models this server allows that can do ``able`` ("draws": be a job's model,
        "refines": be an SDXL refiner), matching what is typed."""
        settings = await self.app.service.scope_settings(self._origin(interaction))
        names = [
            m.name
            for m in await self.app.service.list_models()
            if m.kind != "upscaler"
            and model_capabilities(m).get(able) is not False
            and (settings.allowed_models is None or m.name in settings.allowed_models)
        ]
        needle = current.lower()
        return [app_commands.Choice(name=n, value=n) for n in names if needle in n.lower()][:25]

    @draw.autocomplete("sampler")
    async def sampler_autocomplete(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        """The samplers of the model chosen (else this server's): a Flux model offers one."""
        chosen = getattr(interaction.namespace, "model", None)
        if chosen:
            found = [m for m in await self.app.service.list_models() if m.name == chosen]
            model = found[0] if found else None
        else:
            model = await self.app.service.current_model(self._origin(interaction))
        offered = model_capabilities(model).get("samplers") if model is not None else None
        names = list(offered) if isinstance(offered, list | tuple) else list(SAMPLERS)
        needle = current.lower()
        return [app_commands.Choice(name=n, value=n) for n in names if needle in n.lower()][:25]

    @draw.autocomplete("style")
    async def style_autocomplete(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        styles = await self.app.service.styles(self._origin(interaction))
        needle = current.lower()
        names = [s.name for s in styles if needle in s.name.lower()]
        return [app_commands.Choice(name=n, value=n) for n in names][:25]

    @app_commands.command(name="rerun", description="Draw a job again with the same seeds")
    @app_commands.describe(id="The job id (from the result or /history)")
    async def rerun(self, interaction: discord.Interaction[Any], id: str) -> None:
        async def run(origin: Origin) -> Accepted:
            return await self.app.service.act(origin, JobAction.RERUN, id)

        await self.actions.submit(interaction, run)

    @app_commands.command(name="show", description="Post a job again, with its buttons")
    @app_commands.describe(id="The job id")
    async def show(self, interaction: discord.Interaction[Any], id: str) -> None:
        try:
            job = await self.app.service.job_for(self._origin(interaction), id)
        except EaselError as error:
            await reply(interaction, describe_error(error))
            return
        if job.status != "succeeded":
            await reply(interaction, f"Job `{job.id}` is {job.status}; nothing to show yet.")
            return
        await interaction.response.defer(thinking=True)
        pngs = await self.app.service.read_images(job)  # files are read off the event loop
        spoiler = await self.bot.front_end.spoiler_for(job, str(interaction.channel_id))
        rendered = await asyncio.to_thread(render_result, job, pngs, spoiler=spoiler)
        await interaction.followup.send(
            content=result_content(job, None),
            embed=rendered.embed,
            files=rendered.files,
            view=result_view(job.id, len(job.images)),
        )

    @app_commands.command(name="history", description="Your recent jobs (only you see this)")
    @app_commands.describe(search="Only prompts containing this text", limit="How many (1-25)")
    async def history(
        self,
        interaction: discord.Interaction[Any],
        search: str | None = None,
        limit: app_commands.Range[int, 1, 25] = 10,
    ) -> None:
        try:
            jobs = await self.app.service.history(
                self._origin(interaction), limit=limit, query=search
            )
        except EaselError as error:
            await reply(interaction, describe_error(error))
            return
        await reply(interaction, history_text(jobs, MARKDOWN, MESSAGE_LIMIT))

    @app_commands.command(name="queue", description="Where your jobs are in the queue")
    async def queue(self, interaction: discord.Interaction[Any]) -> None:
        status = await self.app.service.queue_status(self._origin(interaction))
        text = queue_text(status, MARKDOWN)
        await reply(interaction, text)

    @app_commands.command(name="cancel", description="Cancel a queued or running job")
    @app_commands.describe(id="The job id")
    async def cancel(self, interaction: discord.Interaction[Any], id: str) -> None:
        try:
            cancelled = await self.app.service.cancel(self._origin(interaction), id)
        except EaselError as error:
            await reply(interaction, describe_error(error))
            return
        await reply(interaction, f"🚫 Cancelled `{cancelled.id}`.")
