"""/draw end to end: real discord.py offline (simcord), the real App and the demo model."""

from __future__ import annotations

import io
import re

from PIL import Image

from generation.spec import Mode
from tests.discord.harness import (  # noqa: F401  (fixtures)
    button_ids,
    job_id_in,
    png,
    shared_backend_fixture,
    world_factory_fixture,
)


async def test_draw_defers_queues_and_posts_the_result(world_factory) -> None:
    async with world_factory() as world:
        alice = world.member("alice")
        result = await alice.slash(world.channel, "draw", prompt="a castle at dusk", seed=42)
        assert result.acknowledged and result.ephemeral  # the status is only for the requester
        job_id = world.accepted(result)
        job = await world.delivered(job_id)
        assert job.status == "succeeded"
        message = world.result_message(job_id)
        embed = message.embeds[0]
        assert "a castle at dusk" in embed.description
        fields = {f.name: f.value for f in embed.fields}
        assert fields["Seed"] == "42"
        assert job_id in fields["Job"]
        assert (fields["Model"], fields["Steps"]) == ("demo", "4")
        assert embed.image.url and embed.image.url.endswith(f"easel_{job_id}.png")
        ids = button_ids(message)
        for wanted in ("reroll", "info", "del"):
            assert f"easel:{wanted}:{job_id}" in ids
        assert f"easel:up:{job_id}:1" in ids and f"easel:var:{job_id}:1" in ids
        assert alice.mention in message.content
        assert [a.filename for a in message.attachments] == [f"easel_{job_id}.png"]
        # The status message went from queued through progress, and went away when the result
        # came: one message per job (discord.keep_status_messages = false, the default).
        assert any("step" in text for text in world.status_texts(result))
        assert world.status_deleted(result) and result.response is None
        # With the engine's estimates, as on the page: when it should be done, the time left.
        texts = world.status_texts(result)
        assert any(re.search(r"done in \d+ s", text) for text in texts), texts


async def test_status_messages_can_be_kept(world_factory) -> None:
    async with world_factory(keep_status_messages=True) as world:
        alice = world.member("alice")
        result = await alice.slash(world.channel, "draw", prompt="a castle", steps=1)
        job_id = world.accepted(result)
        await world.delivered(job_id)
        # The one status message went from queued through progress to its final word.
        assert "✅" in result.response.content and job_id in result.response.content
        assert not world.status_deleted(result)


async def test_inline_grammar_and_options(world_factory) -> None:
    async with world_factory() as world:
        alice = world.member("alice")
        result = await alice.slash(
            world.channel,
            "draw",
            prompt="a fox in snow --no blurry --seed 7 --ar 3:2 --steps 1",
            negative="text",
            cfg=5.5,
            sampler="DDIM",
        )
        job = await world.delivered(world.job_of(result))
        assert (job.prompt, job.negative_prompt, job.seed, job.steps) == (
            "a fox in snow",
            "blurry, text",
            7,
            1,
        )
        assert (job.cfg, job.sampler) == (5.5, "DDIM")
        assert job.width * 2 == job.height * 3
        fields = {f.name: f.value for f in world.result_message(job.id).embeds[0].fields}
        assert fields["Negative prompt"] == "blurry, text"

        # A grammar mistake is answered in words, only to the requester, and queues nothing.
        bad = await alice.slash(world.channel, "draw", prompt="a fox --sed 3")
        assert bad.ephemeral and "--seed" in bad.response.content
        assert len(await world.app.store.list_jobs()) == 1


async def test_count_four_makes_a_grid_with_four_upscale_and_vary_buttons(world_factory) -> None:
    async with world_factory() as world:
        alice = world.member("alice")
        result = await alice.slash(
            world.channel, "draw", prompt="kittens", count=4, seed=10, steps=1
        )
        job = await world.delivered(world.job_of(result))
        message = world.result_message(job.id)
        names = [a.filename for a in message.attachments]
        assert names[0] == f"easel_{job.id}_grid.png"
        assert names[1:] == [f"easel_{job.id}_{n}.png" for n in range(1, 5)]
        assert message.embeds[0].image.url.endswith("_grid.png")
        grid = Image.open(io.BytesIO(world.env.backend.cdn.get(message.attachments[0].url)))
        assert grid.size == (2 * 64 + 4, 2 * 64 + 4)
        ids = button_ids(message)
        for n in range(1, 5):
            assert f"easel:up:{job.id}:{n}" in ids and f"easel:var:{job.id}:{n}" in ids
        fields = {f.name: f.value for f in message.embeds[0].fields}
        assert fields["Seed"] == "10–13"


