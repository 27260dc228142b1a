"""What the chat admin commands of Discord and Telegram share: reading their arguments."""

from __future__ import annotations

import re
from typing import Any

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
