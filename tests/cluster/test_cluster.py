"""The cluster end to end: a real Redis, the engine, ``easel worker`` processes.

Workers use the stand-in renderer (a fixed time per image) except where the real demo model is
named; the broker, the store, the engine and the workers are the real code. Every test checks
against the store that each job was recorded once, and counts its finished events (exactly 1).
"""

from __future__ import annotations

import asyncio
import io
import signal
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from generation.addons import addon_files
from generation.metadata import job_id_from_png, parse_infotext, read_png_text
from generation.requests import DrawRequest, InpaintRequest, Origin
from storage.records import JobRecord
from tests.cluster.conftest import ClusterFactory
from tests.cluster.harness import Cluster, person
from tests.servers import RedisServer


def assert_each_recorded_once(cluster: Cluster, jobs: list[JobRecord], images: int = 1) -> None:
    assert [job.status for job in jobs] == ["succeeded"] * len(jobs), [
        (job.id, job.status, job.error) for job in jobs
    ]
    assert all(len(job.images) == images for job in jobs)
    assert all(cluster.finished_events[job.id] == 1 for job in jobs), cluster.finished_events


async def test_batches_render_on_workers_and_come_back_once(
    cluster_factory: ClusterFactory,
) -> None:
    async with cluster_factory(seconds=0.05) as cluster:
        cluster.watch_finished()
        await cluster.start_workers("w1", "w2")
        ids = await cluster.draw(users=4, per_user=5)
        jobs = await cluster.finished(ids)
        assert_each_recorded_once(cluster, jobs)
        data = cluster.app.images.read(jobs[0].images[0].sha256)
        assert job_id_from_png(data) == jobs[0].id  # the worker wrote Easel's metadata
        info = parse_infotext(read_png_text(data)["parameters"])
        assert info["Seed"] == str(jobs[0].seed) and info["Model"] == "demo"
        assert {s.name for s in cluster.statuses()} == {"w1", "w2"}
        assert all(job.attempt == 1 for job in jobs)
        # Waiting times: the workers' seconds teach the estimates; two batches render at once.
        queue = cluster.app.queue
        assert queue.durations.known("demo")
        await cluster.until(lambda: queue.lanes == 2, 30, "two lanes in the waiting times")


async def test_the_real_demo_model_renders_on_a_worker(
    cluster_factory: ClusterFactory, tmp_path: Path
) -> None:
    async with cluster_factory() as cluster:
        cluster.watch_finished()
        cluster.spawn("gpu", real=True)
        await cluster.wait_workers(1)
        request = DrawRequest("a castle at dusk", width=64, height=64, steps=3, seed=7, count=2)
        job = (await cluster.app.service.draw(person("ada"), request)).job
        (done,) = await cluster.finished([job.id])
        assert_each_recorded_once(cluster, [done], images=2)
        assert [image.seed for image in done.images] == [7, 8]
        await cluster.until(  # its next heartbeat says the model stays loaded
            lambda: any(s.name == "gpu" and "demo" in s.loaded for s in cluster.statuses()),
            30,
            "demo loaded on gpu",
        )
        assert next(s for s in cluster.statuses() if s.name == "gpu").device == "cpu"

        # An inpaint job carries its mask to the worker; outside the mask the picture stays.
        mask = Image.new("L", (64, 64), 0)
        mask.paste(255, (16, 16, 48, 48))
        buffer = io.BytesIO()
        mask.save(buffer, format="PNG")
        request = InpaintRequest(buffer.getvalue(), mask_blur=0)
        child = (await cluster.app.service.inpaint(person("ada"), done.id, request)).job
        (inpainted,) = await cluster.finished([child.id])
        assert_each_recorded_once(cluster, [inpainted])
        before, after = (
            np.asarray(Image.open(io.BytesIO(cluster.app.images.read(job.images[0].sha256))))
            for job in (done, inpainted)
        )
        outside = np.asarray(mask) == 0
        assert (before[outside] == after[outside]).all() and (before != after).any()

        # LoRA and embedding files travel through Redis to the worker (once, kept by hash
        # there) and render what this machine renders with the registered files.
        await lora_job_renders_as_here(cluster, tmp_path)


