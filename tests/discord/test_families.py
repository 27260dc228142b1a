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
