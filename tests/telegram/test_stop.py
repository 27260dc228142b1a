"""Stopping Easel while a Telegram result is on its way, then starting it again: the result is
sent once, and the restart in the same process finds the database free.

``easel serve`` is driven as it runs for real: ``App.start(front_ends=True)`` starts the bot from
the token variable, ``App.stop()`` stops everything in order.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from bot.app import App
from bot.config import Config
from storage.records import JobRecord
from tests.conftest import make_config
from tests.telegram.fake_telegram import TOKEN, FakeTelegram


async def test_a_graceful_stop_records_a_result_that_already_went_out(
    tmp_path: Path, saved_demo_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    shutil.copytree(saved_demo_model, data / "models" / "demo")
    fake = FakeTelegram()
    await fake.start()
    monkeypatch.setenv("EASEL_TELEGRAM_TOKEN", TOKEN)
    monkeypatch.delenv("EASEL_DISCORD_TOKEN", raising=False)
    config = make_config(
        data,
        telegram={
            "base_url": fake.base_url,
            "base_file_url": fake.base_file_url,
            "status_edit_interval": 0.05,
        },
        web={"enabled": False},
        generation={"shutdown_grace_seconds": 5.0, "cpu_threads": 1},
    )
    chat, user = fake.private_chat(4242, "Ada")

    # the status message's end, after the photo: it is deleted (telegram.keep_status_messages
    # is false by default)
    held = fake.hold_next("deleteMessage")
    first = App.from_config(config)
    await first.start(front_ends=True)
    second: App | None = None
    try:
        fake.send_text(chat, user, "/draw a lighthouse --steps 2")
        await asyncio.wait_for(held.arrived.wait(), timeout=120)
        photos = fake.calls_of("sendPhoto", chat["id"])
        assert len(photos) == 1  # the result went out; its delivery is not recorded yet
        job_id = next(
            j.id for j in await first.store.list_jobs() if j.id in photos[0].params["caption"]
        )
        stopping = asyncio.create_task(first.stop())
        # The stop is under way (an older Easel cancelled the delivery here, unrecorded, and
        # sent the photo again after the restart); the last call then answers.
        await asyncio.sleep(0.5)
        held.release.set()
        await asyncio.wait_for(stopping, timeout=60)
        assert (await reopen_job(config, job_id)).delivered_at is not None

        second = App.from_config(config)  # the same process, the same database
        await second.start(front_ends=True)
        fake.send_text(chat, user, "/draw a second lighthouse --steps 2")
        later = await fake.wait_call(
            "sendPhoto", chat["id"], lambda c: job_id not in str(c.params.get("caption"))
        )
        assert later.status == 200
        sent = [c for c in fake.calls_of("sendPhoto", chat["id"]) if job_id in c.params["caption"]]
        assert len(sent) == 1, "the result was sent again after the restart"
    finally:
        held.release.set()
        for app in (first, second):
            if app is not None and app.started:
                await app.stop()
        await fake.stop()


async def reopen_job(config: Config, job_id: str) -> JobRecord:
    """The job as the database holds it (read by a fresh store, as a restart would)."""
    app = App.from_config(config)
    await app.start(worker=False)
    try:
        job = await app.store.get_job(job_id)
    finally:
        await app.stop()
    assert job is not None
    return job
