"""A Flux.1 model in a Telegram chat: /draw --model renders with the family's sampler and
guidance, and a negative prompt (``--no``) is answered with the reason, nothing queued."""

from __future__ import annotations

import pytest

from generation.requests import Origin
from tests.telegram.helpers import Env, draw, private, reply_text

pytestmark = pytest.mark.asyncio(loop_scope="module")
ADMIN = Origin(platform="cli", scope_id="local", user_id="root", is_admin=True)


async def test_flux_draws_and_refuses_a_negative_prompt(env: Env) -> None:
    await env.app.service.add_model(ADMIN, "flux", "builtin:demo-flux")
    _, job, photo = await draw(env, "/draw a lighthouse --model flux --seed 5")
    assert (job.model, job.sampler, job.cfg, job.status) == ("flux", "Euler", 3.5, "succeeded")
    assert job.id in photo.params["caption"]

    queued = await env.app.store.count_queued(include_running=True)
    chat, user = private(env.fake)
    command = env.fake.send_text(chat, user, "/draw a lighthouse --model flux --no fog")
    text = await reply_text(env.fake, command)
    assert "Flux.1 ignores the negative prompt" in text
    assert await env.app.store.count_queued(include_running=True) == queued


async def test_an_sdxl_refiner_in_a_draw(env: Env) -> None:
    await env.app.service.add_model(ADMIN, "xl", "builtin:demo-sdxl")
    await env.app.service.add_model(ADMIN, "xl-refiner", "builtin:demo-sdxl-refiner")
    text = "/draw a lighthouse --model xl --refiner xl-refiner --switch-at 0.75 --seed 5"
    _, job, photo = await draw(env, text)
    assert job.status == "succeeded" and job.spec.refiner is not None
    assert (job.spec.refiner.model, job.spec.refiner.switch_at) == ("xl-refiner", 0.75)
    assert job.id in photo.params["caption"]

    queued = await env.app.store.count_queued(include_running=True)
    chat, user = private(env.fake)
    command = env.fake.send_text(chat, user, "/draw a lighthouse --model xl-refiner")
    assert "is an SDXL refiner: it finishes SDXL pictures" in await reply_text(env.fake, command)
    command = env.fake.send_text(chat, user, "/draw a lighthouse --refiner nope --model xl")
    assert "Unknown refiner 'nope'. Available: xl, xl-refiner." in await reply_text(
        env.fake, command
    )
    assert await env.app.store.count_queued(include_running=True) == queued
