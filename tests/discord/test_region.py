"""🖌️ Vary (Region): the button, the select menu of regions, the modal, the repainted result."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from bot.discord.region import region_view, submitted_values
from generation.spec import Mode
from tests.discord.harness import (  # noqa: F401  (fixtures)
    World,
    shared_backend_fixture,
    world_factory_fixture,
)


async def draw(world: World, member, **options) -> str:
    options.setdefault("steps", 1)
    result = await member.slash(world.channel, "draw", **options)
    job_id = world.job_of(result)
    await world.delivered(job_id)
    return job_id


def modal_fields(shown: Any) -> dict[str, str]:
    """What the modal's text inputs hold when it opens, by custom id."""
    modal = shown.modal
    assert modal is not None, "no modal"
    fields: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == 4:  # a text input
                fields[node["custom_id"]] = node.get("value") or ""
            for key in ("components", "component"):
                walk(node.get(key))
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(modal["components"])
    return fields


async def open_form(world: World, member, job_id: str, choice: str) -> tuple[Any, Any]:
    """Click 🖌️ Vary (Region) on ``job_id``'s result and choose ``choice``: (offer, modal)."""
    offer = await member.click(world.result_message(job_id), label="Vary (Region)")
    assert offer.ephemeral and offer.response is not None
    shown = await member.select(offer.response.message, [choice])
    return offer, shown


def mask_of(world: World, sha256: str) -> np.ndarray:
    return np.asarray(Image.open(world.app.service.image_path(sha256)).convert("L"))


async def test_region_flow_repaints_the_chosen_part(world_factory) -> None:
    async with world_factory() as world:
        alice = world.member("alice")
        parent = await draw(world, alice, prompt="a blue door", seed=4)

        offer = await alice.click(world.result_message(parent), label="Vary (Region)")
        assert offer.ephemeral
        assert offer.response.content.startswith(f"🖌️ Vary (Region) of image 1 of `{parent}`")
        (row,) = offer.response.components
        (menu,) = row["components"]
        assert menu["custom_id"] == f"easel:region:{parent}:1"
        labels = [option["label"] for option in menu["options"]]
        assert labels == [
            "Left half",
            "Right half",
            "Top half",
            "Bottom half",
            "Centre",
            "Custom box…",
        ]

        shown = await alice.select(offer.response.message, ["left"])
        assert shown.modal["custom_id"] == f"easel:regform:{parent}:1"
        assert shown.modal["title"] == f"Vary (Region) of image 1 of {parent}"
        assert modal_fields(shown) == {"prompt": "a blue door", "region": "left"}
        submitted = await alice.submit_modal(shown, {"prompt": "a red door", "region": "left"})
        assert submitted.ephemeral
        assert "Repainting the region" in world.first_status(submitted)

        job = await world.delivered(world.job_of(submitted))
        assert job.status == "succeeded", job.error
        assert (job.mode, job.parent_id, job.parent_index) == (Mode.INPAINT, parent, 0)
        assert (job.prompt, job.width, job.height) == ("a red door", 64, 64)
        mask = mask_of(world, job.mask_image)
        assert mask[:, :32].min() == 255 and mask[:, 32:].max() == 0  # the left half
        content = world.result_message(job.id).content
        assert content.startswith(f"Vary (Region) of image 1 of `{parent}`, for {alice.mention}\n")
        assert "a red door" in content
        assert world.status_deleted(submitted)

        # A custom box: the field starts with an example to edit; a result has its own buttons.
        _, boxed = await open_form(world, alice, job.id, "box")
        assert modal_fields(boxed)["region"] == "25,25,50,50"
        again = await alice.submit_modal(boxed, {"prompt": "a red door", "region": "50,0,50,25"})
        child = await world.delivered(world.job_of(again))
        mask = mask_of(world, child.mask_image)
        assert mask[:16, 32:].min() == 255 and mask[16:, :].max() == 0 and mask[:, :32].max() == 0
        assert world.result_message(child.id).content.startswith(
            f"Vary (Region) of image 1 of `{job.id}`"
        )


