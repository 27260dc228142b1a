"""How long jobs take, learned from the jobs that finished (pure: time is a parameter).

A job's *work* is its pixel-steps: width × height × denoising steps × images. Image-to-image
(vary, upscale, uploads) runs ``int(steps × strength)`` steps, as diffusers does; a hires fix
adds its second pass's pixel-steps at the final size. Its seconds are
estimated per model as ``overhead + rate × work``:

* the fit is least squares over the model's recent jobs, each weighted by 1/seconds² (so a
  0.1 s job and a 60 s job are fitted to the same *relative* error) and fading by ``decay`` per
  newer job (about the last ``1 / (1 - decay)`` jobs count);
* the ``overhead`` (text encoding, VAE decode, PNG, database: what a tiny job still costs) is
  fitted only while the recent jobs differ enough in size to tell it from the rate; otherwise the
  last fitted overhead stays (none at first) and the rate alone follows the measured seconds;
* a model with no finished job yet uses the fit over every model's jobs; before any job finished,
  ``default_seconds`` for a job of ``REFERENCE_WORK`` (512x512, 20 steps, one image), so smaller
  jobs are estimated shorter from the start.

A job of a batch (several jobs in one pipeline call) is observed at the batch's seconds divided
by its jobs, so what batching saves shows in the rate.

Measured on the demo model on a 2-core CPU (median seconds): 64x64x4 steps 0.064, 64x64x16 0.126,
128x128x16 0.155, 256x256x16 0.254, 384x384x8 0.367: most of a tiny job is its overhead, which is
why the overhead is fitted at all.

Memory: five numbers per model, at most ``max_models`` models (least recently seen forgotten).
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence

from generation.spec import GenerationSpec

REFERENCE_WORK = 512 * 512 * 20  # pixel-steps of the job ``default_seconds`` describes
MIN_SPREAD = 0.05  # how much the recent jobs' sizes must differ to fit an overhead (see _Fit)


def denoising_steps(steps: int, strength: float | None) -> int:
    """The steps a pipeline really runs: all of them, or ``int(steps × strength)`` for
    image-to-image (diffusers' ``get_timesteps``), at least one."""
    if strength is None:
        return max(1, steps)
    return max(1, min(int(steps * strength), steps))


def job_work(spec: GenerationSpec) -> float:
    """The job's pixel-steps (see the module docstring); a hires fix adds its second pass's
    (the final size, ``int(steps × strength)`` steps), the larger part of such a job."""
    steps = denoising_steps(spec.steps, spec.strength)
    work = spec.width * spec.height * steps
    hires = spec.hires
    if hires is not None:
        second = denoising_steps(hires.steps or spec.steps, hires.strength)
        work += hires.width * hires.height * second
    return float(work * max(1, spec.count))


class _Fit:
    """Weighted least squares of seconds = overhead + rate × x, x = work / REFERENCE_WORK."""

    __slots__ = ("jobs", "overhead", "rate", "s0", "sx", "sxx", "sxy", "sy")

    def __init__(self, rate: float) -> None:
        self.s0 = self.sx = self.sy = self.sxx = self.sxy = 0.0
        self.jobs = 0
        self.overhead = 0.0
        self.rate = rate  # seconds per REFERENCE_WORK

    def add(self, x: float, seconds: float, decay: float) -> None:
        weight = 1.0 / (seconds * seconds)
        self.s0 = decay * self.s0 + weight
        self.sx = decay * self.sx + weight * x
        self.sy = decay * self.sy + weight * seconds
        self.sxx = decay * self.sxx + weight * x * x
        self.sxy = decay * self.sxy + weight * x * seconds
        self.jobs += 1
        self._solve()

    def _solve(self) -> None:
        overhead = self.overhead
        det = self.s0 * self.sxx - self.sx * self.sx
        # det / (s0 × sxx) is the sizes' weighted variance over their second moment: 0 when
        # every recent job had the same size (then the overhead cannot be told from the rate).
        if self.jobs >= 2 and det > MIN_SPREAD * self.s0 * self.sxx:
            fitted = (self.sxx * self.sy - self.sx * self.sxy) / det
            # Never more than most of a typical small job, never negative.
            overhead = min(max(fitted, 0.0), 0.9 * self.sy / self.s0)
            self.overhead = overhead
        rate = (self.sxy - overhead * self.sx) / self.sxx
        if rate <= 0.0:  # the overhead explains everything: a rate through zero instead
            overhead, rate = 0.0, self.sxy / self.sxx
        self.overhead, self.rate = overhead, rate

    def seconds(self, x: float) -> float:
        return self.overhead + self.rate * x


class DurationModel:
    """Seconds of a job of a model, learned from finished jobs (see the module docstring).

    ``observe`` and ``estimate`` are O(1).
    """

    def __init__(
        self, default_seconds: float, *, decay: float = 0.8, max_models: int = 256
    ) -> None:
        if not (default_seconds > 0 and math.isfinite(default_seconds)):
            raise ValueError(f"default_seconds must be a positive number, got {default_seconds}")
        if not 0 < decay < 1:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.default_seconds = float(default_seconds)
        self.decay = decay
        self.max_models = max_models
        self._models: OrderedDict[str, _Fit] = OrderedDict()
        self._overall = _Fit(self.default_seconds)

    def observe(self, model: str, work: float, seconds: float) -> None:
        """A job of ``model`` with ``work`` pixel-steps took ``seconds`` (bad values ignored)."""
        if not (seconds > 0 and math.isfinite(seconds) and work > 0 and math.isfinite(work)):
            return
        x = work / REFERENCE_WORK
        fit = self._models.get(model)
        if fit is None:
            fit = self._models[model] = _Fit(self.default_seconds)
        fit.add(x, seconds, self.decay)
        self._models.move_to_end(model)
        while len(self._models) > self.max_models:
            self._models.popitem(last=False)
        self._overall.add(x, seconds, self.decay)

    def estimate(self, model: str, work: float) -> float:
        """Seconds a job of ``model`` with ``work`` pixel-steps should take."""
        fit = self._models.get(model)
        if fit is None:
            fit = self._overall
        return max(0.0, fit.seconds(max(0.0, work) / REFERENCE_WORK))

    def known(self, model: str) -> bool:
        """Whether a job of ``model`` finished (its estimate is its own, not the default)."""
        return model in self._models


def time_left(estimate: float, elapsed: float, fraction: float | None = None) -> float:
    """Seconds left of a running job estimated at ``estimate`` seconds, ``elapsed`` seconds in,
    ``fraction`` of its steps done (None: not known yet).

    The step rate so far (``elapsed`` / steps done × steps left) is blended with what the
    estimate leaves, trusting the steps more the further the job is: at the start the estimate
    speaks, near the end the measured rate does.
    """
    elapsed = max(0.0, elapsed)
    by_estimate = max(0.0, estimate - elapsed)
    if fraction is None or fraction <= 0.0:
        return by_estimate
    fraction = min(1.0, fraction)
    by_steps = elapsed * (1.0 - fraction) / fraction
    return fraction * by_steps + (1.0 - fraction) * by_estimate


def start_times(
    running_left: Sequence[float], ahead: Iterable[float], lanes: int = 1
) -> Iterator[float]:
    """When each queued job starts, seconds from now, in queue order.

    ``running_left``: seconds left of each batch being rendered; ``ahead``: the estimated seconds
    of each queued job in the order they are taken; ``lanes``: how many batches render at once
    (1 for the engine's own worker, the live workers of a cluster). Each job goes to the lane
    that is free first (a batch beyond the lanes waits for the first free one).
    """
    lanes = max(1, lanes)
    free = [0.0] * lanes
    for left in sorted((max(0.0, left) for left in running_left), reverse=True):
        heapq.heapreplace(free, free[0] + left)
    for seconds in ahead:
        start = free[0]
        yield start
        heapq.heapreplace(free, start + max(0.0, seconds))
