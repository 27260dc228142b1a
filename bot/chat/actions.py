"""The actions a chat offers on a result, named once for Discord and Telegram.

Buttons and reactions carry short codes (they must fit a Discord ``custom_id`` and Telegram's
64-byte callback data, and messages posted by older versions must keep working); every code
leads to one :class:`generation.actions.JobAction`, which the Service carries out.
"""

from __future__ import annotations

from generation.actions import JobAction
from generation.outpainting import Outpaint, pan, zoom_out

VS16 = "\ufe0f"  # emoji presentation selector: "❤️" and "❤" are the same reaction

# What an accepted action is called in the short note that confirms it.
DOING = {
    JobAction.RERUN: "🔁 Re-running",
    JobAction.REROLL: "🔄 Rerolling",
    JobAction.UPSCALE: "⬆️ Upscaling",
    JobAction.VARY: "🎨 Varying",
}

# The actions a reaction may trigger (Telegram's ``reactions`` setting names them).
REACTION_ACTIONS = (JobAction.REROLL, JobAction.UPSCALE, JobAction.VARY)


def emoji_key(emoji: str) -> str:
    """An emoji as compared: without the presentation selector (U+FE0F)."""
    return emoji.replace(VS16, "")


# The buttons under a result: an emoji and a word, the same on both chats ("🔄 Reroll",
# "⬆️ Upscale 1"). Discord shows the emoji in its own field (``button_parts``), Telegram in the
# text (``button_text``).
BUTTONS = {
    "reroll": ("🔄", "Reroll"),
    "upscale": ("⬆️", "Upscale"),
    "vary": ("🎨", "Vary"),
    "zoom": ("🔍", "Zoom Out"),  # label completed by the factor: "Zoom Out 2x"
    "left": ("⬅️", "Pan left"),
    "right": ("➡️", "Pan right"),
    "up": ("⬆️", "Pan up"),
    "down": ("⬇️", "Pan down"),
    "region": ("🖌️", "Vary (Region)"),
    "info": ("ℹ️", "Info"),
    "delete": ("🗑️", "Delete"),
    "png": ("📄", "PNG"),
}


def button_parts(action: str, index: int | None = None) -> tuple[str, str]:
    """(emoji, label) of a result button; ``index`` (0-based) numbers the image it acts on."""
    emoji, word = BUTTONS[action]
    return emoji, word if index is None else f"{word} {index + 1}"


def button_text(action: str, index: int | None = None) -> str:
    emoji, label = button_parts(action, index)
    return f"{emoji} {label}"


# Outpaint buttons (Zoom Out and Pan), by the short code a button carries: one picture's
# actions, like Midjourney's under an upscaled image.
OUTPAINTS: dict[str, Outpaint] = {
    "z15": zoom_out(1.5),
    "z2": zoom_out(2),
    "pl": pan("left"),
    "pr": pan("right"),
    "pu": pan("up"),
    "pd": pan("down"),
}


def outpaint_button(code: str) -> tuple[str, str]:
    """(emoji, label) of an outpaint button: "🔍 Zoom Out 1.5x", "⬅️ Pan left"."""
    how = OUTPAINTS[code]
    if how.kind == "zoom":
        emoji, word = BUTTONS["zoom"]
        return emoji, f"{word} {how.value}x"
    return BUTTONS[how.value]


def outpaint_doing(how: Outpaint) -> str:
    """The note that confirms an outpaint: "🔍 Zooming out 2x", "⬅️ Panning left"."""
    if how.kind == "zoom":
        return f"{BUTTONS['zoom'][0]} Zooming out {how.value}x"
    return f"{BUTTONS[how.value][0]} Panning {how.value}"


REGION_DOING = "🖌️ Repainting the region"

# The region presets (generation.regions) as both chats' menus name them.
REGION_LABELS = {
    "left": "Left half",
    "right": "Right half",
    "top": "Top half",
    "bottom": "Bottom half",
    "centre": "Centre",
}
