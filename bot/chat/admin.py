"""What the chat admin commands of Discord and Telegram share: reading their arguments, and
the list of prompt styles."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from generation.styles import Style

RESET_WORDS = frozenset({"default", "reset", "none", "-"})


def split_words(text: str) -> list[str]:
    """``"cat, dog  bird"`` -> ``["cat", "dog", "bird"]``: commas (or, without any comma,
    spaces) separate words, so ``"red panda, fox"`` blocks "red panda" and "fox"."""
    parts = text.replace("\n", ",").split(",") if "," in text else text.split()
    return [part.strip() for part in parts if part.strip()]


def parse_setting_value(text: str) -> Any:
    """A ``key=value`` value as typed: "default" (or reset, none, -) means the server's value
    (None); numbers become numbers; anything else stays text for the Service to refuse."""
    if text.lower() in RESET_WORDS:
        return None
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    try:
        return float(text.replace(",", "."))
    except ValueError:
        return text


def split_style(text: str) -> tuple[str, str]:
    """``"prompt text | negative text"`` -> (prompt, negative): a style as typed in a chat."""
    prompt, _, negative = text.partition("|")
    return prompt.strip(), negative.strip()


def styles_text(styles: Sequence[Style], code: Callable[[str], str], limit: int) -> str:
    """The styles a scope may use, one a line, within ``limit`` characters."""
    if not styles:
        return "🎨 No prompt styles here yet. Admins add one with /styles add."
    lines = ["🎨 Prompt styles (use with --style NAME):"]
    for style in styles:
        negative = f" (no: {style.negative_prompt})" if style.negative_prompt else ""
        lines.append(f"• {code(style.name)}: {style.prompt or '{prompt}'}{negative}")
    text = "\n".join(lines)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
