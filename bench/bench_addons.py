"""LoRA and embeddings: what they cost a render, on the demo model (CPU) or a real one.

    .venv/bin/python bench/bench_addons.py            # the demo model, 10 steps, 64x64

Prints the median time of: a render without LoRA; the first render with LoRA ``a`` (the file
is loaded: ``load_lora_weights``); ``a`` again (``set_adapters`` only); the first with ``a`` and
``b``; alternating ``a`` / ``a + b`` (switching sets); no LoRA after (``disable_lora``: the
layers stay, so a tiny model pays for them); an embedding after a job without (unload and
load) and the same embedding again (kept). The LoRA and embedding are made in code
(``tests/addon_files.py``). On the tiny demo model the LoRA layers are a large share of the
work; on a real SD model they are a small one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generation.addon_files import inspect_addon
from generation.backend import DiffusersBackend
from generation.backend.demo_model import save_demo_model
from generation.model_sources import inspect_source
from generation.render import AddOnFile, RenderJob
from generation.spec import AddOn, GenerationSpec, Mode
from tests.addon_files import make_embedding, make_lora


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="easel-bench-addons-"))
    save_demo_model(folder / "models" / "demo")
    files: dict[str, AddOnFile] = {}
    for name, path, kind in (
        ("a", make_lora(folder / "a.safetensors", 1), "lora"),
        ("b", make_lora(folder / "b.safetensors", 2), "lora"),
        ("neg", make_embedding(folder / "neg.safetensors", 3), "embedding"),
    ):
        inspected = inspect_addon(name, str(path), kind)
        files[name] = AddOnFile(name, kind, inspected.path, inspected.sha256)
    backend = DiffusersBackend(data_dir=folder, device="cpu", cpu_threads=1)
    source = inspect_source("demo", "builtin:demo")

    def job(
        loras: tuple[tuple[str, float], ...] = (), embeddings: tuple[str, ...] = ()
    ) -> RenderJob:
        spec = GenerationSpec(
            mode=Mode.TXT2IMG,
            prompt="a cat",
            negative_prompt="neg" if embeddings else "",
            model="demo",
            sampler="Euler a",
            width=64,
            height=64,
            steps=args.steps,
            cfg=7.0,
            seed=1,
            loras=tuple(AddOn(n, files[n].sha256, w) for n, w in loras),
            embeddings=tuple(AddOn(n, files[n].sha256) for n in embeddings),
        )
        used = [files[n] for n, _ in loras] + [files[n] for n in embeddings]
        return RenderJob(spec, source, addon_files=tuple(used))

    def seconds(render: RenderJob) -> float:
        start = time.perf_counter()
        backend.render(render, lambda *_: None, lambda: False)
        return time.perf_counter() - start

    def median(jobs: list[RenderJob]) -> str:
        return f"{statistics.median(seconds(j) for j in jobs) * 1000:.0f} ms"

    a, ab = (("a", 0.8),), (("a", 0.8), ("b", 0.5))
    seconds(job())  # the model loads
    rows = [
        ("no LoRA", median([job()] * args.repeat)),
        ("first with LoRA a (loads it)", median([job(a)])),
        ("a again (set_adapters)", median([job(a)] * args.repeat)),
        ("first a + b (loads b)", median([job(ab)])),
        ("alternating a / a + b", median([job(ab), job(a)] * args.repeat)),
        ("no LoRA after (disabled)", median([job()] * args.repeat)),
    ]
    after_plain = []
    for _ in range(args.repeat):
        seconds(job())
        after_plain.append(seconds(job(embeddings=("neg",))))
    rows.append(
        ("embedding after a job without", f"{statistics.median(after_plain) * 1000:.0f} ms")
    )
    rows.append(("embedding again (kept)", median([job(embeddings=("neg",))] * args.repeat)))
    for label, value in rows:
        print(f"{label:<32} {value:>8}")
    backend.close()


if __name__ == "__main__":
    main()
