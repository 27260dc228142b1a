"""What ``/metrics`` tells Prometheus about the engine (the official ``prometheus-client``).

Each App has its own :class:`EngineMetrics` registry (no global state: two engines in one
process, as in the tests, keep separate figures). Two kinds of figures:

* read when scraped (:class:`_EngineCollector`): queue depth per model and per scope
  (``<platform>:<scope number>``), jobs rendering, workers up and busy;
* counted as they happen, from the event bus (:meth:`EngineMetrics.run`): how long jobs waited
  in the queue and took to render (histograms), finished jobs per status, and failed
  deliveries per platform (:meth:`EngineMetrics.delivery_failed`, called by the dispatcher).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client import Counter as PromCounter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from generation.events import EventBus, Follower, JobEvent, JobFinished, JobStarted
from generation.queue import JobQueue
from generation.workers import WorkerStatus

# Seconds: a demo job on a CPU takes 0.1 s, an SDXL image on a small GPU a minute; queues of
# busy communities wait many minutes.
WAIT_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
RENDER_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)


class _EngineCollector(Collector):
    def __init__(self, queue: JobQueue, workers: Callable[[], list[WorkerStatus]]) -> None:
        self.queue = queue
        self.workers = workers

    def collect(self) -> Iterator[Metric]:
        waiting = self.queue.waiting()
        by_model = Counter(item.model for item in waiting)
        by_scope = Counter(item.scope for item in waiting)
        model = GaugeMetricFamily(
            "easel_queue_depth_by_model", "Jobs waiting in the queue, per model.", labels=["model"]
        )
        for name, count in sorted(by_model.items()):
            model.add_metric([name], count)
        scope = GaugeMetricFamily(
            "easel_queue_depth_by_scope",
            "Jobs waiting in the queue, per scope (<platform>:<scope number in the store>).",
            labels=["scope"],
        )
        for name, count in sorted(by_scope.items()):
            scope.add_metric([name], count)
        yield model
        yield scope
        yield GaugeMetricFamily(
            "easel_jobs_in_flight",
            "Jobs taken from the queue and not finished (rendering, or handed to a worker).",
            value=self.queue.running_count,
        )
        statuses = self.workers()
        yield GaugeMetricFamily(
            "easel_workers_up",
            "Workers that answer (the engine's own thread, or easel worker processes).",
            value=sum(1 for s in statuses if s.state != "down"),
        )
        yield GaugeMetricFamily(
            "easel_workers_busy",
            "Workers rendering now.",
            value=sum(1 for s in statuses if s.state == "rendering"),
        )
        yield GaugeMetricFamily(
            "easel_workers_down",
            "Workers silent past the heartbeat timeout (their jobs run elsewhere).",
            value=sum(1 for s in statuses if s.state == "down"),
        )


class EngineMetrics:
    def __init__(
        self, bus: EventBus, queue: JobQueue, workers: Callable[[], list[WorkerStatus]]
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_EngineCollector(queue, workers))
        self.wait_seconds = Histogram(
            "easel_job_wait_seconds",
            "Seconds from a job's request to the start of its render.",
            buckets=WAIT_BUCKETS,
            registry=self.registry,
        )
        self.render_seconds = Histogram(
            "easel_job_render_seconds",
            "Seconds from a job's start to its result (succeeded jobs).",
            buckets=RENDER_BUCKETS,
            registry=self.registry,
        )
        self.finished = PromCounter(
            "easel_jobs_finished",
            "Jobs that ended, per status (succeeded, failed, cancelled).",
            ["status"],
            registry=self.registry,
        )
        self.deliveries_failed = PromCounter(
            "easel_deliveries_failed",
            "Failed attempts to send a result to its chat or page, per platform.",
            ["platform", "permanent"],
            registry=self.registry,
        )
        self._follower = Follower(bus, self._on_event, "easel-metrics", max_progress=1)

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """(body, content type) in the format the scraper's ``Accept`` header asks for: the
        Prometheus text format, or OpenMetrics."""
        encode, content_type = choose_encoder(accept)
        return encode(self.registry), content_type

    def delivery_failed(self, platform: str, permanent: bool) -> None:
        self.deliveries_failed.labels(platform, "yes" if permanent else "no").inc()

    def start(self) -> None:
        self._follower.start()

    async def stop(self) -> None:
        await self._follower.stop()

    def _on_event(self, event: JobEvent) -> None:
        if isinstance(event, JobStarted):
            job = event.job
            if job.started_at is not None:
                waited = (job.started_at - job.created_at).total_seconds()
                self.wait_seconds.observe(max(0.0, waited))
        elif isinstance(event, JobFinished):
            job = event.job
            self.finished.labels(str(job.status)).inc()
            if job.status == "succeeded" and job.started_at and job.finished_at:
                took = (job.finished_at - job.started_at).total_seconds()
                self.render_seconds.observe(max(0.0, took))