async def lora_job_renders_as_here(cluster: Cluster, tmp_path: Path) -> None:
    from generation.backend import DiffusersBackend
    from generation.render import RenderJob
    from generation.worker import render_sources
    from tests.addon_files import make_embedding, make_lora

    app = cluster.app
    admin = Origin(platform="cli", scope_id="local", user_id="root", is_admin=True)
    lora = make_lora(tmp_path / "pixel.safetensors", 1)
    embedding = make_embedding(tmp_path / "easyneg.safetensors", 3)
    await app.service.add_addon(admin, "pixel", str(lora), "lora")
    await app.service.add_addon(admin, "easyneg", str(embedding), "embedding")
    request = DrawRequest(
        "a castle <lora:pixel:0.8>", "easyneg", width=64, height=64, steps=3, seed=7
    )
    job = (await app.service.draw(person("ada"), request)).job
    (done,) = await cluster.finished([job.id])
    assert_each_recorded_once(cluster, [done])
    received = app.config.data_dir / "received-addons"
    assert {p.name for p in received.iterdir()} == {
        f"{a.sha256}.safetensors" for a in (*done.spec.loras, *done.spec.embeddings)
    }
    backend = DiffusersBackend(data_dir=app.config.data_dir, device="cpu")
    try:
        sources = await render_sources(app.store, done.spec, {})
        files = await addon_files(app.store, done.spec)
        here = backend.render(RenderJob(done.spec, sources.model, addon_files=files), _no, _no)
    finally:
        backend.close()
    there = Image.open(io.BytesIO(app.images.read(done.images[0].sha256))).convert("RGB")
    diff = np.abs(np.asarray(there, dtype=np.int16) - np.asarray(here[0], dtype=np.int16))
    assert int(diff.max()) <= 1


def _no(*_: object) -> bool:
    return False


async def test_killed_workers_batches_run_elsewhere_once(cluster_factory: ClusterFactory) -> None:
    """Ten times: SIGKILL one of four workers mid-render (no goodbye). After the heartbeat
    timeout its batch runs on another worker, counting an attempt; the killed worker comes back
    under its name and takes work again."""
    names = ("w1", "w2", "w3", "w4")
    async with cluster_factory(seconds=0.4) as cluster:
        cluster.watch_finished()
        await cluster.start_workers(*names)
        every: list[str] = []
        for round_ in range(10):
            ids = await cluster.draw(users=4, per_user=2, tag=f"round{round_}")
            every += ids

            def started_on() -> list[str]:
                worker: Any = cluster.app.worker
                return sorted({b.worker for b in worker.batches.values() if b.started})

            await cluster.until(lambda: bool(started_on()), 60, "a worker rendering")
            victim = started_on()[round_ % len(started_on())]
            lost = await cluster.kill_mid_render(victim)
            await cluster.until(
                lambda v=victim: all(s.name != v or s.state == "down" for s in cluster.statuses()),
                60,
                f"{victim} taken for dead",
            )
            jobs = await cluster.finished(ids)
            assert_each_recorded_once(cluster, jobs)
            # Exactly the jobs it had started ran again elsewhere, counting an attempt.
            assert {job.id for job in jobs if job.attempt == 2} == lost
            cluster.spawn(victim)  # it comes back
            await cluster.wait_workers(4)
        jobs = [await cluster.app.store.get_job(job_id) for job_id in every]
        assert all(job is not None for job in jobs)
        assert_each_recorded_once(cluster, [job for job in jobs if job is not None])


async def test_a_frozen_workers_late_result_is_ignored_and_it_resumes(
    cluster_factory: ClusterFactory,
) -> None:
    async with cluster_factory(seconds=1.0) as cluster:
        cluster.watch_finished()
        await cluster.start_workers("w1", "w2")
        (job_id,) = await cluster.draw(users=1, per_user=1, steps=8)
        await cluster.until(lambda: bool(cluster.rendering()), 60, "a worker rendering")
        frozen = next(iter(cluster.rendering()))
        cluster.signal(frozen, signal.SIGSTOP)  # its "network disappears"
        await cluster.until(
            lambda: any(s.name == frozen and s.state == "down" for s in cluster.statuses()),
            60,
            f"{frozen} taken for dead",
        )
        cluster.signal(frozen, signal.SIGCONT)  # ... and comes back with a late result
        (job,) = await cluster.finished([job_id])
        await cluster.until(lambda: cluster.alive() == 2, 60, f"{frozen} back")
        await cluster.until(lambda: cluster.late_results() >= 1, 60, "the late result")
        assert job.attempt == 2  # it ran again on the other worker; the late copy was dropped
        assert_each_recorded_once(cluster, [job])
        # It resumed: new work reaches it again.
        more = await cluster.draw(users=2, per_user=2, tag="after")
        assert_each_recorded_once(cluster, await cluster.finished(more))


