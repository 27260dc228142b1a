"""``/models allow|deny NAME`` on Discord and Telegram: which models and LoRA a server or chat
may use (its ``allowed_models`` / ``allowed_loras``; None = every registered one).

    text = await allow_or_deny(service, origin, "sketch", allow=False, code=True)

A name that is a registered LoRA changes ``allowed_loras``, any other ``allowed_models`` (the
Service refuses an unknown model's name). Denying the last model is refused (nothing could be
drawn); denying the last LoRA is fine (prompts then take none). The answer is one line for
the chat; ``code`` writes names in Markdown backticks (Discord).
"""

from __future__ import annotations

from typing import Any

from generation.requests import Origin
from generation.service import Service


async def allow_or_deny(
    service: Service, origin: Origin, name: str, *, allow: bool, code: bool
) -> str:
    name = name.strip()
    shown = f"`{name}`" if code else name
    loras = [a.name for a in await service.list_addons("lora")]
    settings = await service.scope_settings(origin)
    if name in loras:
        what, key, current, every = f"LoRA {shown}", "allowed_loras", settings.allowed_loras, loras
    else:
        models = [m.name for m in await service.list_models() if m.kind != "upscaler"]
        what, key, current, every = shown, "allowed_models", settings.allowed_models, models
    kind = "LoRA" if key == "allowed_loras" else "model"
    if allow:
        if current is None:
            return f"Every {kind} is already allowed here."
        await service.update_scope_settings(origin, **{key: [*current, name]})
        return f"✅ {what} is allowed here."
    names = list(current) if current is not None else every
    if name not in names:
        return f"{what} is not allowed here anyway."
    kept = [n for n in names if n != name]
    changes: dict[str, Any] = {key: kept}
    if key == "allowed_models":
        if not kept:
            return "🚫 That would leave no model at all; allow another one first."
        if settings.default_model == name:
            changes["default_model"] = None
    await service.update_scope_settings(origin, **changes)
    return f"⛔ {what} is denied here."
