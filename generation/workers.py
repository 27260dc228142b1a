"""What the engine's renderer looks like from outside: the workers and what they are doing.

The engine renders either on its own worker thread (:class:`generation.worker.Worker`) or on
``easel worker`` processes through Redis (:class:`cluster.dispatcher.ClusterWorker`); both
implement :class:`EngineWorker`, and both describe their workers the same way for ``easel
workers``, the web admin page and ``/metrics``.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from generation.render import ModelSource


@dataclass(frozen=True)
class WorkerStatus:
    name: str
    state: str  # "idle", "loading" (a model), "rendering" or "down" (silent past the timeout)
    device: str = ""
    loaded: tuple[str, ...] = ()  # models loaded now
    can_load: tuple[str, ...] | None = None  # registered models it can load; None = any
    current: tuple[str, ...] = ()  # job ids it renders
    jobs_per_minute: float = 0.0
    memory_gb: float | None = None
    free_memory_gb: float | None = None
    host: str = ""


class FinishedJobs:
    """When jobs finished, over the last minute: a worker's "jobs per minute"."""

    def __init__(self) -> None:
        self._times: deque[float] = deque()

    def add(self) -> None:
        self._times.append(time.monotonic())

    def per_minute(self) -> float:
        now = time.monotonic()
        while self._times and now - self._times[0] > 60:
            self._times.popleft()
        return float(len(self._times))


class EngineWorker(Protocol):
    """Takes jobs from the fair queue, renders them somewhere, records every outcome."""

    async def recover(self) -> None:
        """At start-up: take up what the last run left (re-queue, or keep what still runs)."""

    def start(self) -> None: ...

    async def stop(self, grace_seconds: float) -> None: ...

    def preload(self, model: ModelSource) -> object: ...

    def statuses(self) -> list[WorkerStatus]: ...