async def test_a_cancelled_job_is_taken_back_or_stopped(cluster_factory: ClusterFactory) -> None:
    async with cluster_factory(seconds=2.0) as cluster:
        cluster.watch_finished()
        await cluster.start_workers("w1")
        first, waiting = await cluster.draw(users=1, per_user=2, steps=20)
        await cluster.until(lambda: first in cluster.rendering().get("w1", ()), 60, "first")
        owner = person("u0")
        # The waiting batch (assigned to w1 behind the first) is taken back: never started.
        cancelled = await cluster.app.service.cancel(owner, waiting)
        assert cancelled.status == "cancelled"
        # The running one stops at the worker's next step.
        await cluster.app.service.cancel(owner, first)
        jobs = await cluster.finished([first, waiting])
        assert [job.status for job in jobs] == ["cancelled", "cancelled"]
        assert jobs[1].started_at is None and jobs[1].attempt == 0  # never rendered
        assert cluster.finished_events[first] == 1 and cluster.finished_events[waiting] == 1
        await cluster.until(lambda: not cluster.rendering(), 60, "w1 idle")


async def test_fairness_holds_across_the_cluster(cluster_factory: ClusterFactory) -> None:
    """One user fills every worker; another's single job starts ahead of the first user's
    queued jobs: only the batches already waiting on the other workers may start before it."""
    workers = 3
    async with cluster_factory(seconds=0.5) as cluster:
        await cluster.start_workers(*(f"w{index}" for index in range(workers)))
        busy = await cluster.draw(users=1, per_user=30, tag="busy")
        await cluster.until(lambda: len(cluster.rendering()) == workers, 60, "every worker busy")

        async def all_marked_running() -> bool:  # so no start of theirs counts below
            return await cluster.running_in_store() == workers

        await cluster.until(all_marked_running, 60, "the engine recording their start")
        newcomer = (
            await cluster.app.service.draw(
                person("newcomer"), DrawRequest("just one", width=64, height=64, steps=4)
            )
        ).job
        (mine,) = await cluster.finished([newcomer.id])
        assert mine.started_at is not None
        started_between = [
            job
            for job in await cluster.finished(busy[: workers * 4])
            if job.started_at and newcomer.created_at < job.started_at < mine.started_at
        ]
        assert len(started_between) <= workers - 1, [j.id for j in started_between]
        await cluster.finished(busy)


async def test_results_wait_in_redis_while_the_engine_restarts(
    cluster_factory: ClusterFactory,
) -> None:
    async with cluster_factory(seconds=0.3) as cluster:
        cluster.watch_finished()
        await cluster.start_workers("w1", "w2")
        ids = await cluster.draw(users=2, per_user=5)
        await cluster.until(lambda: len(cluster.rendering()) == 2, 60, "both rendering")
        # Batches stay with the workers, which finish them while the engine is away: their
        # results wait in Redis for the next engine.
        await cluster.restart_engine(down_seconds=1.0)
        jobs = await cluster.finished(ids)
        assert_each_recorded_once(cluster, jobs)
        assert all(job.attempt == 1 for job in jobs)  # nothing was rendered twice


async def test_redis_restarting_mid_run_loses_nothing(
    cluster_factory: ClusterFactory, redis_server: RedisServer
) -> None:
    async with cluster_factory(seconds=0.2) as cluster:
        cluster.watch_finished()
        await cluster.start_workers("w1", "w2")
        ids = await cluster.draw(users=3, per_user=6)
        await cluster.until(lambda: bool(cluster.rendering()), 60, "rendering")
        await asyncio.to_thread(redis_server.restart)  # append-only file on: data survives
        jobs = await cluster.finished(ids)
        assert_each_recorded_once(cluster, jobs)
