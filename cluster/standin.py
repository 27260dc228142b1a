"""A stand-in for the GPU: a fixed time per image, deterministic pictures.

``easel worker --stand-in 0.2`` renders every image in 0.2 s (sleeping, in steps, honouring
stops and reporting progress like the real pipeline) and draws a flat colour made from the seed,
so the broker, the store, the engine and the workers — everything but the GPU — can be measured
and faulted on one machine. It is what the cluster benchmark and fault tests use; it is never
chosen by configuration.
"""

from __future__ import annotations

import hashlib
import threading
import time

from PIL import Image

from generation.errors import JobInterrupted
from generation.render import ModelSource, ProgressFn, RenderJob, StopFn


def seed_colour(seed: int) -> tuple[int, int, int]:
    digest = hashlib.sha256(str(seed).encode()).digest()
    return digest[0], digest[1], digest[2]


class StandInBackend:
    def __init__(self, seconds_per_image: float) -> None:
        if seconds_per_image < 0:
            raise ValueError("seconds_per_image must be >= 0")
        self.seconds_per_image = seconds_per_image
        self._loaded: list[str] = []
        self._lock = threading.Lock()

    @property
    def device_name(self) -> str:
        return "stand-in"

    def loaded_models(self) -> list[str]:
        with self._lock:
            return list(self._loaded)

    def preload(self, model: ModelSource) -> None:
        self._load(model.name)

    def _load(self, name: str) -> None:
        with self._lock:
            if name not in self._loaded:
                self._loaded.append(name)

    def render(
        self, job: RenderJob, progress: ProgressFn, should_stop: StopFn
    ) -> list[Image.Image]:
        return self.render_batch([job], progress, should_stop)[0]

    def render_batch(
        self, jobs: list[RenderJob], progress: ProgressFn, should_stop: StopFn
    ) -> list[list[Image.Image]]:
        if not jobs:
            return []
        self._load(jobs[0].model.name)
        images = sum(job.spec.count for job in jobs)
        steps = max(1, jobs[0].spec.steps)
        pause = self.seconds_per_image * images / steps
        for step in range(1, steps + 1):
            if should_stop():
                raise JobInterrupted("stopped")
            time.sleep(pause)
            progress(step, steps, None)
        if should_stop():
            raise JobInterrupted("stopped")
        return [
            [
                Image.new("RGB", (job.spec.width, job.spec.height), seed_colour(seed))
                for seed in job.spec.seeds
            ]
            for job in jobs
        ]

    def close(self) -> None:
        with self._lock:
            self._loaded.clear()
