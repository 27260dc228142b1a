"""What both chats say about results and refusals (bot.chat.texts, pure): derived results name
what they are, of what and for whom; every button has a word; a non-picture gets an answer."""

from __future__ import annotations

from bot.chat.actions import (
    OUTPAINTS,
    button_parts,
    button_text,
    outpaint_button,
    outpaint_doing,
)
from bot.chat.texts import (
    MARKDOWN,
    PLAIN,
    accepted_images,
    lineage,
    not_an_image,
    progress_text,
    queue_text,
    queued_text,
    result_headline,
)
from bot.discord.render import result_content
from bot.telegram.keyboards import result_keyboard
from bot.telegram.texts import result_caption
from generation.service import QueueStatus
from generation.spec import VARY_STRENGTHS, Action, Mode
from tests.records import job_record


def child(action: Action, index: int | None, **changes: object) -> object:
    return job_record(
        "kid23456", images=1, action=action, parent_id="k7m3xq2p", parent_index=index, **changes
    )


def test_a_derived_result_says_what_it_is_of_what_and_for_whom() -> None:
    upscale = child(Action.UPSCALE, 0, mode=Mode.UPSCALE)
    assert (
        result_headline(upscale, MARKDOWN, "@alice")
        == "Upscale of image 1 of `k7m3xq2p`, for @alice"
    )
    subtle = child(Action.VARY, 1, mode=Mode.IMG2IMG, strength=VARY_STRENGTHS["subtle"])
    assert lineage(subtle, PLAIN) == "Vary (subtle) of image 2 of k7m3xq2p"
    strong = child(Action.VARY, 0, mode=Mode.IMG2IMG, strength=VARY_STRENGTHS["strong"])
    assert lineage(strong, PLAIN) == "Vary (strong) of image 1 of k7m3xq2p"
    reroll = child(Action.REROLL, None)
    assert result_headline(reroll, PLAIN, None) == "Reroll of k7m3xq2p"
    region = child(Action.VARY, 0, mode=Mode.INPAINT, strength=0.35, inpaint={"mask_blur": 4})
    assert lineage(region, PLAIN) == "Vary (Region) of image 1 of k7m3xq2p"
    zoom = child(Action.VARY, 1, mode=Mode.INPAINT, strength=1.0, inpaint={"outpaint": "zoom 1.5"})
    assert lineage(zoom, MARKDOWN) == "Zoom out 1.5x of image 2 of `k7m3xq2p`"
    pan = child(Action.VARY, 0, mode=Mode.INPAINT, strength=1.0, inpaint={"outpaint": "pan up"})
    assert result_headline(pan, PLAIN, "@bob") == "Pan up of image 1 of k7m3xq2p, for @bob"
    assert result_headline(job_record(images=1), PLAIN, "@alice") is None  # a new drawing


def test_discord_result_text_differs_from_the_original() -> None:
    original = job_record("k7m3xq2p", images=2)
    upscale = child(Action.UPSCALE, 1, mode=Mode.UPSCALE)
    assert result_content(original, "<@7>") == "<@7> a castle at dusk"
    assert result_content(upscale, "<@7>") == (
        "Upscale of image 2 of `k7m3xq2p`, for <@7>\na castle at dusk"
    )


def test_telegram_vary_caption_names_the_job_it_varies_and_the_requester() -> None:
    target = {"chat_id": 5, "message_id": 9, "requester": "@alice"}
    vary = child(
        Action.VARY, 1, mode=Mode.IMG2IMG, strength=VARY_STRENGTHS["subtle"], reply_target=target
    )
    caption = result_caption(vary)
    assert caption.startswith("Vary (subtle) of image 2 of k7m3xq2p, for @alice\n")
    assert "from an image" not in caption
    # an image-to-image drawing from the person's own picture still says so
    own = job_record(images=1, mode=Mode.IMG2IMG, strength=0.6)
    assert "from your picture" in result_caption(own)


def test_every_button_has_a_word() -> None:
    assert button_text("reroll") == "🔄 Reroll"
    assert [outpaint_button(code) for code in ("z15", "z2", "pl", "pd")] == [
        ("🔍", "Zoom Out 1.5x"),
        ("🔍", "Zoom Out 2x"),
        ("⬅️", "Pan left"),
        ("⬇️", "Pan down"),
    ]
    assert button_text("region") == "🖌️ Vary (Region)"
    assert outpaint_doing(OUTPAINTS["z2"]) == "🔍 Zooming out 2x"
    assert outpaint_doing(OUTPAINTS["pr"]) == "➡️ Panning right"
    assert button_parts("upscale", 0) == ("⬆️", "Upscale 1")
    assert button_text("vary", 1) == "🎨 Vary 2"
    assert button_parts("delete") == ("🗑️", "Delete")
    keyboard = result_keyboard(job_record(images=2))
    texts = [b.text for row in keyboard.inline_keyboard for b in row]
    assert texts == [
        "🔄 Reroll",
        "ℹ️ Info",
        "⬆️ Upscale 1",
        "🎨 Vary 1",
        "📄 PNG 1",
        "⬆️ Upscale 2",
        "🎨 Vary 2",
        "📄 PNG 2",
    ]


def test_a_file_that_is_not_a_picture_is_answered_with_what_works() -> None:
    assert accepted_images() == "PNG, JPEG, WebP, GIF or BMP"
    text = not_an_image("application/pdf")
    assert "application/pdf" in text and "PNG, JPEG, WebP, GIF or BMP" in text


def test_status_texts_carry_the_engines_waiting_and_running_times() -> None:
    job = job_record(id="k7m3xq2p")
    queued = queued_text(job, 2, 8.2, MARKDOWN, seconds_left=12.5)
    assert queued == "⏳ Drawing `k7m3xq2p`: position 3 in the queue, starts in 9 s, done in 13 s."
    assert queued_text(job, 0, 0.0, PLAIN, seconds_left=3.0).endswith("next in line, done in 3 s.")
    running = progress_text("k7m3xq2p", "draw", 5, 20, PLAIN, seconds_left=4.1)
    assert running.endswith("25% (step 5/20, done in 5 s)")
    # No estimate known (or the last step): just the steps.
    assert progress_text("k7m3xq2p", "draw", 5, 20, PLAIN).endswith("(step 5/20)")
    assert progress_text("k7m3xq2p", "draw", 20, 20, PLAIN, seconds_left=0.2).endswith("20/20)")


def test_the_queue_lists_each_of_your_jobs_with_its_start_and_end() -> None:
    status = QueueStatus(
        length=3,
        running=1,
        your_jobs=(("aaaa1111", 0, 1.5), ("bbbb2222", 2, 30.0)),
        seconds_left={"aaaa1111": 4.0, "bbbb2222": 95.0},
    )
    lines = queue_text(status, PLAIN).splitlines()
    assert lines[0] == "📋 Queue: 3 waiting, 1 drawing now."
    assert lines[1] == "• aaaa1111: next in line, done in 4 s"
    assert lines[2] == "• bbbb2222: position 3 in the queue, starts in 30 s, done in 2 min"
