"""Zoom Out, Pan and Vary (Region) on Telegram, from the button or the reply to the posted photo:
the real python-telegram-bot Application against the fake Bot API, the real App rendering with
the demo model (64x64, 2 steps). Every refusal gets an answer and queues nothing."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from PIL import Image

from bot.telegram.texts import NOT_A_RESULT
from generation.regions import region_mask
from storage.records import JobRecord
from tests.telegram.fake_telegram import Call, FakeTelegram
from tests.telegram.helpers import (
    Env,
    answered,
    buttons,
    delivered,
    draw,
    ids,
    job_id_in,
    png,
    private,
    reply_text,
    replying_to,
    status_of,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

Result = tuple[dict[str, Any], JobRecord, Call]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def result(env: Env) -> Result:
    """A 64x64 result: (its photo message, the job, the sendPhoto call)."""
    return await draw(env, "/draw a lighthouse --seed 5 --steps 2 --size 64x64")


# ---------------------------------------------------------------------- helpers


def picture(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)


def posted(call: Call) -> np.ndarray:
    return picture(call.files["photo"])


def mask_png(size: tuple[int, int], box: tuple[int, int, int, int] | None, fill: int = 0) -> bytes:
    """A grey-scale PNG of ``size``, ``fill`` everywhere and white inside ``box``."""
    image = Image.new("L", size, fill)
    if box is not None:
        image.paste(255, box)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


LEFT_HALF = mask_png((64, 64), (0, 0, 32, 64))


def document(fake: FakeTelegram, data: bytes, mime: str, name: str) -> dict[str, Any]:
    return {**fake.add_file(data), "file_name": name, "mime_type": mime}


def as_user(fake: FakeTelegram, message: dict[str, Any]) -> dict[str, Any]:
    """The user of a private chat (its id is the chat's)."""
    return fake.user(message["chat"]["id"])


async def photo_of(fake: FakeTelegram, chat_id: int, job_id: str) -> Call:
    """The sendPhoto that posted job ``job_id``."""
    return await fake.wait_call(
        "sendPhoto", chat_id, lambda c: job_id in str(c.params.get("caption")), timeout=60
    )


async def press(env: Env, message: dict[str, Any], data: str) -> str:
    """Press a button of ``message``; the callback answer's text."""
    query = env.fake.press(as_user(env.fake, message), message, data)
    return str((await answered(env.fake, query)).params.get("text") or "")


def assert_kept(ours: np.ndarray, before: np.ndarray, keep: np.ndarray) -> None:
    """Where ``keep`` is true the parent's pixels are unchanged (within 1/255: A1111's paste
    back, like diffusers' apply_overlay, is premultiplied alpha)."""
    assert keep.sum() > 100
    assert np.abs(ours[keep] - before[keep]).max() <= 1
    assert np.abs(ours - before).max() > 10  # and something was repainted


def outside(box: tuple[int, int, int, int], band: int = 12) -> np.ndarray:
    """The pixels of a 64x64 picture beyond ``box`` and its blur band (a 4 px Gaussian, A1111's
    default mask blur, reaches about 12 px)."""
    keep = np.ones((64, 64), dtype=bool)
    x0, y0, x1, y1 = box
    keep[max(0, y0 - band) : y1 + band, max(0, x0 - band) : x1 + band] = False
    return keep


async def children(env: Env, job: JobRecord) -> set[str]:
    return {child.id for child in await env.app.store.children(job.id)}


# ---------------------------------------------------------------------- tests


async def test_zoom_out_and_pan_buttons_post_the_larger_picture(env: Env, result: Result) -> None:
    fake = env.fake
    message, job, _ = result
    chat_id = message["chat"]["id"]
    expected = {
        "z2": ("🔍 Zooming out 2x", "Zoom out 2x", (128, 128)),
        "z15": ("🔍 Zooming out 1.5x", "Zoom out 1.5x", (96, 96)),
        "pl": ("⬅️ Panning left", "Pan left", (96, 64)),
        "pr": ("➡️ Panning right", "Pan right", (96, 64)),
        "pu": ("⬆️ Panning up", "Pan up", (64, 96)),
        "pd": ("⬇️ Panning down", "Pan down", (64, 96)),
    }
    made: dict[str, str] = {}
    for code, (doing, _, _) in expected.items():
        answer = await press(env, message, f"o:{job.id}:0:{code}")
        assert answer.startswith(f"{doing}: job "), answer
        made[code] = job_id_in(answer)
    for code, (doing, _, _) in expected.items():  # each status says what it does
        start = f"⏳ {doing.split(' ', 1)[1]} {made[code]}: "
        await fake.wait_call(
            "sendMessage", chat_id, lambda c, s=start: str(c.params["text"]).startswith(s)
        )
    for code, (_, title, size) in expected.items():
        photo = await photo_of(fake, chat_id, made[code])
        assert Image.open(io.BytesIO(photo.files["photo"])).size == size, code
        caption = photo.params["caption"]
        assert caption.startswith(f"{title} of image 1 of {job.id}, for "), caption
        child = await delivered(env.app, made[code])
        assert (child.parent_id, child.parent_index, child.mode) == (job.id, 0, "inpaint")
        assert (child.width, child.height) == size
    # An outpainted picture is a single image: its own keyboard offers all of it again.
    zoomed = await photo_of(fake, chat_id, made["z2"])
    assert f"o:{made['z2']}:0:pl" in buttons(zoomed) and f"m:{made['z2']}:0" in buttons(zoomed)


async def test_the_keyboard_reads_well_on_a_phone(env: Env, result: Result) -> None:
    *_, call = result
    rows = [[b["text"] for b in row] for row in call.params["reply_markup"]["inline_keyboard"]]
    assert rows == [
        ["🔄 Reroll", "⬆️ Upscale", "🎨 Vary"],
        ["🔍 Zoom Out 1.5x", "🔍 Zoom Out 2x"],
        ["⬅️", "➡️", "⬆️", "⬇️"],
        ["🖌️ Vary (Region)"],
        ["ℹ️ Info", "📄 PNG"],
    ]
    # several images: zoom, pan and region come with the upscaled or varied one
    fake = env.fake
    chat, user = private(fake)
    command = fake.send_text(chat, user, "/draw two moons --n 2 --steps 1 --size 64x64")
    job_id, _ = await status_of(fake, command)
    album = await fake.wait_call("sendMediaGroup", chat["id"])
    carrier = await fake.wait_call("sendMessage", chat["id"], replying_to(album.result[0]))
    assert not [d for d in buttons(carrier) if d[0] in "omg"]
    await delivered(env.app, job_id)


async def test_vary_region_offers_presets_and_a_preset_repaints_that_part(
    env: Env, result: Result
) -> None:
    fake = env.fake
    message, job, parent = result
    chat_id = message["chat"]["id"]
    assert await press(env, message, f"m:{job.id}:0") == ""
    menu = await fake.wait_call(
        "sendMessage",
        chat_id,
        lambda c: replying_to(message)(c) and "Vary (Region)" in c.params["text"],
    )
    text = menu.params["text"]
    assert f"image 1 of {job.id}" in text and "mask" in text and "white = repaint" in text
    assert "/region 10,20,50,40 a red hat" in text and "photo or a file" in text
    rows = [[b["text"] for b in row] for row in menu.params["reply_markup"]["inline_keyboard"]]
    assert rows == [["Left half", "Right half"], ["Top half", "Bottom half"], ["Centre"]]
    regions = ["left", "right", "top", "bottom", "centre"]
    assert buttons(menu) == [f"g:{job.id}:0:{region}" for region in regions]

    answer = await press(env, menu.result, f"g:{job.id}:0:left")
    assert answer.startswith("🖌️ Repainting the region: job "), answer
    child_id = job_id_in(answer)
    photo = await photo_of(fake, chat_id, child_id)
    assert photo.params["caption"].startswith(f"Vary (Region) of image 1 of {job.id}, for ")
    child = await delivered(env.app, child_id)
    assert (child.parent_id, child.prompt, child.mode) == (job.id, job.prompt, "inpaint")
    assert child.mask_image is not None
    stored = env.app.images.read(child.mask_image)
    assert (picture(stored) == picture(region_mask("left", (64, 64)))).all()
    assert_kept(posted(photo), posted(parent), outside((0, 0, 32, 64)))


@pytest.mark.parametrize("kind", ["photo", "document"])
async def test_a_mask_replied_to_a_result_repaints_the_white_part(
    env: Env, result: Result, kind: str
) -> None:
    fake = env.fake
    message, job, parent = result
    chat, user = message["chat"], as_user(fake, message)
    if kind == "photo":
        attachment: dict[str, Any] = {"photo": fake.photo(LEFT_HALF)}
    else:
        attachment = {"document": document(fake, LEFT_HALF, "image/png", "mask.png")}
    reply = fake.message(chat, user, caption="a red door", reply_to=message, **attachment)
    fake.push(message=reply)
    child_id, status = await status_of(fake, reply)
    assert status.params["text"].startswith(f"⏳ Repainting the region {child_id}: ")
    photo = await photo_of(fake, chat["id"], child_id)
    assert photo.params["caption"].startswith(f"Vary (Region) of image 1 of {job.id}, for ")
    assert "a red door" in photo.params["caption"]
    child = await delivered(env.app, child_id)
    assert (child.parent_id, child.parent_index, child.prompt) == (job.id, 0, "a red door")
    assert_kept(posted(photo), posted(parent), outside((0, 0, 32, 64)))


async def test_a_mask_replied_to_the_region_menu_keeps_the_prompt(env: Env, result: Result) -> None:
    fake = env.fake
    message, job, _ = result
    chat, user = message["chat"], as_user(fake, message)
    assert await press(env, message, f"m:{job.id}:0") == ""
    menus = fake.calls_of("sendMessage", chat["id"])
    menu = [c for c in menus if replying_to(message)(c) and "Vary (Region)" in c.params["text"]]
    mask = mask_png((128, 128), (64, 0, 128, 128))  # the right half, at another size
    reply = fake.message(chat, user, photo=fake.photo(mask), reply_to=menu[-1].result)
    fake.push(message=reply)
    child_id, _ = await status_of(fake, reply)
    child = await delivered(env.app, child_id)
    assert (child.parent_id, child.prompt, child.status) == (job.id, job.prompt, "succeeded")


async def test_region_command_replies(env: Env, result: Result) -> None:
    fake = env.fake
    message, job, parent = result
    chat, user = message["chat"], as_user(fake, message)
    box = fake.send_text(chat, user, "/region 10,20,50,40 a red hat", reply_to=message)
    child_id, _ = await status_of(fake, box)
    photo = await photo_of(fake, chat["id"], child_id)
    assert photo.params["caption"].startswith(f"Vary (Region) of image 1 of {job.id}, for ")
    child = await delivered(env.app, child_id)
    assert child.prompt == "a red hat" and child.mask_image is not None
    expected = region_mask("10,20,50,40", (64, 64))
    assert (picture(env.app.images.read(child.mask_image)) == picture(expected)).all()
    assert_kept(posted(photo), posted(parent), outside((6, 13, 38, 38)))

    preset = fake.send_text(chat, user, "/region top", reply_to=message)
    top_id, _ = await status_of(fake, preset)
    spaced = fake.send_text(chat, user, "/region 0, 50, 100, 50 waves", reply_to=message)
    bottom_id, _ = await status_of(fake, spaced)
    top, bottom = await delivered(env.app, top_id), await delivered(env.app, bottom_id)
    assert top.prompt == job.prompt and bottom.prompt == "waves"
    assert bottom.mask_image is not None
    expected = region_mask("bottom", (64, 64))
    assert (picture(env.app.images.read(bottom.mask_image)) == picture(expected)).all()


async def test_every_refusal_is_answered_and_queues_nothing(env: Env, result: Result) -> None:
    fake = env.fake
    message, job, _ = result
    chat, user = message["chat"], as_user(fake, message)
    before = await children(env, job)

    async def mask_reply(data: bytes, *, as_file: str | None = None, to: Any = message) -> str:
        if as_file is None:
            attachment: dict[str, Any] = {"photo": fake.photo(data)}
        else:
            attachment = {"document": document(fake, data, as_file, "mask")}
        reply = fake.message(chat, user, reply_to=to, **attachment)
        fake.push(message=reply)
        return await reply_text(fake, reply)

    async def command(text: str, to: Any = message) -> str:
        return await reply_text(fake, fake.send_text(chat, user, text, reply_to=to))

    assert "Use Vary" in await mask_reply(mask_png((64, 64), None, fill=255))  # all white
    assert "nothing to repaint" in await mask_reply(mask_png((64, 64), None))  # all black
    assert "it must be 64x64" in await mask_reply(mask_png((64, 32), (0, 0, 8, 8)))
    assert "in colour, so it is not a mask" in await mask_reply(png((200, 40, 40)))
    pdf = await mask_reply(b"%PDF-1.4 tiny", as_file="application/pdf")
    assert pdf.startswith("🚫 That file (application/pdf) is not a mask"), pdf
    assert "PNG, JPEG, WebP, GIF or BMP" in pdf
    garbage = await mask_reply(b"this is not a picture", as_file="image/png")
    assert "not an image Easel can read" in garbage, garbage
    bomb = await mask_reply(mask_png((5000, 5000), None, fill=255), as_file="image/png")
    assert "pixels" in bomb, bomb

    help_message = fake.send_text(chat, user, "/help")
    await reply_text(fake, help_message)
    help_answer = next(
        c.result for c in fake.calls_of("sendMessage", chat["id"]) if replying_to(help_message)(c)
    )
    assert await mask_reply(LEFT_HALF, to=help_answer) == NOT_A_RESULT
    assert await command("/region left", to=help_answer) == NOT_A_RESULT
    assert "Reply to one of my pictures with /region" in await command("/region left", to=None)
    assert "Reply to one of my pictures" in await command("/region")
    assert "must lie inside the picture" in await command("/region 10,20,95,40 a hat")
    assert "Unknown region 'sideways'" in await command("/region sideways")
    assert "Unknown region '10,20,50'" in await command("/region 10,20,50 a hat")

    # Buttons: another chat's job does not exist from here; a stale menu says so too.
    other_chat, other = private(fake)
    stranger = {**message, "chat": other_chat}
    for data in (f"m:{job.id}:0", f"g:{job.id}:0:left", f"o:{job.id}:0:z2"):
        query = fake.press(other, stranger, data)
        assert "No job" in (await answered(fake, query)).params["text"]
    assert "image(s)" in await press(env, message, f"m:{job.id}:3")
    assert await press(env, message, f"g:{job.id}:0:nowhere") == "This button no longer works."

    assert await children(env, job) == before  # nothing was queued


async def test_a_group_reply_to_someone_else_is_left_alone(env: Env) -> None:
    fake = env.fake
    group = fake.group(-next(ids))
    alice, bob = fake.user(next(ids)), fake.user(next(ids))
    chatter = fake.send_text(group, alice, "look at my cat")
    cat = fake.message(group, bob, photo=fake.photo(LEFT_HALF), reply_to=chatter)
    fake.push(message=cat)
    # the next message is answered: the photo before it had its turn, and got no answer
    later = fake.send_text(group, bob, "/region left")
    assert "Reply to one of my pictures" in await reply_text(fake, later)
    assert not [c for c in fake.calls_of("sendMessage", group["id"]) if replying_to(cat)(c)]