async def test_bad_regions_and_empty_prompts_are_refused_and_nothing_is_queued(
    world_factory,
) -> None:
    async with world_factory() as world:
        alice = world.member("alice")
        parent = await draw(world, alice, prompt="a garden")
        before = len(await world.app.store.list_jobs())
        cases = {
            "80,0,30,50": (
                "🚫 Region box 80,0,30,50 must lie inside the picture: X+W and Y+H at most 100"
            ),
            "0,0,100,100": "🚫 Region box 0,0,100,100 is the whole picture",
            "diagonal": "🚫 Unknown region 'diagonal': use left, right, top, bottom, centre",
        }
        for region, refusal in cases.items():
            _, shown = await open_form(world, alice, parent, "box")
            answer = await alice.submit_modal(shown, {"prompt": "roses", "region": region})
            assert answer.ephemeral
            assert world.first_status(answer).startswith(refusal), world.first_status(answer)
        _, shown = await open_form(world, alice, parent, "top")
        answer = await alice.submit_modal(shown, {"prompt": "   ", "region": "top"})
        assert world.first_status(answer).startswith("🚫 The prompt is empty")
        assert len(await world.app.store.list_jobs()) == before


async def test_another_servers_job_is_not_found_from_the_menu(world_factory) -> None:
    async with world_factory(worker=False) as world:
        alice = world.member("alice")
        result = await alice.slash(world.channel, "draw", prompt="a secret", steps=1)
        secret = world.job_of(result)
        elsewhere = world.env.create_guild("Elsewhere")
        other = elsewhere.create_text_channel("x")
        eve = elsewhere.add_member(world.env.create_user("eve"))
        # The region menu of alice's job in a server that cannot see it (as if copied there).
        await world.bot.get_channel(other.id).send("copied", view=region_view(secret, 0))
        await world.env.settle()
        (copied,) = other.history()
        answer = await eve.select(copied, ["centre"])
        assert answer.modal is None and answer.ephemeral
        assert answer.response.content.startswith(f"🚫 No job with id '{secret}'")


async def test_an_unfinished_job_has_no_region_to_vary(world_factory) -> None:
    async with world_factory(worker=False) as world:
        alice = world.member("alice")
        # The region menu of a job that is still queued (no worker runs here).
        result = await alice.slash(world.channel, "draw", prompt="not yet", steps=1)
        queued = world.job_of(result)
        await world.bot.get_channel(world.channel.id).send("early", view=region_view(queued, 0))
        await world.env.settle()
        early = next(m for m in world.channel.history() if m.content == "early")
        answer = await alice.select(early, ["left"])
        assert answer.modal is None
        assert "has no images yet" in answer.response.content


async def test_the_region_flow_survives_restarts_between_its_steps(world_factory) -> None:
    async with world_factory() as world:
        alice = world.member("alice")
        parent = await draw(world, alice, prompt="a tower")
        offer = await alice.click(world.result_message(parent), label="Vary (Region)")
        await world.restart()  # the menu was posted by the previous process
        shown = await alice.select(offer.response.message, ["centre"])
        assert modal_fields(shown)["region"] == "centre"
        await world.restart()  # and the modal was opened by it
        submitted = await alice.submit_modal(shown, {"prompt": "a spire", "region": "centre"})
        job = await world.delivered(world.job_of(submitted))
        assert (job.parent_id, job.prompt, job.status) == (parent, "a spire", "succeeded")
        mask = mask_of(world, job.mask_image)
        assert mask[16:48, 16:48].min() == 255 and mask[:16].max() == 0


def test_modal_values_are_read_from_labels_and_action_rows() -> None:
    data = {
        "custom_id": "easel:regform:abcd1234:1",
        "components": [
            {"type": 18, "component": {"type": 4, "custom_id": "prompt", "value": "a cat"}},
            {"type": 1, "components": [{"type": 4, "custom_id": "region", "value": "left"}]},
        ],
    }
    assert submitted_values(data) == {"prompt": "a cat", "region": "left"}
    assert submitted_values(None) == {}
