"""The Discord front end's pure parts: slash options, button ids, token age, NSFW policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.chat.actions import OUTPAINTS
from bot.discord.buttons import PANS, ZOOMS, custom_id, parse_custom_id, result_view
from bot.discord.commands import slash_fields
from bot.discord.origin import TOKEN_LIFETIME_SECONDS, token_usable
from bot.grammar import merge_fields, parse_draw
from generation.errors import InvalidRequest, Rejected
from generation.policy import ScopeSettings, check_nsfw, flagged_word


def test_the_prompt_beats_slash_options_and_negatives_are_joined() -> None:
    parsed = parse_draw("a fox --ar 3:2 --seed 1 --no blur")
    fields = slash_fields(seed=9, size="96x64", negative_prompt="text", steps=12)
    merged = merge_fields(parsed, fields)
    # typed in the prompt: seed and shape; only given as options: steps
    assert (merged.seed, merged.aspect, merged.width, merged.height) == (1, "3:2", None, None)
    assert merged.steps == 12 and merged.negative_prompt == "blur, text"
    sized = merge_fields(parse_draw("a fox"), slash_fields(size="96x64", aspect="16:9"))
    assert (sized.width, sized.height, sized.aspect) == (96, 64, None)  # the exact size wins
    with pytest.raises(InvalidRequest):
        slash_fields(size="huge")


def test_button_ids_round_trip() -> None:
    assert custom_id("up", "ab3cd5ef", 2) == "easel:up:ab3cd5ef:3"
    assert parse_custom_id("easel:up:ab3cd5ef:3") == ("up", "ab3cd5ef", 2)
    assert parse_custom_id("easel:reroll:ab3cd5ef") == ("reroll", "ab3cd5ef", 0)
    assert parse_custom_id("other:thing") is None
    view = result_view("ab3cd5ef", 4)
    ids = [item.custom_id for item in view.children]  # type: ignore[attr-defined]
    assert len(ids) == 3 + 4 + 4 and all(len(i) <= 100 for i in ids)
    assert all(item.is_persistent() for item in view.children)
    # One image: every action, within Discord's 5 buttons per row and 5 rows.
    single = result_view("ab3cd5ef", 1)
    rows: dict[int, list[str]] = {}
    for item in single.children:
        rows.setdefault(item.row or 0, []).append(item.custom_id)  # type: ignore[attr-defined]
    assert len(rows) <= 5 and all(len(ids) <= 5 for ids in rows.values())
    assert rows[1] == ["easel:z15:ab3cd5ef:1", "easel:z2:ab3cd5ef:1", "easel:reg:ab3cd5ef:1"]
    assert parse_custom_id("easel:pl:ab3cd5ef:1") == ("pl", "ab3cd5ef", 0)
    assert parse_custom_id("easel:region:ab3cd5ef:1") is None  # the region menu's, not a button
    # Every short code the chats share for outpaints has its Discord button.
    assert set(ZOOMS + PANS) == set(OUTPAINTS)


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
    from bot.discord.client import start_discord
    from tests.conftest import make_config

    monkeypatch.delenv("EASEL_DISCORD_TOKEN", raising=False)
    assert start_discord(App.from_config(make_config(tmp_path))) is None
