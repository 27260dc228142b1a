"""What is rendering right now: the running jobs with their last step and preview.

The engine keeps it (it follows the event bus while the worker runs); front ends read it through
:meth:`generation.service.Service.running`, filtered by what the caller may see
(``GET /sdapi/v1/progress``, ``POST interrupt``/``skip``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from generation.events import EventBus, Follower, JobEvent, JobFinished, JobProgress, JobStarted
from generation.visibility import Viewer
from storage.records import JobRecord


@dataclass
class Running:
    job: JobRecord
    started: float  # monotonic
    step: int = 0
    total: int = 0
    preview_png: bytes | None = None


class ProgressTracker:
    def __init__(
        self, bus: EventBus, on_progress: Callable[[str, int, int], None] | None = None
    ) -> None:
        """``on_progress(job id, step, total)``: told each step (the queue's time left)."""
        self._follower = Follower(bus, self._on_event, "easel-progress", max_progress=4096)
        self._on_progress = on_progress
        self.running: dict[str, Running] = {}

    def start(self) -> None:
        self._follower.start()

    async def stop(self) -> None:
        await self._follower.stop()

    def _on_event(self, event: JobEvent) -> None:
        if isinstance(event, JobStarted):
            self.running[event.job.id] = Running(event.job, time.monotonic())
        elif isinstance(event, JobProgress):
            if self._on_progress is not None:
                self._on_progress(event.job_id, event.step, event.total)
            entry = self.running.get(event.job_id)
            if entry is not None:
                entry.step, entry.total = event.step, event.total
                if event.preview_png is not None:
                    entry.preview_png = event.preview_png
        elif isinstance(event, JobFinished):
            self.running.pop(event.job.id, None)

    def visible_to(self, viewer: Viewer) -> list[Running]:
        """The running jobs ``viewer`` may see, oldest first."""
        entries = [r for r in self.running.values() if viewer.may_see(r.job)]
        return sorted(entries, key=lambda r: r.started)
