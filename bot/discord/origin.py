"""Who is asking on Discord, from where, and how to answer them in words.

The :class:`generation.requests.Origin` of a Discord request:

* ``scope_id``: the guild id, or ``dm:<user id>`` in direct messages; results are posted in the
  server's channels, so a member sees the server's jobs (``Visibility.SCOPE``), never another
  server's;
* ``user_id``: the member's id; ``is_admin``: Manage Server permission, or an owner id from the
  config (checked here, inside every command: ``default_member_permissions`` is only a hint
  that a server can override);
* ``channel_id`` and ``nsfw_default``: the NSFW check (the channel's setting, else "allow" in an
  age-restricted channel, else ``discord.nsfw_default``);
* ``reply_target``: everything a fresh bot instance needs to deliver the result after a restart
  (channel id, interaction id and creation time, the status message id, the user id). It is
  stored with the job, so it never holds the interaction token: the token stays in the front
  end's memory (:class:`bot.discord.delivery.DiscordFrontEnd`); after a restart the result goes
  to the channel, mentioning the requester.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import discord

from bot.chat.texts import clip
from generation.policy import ScopeSettings
from generation.requests import Origin, Visibility

PLATFORM = "discord"
# Discord's interaction tokens live 15 minutes; stop using one a little before that.
TOKEN_LIFETIME_SECONDS = 14 * 60
NO_MENTIONS = discord.AllowedMentions.none()
USER_MENTIONS = discord.AllowedMentions(everyone=False, roles=False, users=True)
MESSAGE_LIMIT = 2000


def scope_of(guild_id: int | None, user_id: int) -> str:
    return str(guild_id) if guild_id is not None else f"dm:{user_id}"


def is_admin_member(
    user: discord.abc.User, permissions: discord.Permissions | None, owner_ids: Iterable[int]
) -> bool:
    """Manage Server (in this guild) or an Easel owner from the config."""
    if user.id in set(owner_ids):
        return True
    return bool(permissions is not None and permissions.manage_guild)


def interaction_is_admin(interaction: discord.Interaction[Any], owner_ids: Iterable[int]) -> bool:
    permissions = interaction.permissions if interaction.guild_id is not None else None
    return is_admin_member(interaction.user, permissions, owner_ids)


def channel_nsfw_default(channel: object | None, configured: str) -> str:
    """The NSFW policy of a channel without its own setting: "allow" in Discord's
    age-restricted channels, else the configured ``discord.nsfw_default``."""
    is_nsfw = getattr(channel, "is_nsfw", None)
    return "allow" if callable(is_nsfw) and is_nsfw() else configured


def nsfw_mode_for(
    settings: ScopeSettings, channel_id: str, channel: object | None, default: str
) -> str:
    """A channel's NSFW policy: the admin's setting, else :func:`channel_nsfw_default`."""
    return settings.nsfw_mode(str(channel_id), channel_nsfw_default(channel, default))


def interaction_target(
    interaction: discord.Interaction[Any], status_message_id: int | None
) -> dict[str, Any]:
    target: dict[str, Any] = {
        "channel_id": str(interaction.channel_id),
        "guild_id": str(interaction.guild_id) if interaction.guild_id else None,
        "user_id": str(interaction.user.id),
        "application_id": str(interaction.application_id),
        "interaction_id": str(interaction.id),  # the token itself is never stored
        "created_at": interaction.created_at.isoformat(),
    }
    if status_message_id is not None:
        target["status_message_id"] = str(status_message_id)
    return target


def interaction_origin(
    interaction: discord.Interaction[Any],
    owner_ids: Iterable[int],
    nsfw_default: str,
    *,
    status_message_id: int | None = None,
) -> Origin:
    guild = interaction.guild
    channel_id = interaction.channel_id
    return Origin(
        platform=PLATFORM,
        scope_id=scope_of(interaction.guild_id, interaction.user.id),
        user_id=str(interaction.user.id),
        user_name=interaction.user.display_name,
        scope_name=guild.name if guild is not None else "direct messages",
        reply_target=interaction_target(interaction, status_message_id),
        is_admin=interaction_is_admin(interaction, owner_ids),
        sees=Visibility.SCOPE,
        channel_id=str(channel_id) if channel_id is not None else None,
        nsfw_default=channel_nsfw_default(interaction.channel, nsfw_default),
        is_owner=interaction.user.id in set(owner_ids),
    )


def token_age_seconds(target: dict[str, Any], now: datetime) -> float | None:
    """Seconds since the interaction behind ``target`` was created; None without a token."""
    if not target.get("interaction_token") or not target.get("created_at"):
        return None
    try:
        created = datetime.fromisoformat(target["created_at"])
    except (TypeError, ValueError):
        return None
    return (now - created).total_seconds()


def token_usable(target: dict[str, Any], now: datetime) -> bool:
    age = token_age_seconds(target, now)
    return age is not None and age < TOKEN_LIFETIME_SECONDS


async def reply(
    interaction: discord.Interaction[Any], text: str, *, ephemeral: bool = True
) -> None:
    """Answer in words, whether or not the interaction was already answered or deferred."""
    text = clip(text, MESSAGE_LIMIT)
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=ephemeral, allowed_mentions=NO_MENTIONS)
    else:
        await interaction.response.send_message(
            text, ephemeral=ephemeral, allowed_mentions=NO_MENTIONS
        )
