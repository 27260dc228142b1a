"""Every refusal path of the service, with the message a person sees. Nothing refused is queued."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from bot.app import App
from generation.clock import ManualClock
from generation.errors import (
    BlockedPrompt,
    ImageRejected,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    RateLimited,
    TooManyQueued,
)
from generation.requests import Origin, Visibility
from tests.conftest import make_config
from tests.e2e.engine_helpers import origin, small


@pytest.fixture
async def app(app_factory) -> App:
    return await app_factory(worker=False, limits={"burst": 100, "max_queued_per_user": 100})


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({"steps": 10_000}, "Steps 10000 is above the limit: this service allows at most 60 steps"),
        ({"steps": 0}, "Steps 0 is below the minimum of 1"),
        ({"count": 0}, "Count 0 is below the minimum of 1"),
        (
            {"count": 999},
            "Count 999 is above the limit: this service allows at most 4 pictures per request",
        ),
        ({"cfg": 31.0}, "CFG scale 31 is above the limit: this service allows at most 30"),
        ({"width": 10**9, "height": 64}, "larger than this service allows"),
        ({"width": 32, "height": 64}, "too small"),
        ({"sampler": "Euler b"}, "Unknown sampler 'Euler b'. Choose one of: DPM++ 2M"),
        ({"model": "nope"}, "Unknown model 'nope'. Available: demo"),
        ({"seed": 2**40}, "Seed must be between 0 and 4294967295"),
        ({"strength": 0.5}, "Strength only applies to image-to-image"),
        ({"prompt": "   "}, "The prompt is empty"),
        ({"prompt": "x" * 100_000}, "Prompt is 100,000 characters; the limit is 1,500"),
    ],
)
async def test_out_of_range_requests_are_refused_with_a_reason(
    app: App, request_fields: dict[str, object], message: str
) -> None:
    prompt = str(request_fields.pop("prompt", "a castle"))
    with pytest.raises(InvalidRequest) as caught:
        await app.service.draw(origin(), small(prompt, **request_fields))
    assert message in str(caught.value)
    assert len(app.queue) == 0 and await app.store.count_queued() == 0


async def test_clamp_mode_moves_values_into_range(app_factory) -> None:
    app = await app_factory(worker=False, generation={"on_excess": "clamp"})
    accepted = await app.service.draw(
        origin(), small(steps=10_000, count=999, width=4000, height=4000)
    )
    job = accepted.job
    assert (job.steps, job.count) == (60, 4)
    assert job.width * job.height <= 1024 * 1024 and job.width % 8 == 0


async def test_sizes_are_rounded_to_multiples_of_eight(app: App) -> None:
    job = (await app.service.draw(origin(), small(width=100, height=77))).job
    assert (job.width, job.height) == (96, 72)


async def test_aspect_ratio_keeps_the_model_default_area(app: App) -> None:
    job = (await app.service.draw(origin(), small(width=None, height=None, aspect="2:1"))).job
    assert job.width == 2 * job.height


async def test_upload_that_is_not_an_image_is_refused(app: App) -> None:
    with pytest.raises(ImageRejected, match="not an image Easel can read"):
        await app.service.draw(origin(), small(init_image=b"%PDF-1.4 not a picture"))
    assert len(app.queue) == 0


async def test_blocklisted_word_is_refused(app: App) -> None:
    _, scope = await app.service._identify(origin())
    await app.store.update_scope_settings(scope.id, {"blocklist": ["gore"]})
    with pytest.raises(BlockedPrompt, match=r"blocks .*gore"):
        await app.service.draw(origin(), small("a scene full of GORE"))
    await app.service.draw(origin(), small("a gorgeous scene"))  # whole words only


async def test_per_user_queue_cap(app_factory) -> None:
    app = await app_factory(worker=False, limits={"max_queued_per_user": 2, "burst": 10})
    await app.service.draw(origin(), small())
    await app.service.draw(origin(), small())
    with pytest.raises(TooManyQueued, match="You already have 2 jobs waiting"):
        await app.service.draw(origin(), small())
    await app.service.draw(origin("bob"), small())  # others are not affected


async def test_global_queue_cap(app_factory) -> None:
    app = await app_factory(worker=False, limits={"max_queue": 2, "burst": 10})
    await app.service.draw(origin("a"), small())
    await app.service.draw(origin("b"), small())
    with pytest.raises(TooManyQueued, match="The queue is full"):
        await app.service.draw(origin("c"), small())


async def test_admins_skip_the_per_user_limits_but_not_the_queue_cap(app_factory) -> None:
    tight = {"burst": 1, "rate_per_minute": 1, "max_queued_per_user": 1, "daily_quota": 1}
    app = await app_factory(worker=False, limits={**tight, "max_queue": 5})
    owner = origin("owner", admin=True)
    for n in range(4):  # past the burst, the waiting cap and the daily quota
        await app.service.draw(owner, small(seed=n))
    await app.service.draw(origin("carol"), small())
    with pytest.raises((RateLimited, TooManyQueued, QuotaExceeded)):
        await app.service.draw(origin("carol"), small(seed=2))  # everyone else is held
    with pytest.raises(TooManyQueued, match="The queue is full"):
        await app.service.draw(owner, small(seed=9))  # 5 waiting: the global cap holds


async def test_refusals_are_logged_on_the_server_with_who_and_why(
    app_factory, caplog: pytest.LogCaptureFixture
) -> None:
    app = await app_factory(worker=False, limits={"burst": 1, "rate_per_minute": 1})
    await app.service.draw(origin("dave"), small())
    with caplog.at_level(logging.INFO, logger="generation.service"):
        with pytest.raises(RateLimited):
            await app.service.draw(origin("dave"), small(seed=2))
        with pytest.raises(NotFound):  # not a refusal of a request's content: not logged
            await app.service.reroll(origin("dave"), "zzzzzzzz")
    (line,) = [r.getMessage() for r in caplog.records if r.name == "generation.service"]
    assert line.startswith("refused draw from cli user dave in local:") and "too fast" in line


async def test_admins_are_held_like_everyone_when_exempt_admins_is_off(app_factory) -> None:
    app = await app_factory(
        worker=False, limits={"burst": 1, "rate_per_minute": 1, "exempt_admins": False}
    )
    owner = origin("owner", admin=True)
    await app.service.draw(owner, small())
    with pytest.raises(RateLimited):
        await app.service.draw(owner, small(seed=2))


async def test_rate_limit_with_an_injected_clock(data_dir) -> None:
    clock = ManualClock()
    config = make_config(
        data_dir, limits={"rate_per_minute": 6, "burst": 2, "max_queued_per_user": 10}
    )
    app = App.from_config(config, clock=clock)
    await app.start(worker=False)
    try:
        await app.service.draw(origin(), small())
        await app.service.draw(origin(), small())
        with pytest.raises(RateLimited) as caught:
            await app.service.draw(origin(), small())
        assert caught.value.retry_after == pytest.approx(10.0)
        assert "try again in 10 s" in str(caught.value)
        clock.advance(10.0)
        await app.service.draw(origin(), small())
    finally:
        await app.stop()


async def test_daily_quota_resets_at_utc_midnight(data_dir) -> None:
    clock = ManualClock(datetime(2026, 3, 1, 23, 0, tzinfo=UTC))
    config = make_config(data_dir, limits={"daily_quota": 1, "burst": 10})
    app = App.from_config(config, clock=clock)
    await app.start(worker=False)
    try:
        await app.service.draw(origin(), small())
        with pytest.raises(QuotaExceeded) as caught:
            await app.service.draw(origin(), small())
        assert caught.value.retry_after == pytest.approx(3600)
        assert "quota resets in 1 h" in str(caught.value)
        clock.advance(3601)
        await app.service.draw(origin(), small())
    finally:
        await app.stop()


async def test_daily_quota_counts_the_jobs_made_before_a_restart(data_dir) -> None:
    clock = ManualClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    config = make_config(data_dir, limits={"daily_quota": 3, "burst": 10})
    first = App.from_config(config, clock=clock)
    await first.start(worker=False)
    try:
        await first.service.draw(origin(), small())
        await first.service.draw(origin(), small())
    finally:
        await first.stop()
    again = App.from_config(config, clock=clock)  # counts from the store, then in memory
    await again.start(worker=False)
    try:
        await again.service.draw(origin(), small())
        with pytest.raises(QuotaExceeded):
            await again.service.draw(origin(), small())
        await again.service.draw(origin("bob"), small())  # another user's count is their own
    finally:
        await again.stop()


async def test_unknown_job_and_bad_image_index(app: App) -> None:
    with pytest.raises(NotFound, match="No job with id 'zzzzzzzz'"):
        await app.service.reroll(origin(), "zzzzzzzz")
    queued = (await app.service.draw(origin(), small())).job
    with pytest.raises(InvalidRequest, match="has no images yet"):
        await app.service.upscale(origin(), queued.id, 0)
    with pytest.raises(InvalidRequest, match="Unknown variation strength"):
        await app.service.vary(origin(), queued.id, 0, "wild")


async def test_model_admin_needs_an_admin(app: App) -> None:
    with pytest.raises(PermissionDenied, match="Only an admin"):
        await app.service.add_model(origin(), "x", "builtin:demo")
    with pytest.raises(PermissionDenied):
        await app.service.set_default_model(origin(), "demo")
    with pytest.raises(PermissionDenied):
        await app.service.remove_model(origin(), "demo")


async def test_engine_refuses_new_jobs_while_stopping(app: App) -> None:
    app.service.accepting = False
    with pytest.raises(Exception, match="shutting down"):
        await app.service.draw(origin(), small())


async def test_scope_settings_are_admin_only_validated_and_applied(app: App) -> None:
    admin = origin("boss", admin=True)
    with pytest.raises(PermissionDenied):
        await app.service.update_scope_settings(origin(), max_steps=5)
    with pytest.raises(InvalidRequest, match="Unknown setting 'max_stepz'"):
        await app.service.update_scope_settings(admin, max_stepz=5)
    with pytest.raises(InvalidRequest, match="max_steps must be a whole number of at least 1"):
        await app.service.update_scope_settings(admin, max_steps=0)
    with pytest.raises(InvalidRequest, match="rate_per_minute must be a number"):
        await app.service.update_scope_settings(admin, rate_per_minute="fast")
    with pytest.raises(InvalidRequest, match="Unknown model 'nope'"):
        await app.service.update_scope_settings(admin, allowed_models=["nope"])

    settings = await app.service.update_scope_settings(admin, max_steps=5, max_count=2)
    assert (settings.max_steps, settings.max_count) == (5, 2)
    with pytest.raises(
        InvalidRequest, match="Steps 6 is above the limit: this service allows at most 5 steps"
    ):
        await app.service.draw(origin(), small(steps=6))
    # Other scopes keep the server's limits.
    await app.service.draw(origin(scope="elsewhere"), small(steps=6))

    await app.service.block_words(admin, ["gore", "  Blood "])
    assert (await app.service.scope_settings(admin)).blocklist == ("gore", "Blood")
    await app.service.unblock_words(admin, ["blood"])
    assert (await app.service.scope_settings(admin)).blocklist == ("gore",)
    restored = await app.service.update_scope_settings(admin, max_steps=None)
    assert restored.max_steps is None


async def test_allowed_models_restrict_a_scope(app: App) -> None:
    admin = origin("boss", admin=True)
    await app.service.update_scope_settings(admin, allowed_models=["demo"])
    await app.service.draw(origin(), small(model="demo"))
    await app.store.add_model("other", source="builtin:demo", kind="builtin")
    with pytest.raises(InvalidRequest, match=r"Model 'other' is not allowed here\. Allowed: demo"):
        await app.service.draw(origin(), small(model="other"))


async def test_jobs_of_another_scope_cannot_be_touched(app: App) -> None:
    def chat(user: str, scope: str, admin: bool = False) -> Origin:
        return Origin("chat", scope, user, is_admin=admin, sees=Visibility.SCOPE)

    theirs = (await app.service.draw(chat("alice", "server-a"), small())).job
    stranger = chat("mallory", "server-b", admin=True)  # an admin, but elsewhere
    for attempt in (
        app.service.cancel(stranger, theirs.id),
        app.service.reroll(stranger, theirs.id),
        app.service.rerun(stranger, theirs.id),
    ):
        with pytest.raises(NotFound, match="No job with id"):
            await attempt
    # Same scope, another user: may reroll (a new job of their own), may not cancel.
    neighbour = chat("bob", "server-a")
    await app.service.reroll(neighbour, theirs.id)
    with pytest.raises(PermissionDenied):
        await app.service.cancel(neighbour, theirs.id)
    # The machine's owner at the CLI sees everything.
    assert (await app.service.cancel(origin("root", admin=True), theirs.id)).status == "cancelled"


async def test_admins_blocking_words_at_once_all_keep_their_word(app: App) -> None:
    """Blocklist changes read, change and write the settings in one transaction: ten admins
    adding a word each at the same moment used to leave only some of the ten."""
    admins = [origin(f"mod{i}", admin=True) for i in range(10)]
    await asyncio.gather(
        *(app.service.block_words(admin, [f"word{i}"]) for i, admin in enumerate(admins))
    )
    settings = await app.service.scope_settings(origin())
    assert set(settings.blocklist) == {f"word{i}" for i in range(10)}
    # Removing and adding at once: both happen.
    await asyncio.gather(
        app.service.unblock_words(admins[0], ["word0"]),
        app.service.block_words(admins[1], ["word10"]),
    )
    settings = await app.service.scope_settings(origin())
    assert "word0" not in settings.blocklist and "word10" in settings.blocklist
    assert len(settings.blocklist) == 10


async def test_admission_keeps_no_lock_for_users_it_is_not_admitting(app: App) -> None:
    """The per-user admission locks used to live forever: one per user ever seen."""
    await asyncio.gather(*(app.service.draw(origin(f"user{i}"), small()) for i in range(60)))
    assert len(app.queue) == 60
    assert app.service.admission.users_being_admitted == 0


async def test_per_user_refusals_say_who_set_the_limit(app_factory) -> None:
    # The config allows plenty; a Telegram chat's and a Discord server's admins allow less.
    app = await app_factory(
        worker=False, limits={"burst": 50, "max_queued_per_user": 50, "daily_quota": 0}
    )

    def member(platform: str, scope: str, user: str) -> Origin:
        return Origin(platform, scope, user, user_name=user)

    chat = member("telegram", "-100", "ann")
    await app.service.update_scope_settings(
        Origin("telegram", "-100", "mod", is_admin=True), rate_per_minute=1, burst=1
    )
    await app.service.draw(chat, small())
    with pytest.raises(RateLimited) as rate:
        await app.service.draw(chat, small())
    assert "this chat's admins allow at most 1 drawing a minute (1 at once)" in rate.value.message

    server = member("discord", "42", "bob")
    await app.service.update_scope_settings(
        Origin("discord", "42", "mod", is_admin=True), max_queued_per_user=1, daily_quota=2
    )
    await app.service.draw(server, small())
    with pytest.raises(TooManyQueued) as waiting:
        await app.service.draw(server, small())
    assert "this server's admins allow at most 1 per person" in waiting.value.message
    await app.service.update_scope_settings(
        Origin("discord", "42", "mod", is_admin=True), max_queued_per_user=None
    )
    await app.service.draw(server, small())
    with pytest.raises(QuotaExceeded) as quota:
        await app.service.draw(server, small())
    assert "(this server's admins allow 2 a day)" in quota.value.message

    # Where the config's limit is the one in force, the service set it.
    web = member("web", "web", "cy")
    for _ in range(50):
        await app.service.draw(web, small())
    with pytest.raises(TooManyQueued) as mine:
        await app.service.draw(web, small())
    assert "this service allows at most 50 per person" in mine.value.message
