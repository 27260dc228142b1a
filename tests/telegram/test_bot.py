"""The Telegram front end end to end: the real python-telegram-bot Application talks HTTP to a
local fake Bot API server (tests/telegram/fake_telegram.py); the real App renders with the demo
model. One App and Application serve the whole module (each test uses its own chats and users);
the restart test replaces them with new ones on the same data directory.
"""

from __future__ import annotations

import io
import itertools
import logging
import re
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from bot.app import App
from bot.logsetup import RedactingFilter
from bot.telegram.application import (
    build_application,
    easel_of,
    start_application,
    start_telegram,
    stop_application,
    webhook_port,
)
from generation.metadata import read_png_text
from generation.requests import Origin
from storage.records import JobRecord
from tests.addon_files import make_embedding
from tests.telegram.fake_telegram import (
    ANONYMOUS_ADMIN,
    BOT_USERNAME,
    NOT_MODIFIED,
    TOKEN,
    Call,
)
from tests.telegram.helpers import (
    OWNER,
    Env,
    answered,
    buttons,
    delivered,
    draw,
    drop,
    ids,
    job_id_in,
    png,
    private,
    reply_text,
    replying_to,
    status_of,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def result(env: Env) -> tuple[dict[str, Any], JobRecord, Call]:
    return await draw(env, "/draw a lighthouse --seed 5")


# ---------------------------------------------------------------------- tests


async def test_start_registers_commands_and_asks_for_reactions(env: Env) -> None:
    commands = env.fake.calls_of("setMyCommands")[0].params["commands"]
    names = {command["command"] for command in commands}
    assert {"draw", "rerun", "show", "history", "queue", "cancel", "help"} <= names
    assert {"models", "setmodel", "limits", "blocklist", "styles"} <= names
    poll = await env.fake.wait_call("getUpdates")
    assert set(poll.params["allowed_updates"]) >= {"message", "callback_query", "message_reaction"}


async def test_draw_edits_one_status_message_then_sends_the_photo(env: Env) -> None:
    fake = env.fake
    chat, user = private(fake)
    command = fake.send_text(
        chat, user, '/draw a castle at dusk --no blurry --seed 42 --steps 8 --sampler "Euler a"'
    )
    job_id, status = await status_of(fake, command)
    photo = await fake.wait_call("sendPhoto", chat["id"])
    job = await delivered(env.app, job_id)
    assert (job.prompt, job.negative_prompt, job.seed, job.steps) == (
        "a castle at dusk",
        "blurry",
        42,
        8,
    )
    assert job.sampler == "Euler a" and job.delivery_attempts == 0
    caption = photo.params["caption"]
    assert "a castle at dusk" in caption and "seed 42" in caption and job_id in caption
    assert photo.params["reply_parameters"]["message_id"] == command["message_id"]
    assert buttons(photo) == [
        f"r:{job_id}",
        f"u:{job_id}:0",
        f"v:{job_id}:0",
        f"o:{job_id}:0:z15",
        f"o:{job_id}:0:z2",
        f"o:{job_id}:0:pl",
        f"o:{job_id}:0:pr",
        f"o:{job_id}:0:pu",
        f"o:{job_id}:0:pd",
        f"m:{job_id}:0",
        f"i:{job_id}",
        f"p:{job_id}:0",
    ]
    # The status message showed the progress, then went once the photo was out: one message
    # per job (telegram.keep_status_messages = false, the default); no "✅ finished" is left.
    status_id = status.result["message_id"]
    deleted = await fake.wait_call(
        "deleteMessage", chat["id"], lambda c: c.params["message_id"] == status_id
    )
    assert fake.calls.index(photo) < fake.calls.index(deleted)
    assert (chat["id"], status_id) in fake.deleted
    edits = [
        c.params["text"]
        for c in fake.calls_of("editMessageText", chat["id"])
        if c.params["message_id"] == status_id
    ]
    assert any("step" in text for text in edits)
    # The engine's estimates, as on the page: when it should be done, then the time left.
    assert any(re.search(r"⏳ .*done in \d+ s", text) for text in [status.params["text"], *edits])
    assert any(re.search(r"\(step \d+/8, done in \d+ s\)", text) for text in edits), edits
    assert not any(text.startswith("✅") for text in edits)
    # no edit of the status reached Telegram after the photo (a late "step 1/1" cannot)
    assert all(
        fake.calls.index(c) < fake.calls.index(photo)
        for c in fake.calls_of("editMessageText", chat["id"])
    )
    shown = [status.params["text"], *edits]
    assert all(a != b for a, b in itertools.pairwise(shown))  # never the same text twice
    assert [c.status for c in fake.calls_of("editMessageText", chat["id"], ok=False)] == [
        200
    ] * len(edits)  # the fake refuses an edit to the same text with a 400: none happened
    action = fake.calls_of("sendChatAction", chat["id"])[0]
    assert action.params["action"] == "upload_photo"


async def test_group_draw_at_bot_name_with_negative_shorthand(env: Env) -> None:
    fake = env.fake
    group = fake.group(-next(ids))
    user = fake.user(next(ids))
    other = fake.send_text(group, user, "/draw@SomeOtherBot not for us")
    command = fake.send_text(group, user, f"/draw@{BOT_USERNAME} a red fox | blurry, dark")
    job_id, _ = await status_of(fake, command)
    await drop(env.app, job_id)
    job = await delivered(env.app, job_id)
    assert (job.prompt, job.negative_prompt) == ("a red fox", "blurry, dark")
    assert not [c for c in fake.calls_of("sendMessage", group["id"]) if replying_to(other)(c)]


async def test_grammar_errors_are_explained(env: Env) -> None:
    chat, user = private(env.fake)
    command = env.fake.send_text(chat, user, "/draw a cat --sed 4")
    text = await reply_text(env.fake, command)
    assert "--sed" in text and "--seed" in text


async def test_several_images_come_as_an_album_with_a_keyboard_message(env: Env) -> None:
    fake = env.fake
    chat, user = private(fake)
    command = fake.send_text(chat, user, "/draw two moons --n 2 --seed 9")
    job_id, _ = await status_of(fake, command)
    album = await fake.wait_call("sendMediaGroup", chat["id"])
    assert [item["type"] for item in album.params["media"]] == ["photo", "photo"]
    assert "two moons" in album.params["media"][0]["caption"]
    first = album.result[0]
    carrier = await fake.wait_call("sendMessage", chat["id"], replying_to(first))
    assert f"u:{job_id}:1" in buttons(carrier) and f"p:{job_id}:1" in buttons(carrier)
    await delivered(env.app, job_id)


async def test_photo_with_draw_caption_is_image_to_image(env: Env) -> None:
    fake = env.fake
    chat, user = private(fake)
    photo = fake.photo(png())
    message = fake.send_photo(chat, user, photo, "/draw make it blue --strength 0.5")
    job_id, _ = await status_of(fake, message)
    job = await delivered(env.app, job_id)
    assert job.mode == "img2img" and job.strength == 0.5 and job.init_image
    assert fake.calls_of("getFile")[-1].params["file_id"] == photo[-1]["file_id"]  # full size


async def test_draw_in_reply_to_a_photo_is_image_to_image(env: Env) -> None:
    fake = env.fake
    chat, user = private(fake)
    picture = fake.message(chat, user, photo=fake.photo(png((10, 200, 10))))
    command = fake.send_text(chat, user, "/draw a green field", reply_to=picture)
    job_id, _ = await status_of(fake, command)
    await drop(env.app, job_id)
    job = await delivered(env.app, job_id)
    assert job.mode == "img2img" and job.prompt == "a green field"


async def test_a_file_that_is_not_a_picture_gets_an_answer(env: Env) -> None:
    fake = env.fake
    chat, user = private(fake)
    pdf = {
        **fake.add_file(b"%PDF-1.4 tiny"),
        "file_name": "cat.pdf",
        "mime_type": "application/pdf",
    }
    message = fake.message(chat, user, caption="/draw a cat", document=pdf)
    fake.push(message=message)
    text = await reply_text(fake, message)
    assert "application/pdf" in text and "PNG, JPEG, WebP, GIF or BMP" in text, text
    assert not [c for c in fake.calls_of("getFile") if c.params["file_id"] == pdf["file_id"]]


async def test_status_messages_can_be_kept(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """telegram.keep_status_messages = true: the status stays, showing the outcome."""
    monkeypatch.setattr(easel_of(env.application).frontend, "_keep_status", True)
    fake = env.fake
    chat, user = private(fake)
    command = fake.send_text(chat, user, "/draw a kept one --steps 1")
    job_id, status = await status_of(fake, command)
    await delivered(env.app, job_id)
    done = f"✅ {job_id} finished in "
    await fake.wait_call("editMessageText", chat["id"], lambda c: c.params["text"].startswith(done))
    status_id = status.result["message_id"]
    assert not [c for c in fake.calls_of("deleteMessage") if c.params["message_id"] == status_id]


async def test_an_oversized_photo_is_refused_before_it_is_downloaded(env: Env) -> None:
    fake = env.fake
    chat, user = private(fake)
    photo = fake.photo(png(), size=30 * 1024 * 1024)
    message = fake.send_photo(chat, user, photo, "/draw huge")
    text = await reply_text(fake, message)
    assert "30.0 MB" in text and "limit" in text
    ids = {p["file_id"] for p in photo}
    assert not [c for c in fake.calls_of("getFile") if c.params["file_id"] in ids]


async def test_buttons_reroll_upscale_vary_info_and_png(env: Env, result: Any) -> None:
    fake = env.fake
    message, job, _ = result
    chat_id = message["chat"]["id"]
    user = fake.user(chat_id)
    queries = [fake.press(user, message, f"{code}:{job.id}:0") for code in ("u", "v")]
    queries.append(fake.press(user, message, f"r:{job.id}"))
    for query in queries:
        answer = await answered(fake, query)
        assert "job" in answer.params["text"]
    children = {str(j.action): j for j in await env.app.store.children(job.id)}
    assert set(children) == {"reroll", "upscale", "vary"}
    assert children["upscale"].width == 2 * job.width and children["vary"].mode == "img2img"
    assert children["reroll"].prompt == job.prompt and children["reroll"].seed != job.seed
    await drop(env.app, children["reroll"].id)
    # Each result says what it is, of which job, and for whom (not "from an image").
    for action, headline in (
        ("upscale", f"Upscale of image 1 of {job.id}, for Bob\n"),
        ("vary", f"Vary (subtle) of image 1 of {job.id}, for Bob\n"),
    ):
        made = await delivered(env.app, children[action].id)
        assert made.status == "succeeded"
        photo = await fake.wait_call(
            "sendPhoto", chat_id, lambda c, made=made: made.id in str(c.params.get("caption"))
        )
        assert photo.params["caption"].startswith(headline), photo.params["caption"]
        assert "from an image" not in photo.params["caption"]

    fake.press(user, message, f"i:{job.id}")
    info = await fake.wait_call(
        "sendMessage", chat_id, lambda c: c.params["text"].startswith(f"ℹ️ Job {job.id}")
    )
    text = info.params["text"]
    assert "Prompt: a lighthouse" in text and f"/rerun {job.id}" in text

    fake.press(user, message, f"p:{job.id}:0")
    document = await fake.wait_call("sendDocument", chat_id)
    texts = read_png_text(document.files["document"])
    assert "Seed: 5" in texts["parameters"]


async def test_a_stale_button_gets_an_answer(env: Env) -> None:
    chat, user = private(env.fake)
    message = env.fake.message(chat, None, "old")
    query = env.fake.press(user, message, "r:nosuchjob")
    answer = await answered(env.fake, query)
    assert "nosuchjob" in answer.params["text"]


async def test_reactions_map_to_actions(env: Env, result: Any) -> None:
    fake = env.fake
    message, job, _ = result
    chat = message["chat"]
    user = fake.user(chat["id"])
    before = {j.id for j in await env.app.store.children(job.id)}
    fake.react(chat, user, message["message_id"], "👍")  # not mapped: ignored
    fake.react(chat, user, message["message_id"], "⚡", old=("👍",))

    def new_status(call: Call) -> bool:
        text = str(call.params["text"])
        return (
            replying_to(message)(call) and text.startswith("⏳") and job_id_in(text) not in before
        )

    status = await fake.wait_call("sendMessage", chat["id"], new_status)
    child_id = job_id_in(status.params["text"])
    await drop(env.app, child_id)
    child = await delivered(env.app, child_id)
    assert child.action == "reroll" and child.parent_id == job.id


async def test_history_queue_show_and_help(env: Env, result: Any) -> None:
    fake = env.fake
    message, job, _ = result
    chat = message["chat"]
    user = fake.user(chat["id"])
    assert job.id in await reply_text(fake, fake.send_text(chat, user, "/history"))
    assert "waiting" in await reply_text(fake, fake.send_text(chat, user, "/queue"))
    assert "/draw" in await reply_text(fake, fake.send_text(chat, user, "/help"))
    show = fake.send_text(chat, user, f"/show {job.id}")
    photo = await fake.wait_call("sendPhoto", chat["id"], replying_to(show))
    assert job.id in photo.params["caption"]
    assert "No job" in await reply_text(fake, fake.send_text(chat, user, "/show zzzz"))


async def test_cancel_a_job(env: Env) -> None:
    fake = env.fake
    chat, user = private(fake)
    command = fake.send_text(chat, user, "/draw a long one --steps 60 --n 4")
    job_id, _ = await status_of(fake, command)
    stranger_chat, stranger = private(fake)
    refused = fake.send_text(stranger_chat, stranger, f"/cancel {job_id}")
    assert "No job" in await reply_text(fake, refused)  # other chats' jobs are invisible
    cancel = fake.send_text(chat, user, f"/cancel {job_id}")
    assert "cancelled" in await reply_text(fake, cancel)
    job = await delivered(env.app, job_id)
    assert job.status == "cancelled"
    final = f"🚫 {job_id} was cancelled."
    await fake.wait_call("editMessageText", chat["id"], lambda c: c.params["text"] == final)


async def test_admin_commands_need_a_chat_admin_or_an_owner(env: Env) -> None:
    fake = env.fake
    group = fake.group(-next(ids))
    member, admin, creator = (fake.user(next(ids)) for _ in range(3))
    fake.set_member(group["id"], admin["id"], "administrator")
    fake.set_member(group["id"], creator["id"], "creator")

    async def ask(user: dict[str, Any] | None, text: str, **kw: Any) -> str:
        return await reply_text(fake, fake.send_text(group, user, text, **kw))

    assert "Only this chat's admins" in await ask(member, "/limits")
    assert "Only this chat's admins" in await ask(member, "/setmodel demo")
    assert "now draws with demo" in await ask(admin, "/setmodel demo")
    assert "dragon" in await ask(creator, "/blocklist add dragon")
    assert "Limits in this chat" in await ask(ANONYMOUS_ADMIN, "/limits", sender_chat=group)
    assert "demo" in await ask(fake.user(OWNER), "/models")
    embedding = make_embedding(env.app.config.data_dir / "neg.safetensors", 1, width=768)
    await env.app.service.add_addon(
        Origin("cli", "x", "x", is_admin=True), "neg", str(embedding), "embedding"
    )
    assert "• neg (embedding, sd1): write neg" in await ask(fake.user(OWNER), "/models")
    assert "rate_per_minute = 2" in await ask(admin, "/limits rate_per_minute=2")
    assert "this chat's admins block" in await ask(member, "/draw a dragon at sea")
    assert "max_steps = 3" in await ask(admin, "/limits max_steps=3")
    refused = await ask(member, "/draw a ship --steps 5")
    assert "this chat's admins allow at most 3 steps" in refused, refused
    assert "server" not in refused
    origin = Origin("telegram", str(group["id"]), "x")
    settings = await env.app.service.scope_settings(origin)
    assert settings.default_model == "demo" and settings.blocklist == ("dragon",)
    assert settings.rate_per_minute == 2.0
    lone, lone_user = private(fake)  # in a private chat only owners are admins
    refused = fake.send_text(lone, lone_user, "/limits burst=100")
    assert "Only this chat's admins" in await reply_text(fake, refused)


async def test_styles_added_by_chat_admins_listed_for_everyone_and_used(env: Env) -> None:
    fake = env.fake
    group = fake.group(-next(ids))
    member, admin = (fake.user(next(ids)) for _ in range(2))
    fake.set_member(group["id"], admin["id"], "administrator")

    async def ask(user: dict[str, Any], text: str) -> str:
        return await reply_text(fake, fake.send_text(group, user, text))

    assert "No prompt styles" in await ask(member, "/styles")
    assert "Only this chat's admins" in await ask(member, "/styles add ink ink drawing")
    assert "Name the style" in await ask(admin, "/styles add")
    saved = await ask(admin, "/styles add ink {prompt}, ink drawing | colour")
    assert "saved" in saved, saved
    assert "ink: {prompt}, ink drawing (no: colour)" in await ask(member, "/styles")
    command = fake.send_text(group, member, "/draw a fox --style ink --steps 2")
    job_id, _ = await status_of(fake, command)
    job = await delivered(env.app, job_id)
    assert (job.prompt, job.negative_prompt) == ("a fox, ink drawing", "colour")
    assert "Unknown style 'noir'" in await ask(member, "/draw a fox --style noir")
    assert "removed" in await ask(admin, "/styles remove ink")
    assert "no style 'ink'" in await ask(admin, "/styles remove ink")


async def test_a_rate_limited_draw_says_when_to_retry(env: Env) -> None:
    fake = env.fake
    group = fake.group(-next(ids))
    set_limits = fake.send_text(group, fake.user(OWNER), "/limits burst=1 rate_per_minute=6")
    assert "Limits updated" in await reply_text(fake, set_limits)
    user = fake.user(next(ids))
    first = fake.send_text(group, user, "/draw one")
    job_id, _ = await status_of(fake, first)
    second = fake.send_text(group, user, "/draw two")
    text = await reply_text(fake, second)
    assert "too fast" in text and re.search(r"try again in \d+ s", text), text
    assert "at most 6 drawings a minute (1 at once)" in text, text  # what the limit is
    await drop(env.app, job_id)


async def test_flood_control_is_honoured_and_not_modified_is_swallowed(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a kept status message: its final edit ("✅ finished") is always made
    monkeypatch.setattr(easel_of(env.application).frontend, "_keep_status", True)
    fake = env.fake
    chat, user = private(fake)
    fake.flood_next("sendPhoto", retry_after=1, chat_id=chat["id"])
    fake.flood_next("editMessageText", retry_after=1, chat_id=chat["id"])
    fake.fail_next("editMessageText", 400, NOT_MODIFIED, chat_id=chat["id"])
    command = fake.send_text(chat, user, "/draw under pressure --steps 8")
    job_id, _ = await status_of(fake, command)
    job = await delivered(env.app, job_id)
    assert job.delivery_attempts == 0  # the retry happened inside one delivery
    sent = [c for c in fake.calls if c.method == "sendPhoto" and c.chat_id == chat["id"]]
    assert [c.status for c in sent] == [429, 200]
    assert sent[1].at - sent[0].at >= 1.0
    edits = [c for c in fake.calls if c.method == "editMessageText" and c.chat_id == chat["id"]]
    assert [c.status for c in edits[:2]] == [429, 400]
    assert edits[1].at - edits[0].at >= 1.0  # nothing was edited in that chat until then
    assert all(c.status == 200 for c in edits[2:])
    assert edits[-1].params["text"].startswith(f"✅ {job_id} finished in ")


async def test_serve_starts_the_bot_only_with_a_token(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    variable = env.app.config.telegram.token_env
    monkeypatch.delenv(variable, raising=False)
    assert await start_telegram(env.app) is None
    monkeypatch.setenv(variable, TOKEN)
    calls = len(env.fake.calls_of("getMe"))
    application = await start_telegram(env.app)
    assert application is not None
    try:
        assert len(env.fake.calls_of("getMe")) == calls + 1
    finally:
        await stop_application(application)
        env.app.delivery.register(easel_of(env.application).frontend)


async def test_webhook_mode(env: Env) -> None:
    fake = env.fake
    config = env.app.config.telegram.model_copy(
        update={
            "mode": "webhook",
            "webhook_url": "https://example.test/easel-hook",
            "webhook_port": 0,
        }
    )
    application = build_application(env.app, token=TOKEN, config=config)
    try:
        await start_application(application)
        hook = await fake.wait_call("setWebhook")
        assert hook.params["url"] == "https://example.test/easel-hook"
        assert "message_reaction" in hook.params["allowed_updates"]
        url = f"http://127.0.0.1:{webhook_port(application)}/easel-hook"
        chat, user = private(fake)
        message = fake.message(chat, user, "/help")
        update = {"update_id": 1, "message": message}
        async with aiohttp.ClientSession() as session:
            async with session.post(url, json=update) as response:
                assert response.status == 403  # no secret token
            headers = {"X-Telegram-Bot-Api-Secret-Token": hook.params["secret_token"]}
            async with session.post(url, json=update, headers=headers) as response:
                assert response.status == 200
        assert "/draw" in await reply_text(fake, message)
    finally:
        await stop_application(application)
        env.app.delivery.register(easel_of(env.application).frontend)


async def test_buttons_work_after_a_restart_and_the_token_is_never_logged(
    env: Env, result: Any
) -> None:
    fake = env.fake
    message, job, _ = result
    chat_id = message["chat"]["id"]
    await stop_application(env.application)
    await env.app.stop()

    log = io.StringIO()
    handler = logging.StreamHandler(log)
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    saved = root.level, {n: logging.getLogger(n).level for n in ("httpx", "telegram")}
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in saved[1]:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        app = App.from_config(env.app.config, backend=env.app.backend)
        await app.start()
        env.app = app
        env.application = build_application(app, token=TOKEN)
        await start_application(env.application)
        # The message map lives in the main database and survives the restart.
        shown = await app.service.messages.find_result(
            "telegram", str(chat_id), str(message["message_id"])
        )
        assert shown is not None and (shown.job_id, shown.image_index) == (job.id, 0)
        assert not (app.config.data_dir / "telegram.db").exists()
        query = fake.press(fake.user(chat_id), message, f"r:{job.id}")  # sent before the stop
        child_id = job_id_in((await answered(fake, query)).params["text"])
        await fake.wait_call(
            "sendPhoto", chat_id, lambda c: child_id in str(c.params.get("caption")), timeout=60
        )
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        for name, level in saved[1].items():
            logging.getLogger(name).setLevel(level)
    child = await delivered(env.app, child_id)
    assert child.action == "reroll" and child.parent_id == job.id
    text = log.getvalue()
    assert "getUpdates" in text  # DEBUG output was captured...
    assert TOKEN not in text and TOKEN.split(":")[1] not in text  # ...without the token
