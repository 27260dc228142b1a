"""🔍 Zoom Out and ⬅️➡️⬆️⬇️ Pan buttons: from the click to the posted, larger picture."""

from __future__ import annotations

import io

from PIL import Image

from bot.discord.buttons import result_view
from generation.spec import Mode
from tests.discord.harness import (  # noqa: F401  (fixtures)
    World,
    button_ids,
    shared_backend_fixture,
    world_factory_fixture,
)

# button label -> (what the status and the headline call it, the result's size from 64x64)
OUTPAINT_BUTTONS = {
    "Zoom Out 1.5x": ("Zooming out 1.5x", "Zoom out 1.5x", (96, 96)),
    "Zoom Out 2x": ("Zooming out 2x", "Zoom out 2x", (128, 128)),
    "Pan left": ("Panning left", "Pan left", (96, 64)),
    "Pan right": ("Panning right", "Pan right", (96, 64)),
    "Pan up": ("Panning up", "Pan up", (64, 96)),
    "Pan down": ("Panning down", "Pan down", (64, 96)),
}


async def draw(world: World, member, **options) -> str:
    options.setdefault("steps", 1)
    result = await member.slash(world.channel, "draw", **options)
    job_id = world.job_of(result)
    await world.delivered(job_id)
    return job_id


def posted_size(world: World, job_id: str) -> tuple[int, int]:
    message = world.result_message(job_id)
    data = world.env.backend.cdn.get(message.attachments[0].url)
    return Image.open(io.BytesIO(data)).size


async def test_a_single_image_has_zoom_pan_and_region_buttons(world_factory) -> None:
    async with world_factory() as world:
        alice = world.member("alice")
        one = await draw(world, alice, prompt="a lighthouse")
        rows = [
            [(b.emoji.name if b.emoji else None, b.label, b.custom_id) for b in row.children]
            for row in world.result_message(one).components
        ]
        assert rows[0] == [
            ("🔄", "Reroll", f"easel:reroll:{one}"),
            ("⬆️", "Upscale", f"easel:up:{one}:1"),
            ("🎨", "Vary", f"easel:var:{one}:1"),
            ("ℹ️", "Info", f"easel:info:{one}"),
            ("🗑️", "Delete", f"easel:del:{one}"),
        ]
        assert rows[1:] == [
            [
                ("🔍", "Zoom Out 1.5x", f"easel:z15:{one}:1"),
                ("🔍", "Zoom Out 2x", f"easel:z2:{one}:1"),
                ("🖌️", "Vary (Region)", f"easel:reg:{one}:1"),
            ],
            [
                ("⬅️", "Pan left", f"easel:pl:{one}:1"),
                ("➡️", "Pan right", f"easel:pr:{one}:1"),
                ("⬆️", "Pan up", f"easel:pu:{one}:1"),
                ("⬇️", "Pan down", f"easel:pd:{one}:1"),
            ],
        ]
        # A grid keeps its U and V buttons only (like Midjourney); U/V results get the rest.
        grid = await draw(world, alice, prompt="two boats", count=2)
        ids = button_ids(world.result_message(grid))
        assert not [i for i in ids if i.split(":")[1] in ("z15", "z2", "pl", "reg")], ids


async def test_each_zoom_and_pan_button_posts_a_larger_picture(world_factory) -> None:
    async with world_factory() as world:
        alice = world.member("alice")
        bob = world.member("bob")
        parent = await draw(world, alice, prompt="a lighthouse", seed=7)
        message = world.result_message(parent)

        clicks = {}
        for label, (doing, _, _) in OUTPAINT_BUTTONS.items():
            clicker = bob if label == "Pan up" else alice  # anyone in the server may
            click = await clicker.click(message, label=label)
            assert click.ephemeral, label
            first = world.first_status(click)
            assert doing in first and first[0] in "⏳🎨", first  # the "doing" confirmation
            clicks[label] = (clicker, click)

        for label, (clicker, click) in clicks.items():
            _, headline, size = OUTPAINT_BUTTONS[label]
            job = await world.delivered(world.job_of(click))
            assert job.status == "succeeded", job.error
            assert (job.parent_id, job.parent_index, job.mode) == (parent, 0, Mode.INPAINT)
            assert (job.width, job.height) == size, label
            assert posted_size(world, job.id) == size, label
            content = world.result_message(job.id).content
            expected = f"{headline} of image 1 of `{parent}`, for {clicker.mention}\n"
            assert content.startswith(expected), content
            assert world.status_deleted(click)  # one message per job
            # every status edit, progress included, says what it is, never just "Varying"
            assert not [t for t in world.status_texts(click) if "Varying" in t], label

        # A zoomed picture is a single image with the same buttons: zoom again from it.
        zoomed = world.job_of(clicks["Zoom Out 1.5x"][1])
        again = await alice.click(world.result_message(zoomed), label="Zoom Out 2x")
        job = await world.delivered(world.job_of(again))
        assert (job.parent_id, job.width, job.height) == (zoomed, 192, 192)


async def test_outpaints_past_the_size_limit_are_refused_and_not_queued(world_factory) -> None:
    async with world_factory(generation={"max_width": 96, "max_height": 96}) as world:
        alice = world.member("alice")
        parent = await draw(world, alice, prompt="a field")
        message = world.result_message(parent)
        before = len(await world.app.store.list_jobs())

        refused = await alice.click(message, label="Zoom Out 2x")
        assert refused.ephemeral
        text = refused.response.content
        assert text.startswith("🚫") and "128" in text and "96" in text, text
        assert len(await world.app.store.list_jobs()) == before  # nothing queued

        allowed = await alice.click(message, label="Pan left")  # 96x64 fits
        job = await world.delivered(world.job_of(allowed))
        assert (job.width, job.height) == (96, 64)


async def test_another_servers_job_is_not_found_from_its_buttons(world_factory) -> None:
    async with world_factory(worker=False) as world:
        alice = world.member("alice")
        result = await alice.slash(world.channel, "draw", prompt="a secret", steps=1)
        secret = world.job_of(result)
        elsewhere = world.env.create_guild("Elsewhere")
        other = elsewhere.create_text_channel("x")
        eve = elsewhere.add_member(world.env.create_user("eve"))
        # Buttons carrying the job's id in a server that cannot see it (as if copied there).
        channel = world.bot.get_channel(other.id)
        await channel.send("copied", view=result_view(secret, 1))
        await world.env.settle()
        (copied,) = other.history()
        before = len(await world.app.store.list_jobs())
        for label in ("Zoom Out 1.5x", "Pan right", "Vary (Region)"):
            click = await eve.click(copied, label=label)
            assert click.ephemeral, label
            assert world.first_status(click).startswith("🚫 No job with id"), label
        assert len(await world.app.store.list_jobs()) == before


async def test_zoom_and_pan_buttons_work_after_a_restart(world_factory) -> None:
    async with world_factory() as world:
        alice = world.member("alice")
        parent = await draw(world, alice, prompt="before the restart")
        old_message = world.result_message(parent)
        await world.restart()

        click = await alice.click(old_message, label="Pan down")
        assert "Panning down" in world.first_status(click)
        job = await world.delivered(world.job_of(click))
        assert (job.parent_id, job.width, job.height) == (parent, 64, 96)
        assert world.result_message(job.id).content.startswith(f"Pan down of image 1 of `{parent}`")
