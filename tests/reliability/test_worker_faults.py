"""Worker faults: errors raised *inside* the real diffusers pipeline (demo model, 64x64).

Faults are injected at the pipeline's own modules (the UNet's ``forward``, the VAE's ``decode``)
and at the worker's progress reporting, never by replacing the backend: the job must fail with a
reason a person can read (or not fail at all, for progress/preview faults), and the same worker,
without a restart, must render the next job.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from sqlalchemy.exc import OperationalError

from bot.app import App
from generation.events import JobProgress
from tests.conftest import AppFactory
from tests.e2e.engine_helpers import origin, small, wait_finished

CPU = {"cpu_threads": 1, "max_batch": 4, "shutdown_grace_seconds": 5.0}
OOM_TEXT = "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity)"


class Injector:
    """Raise ``make()`` from a pipeline module's method for the calls ``when`` picks.

    ``when(call_number, batch)`` gets the 1-based call number and the leading (batch) dimension
    of the first tensor argument; it runs on the worker thread.
    """

    def __init__(self, make: Callable[[], BaseException], when: Callable[[int, int], bool]):
        self.make = make
        self.when = when
        self.calls: list[tuple[int, bool]] = []  # (batch dimension, raised)

    def patch(self, monkeypatch: pytest.MonkeyPatch, owner: type, name: str) -> None:
        original = getattr(owner, name)

        def wrapper(module: Any, *args: Any, **kwargs: Any) -> Any:
            first = args[0] if args else next(iter(kwargs.values()))
            batch = int(first.shape[0]) if isinstance(first, torch.Tensor) else 1
            raise_now = self.when(len(self.calls) + 1, batch)
            self.calls.append((batch, raise_now))
            if raise_now:
                raise self.make()
            return original(module, *args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)

    @property
    def raised(self) -> int:
        return sum(1 for _, raised in self.calls if raised)


async def _alive_and_rendering(app: App, worker: object, user: str) -> None:
    """The same worker (no restart) renders a normal job to the end."""
    assert app.worker is worker
    accepted = await app.service.draw(origin(user), small(f"after the fault {user}", steps=2))
    job = await wait_finished(app, accepted.job.id)
    assert job.status == "succeeded" and len(job.images) == 1, job.error
    assert app.images.read(job.images[0].sha256).startswith(b"\x89PNG")


async def test_oom_and_exceptions_inside_the_pipeline_fail_only_that_job(
    app_factory: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = await app_factory(generation=CPU)
    worker = app.worker
    oom = Injector(lambda: torch.OutOfMemoryError(OOM_TEXT), lambda n, _: n == 1)
    oom.patch(monkeypatch, UNet2DConditionModel, "forward")

    first = await app.service.draw(origin("alice"), small("an oom victim", steps=2))
    failed = await wait_finished(app, first.job.id)
    assert oom.raised == 1
    assert failed.status == "failed" and not failed.images
    # The project's OutOfMemory message: where, what, and what to do about it.
    assert failed.error is not None
    assert failed.error.startswith("Out of memory on cpu while rendering 64x64 x1")
    assert "try a smaller size or count" in failed.error
    await _alive_and_rendering(app, worker, "bob")

    monkeypatch.undo()
    decode = Injector(lambda: RuntimeError("VAE exploded: NaN in decoder"), lambda n, _: n == 1)
    decode.patch(monkeypatch, AutoencoderKL, "decode")
    second = await app.service.draw(origin("carol"), small("a vae victim", steps=2))
    broken = await wait_finished(app, second.job.id)
    assert decode.raised == 1
    assert broken.status == "failed" and not broken.images
    assert broken.error == "RuntimeError: VAE exploded: NaN in decoder"
    await _alive_and_rendering(app, worker, "dave")


async def test_a_fault_in_progress_reporting_or_previews_does_not_fail_the_job(
    app_factory: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = await app_factory(generation={**CPU, "previews": True})
    real_publish = app.bus.publish_threadsafe
    faults = {"progress": 0, "preview": 0}

    def broken_publish(event: Any) -> None:
        if isinstance(event, JobProgress):  # e.g. the event loop is closing
            faults["progress"] += 1
            raise RuntimeError("Event loop is closed")
        real_publish(event)

    def broken_preview(*_: Any) -> bytes:
        faults["preview"] += 1
        raise ValueError("preview projection failed")

    monkeypatch.setattr(app.bus, "publish_threadsafe", broken_publish)
    monkeypatch.setattr("generation.backend.renderer.projection_png", broken_preview)
    async with await app.service.watch(origin(), previews=True):  # someone looks at previews
        accepted = await app.service.draw(origin(), small("progress faults", steps=3))
        job = await wait_finished(app, accepted.job.id)
    assert faults["progress"] >= 1 and faults["preview"] >= 1  # both faults really happened
    assert job.status == "succeeded" and len(job.images) == 1, job.error


async def _queue_then_start(app_factory: AppFactory, count: int) -> tuple[App, list[str]]:
    """Queue ``count`` compatible jobs with no worker, then start one: they form one batch."""
    idle = await app_factory(worker=False, generation=CPU)
    ids = []
    for i in range(count):
        accepted = await idle.service.draw(origin(f"user{i}"), small(f"batch {i}", seed=i, steps=2))
        ids.append(accepted.job.id)
    await idle.stop()
    return await app_factory(generation=CPU), ids


async def test_an_oom_in_a_batch_retries_its_jobs_one_by_one(
    app_factory: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Memory that fits one image at a time: any UNet call on more than one image (x2 for the
    # classifier-free guidance) runs out; and the first single render runs out too.
    singles = {"n": 0}

    def out_of_memory(_: int, batch: int) -> bool:
        if batch > 2:
            return True
        singles["n"] += 1
        return singles["n"] == 1

    oom = Injector(lambda: torch.OutOfMemoryError(OOM_TEXT), out_of_memory)
    oom.patch(monkeypatch, UNet2DConditionModel, "forward")
    app, ids = await _queue_then_start(app_factory, 3)
    jobs = [await wait_finished(app, job_id) for job_id in ids]

    assert oom.calls[0] == (6, True)  # the three jobs were rendered together, and that ran out
    statuses = [job.status for job in jobs]
    assert statuses == ["failed", "succeeded", "succeeded"], [j.error for j in jobs]
    assert "Out of memory on cpu while rendering 64x64 x1" in (jobs[0].error or "")
    assert [len(job.images) for job in jobs[1:]] == [1, 1]
    await _alive_and_rendering(app, app.worker, "after-batch")


async def test_a_store_error_while_recording_fails_the_job_instead_of_hiding_it(
    app_factory: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database refuses the "succeeded" write (locked, full disk...). The job used to stay
    "running" in the store and in the live queue, with no finished event, the error only logged.
    Now it ends failed with the reason, and the worker carries on."""
    app = await app_factory(generation=CPU)
    record_success = app.store.mark_succeeded
    refused: list[str] = []

    async def locked(job_id: str, images: Any) -> Any:
        if not refused:
            refused.append(job_id)
            raise OperationalError(
                "UPDATE jobs SET status=?", {}, sqlite3.OperationalError("database is locked")
            )
        return await record_success(job_id, images)

    monkeypatch.setattr(app.store, "mark_succeeded", locked)
    first = (await app.service.draw(origin(), small("unlucky"))).job
    job = await wait_finished(app, first.id)
    assert refused == [first.id]
    assert job.status == "failed" and "could not record the result" in (job.error or "")
    assert "database is locked" in (job.error or "")
    assert not app.queue.is_running(first.id)
    after = await wait_finished(app, (await app.service.draw(origin(), small("next"))).job.id)
    assert after.status == "succeeded", after.error
