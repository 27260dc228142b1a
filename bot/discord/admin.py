"""Per-server administration on Discord, stored per server in the database.

``/models list | allow | deny | default | add`` (``add``: a LoRA or embedding file, Easel's
owners only), ``/limits``, ``/blocklist add | remove | list``,
``/styles add | remove`` (``/styles list`` is everyone's) and ``/nsfw``. The commands carry
``default_member_permissions = Manage Server`` so Discord hides them from most members, but
that is only a hint a server can override: every command checks inside that the member has
Manage Server here, or is an owner listed in ``discord.owner_ids``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.chat.addons import OWNERS_ONLY, added_text, addon_lines
from bot.chat.admin import split_words, styles_text
from bot.chat.allowing import allow_or_deny
from bot.chat.texts import MARKDOWN, clip, describe_error, limits_text
from bot.discord.origin import nsfw_mode_for, reply
from generation.addons import MAX_UPLOAD_BYTES
from generation.errors import EaselError, InvalidRequest, PermissionDenied
from generation.policy import NSFW_MODES
from generation.requests import Origin

if TYPE_CHECKING:
    from bot.app import App
    from bot.discord.actions import DiscordActions

ADMIN_ONLY = (
    "🚫 Only members with the Manage Server permission (or Easel's owners) can change this "
    "server's Easel settings."
)
ADMIN_PERMISSIONS = discord.Permissions(manage_guild=True)


class AdminCommands(commands.Cog):
    models = app_commands.Group(
        name="models",
        description="Which models this server may use",
        guild_only=True,
        default_permissions=ADMIN_PERMISSIONS,
    )
    blocklist = app_commands.Group(
        name="blocklist",
        description="Words refused in prompts on this server",
        guild_only=True,
        default_permissions=ADMIN_PERMISSIONS,
    )

    # Everyone may list the styles (to use --style); adding and removing is the admins'.
    styles = app_commands.Group(
        name="styles", description="Prompt styles for --style on this server", guild_only=True
    )

    def __init__(self, app: App, actions: DiscordActions) -> None:
        self.app = app
        self.actions = actions

    async def _admin(self, interaction: discord.Interaction[Any]) -> Origin | None:
        """The admin origin, or None after telling a non-admin why not."""
        origin = self.actions.origin(interaction)
        if interaction.guild_id is None or not origin.is_admin:
            await reply(interaction, ADMIN_ONLY)
            return None
        return origin

    async def _model_names(self) -> list[str]:
        return [m.name for m in await self.app.service.list_models() if m.kind != "upscaler"]

    # ------------------------------------------------------------------ /models

    @models.command(name="list", description="Models and which of them this server allows")
    async def models_list(self, interaction: discord.Interaction[Any]) -> None:
        origin = await self._admin(interaction)
        if origin is None:
            return
        settings = await self.app.service.scope_settings(origin)
        lines = ["**Models**"]
        for model in await self.app.service.list_models():
            if model.kind == "upscaler":
                continue
            allowed = settings.allowed_models is None or model.name in settings.allowed_models
            default = model.name == settings.default_model or (
                settings.default_model is None and model.is_default
            )
            marks = ("✅ allowed" if allowed else "⛔ denied") + (" · default" if default else "")
            lines.append(f"`{model.name}` ({model.kind}) · {marks}")
        lines += addon_lines(
            await self.app.service.list_addons(), code=True, allowed_loras=settings.allowed_loras
        )
        await reply(interaction, "\n".join(lines))

    @models.command(name="add", description="Add a LoRA or embedding file (Easel's owners)")
    @app_commands.describe(
        name="The name prompts use: <lora:NAME:0.8>, or the embedding's word",
        file="The .safetensors file",
        kind="LoRA or textual-inversion embedding",
    )
    @app_commands.choices(
        kind=[
            app_commands.Choice(name="LoRA", value="lora"),
            app_commands.Choice(name="Embedding", value="embedding"),
        ]
    )
    async def models_add(
        self,
        interaction: discord.Interaction[Any],
        name: str,
        file: discord.Attachment,
        kind: str = "lora",
    ) -> None:
        origin = await self._admin(interaction)
        if origin is None:
            return
        try:
            if not origin.is_owner:  # said before a download
                raise PermissionDenied(OWNERS_ONLY)
            if file.size > MAX_UPLOAD_BYTES:
                raise InvalidRequest(
                    f"{file.filename} is {file.size / 1024**2:.0f} MB; a file sent here may be "
                    f"at most {MAX_UPLOAD_BYTES // 1024**2} MB."
                )
            await interaction.response.defer(ephemeral=True, thinking=True)
            added = await self.app.service.add_addon_upload(origin, name, await file.read(), kind)
        except EaselError as error:
            await reply(interaction, describe_error(error))
            return
        await reply(interaction, added_text(added, code=True))

    async def _lora_names(self) -> list[str]:
        return [a.name for a in await self.app.service.list_addons() if a.kind == "lora"]

    @models.command(name="allow", description="Allow a model or a LoRA on this server")
    @app_commands.describe(name="Model or LoRA name")
    async def models_allow(self, interaction: discord.Interaction[Any], name: str) -> None:
        await self._allow_or_deny(interaction, name, allow=True)

    @models.command(name="deny", description="Stop this server from using a model or a LoRA")
    @app_commands.describe(name="Model or LoRA name")
    async def models_deny(self, interaction: discord.Interaction[Any], name: str) -> None:
        await self._allow_or_deny(interaction, name, allow=False)

    async def _allow_or_deny(
        self, interaction: discord.Interaction[Any], name: str, *, allow: bool
    ) -> None:
        origin = await self._admin(interaction)
        if origin is None:
            return
        try:
            text = await allow_or_deny(self.app.service, origin, name, allow=allow, code=True)
        except EaselError as error:
            text = describe_error(error)
        await reply(interaction, text)

    @models.command(name="default", description="The model /draw uses here when none is named")
    @app_commands.describe(name="Model name")
    async def models_default(self, interaction: discord.Interaction[Any], name: str) -> None:
        origin = await self._admin(interaction)
        if origin is None:
            return
        settings = await self.app.service.scope_settings(origin)
        if settings.allowed_models is not None and name.strip() not in settings.allowed_models:
            await reply(interaction, f"🚫 `{name}` is not allowed here; allow it first.")
            return
        await self._update(
            interaction, origin, f"✅ `{name}` is this server's default model.", default_model=name
        )

    @models_allow.autocomplete("name")
    @models_deny.autocomplete("name")
    async def allow_name_autocomplete(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        names = [*await self._model_names(), *await self._lora_names()]
        return _matching(names, current)

    @models_default.autocomplete("name")
    async def model_name_autocomplete(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        return _matching(await self._model_names(), current)

    # ------------------------------------------------------------------ /limits

    @app_commands.command(name="limits", description="Show or change this server's limits")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.describe(
        rate_per_minute="Drawings per user per minute",
        burst="How many drawings a user may start at once before the rate applies",
        max_queued="Jobs one user may have waiting",
        daily_quota="Jobs per user per day (0 = unlimited)",
        max_pixels="Largest picture, in pixels (width x height)",
        max_steps="Most steps",
        max_count="Most pictures per /draw",
        reset="Back to the defaults of this Easel",
    )
    async def limits(
        self,
        interaction: discord.Interaction[Any],
        rate_per_minute: app_commands.Range[float, 0.01, 600.0] | None = None,
        burst: app_commands.Range[int, 1, 100] | None = None,
        max_queued: app_commands.Range[int, 1, 1000] | None = None,
        daily_quota: app_commands.Range[int, 0, 100000] | None = None,
        max_pixels: app_commands.Range[int, 4096, 67108864] | None = None,
        max_steps: app_commands.Range[int, 1, 500] | None = None,
        max_count: app_commands.Range[int, 1, 16] | None = None,
        reset: bool = False,
    ) -> None:
        origin = await self._admin(interaction)
        if origin is None:
            return
        keys: tuple[str, ...] = ("rate_per_minute", "burst", "max_queued_per_user")
        keys += ("daily_quota", "max_pixels", "max_steps", "max_count")
        given = (rate_per_minute, burst, max_queued, daily_quota, max_pixels, max_steps, max_count)
        changes: dict[str, Any] = {k: v for k, v in zip(keys, given, strict=True) if v is not None}
        if reset:
            changes = dict.fromkeys(keys)
        try:
            if changes:
                settings = await self.app.service.update_scope_settings(origin, **changes)
            else:
                settings = await self.app.service.scope_settings(origin)
        except EaselError as error:
            await reply(interaction, describe_error(error))
            return
        heading = "✅ Limits updated" if changes else "Limits on this server"
        config = self.app.config
        text = limits_text(settings, config.limits, config.generation, MARKDOWN, heading=heading)
        await reply(interaction, text)

    # ------------------------------------------------------------------ /blocklist

    @blocklist.command(name="add", description="Refuse prompts containing these words")
    @app_commands.describe(words="Words, separated by commas or spaces")
    async def blocklist_add(self, interaction: discord.Interaction[Any], words: str) -> None:
        origin = await self._admin(interaction)
        if origin is None:
            return
        try:
            settings = await self.app.service.block_words(origin, split_words(words))
        except EaselError as error:
            await reply(interaction, describe_error(error))
            return
        await reply(
            interaction, f"✅ Blocked. The blocklist has {len(settings.blocklist)} word(s)."
        )

    @blocklist.command(name="remove", description="Stop refusing these words")
    @app_commands.describe(words="Words, separated by commas or spaces")
    async def blocklist_remove(self, interaction: discord.Interaction[Any], words: str) -> None:
        origin = await self._admin(interaction)
        if origin is None:
            return
        try:
            settings = await self.app.service.unblock_words(origin, split_words(words))
        except EaselError as error:
            await reply(interaction, describe_error(error))
            return
        await reply(
            interaction, f"✅ Removed. The blocklist has {len(settings.blocklist)} word(s)."
        )

    @blocklist.command(name="list", description="The words refused in prompts here")
    async def blocklist_list(self, interaction: discord.Interaction[Any]) -> None:
        origin = await self._admin(interaction)
        if origin is None:
            return
        settings = await self.app.service.scope_settings(origin)
        if not settings.blocklist:
            await reply(interaction, "The blocklist is empty.")
            return
        words = ", ".join(f"`{w}`" for w in settings.blocklist)
        await reply(interaction, clip(f"**Blocked words:** {words}", 1900))

    # ------------------------------------------------------------------ /styles

    @styles.command(name="list", description="The prompt styles --style can use here")
    async def styles_list(self, interaction: discord.Interaction[Any]) -> None:
        styles = await self.app.service.styles(self.actions.origin(interaction))
        await reply(interaction, styles_text(styles, lambda name: f"`{name}`", 1900))

    @styles.command(name="add", description="Add or replace a prompt style (admins)")
    @app_commands.describe(
        name="The style's name, as in --style NAME",
        prompt="Its prompt; {prompt} marks where the request's prompt goes (else appended)",
        negative="Its negative prompt (added to the request's)",
    )
    async def styles_add(
        self, interaction: discord.Interaction[Any], name: str, prompt: str, negative: str = ""
    ) -> None:
        origin = await self._admin(interaction)
        if origin is None:
            return
        try:
            await self.app.service.set_style(origin, name, prompt, negative)
        except EaselError as error:
            await reply(interaction, describe_error(error))
            return
        await reply(interaction, f"✅ Style `{name.strip()}` saved: use it with `--style {name}`.")

    @styles.command(name="remove", description="Remove a prompt style (admins)")
    @app_commands.describe(name="The style's name")
    async def styles_remove(self, interaction: discord.Interaction[Any], name: str) -> None:
        origin = await self._admin(interaction)
        if origin is None:
            return
        try:
            await self.app.service.remove_style(origin, name)
        except EaselError as error:
            await reply(interaction, describe_error(error))
            return
        await reply(interaction, f"✅ Style `{name.strip()}` removed.")

    # ------------------------------------------------------------------ /nsfw

    @app_commands.command(name="nsfw", description="Show or set a channel's NSFW policy")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.describe(
        policy="refuse flagged prompts, send every image as a spoiler, or allow",
        channel="The channel (default: this one)",
    )
    @app_commands.choices(policy=[app_commands.Choice(name=m, value=m) for m in NSFW_MODES])
    async def nsfw(
        self,
        interaction: discord.Interaction[Any],
        policy: str | None = None,
        channel: discord.TextChannel | None = None,
    ) -> None:
        origin = await self._admin(interaction)
        if origin is None:
            return
        channel_id = str(channel.id if channel is not None else interaction.channel_id)
        try:
            settings = await self.app.service.scope_settings(origin)
            if policy is not None:
                if policy not in NSFW_MODES:
                    raise InvalidRequest(f"Policy must be one of {', '.join(NSFW_MODES)}.")
                table = {**dict(settings.nsfw), channel_id: policy}
                settings = await self.app.service.update_scope_settings(origin, nsfw=table)
        except EaselError as error:
            await reply(interaction, describe_error(error))
            return
        shown = channel or interaction.channel
        mode = nsfw_mode_for(settings, channel_id, shown, self.app.config.discord.nsfw_default)
        verb = "is now" if policy is not None else "is"
        await reply(interaction, f"NSFW policy in <#{channel_id}> {verb} **{mode}**.")

    # ------------------------------------------------------------------ helpers

    async def _update(
        self, interaction: discord.Interaction[Any], origin: Origin, done: str, **changes: Any
    ) -> None:
        try:
            if changes:
                await self.app.service.update_scope_settings(origin, **changes)
        except EaselError as error:
            await reply(interaction, describe_error(error))
            return
        await reply(interaction, done)


def _matching(names: list[str], current: str) -> list[app_commands.Choice[str]]:
    needle = current.lower()
    return [app_commands.Choice(name=n, value=n) for n in names if needle in n.lower()][:25]
