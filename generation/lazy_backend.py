"""A backend built on first use, on the thread that first uses it (the worker's).

Importing torch and diffusers takes ~10 s on a small box and building the backend imports
them. ``easel serve`` wraps its backend in :class:`LazyBackend`, so the web page, the APIs and
the bots answer at once; the worker thread builds the backend while preloading the default
model, and jobs queue meanwhile. Until then the backend says it is ``loading`` (the worker's
status, ``/sdapi/v1/progress`` and the page show it).

A build that fails (a broken CUDA install, a missing package) is retried at the next use, and
the job that needed it fails with the reason.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from PIL import Image

from generation.render import (
    Backend,
    ModelSource,
    ProgressFn,
    RenderJob,
    StopFn,
    loaded_models,
    memory_gb,
)

LOADING = "loading"


class LazyBackend:
    def __init__(self, build: Callable[[], Backend]) -> None:
        self._build = build
        self._backend: Backend | None = None
        self._lock = threading.Lock()
        self._building = False

    @property
    def ready(self) -> bool:
        return self._backend is not None

    def get(self) -> Backend:
        """The backend, built now if it is not yet (blocking: call it off the event loop)."""
        backend = self._backend
        if backend is not None:
            return backend
        with self._lock:
            if self._backend is None:
                self._building = True
                try:
                    self._backend = self._build()
                finally:
                    self._building = False
            return self._backend

    @property
    def device_name(self) -> str:
        """The device; ``loading`` while the backend is being built, "" before that."""
        if self._backend is not None:
            return self._backend.device_name
        return LOADING if self._building else ""

    def loaded_models(self) -> list[str]:
        return list(loaded_models(self._backend))

    def memory_gb(self) -> tuple[float | None, float | None]:
        return memory_gb(self._backend)

    def render(
        self, job: RenderJob, progress: ProgressFn, should_stop: StopFn
    ) -> list[Image.Image]:
        return self.get().render(job, progress, should_stop)

    def render_batch(
        self, jobs: list[RenderJob], progress: ProgressFn, should_stop: StopFn
    ) -> list[list[Image.Image]]:
        return self.get().render_batch(jobs, progress, should_stop)

    def preload(self, model: ModelSource) -> None:
        self.get().preload(model)

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
