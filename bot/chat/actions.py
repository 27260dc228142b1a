"""The actions a chat offers on a result, named once for Discord and Telegram.

Buttons and reactions carry short codes (they must fit a Discord ``custom_id`` and Telegram's
64-byte callback data, and messages posted by older versions must keep working); every code
leads to one :class:`generation.actions.JobAction`, which the Service carries out.
"""

from __future__ import annotations

from generation.actions import JobAction

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
