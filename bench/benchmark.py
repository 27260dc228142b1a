"""Issue 6 benchmark: plain diffusers vs Easel's full path, one process; prints figures.

    python bench/benchmark.py                       # CPU profile: demo model, 64x64, 4 steps
    python bench/benchmark.py --profile gpu         # SD 1.5 architecture, random weights, 512x512
    python bench/benchmark.py --profile gpu --tiny  # the GPU code path with toy sizes (any device)
    python bench/benchmark.py --scale-only          # only the admission / history scale checks

Paths, each over the same N images (same model, size, steps, sampler "Euler a", CFG 7):
  (a) plain diffusers: ``pipe(...).images`` in a loop, one CPU generator per image, as a user
      would write it (no PNG encoding, no database).
  (b) Easel, one user: N single-image jobs submitted at once through ``Service.draw`` ->
      store -> queue -> worker (max_batch 1) -> PNG with metadata -> store; timed from the first
      submit to the last ``JobFinished``.
  (c) Easel, M users submitting concurrently, batching on (max_batch 8).
  (d) the AUTOMATIC1111 HTTP API: N ``POST /sdapi/v1/txt2img`` calls, one at a time, from one
      client (in this process), each answered with its PNG in base64.
Admission = time for ``service.draw`` to return; first progress = submit -> first JobProgress.
Results go to ``--out`` (default bench/results/) as benchmark-<profile>.json and .png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_report import draw_plot, print_table  # noqa: E402
from bench_scale import admission_with_queue, big_limits, history_among, percentile  # noqa: E402

from bot.app import App  # noqa: E402
from bot.config import parse_config  # noqa: E402
from generation.events import JobFinished, JobProgress  # noqa: E402
from generation.requests import DrawRequest, Origin  # noqa: E402

PROMPT = "a castle at dusk, oil painting"
NEGATIVE = "blurry"
SAMPLER = "Euler a"
CFG = 7.0


@dataclass
class Profile:
    name: str
    size: int
    steps: int
    n: int
    users: int
    max_batch: int
    targets: dict[str, float] = field(default_factory=dict)


PROFILES = {
    "cpu": Profile("cpu", 64, 4, 48, 8, 8, {"b_over_a": 0.95, "c_over_a": 1.2, "d_over_a": 0.95}),
    "gpu": Profile("gpu", 512, 20, 32, 8, 8, {"b_over_a": 0.98, "c_over_a": 2.5, "d_over_a": 0.98}),
}


# ---------------------------------------------------------------------------------- (a)


class PlainLoop:
    """Path (a): the loop a diffusers user would write; no PNG encoding, no database."""

    def __init__(self, folder: Path, p: Profile, device: str, dtype: Any) -> None:
        import diffusers
        import torch

        from generation.samplers import scheduler_for

        self.torch = torch
        self.p = p
        self.device = device
        choice = scheduler_for(SAMPLER)
        kwargs: dict[str, Any] = {"safety_checker": None, "requires_safety_checker": False}
        pipe = diffusers.StableDiffusionPipeline.from_pretrained(str(folder), dtype=dtype, **kwargs)
        pipe.scheduler = getattr(diffusers, choice.class_name).from_config(
            pipe.scheduler.config, **choice.options
        )
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe.to(device)
        self.one(0)  # warm-up

    def one(self, seed: int) -> Any:
        return self.pipe(
            prompt=PROMPT,
            negative_prompt=NEGATIVE,
            generator=self.torch.Generator("cpu").manual_seed(seed),
            num_inference_steps=self.p.steps,
            guidance_scale=CFG,
            width=self.p.size,
            height=self.p.size,
            output_type="pil",
        ).images[0]

    def run(self, seed0: int) -> dict[str, Any]:
        cuda = self.device == "cuda"
        if cuda:
            self.torch.cuda.synchronize()
        started = time.perf_counter()
        for i in range(self.p.n):
            self.one(seed0 + i)
        if cuda:
            self.torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        return {"seconds": seconds, "images_per_s": self.p.n / seconds}


# ---------------------------------------------------------------------------------- (b), (c)


class Recorder:
    """Reads every bus event on the loop and notes when it arrived."""

    def __init__(self, app: App) -> None:
        self.subscription = app.bus.subscribe(max_progress=10**9)
        self.first_progress: dict[str, float] = {}
        self.finished: dict[str, float] = {}
        self.failed: list[str] = []
        self.batch_sizes: list[int] = []
        self._task = asyncio.create_task(self._run())
        self._waiters: dict[str, asyncio.Future[None]] = {}

    async def _run(self) -> None:
        async for event in self.subscription:
            now = time.perf_counter()
            if isinstance(event, JobProgress):
                self.first_progress.setdefault(event.job_id, now)
            elif isinstance(event, JobFinished):
                self.finished[event.job.id] = now
                if event.job.status != "succeeded":
                    self.failed.append(f"{event.job.id}: {event.job.status} {event.job.error}")
                waiter = self._waiters.pop(event.job.id, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)

    async def wait(self, job_ids: list[str]) -> None:
        loop = asyncio.get_running_loop()
        pending = []
        for job_id in job_ids:
            if job_id not in self.finished:
                future = self._waiters[job_id] = loop.create_future()
                pending.append(future)
        if pending:
            await asyncio.gather(*pending)

    async def close(self) -> None:
        self._task.cancel()
        self.subscription.close()


async def easel_run(
    app: App, rec: Recorder, p: Profile, model: str, users: int, max_batch: int, seed0: int
) -> dict[str, Any]:
    assert app.worker is not None
    app.worker.max_batch = max_batch  # one warm App for both paths; only the batch limit differs
    origins = [Origin("cli", "bench", f"bench-user-{u}") for u in range(users)]
    per_user = [p.n // users + (1 if u < p.n % users else 0) for u in range(users)]
    submitted: dict[str, float] = {}
    admission: list[float] = []
    taken_before = _batches(app)

    async def submit(user: int, seeds: list[int]) -> None:
        for seed in seeds:
            request = DrawRequest(
                PROMPT,
                negative_prompt=NEGATIVE,
                seed=seed,
                steps=p.steps,
                cfg=CFG,
                width=p.size,
                height=p.size,
                sampler=SAMPLER,
                model=model,
                count=1,
            )
            started = time.perf_counter()
            accepted = await app.service.draw(origins[user], request)
            admission.append((time.perf_counter() - started) * 1000)
            submitted[accepted.job.id] = started

    seeds = iter(range(seed0, seed0 + p.n))
    plan = [[next(seeds) for _ in range(k)] for k in per_user]
    started = time.perf_counter()
    await asyncio.gather(*(submit(u, s) for u, s in enumerate(plan)))
    await rec.wait(list(submitted))
    seconds = max(rec.finished[j] for j in submitted) - started
    first = [(rec.first_progress[j] - submitted[j]) * 1000 for j in submitted]
    sizes = _batches(app)[len(taken_before) :]
    return {
        "seconds": seconds,
        "images_per_s": p.n / seconds,
        "users": users,
        "max_batch": max_batch,
        "admission_p50_ms": statistics.median(admission),
        "admission_p99_ms": percentile(admission, 99),
        "first_progress_p50_ms": statistics.median(first),
        "first_progress_p99_ms": percentile(first, 99),
        "batch_sizes": sizes,
        "failed": list(rec.failed),
    }


async def a1111_run(url: str, p: Profile, model: str, seed0: int) -> dict[str, Any]:
    """(d): N images through ``POST /sdapi/v1/txt2img``, one client, one call at a time, as
    an AUTOMATIC1111 client would (the reply carries the PNG in base64; the client decodes it).
    The client shares this process and its event loop with the server."""
    import base64

    import aiohttp

    seconds: list[float] = []
    started = time.perf_counter()
    async with aiohttp.ClientSession() as http:
        for seed in range(seed0, seed0 + p.n):
            body = {
                "prompt": PROMPT,
                "negative_prompt": NEGATIVE,
                "seed": seed,
                "steps": p.steps,
                "cfg_scale": CFG,
                "width": p.size,
                "height": p.size,
                "sampler_name": SAMPLER,
                "batch_size": 1,
                "override_settings": {"sd_model_checkpoint": model},
            }
            t0 = time.perf_counter()
            async with http.post(f"{url}/sdapi/v1/txt2img", json=body) as response:
                reply = await response.json()
                if response.status != 200:
                    raise SystemExit(f"/sdapi/v1/txt2img answered {response.status}: {reply}")
            base64.b64decode(reply["images"][0])
            seconds.append(time.perf_counter() - t0)
    total = time.perf_counter() - started
    return {
        "seconds": total,
        "images_per_s": p.n / total,
        "call_p50_ms": statistics.median(seconds) * 1000,
        "call_p99_ms": percentile([s * 1000 for s in seconds], 99),
    }


def _batches(app: App) -> list[int]:
    return list(getattr(app.worker, "bench_batch_sizes", []))


def _track_batches(app: App) -> None:
    """Note the size of every batch the worker takes (wraps ``JobQueue.take_batch``)."""
    worker = app.worker
    assert worker is not None
    sizes: list[int] = []
    worker.bench_batch_sizes = sizes  # type: ignore[attr-defined]
    original = app.queue.take_batch

    async def take_batch(max_size: int) -> Any:
        batch = await original(max_size)
        sizes.append(len(batch))
        return batch

    app.queue.take_batch = take_batch  # type: ignore[method-assign]


# ---------------------------------------------------------------------------------- main


async def on_worker_thread(app: App, fn: Any, *args: Any) -> Any:
    """Run ``fn`` on the Easel worker's own (idle) thread.

    Every torch call of the benchmark goes there, path (a) included: on a CPU, torch's OpenMP
    pool belongs to the thread that first runs an operator, and a second pool (say on the main
    thread) slowed the worker's renders by ~25% on a 2-core box, which would charge Easel for
    the benchmark's own set-up. The main thread (the event loop) never runs torch in Easel.
    """
    assert app.worker is not None
    executor = app.worker._executor  # benchmark-only peek at the worker's thread
    return await asyncio.get_running_loop().run_in_executor(executor, lambda: fn(*args))


async def run_paths(args: argparse.Namespace, p: Profile, tmp: Path) -> dict[str, Any]:
    import torch

    from generation.backend.demo_model import ensure_demo_model

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    dtype = torch.float16 if cuda else torch.float32
    config = parse_config(big_limits(str(tmp / "data"), max_batch=p.max_batch, device=device))
    app = App.from_config(config)
    await app.start()
    from bot.web.server import start_web

    server = await start_web(app, host="127.0.0.1", port=0)
    flops: dict[str, float] = {}
    try:
        demo_folder = await on_worker_thread(app, ensure_demo_model, config.data_dir)
        if p.name == "gpu":
            from bench_sd15 import build_random_sd15

            t0 = time.perf_counter()
            folder = await on_worker_thread(
                app,
                lambda: build_random_sd15(
                    tmp / "sd15", demo_folder, tiny=args.tiny, device=device, dtype=dtype
                ),
            )
            print(f"built the random SD 1.5-architecture folder in {time.perf_counter() - t0:.1f}s")
            admin = Origin("cli", "bench", "admin", is_admin=True)
            await app.service.add_model(admin, "sd15-random", str(folder))
            model = "sd15-random"
        else:
            folder, model = demo_folder, "demo"
        plain = await on_worker_thread(app, PlainLoop, folder, p, device, dtype)
        if p.name == "gpu":
            from bench_sd15 import count_flops

            flops = await on_worker_thread(app, count_flops, plain.pipe, p.size, p.size)
        _track_batches(app)
        rec = Recorder(app)
        rounds: dict[str, list[dict[str, Any]]] = {"a": [], "b": [], "c": [], "d": []}
        try:
            warm = await app.service.draw(
                Origin("cli", "bench", "warm"),
                DrawRequest(
                    PROMPT,
                    steps=p.steps,
                    width=p.size,
                    height=p.size,
                    model=model,
                    sampler=SAMPLER,
                    cfg=CFG,
                    seed=1,
                ),
            )
            await rec.wait([warm.job.id])  # loads the model into the worker, one render
            for r in range(args.repeat):  # interleaved, so drift in machine load hits all three
                seed0 = 1000 + 10_000 * r
                print(f"round {r + 1}/{args.repeat}: (a) plain loop, {p.n} images", flush=True)
                rounds["a"].append(await on_worker_thread(app, plain.run, seed0))
                print(f"round {r + 1}: (b) Easel, 1 user, max_batch 1", flush=True)
                rounds["b"].append(
                    await easel_run(app, rec, p, model, users=1, max_batch=1, seed0=seed0)
                )
                print(f"round {r + 1}: (c) Easel, {p.users} users, max_batch {p.max_batch}")
                rounds["c"].append(
                    await easel_run(
                        app, rec, p, model, users=p.users, max_batch=p.max_batch, seed0=seed0
                    )
                )
                print(f"round {r + 1}: (d) A1111 HTTP, one client, one call at a time")
                app.worker.max_batch = 1  # as for (b)
                rounds["d"].append(await a1111_run(server.url, p, model, seed0))
        finally:
            await rec.close()
            del plain
            if cuda:
                torch.cuda.empty_cache()
    finally:
        await server.stop()
        await app.stop()
    a, b, c, d = (median_round(rounds[k]) for k in ("a", "b", "c", "d"))
    return {"a": a, "b": b, "c": c, "d": d, "flops": flops, "device": device, "dtype": str(dtype)}


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median images/s (lower median for an even count), plus every round."""
    ordered = sorted(rounds, key=lambda r: r["images_per_s"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["rounds_images_per_s"] = [round(r["images_per_s"], 4) for r in rounds]
    return chosen


def machine() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


async def main(args: argparse.Namespace) -> dict[str, Any]:
    p = PROFILES[args.profile]
    if p.name == "gpu" and not args.tiny and not args.scale_only:
        import torch

        if not torch.cuda.is_available():
            raise SystemExit(
                "--profile gpu needs a CUDA GPU (full SD 1.5 shapes would take hours on a CPU); "
                "add --tiny to try the code path here"
            )
    if args.tiny:
        p = Profile(p.name, 64, 2, 8, 4, 4, p.targets)
        args.repeat = min(args.repeat, 2)
    for name in ("n", "users", "size", "steps"):
        if getattr(args, name) is not None:
            setattr(p, name, getattr(args, name))
    result: dict[str, Any] = {
        "profile": p.name,
        "tiny": args.tiny,
        "settings": {
            "size": p.size,
            "steps": p.steps,
            "n": p.n,
            "users": p.users,
            "max_batch_c": p.max_batch,
            "sampler": SAMPLER,
            "cfg": CFG,
        },
        "machine": machine(),
        "targets": {},
    }
    targets = result["targets"]
    if not args.scale_only:
        with tempfile.TemporaryDirectory(prefix="easel-bench-") as tmp:
            paths = await run_paths(args, p, Path(tmp))
        a, b, c, d = paths["a"], paths["b"], paths["c"], paths["d"]
        result.update(device=paths["device"], dtype=paths["dtype"], a=a, b=b, c=c, d=d)
        for path, row in (("b", b), ("c", c), ("d", d)):
            # Paired: each round's path against that round's plain loop (they ran seconds
            # apart), then the median over rounds; steadier than a ratio of two medians when
            # the load of a shared machine drifts between rounds.
            paired = [
                easel / plain
                for easel, plain in zip(
                    row["rounds_images_per_s"], a["rounds_images_per_s"], strict=True
                )
            ]
            result[f"{path}_over_a"] = statistics.median(paired)
            result[f"{path}_over_a_rounds"] = [round(x, 3) for x in paired]
        for key in ("b_over_a", "c_over_a", "d_over_a"):
            targets[key] = {
                "value": result[key],
                "target": f">= {p.targets[key]}",
                "pass": result[key] >= p.targets[key],
            }
        if paths["flops"]:
            f = paths["flops"]
            unet_image = p.steps * f["unet_forward_cfg"]
            whole_image = unet_image + f["text_encoder_cfg"] + f["vae_decode"]
            peak = args.peak_tflops * 1e12
            result["flops"] = {
                **f,
                "unet_per_image": unet_image,
                "pipeline_per_image": whole_image,
                "peak_tflops": args.peak_tflops,
            }
            for path in ("a", "b", "c"):
                ips = result[path]["images_per_s"]
                result[path]["mfu_unet_pct"] = 100 * ips * unet_image / peak
                result[path]["mfu_pipeline_pct"] = 100 * ips * whole_image / peak
    if not args.no_scale:
        print(f"scale: admission with {args.queued} jobs queued ...", flush=True)
        adm = await admission_with_queue(args.queued, 100, 200)
        print(f"scale: history among {args.history_jobs} jobs (bulk insert) ...", flush=True)
        hist = await history_among(args.history_jobs, args.history_users, 50)
        result["scale"] = {"admission": adm, "history": hist}
        targets["admission_p99_ms"] = {
            "value": adm["p99_ms"],
            "target": "< 5",
            "pass": adm["p99_ms"] < 5,
        }
        targets["history_p99_ms"] = {
            "value": hist["p99_ms"],
            "target": "< 20",
            "pass": hist["p99_ms"] < 20,
        }
        if args.history_jobs < 1_000_000:
            targets["history_p99_ms"]["note"] = f"only {args.history_jobs} jobs, not 1,000,000"
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="toy sizes (8 images, 2 steps, 64x64; toy SD 1.5 for --profile gpu)",
    )
    parser.add_argument("--n", type=int, help="images per path (cpu 48, gpu 32)")
    parser.add_argument("--users", type=int, help="concurrent users for (c) (default 8)")
    parser.add_argument("--size", type=int, help="image side in pixels (cpu 64, gpu 512)")
    parser.add_argument("--steps", type=int, help="sampling steps (cpu 4, gpu 20)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        help="interleaved rounds of (a)-(d); the median of each round's ratio is kept",
    )
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=989.0,
        help="accelerator peak for utilisation (H100/H200 dense fp16/bf16: 989)",
    )
    parser.add_argument("--queued", type=int, default=1000, help="jobs queued for admission p99")
    parser.add_argument("--history-jobs", type=int, default=1_000_000)
    parser.add_argument("--history-users", type=int, default=10_000)
    parser.add_argument("--no-scale", action="store_true", help="skip the scale checks")
    parser.add_argument("--scale-only", action="store_true", help="only the scale checks")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    outcome = asyncio.run(main(arguments))
    arguments.out.mkdir(parents=True, exist_ok=True)
    stem = arguments.out / f"benchmark-{outcome['profile']}{'-tiny' if arguments.tiny else ''}"
    lines = print_table(outcome)
    stem.with_suffix(".json").write_text(json.dumps(outcome, indent=2, default=str) + "\n")
    draw_plot(outcome, lines, stem.with_suffix(".png"))
    print(f"wrote {stem}.json and {stem}.png")
