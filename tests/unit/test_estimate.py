"""Waiting times: job sizes in pixel-steps, the per-model duration fit, time left, start times,
and the live queue's ETAs (a manual clock: nothing sleeps)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from generation.clock import ManualClock
from generation.estimate import (
    REFERENCE_WORK,
    DurationModel,
    denoising_steps,
    job_work,
    start_times,
    time_left,
)
from generation.queue import JobQueue
from generation.spec import Hires, Mode
from storage.records import JobRecord, JobStatus
from tests.records import job_record

MODEL = "sd15"


def work(side: int, steps: int = 20, images: int = 1) -> float:
    return float(side * side * steps * images)


def true_seconds(side: int, steps: int = 20) -> float:
    """A made-up GPU: 0.3 s per job plus 4.7 s per 512x512x20 steps (a 512 job takes 5 s)."""
    return 0.3 + 4.7 * work(side, steps) / REFERENCE_WORK


def test_denoising_steps_follow_diffusers() -> None:
    assert denoising_steps(20, None) == 20
    assert denoising_steps(20, 0.75) == 15  # int(20 * 0.75)
    assert denoising_steps(30, 0.35) == 10  # int(10.5)
    assert denoising_steps(20, 0.01) == 1  # at least one step
    assert denoising_steps(20, 1.0) == 20


def test_job_work_counts_pixels_steps_and_images() -> None:
    spec = job_record(width=512, height=768, steps=30, count=4).spec
    assert job_work(spec) == 512 * 768 * 30 * 4
    vary = replace(spec, mode=Mode.IMG2IMG, strength=0.5, count=1)
    assert job_work(vary) == 512 * 768 * 15


def test_a_hires_fix_counts_its_second_pass() -> None:
    spec = job_record(width=512, height=512, steps=20, count=2).spec
    hires = Hires(width=1024, height=1024, upscaler="Latent", strength=0.5)
    first = 512 * 512 * 20
    assert job_work(replace(spec, hires=hires)) == (first + 1024 * 1024 * 10) * 2
    own_steps = replace(hires, steps=8, strength=0.25)  # int(8 x 0.25) = 2 steps
    assert job_work(replace(spec, hires=own_steps)) == (first + 1024 * 1024 * 2) * 2


def test_before_any_job_the_default_scales_with_size() -> None:
    durations = DurationModel(10.0)
    assert durations.estimate(MODEL, REFERENCE_WORK) == pytest.approx(10.0)
    assert durations.estimate(MODEL, work(64)) == pytest.approx(10.0 / 64)
    assert not durations.known(MODEL)


def test_a_few_512_jobs_make_the_512_estimate_right_and_small_jobs_stay_short() -> None:
    durations = DurationModel(2.0)  # the default is far off: 2 s for what takes 5
    for noise in (1.04, 0.97, 1.01):
        durations.observe(MODEL, work(512), true_seconds(512) * noise)
    assert durations.estimate(MODEL, work(512)) == pytest.approx(5.0, rel=0.05)
    assert durations.estimate(MODEL, work(64)) < 0.5  # not "one average for every job"
    assert durations.estimate(MODEL, work(768)) == pytest.approx(true_seconds(768), rel=0.1)


def test_the_overhead_is_fitted_once_sizes_differ() -> None:
    durations = DurationModel(10.0)
    for _ in range(3):
        durations.observe(MODEL, work(512), true_seconds(512))
        durations.observe(MODEL, work(64), true_seconds(64))
    for side in (64, 128, 256, 512, 768, 1024):
        assert durations.estimate(MODEL, work(side)) == pytest.approx(true_seconds(side), rel=0.05)
    # Many jobs of one size later, the overhead learned from both sizes stays.
    for _ in range(30):
        durations.observe(MODEL, work(512), true_seconds(512))
    assert durations.estimate(MODEL, work(64)) == pytest.approx(true_seconds(64), rel=0.05)


def test_measured_demo_model_seconds_are_fitted_within_a_third() -> None:
    """The demo model on the 2-core CPU (median seconds of three runs each, see estimate.py)."""
    measured = {
        (64, 4): 0.064,
        (64, 8): 0.074,
        (128, 4): 0.057,
        (128, 8): 0.084,
        (128, 16): 0.155,
        (256, 4): 0.094,
        (256, 8): 0.151,
        (256, 16): 0.254,
        (384, 8): 0.367,
    }
    durations = DurationModel(10.0)
    for (side, steps), seconds in measured.items():
        durations.observe("demo", work(side, steps), seconds)
    for (side, steps), seconds in measured.items():
        estimate = durations.estimate("demo", work(side, steps))
        assert estimate == pytest.approx(seconds, rel=0.33), (side, steps)


def test_models_are_learned_apart_and_a_new_model_uses_every_job() -> None:
    durations = DurationModel(10.0)
    for _ in range(3):
        durations.observe("fast", work(512), 1.0)
        durations.observe("slow", work(512), 9.0)
    assert durations.estimate("fast", work(512)) == pytest.approx(1.0)
    assert durations.estimate("slow", work(512)) == pytest.approx(9.0)
    assert 1.0 < durations.estimate("new", work(512)) < 9.0
    assert durations.known("fast") and not durations.known("new")


def test_bad_observations_are_ignored_and_bad_settings_refused() -> None:
    durations = DurationModel(4.0)
    for seconds in (float("nan"), float("inf"), 0.0, -1.0):
        durations.observe(MODEL, REFERENCE_WORK, seconds)
    durations.observe(MODEL, 0.0, 3.0)
    assert not durations.known(MODEL)
    assert durations.estimate(MODEL, REFERENCE_WORK) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="default_seconds"):
        DurationModel(0.0)
    with pytest.raises(ValueError, match="decay"):
        DurationModel(1.0, decay=1.0)


def test_forgets_the_least_recent_models() -> None:
    durations = DurationModel(1.0, max_models=2)
    for name in ("a", "b", "c"):
        durations.observe(name, REFERENCE_WORK, 5.0)
    assert not durations.known("a") and durations.known("b") and durations.known("c")


def test_time_left_blends_the_estimate_with_the_steps() -> None:
    assert time_left(8.0, 3.0) == pytest.approx(5.0)  # no step yet: the estimate
    assert time_left(8.0, 10.0) == 0.0  # over the estimate, no step: nothing to go on
    # Half the steps in 5 s: the steps say 5 s more, the estimate 3 s; halfway, half each.
    assert time_left(8.0, 5.0, 0.5) == pytest.approx(4.0)
    # Running slower than estimated, nearly done: the steps speak.
    assert time_left(2.0, 9.0, 0.9) == pytest.approx(0.9 * 1.0)
    assert time_left(8.0, 8.0, 1.0) == 0.0


def test_start_times_on_one_lane_and_on_several() -> None:
    assert list(start_times([3.0], [2.0, 4.0, 1.0])) == [3.0, 5.0, 9.0]
    assert list(start_times([], [2.0, 4.0])) == [0.0, 2.0]
    assert list(start_times([3.0, 1.0], [2.0])) == [4.0]  # one lane: both batches first
    # Two workers: one busy for 3 s, one free.
    assert list(start_times([3.0], [2.0, 4.0, 1.0], lanes=2)) == [0.0, 2.0, 3.0]
    assert list(start_times([-1.0], [1.0])) == [0.0]


def queued(job_id: str, user: int, side: int, steps: int = 20) -> JobRecord:
    return job_record(
        job_id,
        model=MODEL,
        width=side,
        height=side,
        steps=steps,
        user_id=user,
        attempt=0,
        status=JobStatus.QUEUED,
        seq=user,
    )


async def finish_a_job(queue: JobQueue, clock: ManualClock, job: JobRecord, seconds: float) -> None:
    await queue.put(job)
    (item,) = await queue.take_batch(1)
    clock.advance(seconds)
    queue.finished(item.job_id, seconds)


async def test_queue_etas_add_up_what_runs_and_each_job_ahead() -> None:
    clock = ManualClock()
    queue = JobQueue(clock, initial_job_seconds=2.0)
    for index in range(3):
        await finish_a_job(queue, clock, queued(f"warm{index}", 9, 512), true_seconds(512))

    # A 512 job runs, 2 s in; alice's 512 job and bob's 64 job wait, then carol's 512.
    await queue.put(queued("running", 1, 512))
    await queue.take_batch(1)
    clock.advance(2.0)
    await queue.put(queued("alice", 2, 512))
    await queue.put(queued("bob", 3, 64))
    await queue.put(queued("carol", 4, 512))

    five = true_seconds(512)
    running_left = queue.seconds_left("running")
    assert running_left == pytest.approx(five - 2.0, rel=0.05)
    assert queue.eta("alice") == pytest.approx(running_left)
    assert queue.seconds_left("alice") == pytest.approx(running_left + five, rel=0.05)
    bob_eta = queue.eta("bob")
    assert bob_eta == pytest.approx(running_left + five, rel=0.05)
    assert queue.estimate("bob") < 0.5  # a small job is estimated small
    carol_eta = queue.eta("carol")
    assert carol_eta == pytest.approx(bob_eta + queue.estimate("bob"))
    assert queue.etas() == {"alice": queue.eta("alice"), "bob": bob_eta, "carol": carol_eta}
    assert queue.eta("running") is None and queue.seconds_left("nobody") is None

    # Halfway through its steps after 4 s (it runs slower than estimated): the time left
    # follows the steps, partly.
    clock.advance(2.0)
    queue.note_progress("running", 10, 20)
    assert queue.seconds_left("running") == pytest.approx(0.5 * 4.0 + 0.5 * (five - 4.0))


async def test_a_running_batch_is_done_when_its_last_job_is() -> None:
    clock = ManualClock()
    queue = JobQueue(clock, initial_job_seconds=4.0)
    for user in (1, 2, 3):
        await queue.put(queued(f"j{user}", user, 512))
    batch = await queue.take_batch(3)
    assert len(batch) == 3
    each = queue.estimate("j1")
    assert each == pytest.approx(4.0)
    for job_id in ("j1", "j2", "j3"):
        assert queue.seconds_left(job_id) == pytest.approx(3 * each)
    await queue.put(queued("next", 4, 512))
    assert queue.eta("next") == pytest.approx(3 * each)


async def test_cluster_lanes_and_a_restart_clock() -> None:
    clock = ManualClock()
    queue = JobQueue(clock, initial_job_seconds=4.0)
    queue.lanes = 2
    await queue.put(queued("a", 1, 512))
    await queue.take_batch(1)  # handed to a worker, which starts it later
    clock.advance(3.0)
    queue.started(["a"])
    assert queue.seconds_left("a") == pytest.approx(4.0)
    await queue.put(queued("b", 2, 512))
    await queue.put(queued("c", 3, 512))
    assert queue.eta("b") == 0.0  # the second worker is free
    assert queue.eta("c") == pytest.approx(4.0)
    queue.mark_taken(queued("d", 4, 512))  # after an engine restart: still with a worker
    assert queue.seconds_left("d") == pytest.approx(4.0)


async def test_a_cancelled_or_failed_job_teaches_nothing() -> None:
    clock = ManualClock()
    queue = JobQueue(clock, initial_job_seconds=4.0)
    await queue.put(queued("gone", 1, 512))
    assert queue.remove("gone")
    assert queue.estimate("gone") == 0.0
    await queue.put(queued("failed", 1, 512))
    await queue.take_batch(1)
    queue.finished("failed", None)
    assert not queue.durations.known(MODEL)
