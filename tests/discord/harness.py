"""Drive the real Discord bot offline: real discord.py, simcord's simulated Discord, the real App.

Each test gets a fresh App (its own SQLite file) and a fresh simulated Discord with one guild
and an ``#art`` channel. The diffusion backend is shared by the whole session and never closed,
so the demo pipeline is loaded once (App.stop would otherwise drop it).

The App is started *inside* ``simcord.run``: the delivery dispatcher's tasks then inherit the
context in which simcord installed its webhook transport, so interaction follow-ups sent by
``deliver`` reach the simulated Discord as they reach the real one.
"""

from __future__ import annotations

import asyncio
import io
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import discord
import pytest
import simcord
from PIL import Image

from bot.app import App
from bot.discord.client import EaselBot, create_bot
from storage.records import JobRecord
from tests.conftest import make_config

JOB_ID_RE = re.compile(r"`([a-z0-9]{8})`")


def keep_loaded_backend(data_dir: Path) -> Any:
    from generation.backend import DiffusersBackend

    class KeepLoaded(DiffusersBackend):
        def close(self) -> None:  # shared across Apps: keep the pipeline resident
            pass

    return KeepLoaded(data_dir=data_dir, device="cpu", dtype="float32", previews=False)


@pytest.fixture(scope="session", name="shared_backend")
def shared_backend_fixture(tmp_path_factory: pytest.TempPathFactory, saved_demo_model: Path) -> Any:
    root = tmp_path_factory.mktemp("discord-backend")
    shutil.copytree(saved_demo_model, root / "models" / "demo")
    return keep_loaded_backend(root)


