"""The Telegram tests' App: one App and Application per test module, serving the real
python-telegram-bot over HTTP from a local fake Bot API server and rendering with the demo
model (each test uses its own chats and users)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bot.app import App
from bot.telegram.application import build_application, start_application, stop_application
from tests.conftest import make_config
from tests.telegram.fake_telegram import TOKEN, FakeTelegram
from tests.telegram.helpers import OWNER, Env


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def env(
    tmp_path_factory: pytest.TempPathFactory, saved_demo_model: Path
) -> AsyncIterator[Env]:
    data = tmp_path_factory.mktemp("telegram") / "data"
    shutil.copytree(saved_demo_model, data / "models" / "demo")
    fake = FakeTelegram()
    await fake.start()
    config = make_config(
        data,
        telegram={
            "base_url": fake.base_url,
            "base_file_url": fake.base_file_url,
            "owner_ids": [OWNER],
            "status_edit_interval": 0.05,
        },
        limits={"burst": 1000, "max_queued_per_user": 1000},
        generation={"shutdown_grace_seconds": 5.0},
    )
    app = App.from_config(config)
    await app.start()
    application = build_application(app, token=TOKEN)
    await start_application(application)
    env = Env(fake, app, application)
    yield env
    await stop_application(env.application)
    await env.app.stop()
    await fake.stop()
