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
    job_id = world.job_of(result)
    await world.delivered(job_id)
    return job_id


async def test_reroll_upscale_and_vary_buttons_make_child_jobs(world_factory) -> None:
    async with world_factory() as world:
        alice = world.member("alice")
        bob = world.member("bob")
        parent = await draw(world, alice, prompt="a lighthouse", count=2, seed=5)
        message = world.result_message(parent)

        reroll = await bob.click(message, custom_id=f"easel:reroll:{parent}")
        assert reroll.ephemeral and "Rerolling" in world.first_status(reroll)
        upscale = await alice.click(message, label="Upscale 2")
        assert "Upscaling" in world.first_status(upscale)
        vary = await alice.click(message, label="Vary 1")
        assert "Varying" in world.first_status(vary)

        children = {}
        for result in (reroll, upscale, vary):
            job = await world.delivered(world.job_of(result))
            assert job.status == "succeeded" and job.parent_id == parent
            children[job.action] = job
        assert children[Action.REROLL].count == 2 and children[Action.REROLL].seed != 5
        assert children[Action.UPSCALE].parent_index == 1
        assert (children[Action.UPSCALE].width, children[Action.UPSCALE].seed) == (128, 6)
        assert children[Action.VARY].parent_index == 0
        # Each child is a result with its own buttons that says what it is, of what, and for
        # whom: not the same text as the original.
        reroll_text = world.result_message(children[Action.REROLL].id).content
        assert reroll_text.startswith(f"Reroll of `{parent}`, for {bob.mention}\n"), reroll_text
        upscale_text = world.result_message(children[Action.UPSCALE].id).content
        assert upscale_text.startswith(f"Upscale of image 2 of `{parent}`, for {alice.mention}")
        vary_text = world.result_message(children[Action.VARY].id).content
        assert vary_text.startswith(f"Vary (subtle) of image 1 of `{parent}`, for {alice.mention}")
        assert world.result_message(parent).content == f"{alice.mention} a lighthouse"


async def test_buttons_have_words_and_ids_old_messages_still_carry(world_factory) -> None:
    async with world_factory() as world:
        alice = world.member("alice")
        several = await draw(world, alice, prompt="two boats", count=2)
        one = await draw(world, alice, prompt="one boat")
        rows = [
            [(b.emoji.name if b.emoji else None, b.label, b.custom_id) for b in row.children]
            for row in world.result_message(several).components
        ]
        assert rows == [
            [
                ("🔄", "Reroll", f"easel:reroll:{several}"),
                ("ℹ️", "Info", f"easel:info:{several}"),
                ("🗑️", "Delete", f"easel:del:{several}"),
            ],
            [("⬆️", f"Upscale {n}", f"easel:up:{several}:{n}") for n in (1, 2)],
            [("🎨", f"Vary {n}", f"easel:var:{several}:{n}") for n in (1, 2)],
        ]
        labels = [[b.label for b in row.children] for row in world.result_message(one).components]
        assert labels == [
            ["Reroll", "Upscale", "Vary", "Info", "Delete"],
            ["Zoom Out 1.5x", "Zoom Out 2x", "Vary (Region)"],
            ["Pan left", "Pan right", "Pan up", "Pan down"],
        ]


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

        # Each is delivered as a channel message mentioning the requester (no interaction),
        # saying what it is; the "working on it" replies went when the results came.
        children = await world.app.store.children(parent)
        for child in children:
            job = await world.delivered(child.id)
            assert job.status == "succeeded"
            content = world.result_message(job.id).content
            assert alice.mention in content and f"of `{parent}`" in content, content
        left = [m.content for m in world.channel.history() if not m.components]
        assert left == []  # one message per job: no public "✅ finished" for good

        # A single image needs no number; reactions on other messages are ignored.
        upscaled = next(c for c in children if c.action == "upscale")
        await alice.react(world.result_message(upscaled.id), "🎨")
        assert [str(c.action) for c in await world.app.store.children(upscaled.id)] == ["vary"]
        before = len(await world.app.store.list_jobs())
        await alice.react(await alice.send(world.channel, "nice"), "🔄")
        assert len(await world.app.store.list_jobs()) == before


async def test_a_kept_reaction_status_mentions_the_requester_to_the_end(world_factory) -> None:
    async with world_factory(keep_status_messages=True) as world:
        alice = world.member("alice")
        parent = await draw(world, alice, prompt="one sun", seed=3)
        await alice.react(world.result_message(parent), "🔄")
        (child,) = await world.app.store.children(parent)
        await world.delivered(child.id)
        (status,) = [m for m in world.channel.history() if "finished" in m.content]
        assert status.content.startswith(f"{alice.mention} ✅ `{child.id}` finished")
