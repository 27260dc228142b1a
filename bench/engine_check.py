"""Engine check on whatever device is present (CUDA, MPS or CPU): prints figures, asserts nothing.

    python bench/engine_check.py [--size 64] [--steps 4] [--runs 5]

Runs the demo model through the full Easel path (service -> store -> queue -> worker -> PNG)
on a temporary data dir and reports:
  * the device and dtype the backend chose,
  * seconds per job (median of --runs after a warm-up),
  * batch parity: image i of a count-N job vs the single-image job with seed s+i (max abs diff
    in 0-255 pixel levels; the engine promises <= 1 on CPU and <= 2 on GPUs),
  * rerun parity: the same job run twice (expected 0).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from PIL import Image

from bot.app import App
from bot.config import parse_config
from generation.events import JobFinished
from generation.requests import DrawRequest, Origin
from storage.records import JobRecord

ORIGIN = Origin(platform="cli", scope_id="bench", user_id="bench")


async def run_job(app: App, request: DrawRequest) -> JobRecord:
    subscription = app.bus.subscribe()
    try:
        accepted = await app.service.draw(ORIGIN, request)
        while True:
            event = await subscription.get()
            if isinstance(event, JobFinished) and event.job.id == accepted.job.id:
                return event.job
    finally:
        subscription.close()


def pixels(app: App, job: JobRecord, index: int) -> np.ndarray:
    data = app.images.read(job.images[index].sha256)
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


async def main(size: int, steps: int, runs: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        config = parse_config(
            {"data_dir": tmp, "limits": {"burst": 1000, "max_queued_per_user": 1000}}
        )
        app = App.from_config(config)
        await app.start()
        try:

            def request(seed: int, count: int = 1) -> DrawRequest:
                return DrawRequest(
                    "a castle at dusk",
                    width=size,
                    height=size,
                    steps=steps,
                    seed=seed,
                    count=count,
                )

            await run_job(app, request(1))  # warm-up: loads the model
            times = []
            for run in range(runs):
                started = time.perf_counter()
                job = await run_job(app, request(100 + run))
                times.append(time.perf_counter() - started)
                assert job.status == "succeeded", job.error
            batch = await run_job(app, request(42, count=4))
            singles = [await run_job(app, request(42 + i)) for i in range(4)]
            batch_diff = max(
                int(np.abs(pixels(app, batch, i) - pixels(app, single, 0)).max())
                for i, single in enumerate(singles)
            )
            again = await run_job(app, request(42, count=4))
            rerun_diff = max(
                int(np.abs(pixels(app, batch, i) - pixels(app, again, i)).max()) for i in range(4)
            )
            backend = app.backend
            return {
                "device": getattr(backend, "device_name", "?"),
                "dtype": str(getattr(backend, "_dtype", "?")),
                "size": size,
                "steps": steps,
                "seconds_per_job_median": round(statistics.median(times), 4),
                "seconds_per_job_min": round(min(times), 4),
                "batch_vs_single_max_diff": batch_diff,
                "rerun_max_diff": rerun_diff,
            }
        finally:
            await app.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.size, args.steps, args.runs)), indent=2))
