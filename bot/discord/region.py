"""🖌️ Vary (Region) on Discord: choose a part of the picture, edit the prompt, repaint that part.

Discord has no brush, so the region is a preset or a box (:mod:`generation.regions`)::

    🖌️ Vary (Region)           an ephemeral message, only to whoever clicked, with a select
    easel:reg:<job>:<n>        menu of regions: left/right/top/bottom half, centre, custom box
    choose a region            a modal: the job's prompt and the region (the preset's word, or
    easel:region:<job>:<n>     for a custom box "25,25,50,50"), both editable; a box is
                               "X,Y,W,H" in percent of the picture
    submit                     ``Service.inpaint`` with ``region_mask(region, image size)`` and
    easel:regform:<job>:<n>    the prompt; the status message and result follow like any action

Nothing here lives in memory between the steps: the select is a dynamic item and the modal is
sent stopped (discord.py keeps no copy) and its submission is routed by its ``custom_id``
(:meth:`RegionFlow.on_modal_interaction`), so every step still works after a restart, and two
people varying the same image never share state. Each step looks the job up as the member who
acts: a job of another server is "not found". A bad region, an empty prompt or a refusal of the
Service is answered ephemerally; nothing is queued.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import discord

from bot.chat.actions import REGION_LABELS
from bot.chat.texts import MARKDOWN, clip
from generation.actions import parent_image
from generation.regions import USAGE, region_mask
from generation.requests import InpaintRequest, Origin
from generation.service import Accepted, Service

if TYPE_CHECKING:
    from bot.discord.actions import DiscordActions

_JOB = r"(?P<job>[a-z0-9]{4,32}):(?P<index>[1-9]\d?)"
SELECT_ID_RE = re.compile(rf"easel:region:{_JOB}")
FORM_ID_RE = re.compile(rf"easel:regform:{_JOB}")

BOX = "box"
BOX_EXAMPLE = "25,25,50,50"  # what the region field first holds for a custom box
# (value, label, description) of each choice in the select menu
CHOICES = (
    ("left", REGION_LABELS["left"], "The left 50% of the picture"),
    ("right", REGION_LABELS["right"], "The right 50% of the picture"),
    ("top", REGION_LABELS["top"], "The top 50% of the picture"),
    ("bottom", REGION_LABELS["bottom"], "The bottom 50% of the picture"),
    ("centre", REGION_LABELS["centre"], "The middle half of each side (25% to 75%)"),
    (BOX, "Custom box…", "Type X,Y,W,H in percent next (from the top left)"),
)
PROMPT_FIELD = "prompt"
REGION_FIELD = "region"
MODAL_PROMPT_MAX = 4000  # the longest text input Discord accepts
MODAL_TITLE_MAX = 45  # Discord's limit on a modal's title and a label's text
DESCRIPTION_MAX = 100  # ... and on a label's description


def select_id(job_id: str, index: int) -> str:
    """The select menu's custom id; ``index`` is 0-based and written 1-based."""
    return f"easel:region:{job_id}:{index + 1}"


def form_id(job_id: str, index: int) -> str:
    """The modal's custom id."""
    return f"easel:regform:{job_id}:{index + 1}"


def parse_form_id(value: str) -> tuple[str, int] | None:
    """``(job id, 0-based index)`` of a Vary (Region) modal's custom id, else None."""
    match = FORM_ID_RE.fullmatch(value)
    return None if match is None else (match["job"], int(match["index"]) - 1)


def region_default(choice: str) -> str:
    """What the modal's region field first holds for a choice of the select menu."""
    return BOX_EXAMPLE if choice == BOX else choice


def what(job_id: str, index: int) -> str:
    return f"image {index + 1} of {MARKDOWN.code(job_id)}"


def offer_text(job_id: str, index: int) -> str:
    return (
        f"🖌️ Vary (Region) of {what(job_id, index)}: choose the part to repaint. "
        "Next you can change the prompt, or type a box X,Y,W,H in percent."
    )


def submitted_values(data: Mapping[str, Any] | None) -> dict[str, str]:
    """The text a modal submission carries, by field ``custom_id`` (in action rows or labels)."""

    def walk(node: Any) -> Iterator[tuple[str, str]]:
        if isinstance(node, Mapping):
            if isinstance(node.get("custom_id"), str) and isinstance(node.get("value"), str):
                yield node["custom_id"], node["value"]
            for key in ("components", "component"):
                yield from walk(node.get(key))
        elif isinstance(node, list):
            for child in node:
                yield from walk(child)

    return dict(walk((data or {}).get("components")))


class RegionHandler(Protocol):
    async def on_region_choice(
        self, interaction: discord.Interaction[Any], job_id: str, index: int, choice: str
    ) -> None: ...


