"""The Discord front end's pure parts: option merging, button ids, token age, rendering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.discord_bot import merge_options
from bot.discord_common import TOKEN_LIFETIME_SECONDS, token_usable
from bot.discord_views import custom_id, parse_custom_id, result_view
from bot.grammar import parse_draw
from generation.errors import InvalidRequest, Rejected
from generation.policy import ScopeSettings, check_nsfw, flagged_word


def test_slash_options_override_the_inline_grammar() -> None:
    parsed = parse_draw("a fox --ar 3:2 --seed 1 --no blur")
    merged = merge_options(parsed, seed=9, size="96x64", negative_prompt="text", steps=None)
    assert (merged.seed, merged.width, merged.height, merged.aspect) == (9, 96, 64, None)
    assert merged.negative_prompt == "blur, text"
    sized = merge_options(parse_draw("a fox --size 64x64"), aspect="16:9")
    assert (sized.width, sized.height, sized.aspect) == (None, None, "16:9")
    with pytest.raises(InvalidRequest):
        merge_options(parsed, size="huge")


def test_button_ids_round_trip() -> None:
    assert custom_id("up", "ab3cd5ef", 2) == "easel:up:ab3cd5ef:3"
    assert parse_custom_id("easel:up:ab3cd5ef:3") == ("up", "ab3cd5ef", 2)
    assert parse_custom_id("easel:reroll:ab3cd5ef") == ("reroll", "ab3cd5ef", 0)
    assert parse_custom_id("other:thing") is None
    view = result_view("ab3cd5ef", 4)
    ids = [item.custom_id for item in view.children]  # type: ignore[attr-defined]
    assert len(ids) == 3 + 4 + 4 and all(len(i) <= 100 for i in ids)
    assert all(item.is_persistent() for item in view.children)


def test_interaction_tokens_are_used_for_fourteen_minutes() -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    target = {"interaction_token": "t", "created_at": created.isoformat()}
    assert token_usable(target, created + timedelta(minutes=13))
    assert not token_usable(target, created + timedelta(seconds=TOKEN_LIFETIME_SECONDS))
    assert not token_usable({"channel_id": "1"}, created)  # reactions carry no token


def test_nsfw_flagging_and_per_channel_policy() -> None:
    assert flagged_word("a NUDE statue") == "nude"
    assert flagged_word("a sextant on a desk") is None  # whole words only
    settings = ScopeSettings().updated({"nsfw": {"1": "spoiler"}})
    assert settings.nsfw_mode("1") == "spoiler" and settings.nsfw_mode("2") == "refuse"
    assert ScopeSettings.from_dict(settings.to_dict()) == settings
    check_nsfw("a nude statue", "spoiler")
    with pytest.raises(Rejected, match="NSFW"):
        check_nsfw("a nude statue", "refuse")
    check_nsfw(parse_draw("a statue --no nsfw").prompt, "refuse")  # only the prompt counts
    with pytest.raises(InvalidRequest):
        ScopeSettings().updated({"nsfw": {"1": "sometimes"}})
    assert ScopeSettings().updated({"nsfw": None}).nsfw == ()


def test_serve_starts_discord_only_with_a_token(tmp_path, monkeypatch) -> None:
    from bot.app import App
    from bot.discord_bot import start_discord
    from tests.conftest import make_config

    monkeypatch.delenv("EASEL_DISCORD_TOKEN", raising=False)
    assert start_discord(App.from_config(make_config(tmp_path))) is None


async def test_a_late_queued_line_never_hides_newer_news() -> None:
    from typing import Any, cast

    from bot.discord_frontend import DiscordFrontEnd

    front = DiscordFrontEnd(cast(Any, None), cast(Any, None))
    edits: list[str] = []

    async def edit(text: str) -> None:
        edits.append(text)

    await front.show_queued("fresh", "⏳ queued", edit)
    front._mark_started("fast")  # the worker started (or finished) it before the command spoke
    await front.show_queued("fast", "⏳ queued", edit)
    assert edits == ["⏳ queued"]
