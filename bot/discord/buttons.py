"""The buttons under a result, as discord.py dynamic items: they keep working after a restart.

Every button's ``custom_id`` carries the job id (and the image number where it matters)::

    easel:reroll:<job>      🔄 Reroll: same parameters, new seed
    easel:up:<job>:<n>      ⬆️ Upscale n: upscale image n (1-based)
    easel:var:<job>:<n>     🎨 Vary n: a variation of image n
    easel:info:<job>        ℹ️ Info: every parameter, only to whoever asked
    easel:del:<job>         🗑️ Delete: delete the message (requester or admin)
    easel:z15:<job>:<n>     🔍 Zoom Out 1.5x: image n centred on a canvas 1.5 times its size
    easel:z2:<job>:<n>      🔍 Zoom Out 2x: likewise, twice its size
    easel:pl:<job>:<n>      ⬅️ Pan left (pr ➡️ right, pu ⬆️ up, pd ⬇️ down): half a side more
    easel:reg:<job>:<n>     🖌️ Vary (Region): choose a part of image n, then repaint it
                            (:mod:`bot.discord.region`)

The outpaint codes are the chats' shared short codes (``bot.chat.actions.OUTPAINTS``). A result
with one image carries them all (like Midjourney's upscaled image); a grid keeps its U and V
buttons, and its U/V results carry the rest.

:class:`ResultButton` is registered once with ``Bot.add_dynamic_items``; discord.py rebuilds it
from the ``custom_id`` of any click, also on messages a previous process posted, so no view
state has to survive. The click is handed to the bot's :class:`ButtonHandler`.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

import discord

from bot.chat.actions import button_parts, outpaint_button

REGION = "reg"  # the code of 🖌️ Vary (Region)
ZOOMS = ("z15", "z2")
PANS = ("pl", "pr", "pu", "pd")
ACTIONS = ("reroll", "up", "var", "info", "del", *ZOOMS, *PANS, REGION)
CUSTOM_ID_RE = re.compile(
    rf"easel:(?P<action>{'|'.join(ACTIONS)}):(?P<job>[a-z0-9]{{4,32}})(?::(?P<index>[1-9]\d?))?"
)
MAX_BUTTON_IMAGES = 4  # one row of U and one of V buttons, like Midjourney


class ButtonHandler(Protocol):
    async def on_result_button(
        self, interaction: discord.Interaction[Any], action: str, job_id: str, index: int
    ) -> None:
        """``index`` is 0-based (0 for buttons without an image number)."""


def custom_id(action: str, job_id: str, index: int | None = None) -> str:
    """The custom id of a button; ``index`` is 0-based and written 1-based."""
    if action not in ACTIONS:
        raise ValueError(f"unknown button action {action!r}")
    return f"easel:{action}:{job_id}" + ("" if index is None else f":{index + 1}")


def parse_custom_id(value: str) -> tuple[str, str, int] | None:
    """``(action, job id, 0-based index)`` of an Easel button id, else None."""
    match = CUSTOM_ID_RE.fullmatch(value)
    if match is None:
        return None
    index = int(match["index"]) - 1 if match["index"] else 0
    return match["action"], match["job"], index


class ResultButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=CUSTOM_ID_RE
):
    def __init__(
        self,
        action: str,
        job_id: str,
        index: int | None = None,
        *,
        label: str | None = None,
        emoji: str | None = None,
        style: discord.ButtonStyle = discord.ButtonStyle.secondary,
        row: int | None = None,
    ) -> None:
        super().__init__(
            discord.ui.Button(
                label=label,
                emoji=emoji,
                style=style,
                custom_id=custom_id(action, job_id, index),
                row=row,
            )
        )
        self.action = action
        self.job_id = job_id
        self.index = index or 0

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> ResultButton:
        index = int(match["index"]) - 1 if match["index"] else None
        return cls(match["action"], match["job"], index)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        handler: ButtonHandler | None = getattr(interaction.client, "easel_buttons", None)
        if handler is None:  # pragma: no cover - a bot without Easel's handler
            await interaction.response.send_message("This button is not active.", ephemeral=True)
            return
        await handler.on_result_button(interaction, self.action, self.job_id, self.index)


def result_view(job_id: str, image_count: int) -> discord.ui.View:
    """The buttons of a finished job with ``image_count`` images, each an emoji and a word.

    One image, three rows: "🔄 Reroll", "⬆️ Upscale", "🎨 Vary", "ℹ️ Info", "🗑️ Delete"; then
    "🔍 Zoom Out 1.5x", "🔍 Zoom Out 2x", "🖌️ Vary (Region)"; then "⬅️ Pan left", "➡️ Pan right",
    "⬆️ Pan up", "⬇️ Pan down". Several: Reroll, Info, Delete, then a row of "⬆️ Upscale n" and
    one of "🎨 Vary n" (at most 4 each: Discord allows 5 buttons per row, 5 rows and
    80-character labels). The custom ids are those of :func:`custom_id`, unchanged, so buttons
    posted by older versions keep working."""
    view = discord.ui.View(timeout=None)

    def add(
        code: str,
        action: str,
        index: int | None,
        row: int,
        style: discord.ButtonStyle = discord.ButtonStyle.secondary,
    ) -> None:
        emoji, label = button_parts(action, index if image_count > 1 else None)
        view.add_item(
            ResultButton(code, job_id, index, label=label, emoji=emoji, style=style, row=row)
        )

    if image_count <= 1:
        add("reroll", "reroll", None, 0, discord.ButtonStyle.primary)
        add("up", "upscale", 0, 0)
        add("var", "vary", 0, 0)
        add("info", "info", None, 0)
        add("del", "delete", None, 0, discord.ButtonStyle.danger)
        for code in ZOOMS:
            emoji, label = outpaint_button(code)
            view.add_item(ResultButton(code, job_id, 0, label=label, emoji=emoji, row=1))
        add(REGION, "region", 0, 1)
        for code in PANS:
            emoji, label = outpaint_button(code)
            view.add_item(ResultButton(code, job_id, 0, label=label, emoji=emoji, row=2))
    else:
        add("reroll", "reroll", None, 0, discord.ButtonStyle.primary)
        add("info", "info", None, 0)
        add("del", "delete", None, 0, discord.ButtonStyle.danger)
        for index in range(min(image_count, MAX_BUTTON_IMAGES)):
            add("up", "upscale", index, 1)
        for index in range(min(image_count, MAX_BUTTON_IMAGES)):
            add("var", "vary", index, 2)
    # Clicks reach ResultButton through Bot.add_dynamic_items, in this process and after a
    # restart alike; a stopped view is not kept in discord.py's view store, which would
    # otherwise grow by one view per result for the life of the process.
    view.stop()
    return view


def job_id_of_message(message: discord.Message) -> str | None:
    """The job id a result message's buttons carry (what reactions act on)."""
    for row in message.components:
        for child in getattr(row, "children", ()):
            value = getattr(child, "custom_id", None)
            if value:
                parsed = parse_custom_id(value)
                if parsed is not None:
                    return parsed[1]
    return None
