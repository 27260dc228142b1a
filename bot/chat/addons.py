"""The LoRA and embedding lines of the chats' ``/models`` answers (Discord and Telegram)."""

from __future__ import annotations

from collections.abc import Sequence

from generation.families import FAMILIES
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


OWNERS_ONLY = (
    "🚫 Only Easel's owners can add LoRA or embeddings (every server shares them); this "
    "server's admins can allow or deny the registered ones with /models allow|deny."
)


def added_text(addon: AddOnRecord, code: bool) -> str:
    """The answer to a LoRA or embedding registered from a chat: how prompts use it."""
    name = f"`{addon.name}`" if code else addon.name
    use = f"<lora:{addon.name}:0.8>" if addon.kind == "lora" else addon.name
    known = FAMILIES.get(addon.family or "")
    family = f" for {known.label} models" if known is not None else ""
    what = "LoRA" if addon.kind == "lora" else "Embedding"
    return f"✅ {what} {name} registered{family}: write {use} in a prompt."