class RegionSelect(
    discord.ui.DynamicItem[discord.ui.Select[discord.ui.View]], template=SELECT_ID_RE
):
    """The select menu of regions (a dynamic item: it works on messages of an earlier process)."""

    def __init__(self, job_id: str, index: int) -> None:
        super().__init__(
            discord.ui.Select(
                custom_id=select_id(job_id, index),
                placeholder="Choose the part to repaint",
                options=[
                    discord.SelectOption(label=label, value=value, description=description)
                    for value, label, description in CHOICES
                ],
            )
        )
        self.job_id = job_id
        self.index = index

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> RegionSelect:
        return cls(match["job"], int(match["index"]) - 1)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        actions = getattr(interaction.client, "easel_buttons", None)
        handler: RegionHandler | None = getattr(actions, "region", None)
        if handler is None or not self.item.values:  # pragma: no cover - not Easel's bot
            await interaction.response.send_message("This menu is not active.", ephemeral=True)
            return
        await handler.on_region_choice(interaction, self.job_id, self.index, self.item.values[0])


def region_view(job_id: str, index: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(RegionSelect(job_id, index))
    view.stop()  # routed by Bot.add_dynamic_items, never kept in the view store
    return view


def region_modal(
    job_id: str, index: int, prompt: str, choice: str, *, prompt_limit: int = MODAL_PROMPT_MAX
) -> discord.ui.Modal:
    """The modal: the prompt (``prompt``, editable, at most ``prompt_limit`` characters: the
    config's, within Discord's) and the region (``choice``'s default)."""
    limit = max(1, min(prompt_limit, MODAL_PROMPT_MAX))
    modal = discord.ui.Modal(
        title=clip(f"Vary (Region) of image {index + 1} of {job_id}", MODAL_TITLE_MAX),
        custom_id=form_id(job_id, index),
        timeout=None,
    )
    modal.add_item(
        discord.ui.Label(
            text="Prompt",
            description="What to paint in the region (the picture's prompt: edit it)",
            component=discord.ui.TextInput(
                custom_id=PROMPT_FIELD,
                style=discord.TextStyle.paragraph,
                default=prompt[:limit],
                max_length=limit,
                required=True,
            ),
        )
    )
    modal.add_item(
        discord.ui.Label(
            text="Region",
            description=clip(USAGE[:1].upper() + USAGE[1:], DESCRIPTION_MAX),
            component=discord.ui.TextInput(
                custom_id=REGION_FIELD,
                default=region_default(choice),
                max_length=40,
                required=True,
            ),
        )
    )
    modal.stop()  # its submission is routed by custom id (RegionFlow.on_modal_interaction)
    return modal


class RegionFlow:
    """The three steps; ``actions`` gives the origin, the Service and the "queue it" step."""

    def __init__(self, actions: DiscordActions) -> None:
        self.actions = actions

    @property
    def service(self) -> Service:
        return self.actions.app.service

    async def offer(self, interaction: discord.Interaction[Any], job_id: str, index: int) -> None:
        """The 🖌️ button: the regions to choose from, only to whoever clicked."""
        job = await self.service.job_for(self.actions.origin(interaction), job_id)
        parent_image(job, index)  # a job without that image is refused now, not after the modal
        await interaction.response.send_message(
            offer_text(job.id, index), view=region_view(job.id, index), ephemeral=True
        )

    async def on_region_choice(
        self, interaction: discord.Interaction[Any], job_id: str, index: int, choice: str
    ) -> None:
        """A region chosen: the modal, with the job's prompt."""

        async def step() -> None:
            job = await self.service.job_for(self.actions.origin(interaction), job_id)
            parent_image(job, index)
            limit = self.actions.app.config.generation.max_prompt_length
            modal = region_modal(job.id, index, job.prompt, choice, prompt_limit=limit)
            await interaction.response.send_modal(modal)

        await self.actions.guarded(interaction, "region menu", job_id, step)

    async def on_modal_interaction(self, interaction: discord.Interaction[Any]) -> None:
        """Any modal submission; those of a Vary (Region) modal are handled here."""
        if interaction.type is not discord.InteractionType.modal_submit:
            return
        data: Mapping[str, Any] = interaction.data or {}  # type: ignore[assignment]
        parsed = parse_form_id(str(data.get("custom_id", "")))
        if parsed is None:
            return
        job_id, index = parsed
        values = submitted_values(data)

        async def step() -> None:
            await self.submit(interaction, job_id, index, values)

        await self.actions.guarded(interaction, "region form", job_id, step)

    async def submit(
        self,
        interaction: discord.Interaction[Any],
        job_id: str,
        index: int,
        values: Mapping[str, str],
    ) -> Accepted | None:
        """Repaint the region: refused (ephemerally, nothing queued) when the region is not one,
        the prompt is empty, or the Service says no."""
        prompt = values.get(PROMPT_FIELD, "")
        region = values.get(REGION_FIELD, "")

        async def run(origin: Origin) -> Accepted:
            job = await self.service.job_for(origin, job_id)
            image = parent_image(job, index)
            mask = await asyncio.to_thread(region_mask, region, (image.width, image.height))
            request = InpaintRequest(mask=mask, prompt=prompt)
            return await self.service.inpaint(origin, job_id, request, index=index)

        return await self.actions.submit(interaction, run)