async def test_attachment_is_image_to_image(world_factory) -> None:
    async with world_factory() as world:
        alice = world.member("alice")
        result = await alice.slash(
            world.channel,
            "draw",
            prompt="a painting",
            image=("photo.png", png()),
            strength=0.5,
            steps=2,
        )
        job = await world.delivered(world.job_of(result))
        assert job.status == "succeeded"
        assert (job.mode, job.strength) == (Mode.IMG2IMG, 0.5)
        assert job.init_image is not None


async def test_a_file_that_is_not_a_picture_is_refused_with_what_works(world_factory) -> None:
    async with world_factory() as world:
        alice = world.member("alice")
        result = await alice.slash(
            world.channel, "draw", prompt="a cat", image=("notes.pdf", b"%PDF-1.4 tiny")
        )
        assert result.ephemeral
        text = result.response.content
        assert "application/pdf" in text and "PNG, JPEG, WebP, GIF or BMP" in text, text
        assert await world.app.store.list_jobs() == []


async def test_slash_text_options_follow_the_configured_prompt_limit(world_factory) -> None:
    async with world_factory(worker=False, generation={"max_prompt_length": 4000}) as world:
        commands = {c.name: c for c in await world.bot.tree.fetch_commands()}
        options = {o.name: o for o in commands["draw"].options}
        assert (options["prompt"].max_length, options["negative"].max_length) == (4000, 4000)
        alice = world.member("alice")
        long = await alice.slash(world.channel, "draw", prompt="a " * 1000 + "cat")  # 2,003
        assert world.accepted(long)
    async with world_factory(worker=False, generation={"max_prompt_length": 50_000}) as world:
        commands = {c.name: c for c in await world.bot.tree.fetch_commands()}
        options = {o.name: o for o in commands["draw"].options}
        assert options["prompt"].max_length == 6000  # Discord's own maximum


async def test_oversized_attachment_is_refused_before_download(world_factory) -> None:
    async with world_factory() as world:  # max_upload_mb = 0.05 in the harness
        alice = world.member("alice")
        junk = b"not an image at all" * 4000  # 76 kB: decoding it would say "not an image"
        result = await alice.slash(world.channel, "draw", prompt="x", image=("big.png", junk))
        assert result.ephemeral
        assert "MB" in result.response.content and "limit" in result.response.content
        assert await world.app.store.list_jobs() == []


async def test_blocked_word_and_rate_limit_are_private_with_the_reason(world_factory) -> None:
    async with world_factory(limits={"burst": 1, "rate_per_minute": 1.0}) as world:
        admin = world.member("mod", admin=True)
        alice = world.member("alice")
        added = await admin.slash(world.channel, "blocklist add", words="dragon")
        assert added.ephemeral and "Blocked" in added.response.content

        blocked = await alice.slash(world.channel, "draw", prompt="a red Dragon")
        assert blocked.ephemeral
        assert "dragon" in blocked.response.content
        assert "this server's admins block" in blocked.response.content

        first = await alice.slash(world.channel, "draw", prompt="a cat", steps=1)
        world.accepted(first)
        limited = await alice.slash(world.channel, "draw", prompt="another cat")
        assert limited.ephemeral
        assert "too fast" in limited.response.content
        assert "try again in" in limited.response.content
        # what the limit is, not only when to come back
        assert "at most 1 drawing a minute (1 at once)" in limited.response.content
        await world.delivered(world.job_of(first))


async def test_model_autocomplete_offers_the_models_this_server_allows(world_factory) -> None:
    async with world_factory(worker=False) as world:
        alice = world.member("alice")
        choices = await alice.autocomplete(world.channel, "draw", "model", "de")
        assert [c["value"] for c in choices] == ["demo"]
        assert await alice.autocomplete(world.channel, "draw", "model", "zzz") == []
