"""A cluster on one machine: a real Redis, the engine (an App in this process, or ``easel
serve`` in another), and ``easel worker`` processes, with the stand-in renderer (a fixed time
per image: only the GPU is simulated) or the real demo model.

    async with cluster_factory(seconds=0.05) as cluster:  # the fixture in conftest.py
        cluster.spawn("w1"); cluster.spawn("w2")
        await cluster.wait_workers(2)
        ids = await cluster.draw(users=4, per_user=5)
        jobs = await cluster.finished(ids)

Each cluster has its own Redis key prefix and data directory; workers are killed at the end
whatever happens. Waits poll state with deadlines, never a bare sleep for luck.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.app import App
from generation.events import JobFinished, Subscription
from generation.requests import DrawRequest, Origin, Visibility
from storage.records import JobRecord
from tests.reliability.crash_harness import REPO_ROOT, easel_command

HEARTBEAT = 0.2
TIMEOUT = 2.5  # seconds of silence before a worker is taken for dead (a loaded CI box)
ENGINE_STEP_SECONDS = 60.0  # the most an engine may take to stop or to start in these tests


def person(user: str) -> Origin:
    return Origin("web", "web", user, user_name=user, sees=Visibility.OWN)


def write_config(
    path: Path,
    data_dir: Path,
    broker: str,
    prefix: str,
    database: str = "",
    web: bool = False,
    **extra: str,
) -> Path:
    """An engine (and its workers') config; ``web`` serves the page on a free loopback port."""
    lines = [
        f'data_dir = "{data_dir}"',
        "[storage]",
        f'database_url = "{database}"',
        "[web]",
        'host = "127.0.0.1"\nport = 0' if web else "enabled = false",
        "[limits]",
        "burst = 100000",
        "rate_per_minute = 100000.0",
        "max_queued_per_user = 100000",
        "[generation]",
        "shutdown_grace_seconds = 5.0",
        "max_batch = 1",
        "cpu_threads = 1",
        "[cluster]",
        f'broker_url = "{broker}"',
        f'prefix = "{prefix}"',
        f"heartbeat_seconds = {HEARTBEAT}",
        f"heartbeat_timeout_seconds = {TIMEOUT}",
        *extra.values(),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Cluster:
    app: App
    config_path: Path
    logs: Path
    seconds: float
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    finished_events: Counter[str] = field(default_factory=Counter)
    _watch: asyncio.Task[None] | None = None
    _subscription: Subscription | None = None

    # ------------------------------------------------------------------ workers

    def spawn(self, name: str, *, real: bool = False, seconds: float | None = None) -> None:
        """Start ``easel worker --name NAME`` (the stand-in unless ``real``)."""
        command = [*easel_command(), "--config", str(self.config_path), "worker", "--name", name]
        if not real:
            command += ["--stand-in", str(self.seconds if seconds is None else seconds)]
        skip = ("EASEL_CONFIG", "EASEL_BROKER_URL")
        env = {k: v for k, v in os.environ.items() if k not in skip}
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")
        log = (self.logs / f"{name}.log").open("ab")
        self.workers[name] = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT
        )

    async def start_workers(self, *names: str, timeout: float = 90.0) -> None:
        """Spawn stand-in workers ``names`` and wait until the engine sees them all beat."""
        for name in names:
            self.spawn(name)
        await self.wait_workers(len(self.workers), timeout)

    def signal(self, name: str, signum: int) -> None:
        os.kill(self.workers[name].pid, signum)

    def kill(self, name: str) -> None:
        self.signal(name, signal.SIGKILL)
        self.workers[name].wait(timeout=30)

    async def kill_mid_render(self, name: str) -> set[str]:
        """SIGKILL ``name`` while it renders; returns the jobs it had started and not
        reported. It is frozen (SIGSTOP) first and the engine takes up whatever it sent
        before, so which jobs were lost is known exactly, whatever the machine's load."""
        self.signal(name, signal.SIGSTOP)

        async def results_taken_up() -> bool:
            broker = self.app.worker.broker  # type: ignore[union-attr]
            return int(await broker.redis.xlen(broker.keys.results)) == 0

        await self.until(results_taken_up, 60, "the engine to take up every result")
        worker: Any = self.app.worker
        lost = {
            job_id
            for batch in worker.batches.values()
            if batch.worker == name and batch.started
            for job_id in batch.pending
        }
        self.kill(name)
        return lost

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    async def wait_workers(self, count: int, timeout: float = 90.0) -> None:
        """Until ``count`` workers beat (as the engine sees them)."""
        await self.until(lambda: self.alive() >= count, timeout, f"{count} live workers")

    def alive(self) -> int:
        return sum(1 for status in self.statuses() if status.state != "down")

    def statuses(self) -> list[Any]:
        assert self.app.worker is not None
        return self.app.worker.statuses()

    def late_results(self) -> int:
        return int(getattr(self.app.worker, "late_results", 0))

    async def running_in_store(self) -> int:
        return len(await self.app.store.list_jobs(statuses=["running"], limit=10_000))

    def rendering(self) -> dict[str, tuple[str, ...]]:
        return {s.name: s.current for s in self.statuses() if s.current}

    async def until(self, condition: Any, timeout: float, what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (await result if inspect.isawaitable(result := condition()) else result):
            if loop.time() > deadline:
                logs = {name: self.log(name)[-1500:] for name in self.workers}
                raise AssertionError(f"timed out waiting for {what}; worker logs: {logs}")
            await asyncio.sleep(0.05)

    # ------------------------------------------------------------------ jobs

    async def draw(self, users: int, per_user: int, steps: int = 4, tag: str = "job") -> list[str]:
        ids = []
        for index in range(per_user):
            for user in range(users):
                request = DrawRequest(
                    f"{tag} {user}-{index}", width=64, height=64, steps=steps, seed=index
                )
                ids.append((await self.app.service.draw(person(f"u{user}"), request)).job.id)
        return ids

    async def finished(self, ids: list[str], timeout: float = 100.0) -> list[JobRecord]:
        jobs: dict[str, JobRecord] = {}

        async def check() -> bool:
            for job_id in ids:
                if job_id not in jobs:
                    job = await self.app.store.get_job(job_id)
                    if job is not None and job.is_terminal:
                        jobs[job_id] = job
            if self._watch is not None:  # and each job's JobFinished was published
                return len(jobs) == len(ids) and all(self.finished_events[i] for i in ids)
            return len(jobs) == len(ids)

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not await check():
            if loop.time() > deadline:
                waiting = [i for i in ids if i not in jobs]
                raise AssertionError(f"jobs never finished: {waiting}; {await self.state()}")
            await asyncio.sleep(0.1)
        return [jobs[i] for i in ids]

    async def state(self) -> str:
        """What the engine, the store and the workers say (for a failure's message)."""
        worker: Any = self.app.worker
        batches = {
            b.batch_id: (b.worker, b.started, sorted(b.pending))
            for b in getattr(worker, "batches", {}).values()
        }
        jobs = {
            job.id: (job.status.value, job.attempt)
            for job in await self.app.store.list_jobs(statuses=["queued", "running"], limit=10_000)
        }
        logs = {name: self.log(name)[-1500:] for name in self.workers}
        return (
            f"unfinished jobs {jobs}; engine batches {batches}; engine queue "
            f"{len(self.app.queue)}; workers {self.statuses()}; worker logs {logs}"
        )

    async def restart_engine(self, down_seconds: float) -> None:
        """Stop the engine, leave it down a while (workers go on), start a new one on the
        same configuration; finished events go on being counted across the restart."""
        watching = self._watch is not None
        self._stop_watching()
        config = self.app.config
        # Each engine stops and starts in a task of its own and within a minute, as each is a
        # process of its own in production (a hang then fails here, saying which step hung).
        await asyncio.wait_for(self.app.stop(), ENGINE_STEP_SECONDS)
        await asyncio.sleep(down_seconds)
        self.app = App.from_config(config)
        await asyncio.wait_for(self.app.start(), ENGINE_STEP_SECONDS)
        if watching:
            self.watch_finished()

    def watch_finished(self) -> None:
        """Count JobFinished events per job from now on (each must be exactly 1)."""
        self._subscription = self.app.bus.subscribe()

        async def count() -> None:
            assert self._subscription is not None
            while True:
                event = await self._subscription.get()
                if isinstance(event, JobFinished):
                    self.finished_events[event.job.id] += 1

        self._watch = asyncio.create_task(count())

    def _stop_watching(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None

    async def close(self) -> None:
        for process in self.workers.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGCONT)
                    process.kill()
                process.wait(timeout=30)
        self._stop_watching()
        if self.app.started:
            await self.app.stop()
