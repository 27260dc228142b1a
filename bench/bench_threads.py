"""Where the CPU goes in path (b), thread by thread: plain diffusers loop vs Easel's full path.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_threads.py [--n 96] [--rounds 2]

Runs the same N images (demo model, 64x64, 4 steps, as ``bench/benchmark.py``) through (a) the
plain loop and (b) Easel with one user and max_batch 1, and prints wall time per image and the
CPU time per image of every thread (from /proc/self/task/*/stat, Linux only): the worker thread
and torch's OpenMP thread ("native") render; the event loop ("MainThread"), the database
writer ("easel-db-writer") and the recorder ("easel-record", PNG encode + fsync) are
Easel's bookkeeping. On a 2-core box every millisecond of the latter comes out of the former.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import benchmark as bench  # noqa: E402
from bench_scale import big_limits  # noqa: E402

from bot.app import App  # noqa: E402
from bot.config import parse_config  # noqa: E402
from generation.requests import DrawRequest, Origin  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_by_thread() -> dict[str, float]:
    """CPU seconds (user + system) of each thread of this process, summed by thread name."""
    names = {t.native_id: t.name.split("_")[0] for t in threading.enumerate()}
    seconds: dict[str, float] = defaultdict(float)
    for tid in os.listdir("/proc/self/task"):
        try:
            stat = Path(f"/proc/self/task/{tid}/stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        seconds[names.get(int(tid), "native")] += (int(fields[11]) + int(fields[12])) / TICKS
    return seconds


def per_image_ms(before: dict[str, float], after: dict[str, float], n: int) -> str:
    spent = {name: (after[name] - before.get(name, 0.0)) * 1000 / n for name in after}
    shown = sorted(((ms, name) for name, ms in spent.items() if ms >= 0.05), reverse=True)
    return ", ".join(f"{name} {ms:.2f}" for ms, name in shown)


async def main(n: int, rounds: int) -> None:
    import torch

    profile = bench.PROFILES["cpu"]
    profile.n = n
    with tempfile.TemporaryDirectory(prefix="easel-threads-") as tmp:
        config = parse_config(big_limits(str(Path(tmp) / "data"), max_batch=8, device="cpu"))
        app = App.from_config(config)
        await app.start()
        try:
            from generation.backend.demo_model import ensure_demo_model

            folder = await bench.on_worker_thread(app, ensure_demo_model, config.data_dir)
            plain = await bench.on_worker_thread(
                app, bench.PlainLoop, folder, profile, "cpu", torch.float32
            )
            recorder = bench.Recorder(app)
            warm = await app.service.draw(
                Origin("cli", "bench", "warm"),
                DrawRequest(bench.PROMPT, steps=4, width=64, height=64, model="demo", seed=1),
            )
            await recorder.wait([warm.job.id])
            for r in range(rounds):
                before, started = cpu_by_thread(), time.perf_counter()
                await bench.on_worker_thread(app, plain.run, 5000 + 1000 * r)
                middle, halfway = cpu_by_thread(), time.perf_counter()
                await bench.easel_run(
                    app, recorder, profile, "demo", users=1, max_batch=1, seed0=1000 + 1000 * r
                )
                after, ended = cpu_by_thread(), time.perf_counter()
                print(f"round {r + 1}: CPU ms per image by thread")
                wall_a, wall_b = (halfway - started) * 1000 / n, (ended - halfway) * 1000 / n
                print(f"  (a) plain  wall {wall_a:.1f} ms: {per_image_ms(before, middle, n)}")
                print(f"  (b) Easel  wall {wall_b:.1f} ms: {per_image_ms(middle, after, n)}")
            await recorder.close()
        finally:
            await app.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=96, help="images per path and round")
    parser.add_argument("--rounds", type=int, default=2)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.n, arguments.rounds))
