"""Secrets: no bot token, interaction token, webhook URL or API credential in logs, the database
or the error messages users and API clients get.

* :func:`bot.logsetup.redact` hides each kind of secret in the shapes the libraries log them.
* Representative flows run with the root logger at DEBUG and every library logger (discord.py,
  httpx, python-telegram-bot, aiohttp, aiosqlite, ...) let through: a Discord ``/draw`` and a
  button, a Discord delivery failure whose exception text carries the webhook URL with the
  interaction token, a Telegram ``/draw``, and web API calls with right and wrong credentials.
  Then none of the secret values may appear in the captured log text, in any text column of any
  table of the SQLite file (nor in its raw bytes, WAL included), or in the replies.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import simcord.http.router as simcord_router

from bot.app import App
from bot.logsetup import REDACTED, RedactingFilter, redact, secret_values
from bot.telegram.application import build_application, start_application, stop_application
from tests.conftest import WebFactory, make_config
from tests.discord.harness import (  # noqa: F401  (fixtures)
    job_id_in,
    shared_backend_fixture,
    world_factory_fixture,
)
from tests.reliability.test_platform_faults import FaultyTelegram
from tests.telegram.fake_telegram import TOKEN as TELEGRAM_TOKEN
from tests.telegram.fake_telegram import FakeTelegram
from tests.web.conftest import client_app

SECRET_ENV = {
    "EASEL_DISCORD_TOKEN": "XTE5ODc2NTQzMjEwOTg3NjU0.GxYzAb.c2VjcmV0LWRpc2NvcmQtYm90LXRva2VuLXh5",
    "EASEL_TELEGRAM_TOKEN": TELEGRAM_TOKEN,
    "EASEL_API_TOKEN": "api-Tok3n-4f9c2d81e7",
    "EASEL_ADMIN_TOKEN": "adm-Tok3n-b73e10c55a",
    "EASEL_API_AUTH": "alice:pw-S3cret-31a9,bob:pw-S3cret-77c2",
}
# Every simcord interaction token and webhook token starts with these; discord.py logs in with
# this bot token.
SIMCORD_SECRETS = ("simcord_interaction_", "simcord_webhook_", "simcord.fake.token")
LIBRARY_LOGGERS = (
    "discord",
    "httpx",
    "httpcore",
    "telegram",
    "aiohttp",
    "aiosqlite",
    "asyncio",
    "simcord",
    "bot",
    "generation",
    "storage",
    "easel",
)


def all_secrets() -> list[str]:
    values = [v for raw in SECRET_ENV.values() for v in secret_values(raw)]
    return [*values, TELEGRAM_TOKEN.split(":", 1)[1], *SIMCORD_SECRETS]


def leaks(text: str) -> list[str]:
    return [secret for secret in all_secrets() if secret in text]


# ---------------------------------------------------------------------- the filter itself

WEBHOOK = "https://discord.com/api/webhooks/112233445566778899/Zx9_" + "a" * 60
INTERACTION = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5MDEyMzQ1Njc4OnNlY3JldC10b2tlbi14eXo"
DISCORD_BOT = SECRET_ENV["EASEL_DISCORD_TOKEN"]


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        (
            f"HTTP Request: POST https://api.telegram.org/bot{TELEGRAM_TOKEN}/sendPhoto",
            TELEGRAM_TOKEN,
        ),
        (f"GET https://api.telegram.org/file/bot{TELEGRAM_TOKEN}/photos/f.jpg", TELEGRAM_TOKEN),
        (  # httpx logs file URLs with the colon percent-encoded
            "HTTP Request: GET http://127.0.0.1:8081/file/bot"
            + TELEGRAM_TOKEN.replace(":", "%3A")
            + '/photos/file-5.jpg "HTTP/1.1 200 OK"',
            TELEGRAM_TOKEN.split(":", 1)[1],
        ),
        ("POST http://127.0.0.1:8081/bot42:short/getMe", "42:short"),
        (f"token {TELEGRAM_TOKEN} refused", TELEGRAM_TOKEN),
        (f"headers={{'Authorization': 'Bot {DISCORD_BOT}'}}", DISCORD_BOT),
        (f"Webhook ID 1 with POST {WEBHOOK} has returned status code 429", WEBHOOK[-64:]),
        (
            f"POST https://discord.com/api/v10/webhooks/99/{INTERACTION}/messages/@original",
            INTERACTION,
        ),
        (f"POST https://discord.com/api/v10/interactions/77/{INTERACTION}/callback", INTERACTION),
        (f"interaction token {INTERACTION}", INTERACTION),
        ("Authorization: Bearer api-Tok3n-4f9c2d81e7", "api-Tok3n-4f9c2d81e7"),
        ("authorization=Basic YWxpY2U6cHctUzNjcmV0LTMxYTk=", "YWxpY2U6cHctUzNjcmV0LTMxYTk="),
        ("GET http://alice:pw-S3cret-31a9@easel.local:7860/api/jobs", "pw-S3cret-31a9"),
    ],
)
def test_redact_hides_each_kind_of_secret(line: str, secret: str) -> None:
    cleaned = redact(line)
    assert secret not in cleaned and REDACTED in cleaned


def test_redact_hides_configured_values_and_keeps_ordinary_text() -> None:
    secrets = [v for raw in SECRET_ENV.values() for v in secret_values(raw)]
    text = "api-Tok3n-4f9c2d81e7 adm-Tok3n-b73e10c55a pw-S3cret-77c2 alice:pw-S3cret-31a9"
    assert leaks(redact(text, secrets)) == []
    in_a_url = "GET http://x/?auth=alice%3Apw-S3cret-31a9&t=api-Tok3n-4f9c2d81e7"
    assert leaks(redact(in_a_url, secrets)) == []
    ordinary = "Use HTTP basic credentials or a bearer token. Job abc12345 done: seed 42, 64x64."
    assert redact(ordinary, secrets) == ordinary
    # The id part of a webhook URL stays, so a log line still says which webhook it was.
    assert "/webhooks/112233445566778899/" in redact(WEBHOOK)


def test_the_filter_redacts_arguments_and_tracebacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EASEL_API_TOKEN", SECRET_ENV["EASEL_API_TOKEN"])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(["EASEL_API_TOKEN"]))
    log = logging.getLogger("tests.secrets.filter")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("POST %s failed (token %s)", WEBHOOK, SECRET_ENV["EASEL_API_TOKEN"])
        try:
            raise ConnectionResetError(f"reset while POST {WEBHOOK}")
        except ConnectionResetError:
            log.exception("delivery failed")
    finally:
        log.removeHandler(handler)
        log.propagate = True
    text = stream.getvalue()
    assert "delivery failed" in text and "ConnectionResetError" in text
    assert WEBHOOK[-64:] not in text and SECRET_ENV["EASEL_API_TOKEN"] not in text


# ---------------------------------------------------------------------- flows at DEBUG


@pytest.fixture
def debug_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """Everything logged at DEBUG, through the redacting filter as ``easel serve`` installs it."""
    for name, value in SECRET_ENV.items():
        monkeypatch.setenv(name, value)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(SECRET_ENV))
    root = logging.getLogger()
    saved = root.level, {name: logging.getLogger(name).level for name in LIBRARY_LOGGERS}
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        for name, level in saved[1].items():
            logging.getLogger(name).setLevel(level)


def database_text(data_dir: Path) -> str:
    """Every text value of every table, and the raw bytes of the database files."""
    database = data_dir / "easel.db"
    parts: list[str] = []
    with sqlite3.connect(database) as connection:
        tables = [
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        assert "jobs" in tables
        for table in tables:
            for row in connection.execute(f'SELECT * FROM "{table}"'):
                parts += [str(value) for value in row if isinstance(value, str | bytes)]
    for path in data_dir.glob("easel.db*"):
        parts.append(path.read_bytes().decode("latin-1"))
    return "\n".join(parts)


def no_leaks(where: str, text: str) -> None:
    found = leaks(text)
    assert not found, f"secret(s) {found} in {where}"


class ResetWithURL:
    """A connection reset on interaction follow-ups whose text carries the full URL (the
    webhook URL holds the interaction token), like an aiohttp error that quotes its request."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, times: int) -> None:
        self.left = times
        real = simcord_router.dispatch

        def dispatch(backend: Any, method: str, path: str, **kwargs: Any) -> Any:
            if self.left and method == "POST" and path.startswith("/webhooks/"):
                self.left -= 1
                url = f"https://discord.com/api/v10{path}"
                raise aiohttp.ClientOSError(104, f"Connection reset by peer (POST {url})")
            return real(backend, method, path, **kwargs)

        monkeypatch.setattr(simcord_router, "dispatch", dispatch)


