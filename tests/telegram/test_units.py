"""Pure parts of the Telegram front end: callback data, keyboards, captions, config checks."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
from PIL import Image

from bot.chat.texts import PLAIN, doing_key, progress_text, queued_text, started_text
from bot.config import Config, parse_config
from bot.telegram.files import check_black_and_white
from bot.telegram.handlers import check_reactions
from bot.telegram.keyboards import ButtonPress, parse_callback, region_keyboard, result_keyboard
from bot.telegram.repaint import split_region
from bot.telegram.texts import CAPTION_LIMIT, result_caption
from generation.errors import ConfigError, ImageRejected
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


def test_zoom_pan_and_region_callback_data() -> None:
    assert parse_callback("o:abcd2345:0:z15") == ButtonPress("outpaint", "abcd2345", 0, "z15")
    assert parse_callback("o:abcd2345:2:pd") == ButtonPress("outpaint", "abcd2345", 2, "pd")
    assert parse_callback("m:abcd2345:0") == ButtonPress("region", "abcd2345", 0)
    assert parse_callback("g:abcd2345:1:centre") == ButtonPress("preset", "abcd2345", 1, "centre")
    for bad in ("o:abcd2345:0", "o:abcd2345:0:z3", "o:abcd2345:z2", "g:abcd2345:0:middle"):
        assert parse_callback(bad) is None, bad
    for bad in ("u:abcd2345:0:z2", "m:abcd2345:0:left", "r:abcd2345:0:x"):
        assert parse_callback(bad) is None, bad
    longest = "x" * 32
    menu = region_keyboard(longest, 99)
    data = [b.callback_data for row in menu.inline_keyboard for b in row]
    assert all(isinstance(d, str) and len(d.encode()) <= 64 for d in data)
    assert [parse_callback(str(d)) for d in data][-1] == ButtonPress(
        "preset", longest, 99, "centre"
    )


def test_region_arguments_split_into_region_and_prompt() -> None:
    assert split_region("10,20,50,40 a red hat") == ("10,20,50,40", "a red hat")
    assert split_region(" 10, 20 ,50,40  a hat ") == ("10, 20 ,50,40", "a hat")
    assert split_region("left") == ("left", None)
    assert split_region("centre a moon\nat night") == ("centre", "a moon\nat night")
    assert split_region("10,20,50 a hat") == ("10,20,50", "a hat")  # refused by parse_region
    assert split_region("1,2,3,4,5 x") == ("1,2,3,4,5", "x")
    assert split_region("1,2,3,4x y") == ("1,2,3,4x", "y")
    assert split_region("   ") == ("", None)


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


def test_a_colour_picture_is_not_a_mask_but_a_jpeg_of_one_is() -> None:
    def encoded(image: Image.Image, fmt: str) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, quality=75)
        return buffer.getvalue()

    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (10, 10, 40, 50))
    check_black_and_white(encoded(mask.convert("RGB"), "JPEG"))  # as Telegram sends a photo
    check_black_and_white(encoded(mask, "PNG"))
    check_black_and_white(b"not a picture")  # the Service says why
    ramp = Image.linear_gradient("L")  # a photo's colours: red to green, top to bottom
    photo = Image.merge("RGB", (ramp, ramp.rotate(180), Image.new("L", ramp.size, 60)))
    with pytest.raises(ImageRejected, match="in colour"):
        check_black_and_white(encoded(photo, "JPEG"))


def test_status_messages_call_a_repaint_what_it_is() -> None:
    def child(outpaint: str | None) -> JobRecord:
        options = {"mask_blur": 8, "outpaint": outpaint} if outpaint else {"mask_blur": 4}
        return replace(
            job(), mode=Mode.INPAINT, action=Action.VARY, parent_id="k7m3xq2p", inpaint=options
        )

    assert queued_text(child("zoom 2"), 1, 0.0, PLAIN, 3.0).startswith("⏳ Zooming out 2x abcd")
    assert doing_key(child("pan left")) == "pan left"
    assert started_text("abcd2345", doing_key(child(None)), PLAIN) == (
        "🎨 Repainting the region abcd2345…"
    )
    progress = progress_text("abcd2345", doing_key(child("pan up")), 1, 2, PLAIN)
    assert progress.startswith("🎨 Panning up abcd2345: ")
    assert doing_key(job()) == "draw" and queued_text(job(), 1, 0.0, PLAIN, 3.0).startswith(
        "⏳ Drawing abcd2345"
    )
