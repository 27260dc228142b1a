"""The LoRA and embedding lines of the chats' ``/models`` answers (Discord and Telegram)."""

from __future__ import annotations

from collections.abc import Sequence

from storage.addons import AddOnRecord


def addon_lines(
    addons: Sequence[AddOnRecord], code: bool, allowed_loras: Sequence[str] | None = None
) -> list[str]:
    """One line per registered LoRA / embedding, saying how a prompt uses it; none when there
    are none. ``code``: names in Markdown backticks (Discord), else plain (Telegram);
    ``allowed_loras``: the scope's setting (None: every LoRA), to mark those denied."""
    lines = []
    for addon in addons:
        name = f"`{addon.name}`" if code else addon.name
        use = f"<lora:{addon.name}:1>" if addon.kind == "lora" else addon.name
        family = f", {addon.family}" if addon.family else ""
        denied = addon.kind == "lora" and allowed_loras is not None
        if denied and addon.name not in (allowed_loras or ()):
            lines.append(f"• {name} ({addon.kind}{family}): ⛔ not allowed here")
            continue
        lines.append(f"• {name} ({addon.kind}{family}): write {use}")
    if lines:
        lines.insert(0, "LoRA and embeddings:")
    return lines
