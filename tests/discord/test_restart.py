"""Restarts, the 15-minute interaction-token limit, and throttled status edits."""

from __future__ import annotations

from tests.discord.harness import (  # noqa: F401  (fixtures)
    job_id_in,
    shared_backend_fixture,
    world_factory_fixture,
)


async def test_a_new_bot_instance_delivers_and_handles_the_old_buttons(world_factory) -> None:
    async with world_factory() as world:
        alice = world.member("alice")
        first = await alice.slash(world.channel, "draw", prompt="before", seed=1, steps=1)
        posted = await world.delivered(world.job_of(first))
        old_message = world.result_message(posted.id)

        # Accepted and rendered by instance A, which stops before it could post the result...
        world.app.delivery.unregister("discord")
        second = await alice.slash(world.channel, "draw", prompt="in flight", seed=2, steps=1)
        pending = world.job_of(second)
        await world.finished(pending)

        # ...instance B: a new App and a brand-new bot on the same data dir and Discord.
        old_bot = world.bot
        await world.restart()
        assert world.bot is not old_bot

        # B delivers what A finished but never sent, from the stored reply target alone.
        job = await world.delivered(pending)
        assert job.status == "succeeded"
        assert alice.mention in world.result_message(pending).content

        # B handles a click on the button A posted before the restart.
        click = await alice.click(old_message, custom_id=f"easel:reroll:{posted.id}")
        assert "Rerolling" in world.first_status(click)
        child = await world.delivered(world.job_of(click))
        assert child.parent_id == posted.id and child.status == "succeeded"
        info = await alice.click(old_message, custom_id=f"easel:info:{posted.id}")
        assert "before" in info.response.content


async def test_results_after_fifteen_minutes_go_to_the_channel(world_factory) -> None:
    async with world_factory() as world:
        alice = world.member("alice")
        world.app.delivery.unregister("discord")  # hold the result back
        result = await alice.slash(world.channel, "draw", prompt="a slow one", steps=1)
        job_id = world.job_of(result)
        await world.finished(job_id)

        await world.env.advance_time(16 * 60)  # the interaction token has expired
        sent_before = len(world.env.http_requests)
        world.app.delivery.register(world.bot.front_end)
        await world.delivered(job_id)

        message = world.result_message(job_id)
        assert alice.mention in message.content
        assert message.interaction_metadata is None and message.webhook_id is None
        requests = world.env.http_requests[sent_before:]
        posts = [(r.method, r.path) for r in requests if r.method == "POST"]
        assert posts == [("POST", f"/channels/{world.channel.id}/messages")]
        assert not any("/webhooks/" in r.path for r in requests)


async def test_status_edits_are_throttled(world_factory) -> None:
    async with world_factory(status_edit_interval=600.0) as world:
        alice = world.member("alice")
        result = await alice.slash(world.channel, "draw", prompt="steps", steps=2)
        job_id = world.job_of(result)
        await world.delivered(job_id)
        edits = world.status_texts(result)
        # State changes go out at once (queued, unless the job had already started, and
        # started); the progress steps, within the interval, were held back and dropped when
        # the job finished, and the status message went when the result came. Which of these
        # is decided by the rules, not by how fast this machine is.
        assert not any("step" in e for e in edits), edits
        assert [e[0] for e in edits] in (["⏳", "🎨"], ["🎨"]), edits
        assert world.status_deleted(result)
        assert world.bot.front_end.statuses.active == 0  # no timer left behind


async def test_status_edits_without_throttle_show_progress(world_factory) -> None:
    async with world_factory(status_edit_interval=0.0) as world:
        alice = world.member("alice")
        result = await alice.slash(world.channel, "draw", prompt="steps", steps=2)
        await world.delivered(world.job_of(result))
        edits = world.status_texts(result)
        assert any("step 1/2" in e for e in edits) and any("step 2/2" in e for e in edits), edits
        assert len(edits) == len(set(edits))  # never the same text twice
