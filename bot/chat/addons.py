"""The LoRA and embedding lines of the chats' ``/models`` answers (Discord and Telegram)."""

from __future__ import annotations

from collections.abc import Sequence

from storage.addons import AddOnRecord


def addon_lines(addons: Sequence[AddOnRecord], code: bool) -> list[str]:
    """One line per registered LoRA / embedding, saying how a prompt uses it; none when there
    are none. ``code``: names in Markdown backticks (Discord), else plain (Telegram)."""
    lines = []
    for addon in addons:
        name = f"`{addon.name}`" if code else addon.name
        use = f"<lora:{addon.name}:1>" if addon.kind == "lora" else addon.name
        family = f", {addon.family}" if addon.family else ""
        lines.append(f"• {name} ({addon.kind}{family}): write {use}")
    if lines:
        lines.insert(0, "LoRA and embeddings:")
    return lines
