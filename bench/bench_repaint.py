"""Issue 15 benchmark: Vary (Region), Zoom Out and the hires fix through Easel, against plain
diffusers doing the same work; prints figures and ratios (no pass/fail).

    python bench/bench_repaint.py                   # demo model, 64x64, 4 steps, CPU
    python bench/bench_repaint.py --size 256 --steps 8 --runs 5

Paths, each timed over ``--runs`` jobs (median):
  (a) plain diffusers' StableDiffusionInpaintPipeline on the demo folder (a second pipeline
      object, loaded once up front, as a script would), one mask, one image;
  (b) Easel's inpaint: ``Service.inpaint`` -> store -> queue -> worker -> PNG -> store, timed
      from the call to ``JobFinished`` (the inpaint pipeline is built from the resident one);
  (c) Easel's Zoom Out 2x of the same picture (twice the sides: four times the pixels);
  (d) a text-to-image job, and the same with ``--hires 2`` (first pass + upscale + second pass).
Memory: how much the process grows when the first inpaint builds its pipeline (from the
resident model's components: no second copy of the weights).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image

from bot.app import App
from bot.config import parse_config
from generation.backend.demo_model import ensure_demo_model
from generation.events import JobFinished
from generation.requests import (
    DrawRequest,
    HiresRequest,
    InpaintRequest,
    Origin,
    Visibility,
)

ORIGIN = Origin("cli", "bench", "bench", is_admin=True, sees=Visibility.ALL)


async def finished(app: App, job_id: str) -> Any:
    subscription = app.bus.subscribe(job_id)
    try:
        job = await app.store.get_job(job_id)
        if job is not None and job.is_terminal:
            return job
        while True:
            event = await subscription.get()
            if isinstance(event, JobFinished):
                return event.job
    finally:
        subscription.close()


async def timed(app: App, submit: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    accepted = await submit()
    job = await finished(app, accepted.job.id)
    assert job.status == "succeeded", job.error
    return time.perf_counter() - start, job


def mask_png(size: int) -> bytes:
    mask = Image.new("L", (size, size), 0)
    mask.paste(255, (size // 4, size // 4, 3 * size // 4, 3 * size // 4))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return buffer.getvalue()


def plain_inpaint(folder: Path, picture: Image.Image, size: int, steps: int, runs: int) -> float:
    import diffusers
    import torch

    cls: Any = diffusers.StableDiffusionInpaintPipeline
    pipe = cls.from_pretrained(str(folder), safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    if torch.cuda.is_available():  # where Easel renders too (its generators stay on the CPU)
        pipe.to("cuda", torch.float16)
    mask = Image.open(io.BytesIO(mask_png(size)))
    times = []
    for run in range(runs):
        start = time.perf_counter()
        pipe(
            prompt="a castle at dusk",
            image=picture,
            mask_image=mask,
            width=size,
            height=size,
            num_inference_steps=steps,
            strength=0.75,
            generator=torch.Generator("cpu").manual_seed(run),
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = parse_config(
            {
                "data_dir": tmp,
                "web": {"enabled": False},
                "limits": {"burst": 10_000, "max_queued_per_user": 10_000},
            }
        )
        app = App.from_config(config)
        await app.start()
        try:
            size, steps, runs = args.size, args.steps, args.runs
            draw = DrawRequest("a castle at dusk", width=size, height=size, steps=steps)
            txt, parent = await timed(app, lambda: app.service.draw(ORIGIN, draw))
            request = InpaintRequest(mask=mask_png(size), prompt="a red door")
            # warm up: the first inpaint builds the pipeline from the resident components
            before = rss_mib()
            await timed(app, lambda: app.service.inpaint(ORIGIN, parent.id, request))
            extra = rss_mib() - before
            inpaint = [
                (await timed(app, lambda: app.service.inpaint(ORIGIN, parent.id, request)))[0]
                for _ in range(runs)
            ]
            zoom = [
                (await timed(app, lambda: app.service.zoom_out(ORIGIN, parent.id, 2)))[0]
                for _ in range(runs)
            ]
            txt2img = [
                (await timed(app, lambda: app.service.draw(ORIGIN, draw)))[0] for _ in range(runs)
            ]
            hires_draw = DrawRequest(
                "a castle at dusk",
                width=size,
                height=size,
                steps=steps,
                hires=HiresRequest(scale=2.0),
            )
            hires = [
                (await timed(app, lambda: app.service.draw(ORIGIN, hires_draw)))[0]
                for _ in range(runs)
            ]
            folder = ensure_demo_model(Path(tmp))
            picture = Image.open(app.images.path_for(parent.images[0].sha256)).convert("RGB")
            plain = plain_inpaint(folder, picture, size, steps, runs)
        finally:
            await app.stop()
    med = statistics.median
    print(
        f"demo model, {size}x{size}, {steps} steps, median of {runs} (CPU threads: "
        f"{os.cpu_count()})"
    )
    print(f"(a) plain diffusers inpaint        {plain * 1000:8.1f} ms")
    print(
        f"(b) Easel inpaint job (end to end) {med(inpaint) * 1000:8.1f} ms"
        f"   {med(inpaint) / plain:.2f}x plain"
    )
    print(
        f"(c) Easel zoom out 2x ({2 * size}x{2 * size})  {med(zoom) * 1000:8.1f} ms"
        f"   {med(zoom) / med(inpaint):.2f}x the inpaint"
    )
    print(f"(d) txt2img job                    {med(txt2img) * 1000:8.1f} ms")
    print(
        f"    txt2img --hires 2 job          {med(hires) * 1000:8.1f} ms"
        f"   {med(hires) / med(txt2img):.2f}x txt2img"
    )
    print(f"resident memory after the first inpaint (its pipeline built): {extra:+.1f} MiB")
    del txt


def rss_mib() -> float:
    """This process's resident memory (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--runs", type=int, default=5)
    asyncio.run(main(parser.parse_args()))
