"""Buttons and reactions under a result: reroll, upscale, vary, info, delete."""

from __future__ import annotations

from generation.spec import Action
from tests.discord.harness import (  # noqa: F401  (fixtures)
    World,
    job_id_in,
    shared_backend_fixture,
    world_factory_fixture,
)


async def draw(world: World, member, **options) -> str:
    options.setdefault("steps", 1)
    result = await member.slash(world.channel, "draw", **options)
    job_id = job_id_in(result.response.content)
    await world.delivered(job_id)
    return job_id


async def test_reroll_upscale_and_vary_buttons_make_child_jobs(world_factory) -> None:
    async with world_factory() as world:
        alice = world.member("alice")
        bob = world.member("bob")
        parent = await draw(world, alice, prompt="a lighthouse", count=2, seed=5)
        message = world.result_message(parent)

        reroll = await bob.click(message, custom_id=f"easel:reroll:{parent}")
        assert reroll.ephemeral and "Rerolling" in reroll.response.content
        upscale = await alice.click(message, label="U2")
        assert "Upscaling" in upscale.response.content
        vary = await alice.click(message, label="V1")
        assert "Varying" in vary.response.content

        children = {}
        for result in (reroll, upscale, vary):
            job = await world.delivered(job_id_in(result.response.content))
            assert job.status == "succeeded" and job.parent_id == parent
            children[job.action] = job
        assert children[Action.REROLL].count == 2 and children[Action.REROLL].seed != 5
        assert children[Action.UPSCALE].parent_index == 1
        assert (children[Action.UPSCALE].width, children[Action.UPSCALE].seed) == (128, 6)
        assert children[Action.VARY].parent_index == 0
        # Each child is a result with its own buttons, mentioning whoever pressed.
        assert bob.mention in world.result_message(children[Action.REROLL].id).content


async def test_info_and_delete(world_factory) -> None:
    async with world_factory() as world:
        alice = world.member("alice")
        bob = world.member("bob")
        admin = world.member("mod", admin=True)
        job_id = await draw(world, alice, prompt="a quiet harbour", negative="fog", seed=99)
        first = world.result_message(job_id)

        info = await bob.click(first, custom_id=f"easel:info:{job_id}")
        assert info.ephemeral
        for expected in (job_id, "a quiet harbour", "fog", "99", "demo", "1 steps"):
            assert expected in info.response.content

        # /show posts the same job again: two messages with the same buttons.
        shown = await alice.slash(world.channel, "show", id=job_id)
        assert not shown.ephemeral and shown.response.embeds
        assert len([m for m in world.channel.history() if m.components]) == 2

        refused = await bob.click(first, custom_id=f"easel:del:{job_id}")
        assert refused.ephemeral and "Only" in refused.response.content
        assert len([m for m in world.channel.history() if m.components]) == 2

        done = await alice.click(first, custom_id=f"easel:del:{job_id}")
        assert done.ephemeral and "Deleted" in done.response.content
        second = world.result_message(job_id)
        assert second.id != first.id
        by_admin = await admin.click(second, custom_id=f"easel:del:{job_id}")
        assert "Deleted" in by_admin.response.content
        assert [m for m in world.channel.history() if m.components] == []


async def test_reactions_do_what_the_buttons_do(world_factory) -> None:
    async with world_factory() as world:
        alice = world.member("alice")
        parent = await draw(world, alice, prompt="two suns", count=2, seed=20)
        message = world.result_message(parent)

        await alice.react(message, "🔄")
        # With several images a number chooses which, before or after the action.
        await alice.react(message, "⬆️")
        await alice.react(message, "2️⃣")
        await alice.react(message, "🎨")
        made = [(str(c.action), c.parent_index) for c in await world.app.store.children(parent)]
        assert sorted(made, key=str) == [("reroll", None), ("upscale", 1), ("vary", 1)]

        # Each is delivered as a channel message mentioning the requester (no interaction).
        children = await world.app.store.children(parent)
        for child in children:
            job = await world.delivered(child.id)
            assert job.status == "succeeded"
            assert alice.mention in world.result_message(job.id).content
        statuses = [m for m in world.channel.history() if "finished" in m.content]
        assert len(statuses) == 3 and not statuses[0].components

        # A single image needs no number; reactions on other messages are ignored.
        upscaled = next(c for c in children if c.action == "upscale")
        await alice.react(world.result_message(upscaled.id), "🎨")
        assert [str(c.action) for c in await world.app.store.children(upscaled.id)] == ["vary"]
        before = len(await world.app.store.list_jobs())
        await alice.react(statuses[0], "🔄")
        assert len(await world.app.store.list_jobs()) == before
