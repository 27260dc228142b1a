"""Helpers for driving a started App through its service, as a front end would."""

from __future__ import annotations

import asyncio
import io

import numpy as np
from PIL import Image

from bot.app import App
from generation.events import JobFinished
from generation.requests import DrawRequest, Origin, Visibility
from storage.records import JobRecord


def origin(user: str = "alice", scope: str = "local", *, admin: bool = False) -> Origin:
    """Someone in a shared scope (like a chat: they see its jobs); an admin sees every job,
    like the machine's owner at the command line."""
    return Origin(
        platform="cli",
        scope_id=scope,
        user_id=user,
        user_name=user,
        is_admin=admin,
        sees=Visibility.ALL if admin else Visibility.SCOPE,
    )


def small(prompt: str = "a castle at dusk", **fields: object) -> DrawRequest:
    values: dict[str, object] = {"width": 64, "height": 64, "steps": 4, "seed": 42}
    values.update(fields)
    return DrawRequest(prompt=prompt, **values)  # type: ignore[arg-type]


async def wait_finished(app: App, job_id: str, timeout: float = 60.0) -> JobRecord:
    """Wait until ``job_id`` is terminal and return its final record."""
    subscription = app.bus.subscribe(job_id)
    try:
        job = await app.store.get_job(job_id)
        assert job is not None
        if job.is_terminal:
            return job
        async with asyncio.timeout(timeout):
            while True:
                event = await subscription.get()
                if isinstance(event, JobFinished):
                    return event.job
    finally:
        subscription.close()


def pixels(app: App, job: JobRecord, index: int = 0) -> np.ndarray:
    data = app.images.read(job.images[index].sha256)
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a - b).max())
