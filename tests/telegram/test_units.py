"""Pure parts of the Telegram front end: callback data, keyboards, captions, config checks."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.chat.texts import PLAIN, progress_text
from bot.config import Config, parse_config
from bot.telegram.handlers import check_reactions
from bot.telegram.keyboards import ButtonPress, parse_callback, result_keyboard
from bot.telegram.texts import CAPTION_LIMIT, result_caption
from generation.errors import ConfigError
from generation.spec import Action, Mode
from storage.records import JobRecord
from tests.records import job_record


def job(count: int = 1, prompt: str = "a castle at dusk") -> JobRecord:
    return job_record(images=count, prompt=prompt)


def test_callback_data_round_trips_and_fits_64_bytes() -> None:
    markup = result_keyboard(job(count=16))
    data = [button.callback_data for row in markup.inline_keyboard for button in row]
    assert all(isinstance(d, str) and len(d.encode()) <= 64 for d in data)
    assert all(len(row) <= 5 for row in markup.inline_keyboard)
    assert parse_callback("u:abcd2345:15") == ButtonPress("upscale", "abcd2345", 15)
    assert parse_callback("r:abcd2345") == ButtonPress("reroll", "abcd2345", 0)
    assert parse_callback("p:abcd2345:0") == ButtonPress("png", "abcd2345", 0)
    for bad in (None, "", "x:abcd2345", "u:ABC!:1", "u:abcd2345:123"):
        assert parse_callback(bad) is None


def test_caption_stays_within_telegrams_limit_and_keeps_the_seed_and_id() -> None:
    caption = result_caption(job(prompt="castle " * 500))
    assert len(caption) <= CAPTION_LIMIT
    assert caption.endswith("🌱 seed 42 · 🆔 abcd2345") and "🚫 blurry" in caption
    album = result_caption(job(count=3))
    assert "seeds 42–44" in album


def test_progress_text_changes_with_every_step() -> None:
    texts = [progress_text("j", "draw", step, 20, PLAIN) for step in range(21)]
    assert len(set(texts)) == 21


def test_reactions_are_checked() -> None:
    assert check_reactions({"❤️": "vary"}) == {"❤": "vary"}  # with or without VS16
    with pytest.raises(ConfigError, match="not one of the reactions"):
        check_reactions({"🦖": "reroll"})
    with pytest.raises(ConfigError, match="unknown action"):
        parse_config({"telegram": {"reactions": {"🔥": "explode"}}})
    with pytest.raises(ConfigError, match="webhook_url"):
        parse_config({"telegram": {"mode": "webhook"}})
    assert set(Config().telegram.reactions.values()) == {"reroll", "upscale", "vary"}


def test_an_upscaled_result_says_so() -> None:
    upscaled = replace(
        job(), mode=Mode.UPSCALE, action=Action.UPSCALE, parent_id="k7m3xq2p", parent_index=0
    )
    assert result_caption(upscaled).startswith("Upscale of image 1 of k7m3xq2p\n")