async def test_discord_flows_leak_no_token(
    world_factory: Any, debug_log: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with world_factory() as world:
        alice = world.member("alice")
        draw = await alice.slash(world.channel, "draw", prompt="a lighthouse", seed=3, steps=1)
        job = await world.delivered(job_id_in(draw.response.content))
        click = await alice.click(world.result_message(job.id), custom_id=f"easel:reroll:{job.id}")
        child = await world.delivered(job_id_in(click.response.content))
        assert child.parent_id == job.id
        # The stored reply target says which interaction, never its token.
        assert "interaction_id" in job.reply_target and "interaction_token" not in job.reply_target

        # A delivery that fails twice with the webhook URL in the exception text.
        world.app.delivery.retry_delays = (0.01,)
        ResetWithURL(monkeypatch, times=2)
        failing = await alice.slash(world.channel, "draw", prompt="unlucky", seed=4, steps=1)
        failing_id = job_id_in(failing.response.content)
        async with asyncio.timeout(60):
            while (
                row := await world.job(failing_id)
            ).delivery_attempts < 2 or world.app.delivery.is_delivering(failing_id):
                await asyncio.sleep(0.02)
        assert row.delivered_at is None
        assert row.delivery_error and "Connection reset" in row.delivery_error
        assert f"/webhooks/{world.bot.application_id}/{REDACTED}" in row.delivery_error

        # The user-facing texts: every message and edit the bot sent.
        await world.env.settle()
        replies = [
            str(request.json.get("content"))
            for request in world.env.http_requests
            if isinstance(request.json, dict) and request.json.get("content")
        ]
        assert any("unlucky" not in r and "lighthouse" in r for r in replies)
        no_leaks("the Discord replies", "\n".join(replies))
        interactions = [r.path for r in world.env.http_requests if "simcord_interaction_" in r.path]
        assert interactions  # the tokens were really used (so the checks below mean something)
        data_dir = world.app.config.data_dir
    text = debug_log.getvalue()
    assert "DEBUG discord" in text and "Connection reset" in text  # libraries were heard
    no_leaks("the DEBUG log", text)
    no_leaks("the database", database_text(data_dir))


@pytest.fixture
async def telegram_app(data_dir: Path) -> AsyncIterator[tuple[FakeTelegram, App]]:
    fake = FaultyTelegram()  # the fake Bot API, with short long-polls
    await fake.start()
    config = make_config(
        data_dir,
        telegram={"base_url": fake.base_url, "base_file_url": fake.base_file_url},
        generation={"shutdown_grace_seconds": 5.0, "cpu_threads": 1},
    )
    app = App.from_config(config)
    await app.start()
    application = build_application(app)  # the token from $EASEL_TELEGRAM_TOKEN
    await start_application(application)
    try:
        yield fake, app
    finally:
        await stop_application(application)
        await app.stop()
        await fake.stop()


async def test_telegram_flow_leaks_no_token(
    debug_log: io.StringIO, telegram_app: tuple[FakeTelegram, App]
) -> None:
    fake, app = telegram_app
    chat, user = fake.private_chat(777_001, "Tess")
    bad = fake.send_text(chat, user, "/draw a cat --sed 4")
    fake.send_text(chat, user, "/draw a lighthouse --steps 1 --seed 5")
    photo = await fake.wait_call("sendPhoto", chat["id"], timeout=60)
    refusal = await fake.wait_call(
        "sendMessage",
        chat["id"],
        lambda c: (c.params.get("reply_parameters") or {}).get("message_id") == bad["message_id"],
    )
    assert "--seed" in refusal.params["text"]
    replies = [str(c.params.get("text") or c.params.get("caption")) for c in fake.calls]
    no_leaks("the Telegram replies", "\n".join(replies))
    assert "lighthouse" in str(photo.params["caption"])
    async with asyncio.timeout(30):
        while not any(job.delivered_at for job in await app.store.list_jobs(limit=5)):
            await asyncio.sleep(0.05)
    text = debug_log.getvalue()
    assert "getUpdates" in text and "HTTP Request" in text  # httpx's URL lines were captured
    no_leaks("the DEBUG log", text)
    no_leaks("the database", database_text(app.config.data_dir))


async def test_web_api_flow_leaks_no_credential(
    debug_log: io.StringIO,
    web_factory: WebFactory,
) -> None:
    client = await web_factory(web={"host": "0.0.0.0"})
    api = {"Authorization": f"Bearer {SECRET_ENV['EASEL_API_TOKEN']}"}
    body = {"prompt": "a red fox", "steps": 1, "width": 64, "height": 64, "seed": 1}
    accepted = await client.post("/api/jobs", json=body, headers=api)
    assert accepted.status == 202, await accepted.text()
    job_id = (await accepted.json())["job"]["id"]
    answers = [await (await client.get(f"/api/jobs/{job_id}", headers=api)).text()]

    wrong_bearer = "Bearer not-the-Tok3n-5e1d"
    basic = base64.b64encode(b"alice:wrong-Passw0rd-1").decode()
    refused = [
        (client.post("/api/jobs", json=body, headers={"Authorization": wrong_bearer}), 401),
        (client.get("/api/jobs", headers={"Authorization": f"Basic {basic}"}), 401),
        (client.get("/api/admin/settings", headers=api), 403),
        (client.get("/api/jobs"), 401),
        (client.post("/api/jobs", data=b"{not json", headers=api), 400),
    ]
    for request, status in refused:
        response = await request
        text = await response.text()
        assert response.status == status, text
        assert "error" in text
        assert "not-the-Tok3n" not in text and "wrong-Passw0rd" not in text
        answers.append(text)
    no_leaks("the API's answers", "\n".join(answers))
    app = client_app(client)
    async with asyncio.timeout(60):
        while not (job := await app.store.get_job(job_id)) or not job.is_terminal:
            await asyncio.sleep(0.05)
    text = debug_log.getvalue()
    assert "DEBUG" in text
    no_leaks("the DEBUG log", text)
    assert "not-the-Tok3n" not in text and "wrong-Passw0rd" not in text
    no_leaks("the database", database_text(app.config.data_dir))