def png(width: int = 64, height: int = 64, colour: tuple[int, int, int] = (200, 80, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def job_id_in(text: str | None) -> str:
    match = JOB_ID_RE.search(text or "")
    assert match, f"no job id in {text!r}"
    return match.group(1)


@dataclass
class World:
    app: App
    bot: EaselBot
    env: simcord.Env
    data_dir: Path
    guild: simcord.GuildHandle = field(init=False)
    channel: simcord.ChannelHandle = field(init=False)

    def __post_init__(self) -> None:
        self.guild = self.env.create_guild("Painters")
        self.channel = self.guild.create_text_channel("art")
        self._admin_role: simcord.RoleHandle | None = None

    async def restart(self, *, worker: bool = True) -> None:
        """Stop this App, then run a brand-new App and bot on the same data dir and Discord."""
        await self.app.stop()
        app = App.from_config(self.app.config, backend=self.app.backend)
        bot = create_bot(app)
        await self.env.restart_bot(bot)
        await app.start(worker=worker)
        self.app, self.bot = app, bot

    def member(self, name: str, *, admin: bool = False) -> simcord.MemberActor:
        roles = []
        if admin:
            if self._admin_role is None:
                self._admin_role = self.guild.create_role(
                    "Mods", permissions=discord.Permissions(manage_guild=True)
                )
            roles.append(self._admin_role)
        return self.guild.add_member(self.env.create_user(name), roles=roles)

    async def job(self, job_id: str) -> JobRecord:
        job = await self.app.store.get_job(job_id)
        assert job is not None
        return job

    async def delivered(self, job_id: str, timeout: float = 60.0) -> JobRecord:
        """Wait until the dispatcher recorded the delivery of ``job_id`` (then settle the bot)."""
        async with asyncio.timeout(timeout):
            while True:
                job = await self.app.store.get_job(job_id)
                if job is not None and job.delivered_at is not None:
                    break
                if job is not None and job.delivery_error:
                    raise AssertionError(f"delivery of {job_id} failed: {job.delivery_error}")
                await asyncio.sleep(0.02)
        await self.env.settle()
        return job

    def status_texts(self, result: Any) -> list[str]:
        """Every text the requester's status message showed after the first answer, in order
        (its edits). What ``result.response.content`` says now is only the latest, and once
        the result arrived the status message is gone (``discord.keep_status_messages``)."""
        status_id = result._interaction.message_id  # the deferred answer: the status message
        return [
            r.json["content"]
            for r in self.env.http_requests
            if r.method == "PATCH" and r.path.endswith(f"/messages/{status_id}")
        ]

    def first_status(self, result: Any) -> str:
        """What the status message of an accepted command or button first said (the first edit
        of the deferred answer always goes out: a state change is sent at once, and ``finish``
        lets an edit on its way land), else what the answer says now (a refusal)."""
        texts = self.status_texts(result)
        if texts:
            return texts[0]
        assert result.response is not None, "no status message and no answer"
        return str(result.response.content)

    def job_of(self, result: Any) -> str:
        """The job id an accepted command or button's status message named."""
        return job_id_in(self.first_status(result))

    def accepted(self, result: Any) -> str:
        """The job id of a draw that was accepted: its status first said queued (⏳) or, when
        the job had already started by then, drawing (🎨); never a refusal."""
        text = self.first_status(result)
        assert text[0] in "⏳🎨", text
        return job_id_in(text)

    def status_deleted(self, result: Any) -> bool:
        """Whether the status message of ``result`` was deleted."""
        status_id = result._interaction.message_id
        return any(
            r.method == "DELETE" and r.path.endswith(f"/messages/{status_id}")
            for r in self.env.http_requests
        )

    async def finished(self, job_id: str, timeout: float = 60.0) -> JobRecord:
        async with asyncio.timeout(timeout):
            while True:
                job = await self.app.store.get_job(job_id)
                if job is not None and job.is_terminal:
                    return job
                await asyncio.sleep(0.02)

    def result_message(
        self, job_id: str, channel: simcord.ChannelHandle | None = None
    ) -> discord.Message:
        """The message carrying ``job_id``'s buttons."""
        wanted = f"easel:info:{job_id}"
        for message in reversed((channel or self.channel).history()):
            ids = [
                getattr(child, "custom_id", None)
                for row in message.components
                for child in getattr(row, "children", ())
            ]
            if wanted in ids:
                return message
        raise AssertionError(f"no result message for job {job_id}")


def button_ids(message: discord.Message) -> list[str]:
    return [
        str(getattr(child, "custom_id", ""))
        for row in message.components
        for child in getattr(row, "children", ())
    ]


def button_labels(message: discord.Message) -> list[str]:
    return [
        str(getattr(child, "label", None) or getattr(child, "emoji", ""))
        for row in message.components
        for child in getattr(row, "children", ())
    ]


def discord_config(
    data_dir: Path,
    limits: dict[str, Any] | None = None,
    generation: dict[str, Any] | None = None,
    **discord_settings: Any,
) -> Any:
    settings: dict[str, Any] = {"status_edit_interval": 0.0, "max_upload_mb": 0.05}
    settings.update(discord_settings)
    return make_config(
        data_dir,
        limits={"burst": 1000, "max_queued_per_user": 1000, **(limits or {})},
        generation={"shutdown_grace_seconds": 5.0, **(generation or {})},
        discord=settings,
    )


@pytest.fixture(name="world_factory")
async def world_factory_fixture(data_dir: Path, shared_backend: Any) -> AsyncIterator[Any]:
    """``async with world_factory(**discord_settings) as world:`` a running bot and App."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def factory(
        *,
        worker: bool = True,
        limits: dict[str, Any] | None = None,
        generation: dict[str, Any] | None = None,
        **discord_settings: Any,
    ) -> AsyncIterator[World]:
        config = discord_config(data_dir, limits, generation, **discord_settings)
        app = App.from_config(config, backend=shared_backend)
        bot = create_bot(app)
        async with simcord.run(bot) as env:
            await app.start(worker=worker)
            world = World(app, bot, env, data_dir)
            try:
                yield world
            finally:
                await world.app.stop()

    import torch

    # The demo model is tiny: one intra-op thread renders it fastest, and on a busy machine
    # several threads spin against each other (seconds instead of ~0.1 s per image).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield factory
    finally:
        torch.set_num_threads(threads)
