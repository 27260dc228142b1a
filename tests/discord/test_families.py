"""A Flux.1 model through Discord's /draw (real discord.py offline, the tiny built-in Flux): the
result is drawn with the family's sampler and guidance, and a negative prompt is refused
privately with the reason, nothing queued."""

from __future__ import annotations

from generation.requests import Origin
from tests.discord.harness import (  # noqa: F401  (fixtures)
    shared_backend_fixture,
    world_factory_fixture,
)

ADMIN = Origin(platform="cli", scope_id="local", user_id="root", is_admin=True)


async def test_draw_with_a_flux_model_and_its_refusal(world_factory) -> None:
    async with world_factory() as world:
        await world.app.service.add_model(ADMIN, "flux", "builtin:demo-flux")
        alice = world.member("alice")
        # The sampler menu offers what the chosen model's family has: Flux one, SD its list.
        offered = await alice.autocomplete(world.channel, "draw", "sampler", "", model="flux")
        assert [c["value"] for c in offered] == ["Euler"]
        default = await alice.autocomplete(world.channel, "draw", "sampler", "karras")
        assert "DPM++ 2M Karras" in [c["value"] for c in default]
        result = await alice.slash(world.channel, "draw", prompt="a fox", model="flux", seed=3)
        job = await world.delivered(world.accepted(result))
        assert (job.model, job.sampler, job.cfg, job.status) == ("flux", "Euler", 3.5, "succeeded")
        fields = {f.name: f.value for f in world.result_message(job.id).embeds[0].fields}
        assert fields["Model"] == "flux"

        refused = await alice.slash(
            world.channel, "draw", prompt="a fox", model="flux", negative="blurry"
        )
        assert refused.ephemeral
        assert "Flux.1 ignores the negative prompt" in refused.response.content
        assert len(await world.app.store.list_jobs()) == 1


async def test_draw_with_an_sdxl_refiner(world_factory) -> None:
    async with world_factory() as world:
        service = world.app.service
        await service.add_model(ADMIN, "xl", "builtin:demo-sdxl")
        await service.add_model(ADMIN, "xl-refiner", "builtin:demo-sdxl-refiner")
        alice = world.member("alice")
        # The model menu never offers the refiner; the refiner menu offers what can refine.
        models = await alice.autocomplete(world.channel, "draw", "model", "xl")
        assert [c["value"] for c in models] == ["xl"]
        refiners = await alice.autocomplete(world.channel, "draw", "refiner", "", model="xl")
        assert [c["value"] for c in refiners] == ["xl", "xl-refiner"]

        result = await alice.slash(
            world.channel, "draw", prompt="a fox --switch-at 0.7", model="xl",
            refiner="xl-refiner", seed=3,
        )  # fmt: skip
        job = await world.delivered(world.accepted(result))
        assert job.status == "succeeded" and job.spec.refiner is not None
        assert (job.spec.refiner.model, job.spec.refiner.switch_at) == ("xl-refiner", 0.7)
        fields = {f.name: f.value for f in world.result_message(job.id).embeds[0].fields}
        assert fields["Refiner"] == "xl-refiner at 0.7"

        refused = await alice.slash(world.channel, "draw", prompt="a fox", model="xl-refiner")
        assert refused.ephemeral
        assert "is an SDXL refiner: it finishes SDXL pictures" in refused.response.content
        assert len(await world.app.store.list_jobs()) == 1
