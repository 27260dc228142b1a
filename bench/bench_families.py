"""Model families and the SDXL refiner: Easel's render against plain diffusers doing the same.

    .venv/bin/python bench/bench_families.py                   # tiny demos, 64x64, 8 steps, CPU
    .venv/bin/python bench/bench_families.py --device cuda --size 256 --steps 20

For each tiny built-in family model (SDXL, SD3, Flux.1; random weights, the real architectures)
the median seconds of a text-to-image render by plain diffusers (the family's pipeline loaded
from the same folder, a CPU generator with the same seed) and by Easel's backend
(``DiffusersBackend.render``), their ratio, and the largest pixel difference (parity); then the
SDXL refiner stage: plain diffusers by hand (base to ``denoising_end``, refiner from
``denoising_start``) against Easel's refined job, and what the refiner adds to the base alone.
On tiny models the ratio shows Easel's own overhead per call; real models' time is the UNet's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import diffusers

from generation.backend import DiffusersBackend, RenderJob
from generation.backend.demo_model import save_demo_model
from generation.family_demos_info import FAMILY_BUILTINS
from generation.model_sources import inspect_source
from generation.spec import GenerationSpec, Mode, Refiner

d: Any = diffusers
# family -> (builtin source, plain pipeline class, sampler, its scheduler class, cfg)
CASES = {
    "sdxl": (
        "builtin:demo-sdxl", "StableDiffusionXLPipeline", "Euler", "EulerDiscreteScheduler", 5.0
    ),
    "sd3": ("builtin:demo-sd3", "StableDiffusion3Pipeline", "Euler", None, 5.0),
    "flux": ("builtin:demo-flux", "FluxPipeline", "Euler", None, 3.5),
}  # fmt: skip
REFINER = "builtin:demo-sdxl-refiner"


def median_seconds(call: Callable[[], Any], runs: int) -> tuple[float, Any]:
    call()  # warm-up (loads, first kernels)
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = call()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def diff(a: Any, b: Any) -> int:
    pa, pb = (np.asarray(x.convert("RGB"), dtype=np.int16) for x in (a, b))
    return int(np.abs(pa - pb).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    device = args.device
    data = Path(tempfile.mkdtemp(prefix="easel-bench-families-"))
    for source, (folder, _) in FAMILY_BUILTINS.items():
        save_demo_model(data / "models" / folder, source)
    backend = DiffusersBackend(data_dir=data, device=device, dtype="float32", resident_models=4)
    print(f"device {device}, {args.size}x{args.size}, {args.steps} steps, median of {args.runs}")
    print(f"{'':18} {'plain s':>9} {'Easel s':>9} {'ratio':>7} {'max diff':>9}")

    def spec(family: str, **changes: Any) -> GenerationSpec:
        _, _, sampler, _, cfg = CASES[family]
        negative = "" if family == "flux" else "blurry"
        base = GenerationSpec(
            Mode.TXT2IMG, "a castle at dusk", negative, family, sampler, args.size, args.size,
            args.steps, cfg, 7,
        )  # fmt: skip
        return replace(base, **changes)

    def plain(family: str, source: str, cls: str, scheduler: str | None) -> Any:
        pipe = getattr(d, cls).from_pretrained(str(data / "models" / FAMILY_BUILTINS[source][0]))
        if scheduler is not None:
            pipe.scheduler = getattr(d, scheduler).from_config(pipe.scheduler.config)
        pipe.set_progress_bar_config(disable=True)
        return pipe.to(device)

    def kwargs(job: GenerationSpec) -> dict[str, Any]:
        out: dict[str, Any] = {
            "prompt": job.prompt,
            "num_inference_steps": job.steps,
            "guidance_scale": job.cfg,
            "generator": torch.Generator("cpu").manual_seed(job.seed),
        }
        if job.negative_prompt:
            out["negative_prompt"] = job.negative_prompt
        return out

    def no_progress(*_: Any) -> None:
        pass

    def never() -> bool:
        return False

    def compare(family: str, job: RenderJob, pipe: Any) -> None:
        size = {"width": args.size, "height": args.size}
        theirs_s, theirs = median_seconds(
            lambda: pipe(**size, **kwargs(job.spec)).images[0], args.runs
        )
        ours_s, ours = median_seconds(lambda: backend.render(job, no_progress, never)[0], args.runs)
        print(
            f"{family:18} {theirs_s:9.4f} {ours_s:9.4f} {ours_s / theirs_s:6.2f}x "
            f"{diff(ours, theirs):9d}"
        )

    for family, (source, cls, _, scheduler, _) in CASES.items():
        job = RenderJob(spec(family), inspect_source(family, source))
        compare(family, job, plain(family, source, cls, scheduler))

    base_pipe = plain("sdxl", CASES["sdxl"][0], CASES["sdxl"][1], CASES["sdxl"][3])
    refiner_pipe = plain("sdxl", REFINER, "StableDiffusionXLImg2ImgPipeline", CASES["sdxl"][3])
    refined = spec("sdxl", refiner=Refiner("refiner", 0.8))

    def by_hand() -> Any:
        latents = base_pipe(
            width=args.size, height=args.size, denoising_end=0.8, output_type="latent",
            **kwargs(refined),
        ).images  # fmt: skip
        return refiner_pipe(image=latents, denoising_start=0.8, **kwargs(refined)).images[0]

    job = RenderJob(
        refined, inspect_source("sdxl", CASES["sdxl"][0]), refiner=inspect_source("r", REFINER)
    )
    theirs_s, theirs = median_seconds(by_hand, args.runs)
    ours_s, ours = median_seconds(lambda: backend.render(job, no_progress, never)[0], args.runs)
    alone_s, _ = median_seconds(
        lambda: backend.render(replace(job, spec=spec("sdxl")), no_progress, never)[0], args.runs
    )
    print(
        f"{'sdxl + refiner':18} {theirs_s:9.4f} {ours_s:9.4f} {ours_s / theirs_s:6.2f}x "
        f"{diff(ours, theirs):9d}"
    )
    print(f"the refiner stage adds {ours_s / alone_s:.2f}x the base alone ({alone_s:.4f} s)")
    backend.close()


if __name__ == "__main__":
    main()
