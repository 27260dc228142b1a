"""The event loop never waits on heavy work: Discord heartbeats, Telegram polling and HTTP
answers share it with admission.

A ticker task notes the longest gap between its wake-ups while a large upload is admitted. The
measure is relative (the worst gap against the time the upload took), so a busy machine slows
both alike: decoding on the loop made the worst gap about the whole upload (a 10.7 MB upload
stalled everything for ~2.3 s); in a thread it is a few milliseconds.
"""

from __future__ import annotations

import asyncio
import io
import random

from PIL import Image

from tests.conftest import AppFactory
from tests.e2e.engine_helpers import origin, small

MB = 1024 * 1024


def noise_png(side: int) -> bytes:
    """A PNG that compresses badly (random pixels): ~side*side*3 bytes, slow to decode."""
    pixels = random.Random(7).randbytes(side * side * 3)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


async def worst_gap_during(work: asyncio.Future[object]) -> tuple[float, float]:
    """(worst gap between ticks, how long ``work`` took), both in seconds."""
    loop = asyncio.get_running_loop()
    gaps: list[float] = []

    async def tick() -> None:
        last = loop.time()
        while not work.done():
            await asyncio.sleep(0.002)
            now = loop.time()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    started = loop.time()
    await work
    took = loop.time() - started
    await ticker
    return max(gaps), took


async def test_a_large_upload_does_not_stall_the_event_loop(app_factory: AppFactory) -> None:
    app = await app_factory(worker=False)
    upload = noise_png(1780)  # ~9.5 MB
    assert len(upload) > 9 * MB
    draw = asyncio.ensure_future(
        app.service.draw(origin(), small(init_image=upload), max_upload_bytes=10 * MB)
    )
    worst, took = await worst_gap_during(draw)
    assert draw.result().job.init_image is not None  # it really was decoded and stored
    assert worst < took / 2, f"the loop stalled {worst:.3f} s of a {took:.3f} s upload"
