"""/history, /queue, /cancel, /rerun, direct messages, and errors inside commands."""

from __future__ import annotations

import logging
from dataclasses import replace

from storage.records import JobStatus
from tests.discord.harness import (  # noqa: F401  (fixtures)
    job_id_in,
    shared_backend_fixture,
    world_factory_fixture,
)
from tests.e2e.engine_helpers import max_diff, pixels


async def test_history_queue_and_cancel(world_factory) -> None:
    async with world_factory(worker=False) as world:  # nothing renders: jobs stay queued
        alice = world.member("alice")
        bob = world.member("bob")
        admin = world.member("mod", admin=True)
        ids = []
        for prompt, seed in (("first", 1), ("second", 2)):
            result = await alice.slash(world.channel, "draw", prompt=prompt, seed=seed)
            ids.append(world.job_of(result))
        bobs = world.job_of(await bob.slash(world.channel, "draw", prompt="bob's"))

        history = await alice.slash(world.channel, "history")
        assert history.ephemeral
        text = history.response.content
        assert all(job_id in text for job_id in ids) and bobs not in text
        assert "seed 1" in text and "seed 2" in text
        assert text.index(ids[1]) < text.index(ids[0])  # newest first

        queue = await alice.slash(world.channel, "queue")
        assert queue.ephemeral
        assert "3 waiting" in queue.response.content
        assert f"`{ids[0]}`: next" in queue.response.content
        assert f"`{ids[1]}`: position 3" in queue.response.content  # fair: bob goes second

        refused = await bob.slash(world.channel, "cancel", id=ids[0])
        assert refused.ephemeral and "someone else" in refused.response.content
        own = await alice.slash(world.channel, "cancel", id=ids[0].upper())
        assert "Cancelled" in own.response.content
        by_admin = await admin.slash(world.channel, "cancel", id=bobs)
        assert "Cancelled" in by_admin.response.content
        assert [(await world.job(i)).status for i in (ids[0], bobs)] == ["cancelled"] * 2
        unknown = await alice.slash(world.channel, "cancel", id="zzzzzzzz")
        assert "No job" in unknown.response.content


async def test_direct_messages_are_their_own_scope(world_factory) -> None:
    async with world_factory(worker=False) as world:
        dora = world.env.create_user("dora")
        result = await dora.slash("draw", prompt="a postcard")
        job = await world.job(world.job_of(result))
        scope = await world.app.store.get_scope(job.scope_id)
        assert scope is not None and scope.platform_scope_id == f"dm:{dora.id}"
        assert job.reply_target["guild_id"] is None


async def test_rerun_redraws_the_same_pixels(world_factory) -> None:
    async with world_factory() as world:
        alice = world.member("alice")
        result = await alice.slash(world.channel, "draw", prompt="a bell", seed=11, steps=1)
        original = await world.delivered(world.job_of(result))
        rerun = await alice.slash(world.channel, "rerun", id=original.id)
        assert "Re-running" in world.first_status(rerun)
        again = await world.delivered(world.job_of(rerun))
        assert (again.parent_id, str(again.action), again.seed) == (original.id, "rerun", 11)
        assert max_diff(pixels(world.app, again), pixels(world.app, original)) == 0
        # Jobs of another server are not visible here.
        elsewhere = world.env.create_guild("Elsewhere")
        other = elsewhere.create_text_channel("x")
        stranger = elsewhere.add_member(world.env.create_user("eve"))
        hidden = await stranger.slash(other, "show", id=original.id)
        assert hidden.ephemeral and "No job" in hidden.response.content


async def test_unexpected_errors_are_reported_logged_and_survived(
    world_factory, monkeypatch, caplog
) -> None:
    async with world_factory(worker=False) as world:
        alice = world.member("alice")

        async def broken(origin):
            raise RuntimeError("database on fire")

        monkeypatch.setattr(world.app.service, "queue_status", broken)
        with caplog.at_level(logging.ERROR, logger="easel.discord"):
            result = await alice.slash(world.channel, "queue")
        assert result.ephemeral and "Something went wrong" in result.response.content
        assert any(
            "/queue failed" in r.getMessage() and str(alice.id) in r.getMessage()
            for r in caplog.records
        )
        assert any("fire" in str(getattr(e, "original", e)) for e in world.env.errors)
        # The bot carries on.
        history = await alice.slash(world.channel, "history")
        assert "no jobs" in history.response.content


async def test_a_failed_job_is_reported_to_the_requester_only(world_factory) -> None:
    async with world_factory(worker=False) as world:
        alice = world.member("alice")
        result = await alice.slash(world.channel, "draw", prompt="too big")
        queued = await world.job(world.job_of(result))
        failed = replace(queued, status=JobStatus.FAILED, error="The GPU ran out of memory.")
        await world.bot.front_end.deliver(failed)
        await world.env.settle()
        seen_by_alice = world.channel.history(viewer=alice)
        notes = [m for m in seen_by_alice if "ran out of memory" in m.content]
        assert len(notes) == 1  # the private follow-up; the status message went
        assert all(m.flags.ephemeral for m in notes)
        assert world.channel.history(viewer=world.member("bob")) == []  # nobody else sees it
        assert not [m for m in seen_by_alice if m.components]  # no result, no buttons
