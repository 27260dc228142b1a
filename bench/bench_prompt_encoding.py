"""What A1111 prompt encoding costs: the pipeline's own ``encode_prompt`` (the "plain" path)
against ``prompt_encoding.prompt_kwargs`` for a short prompt, a weighted one and a 200-token one
(3 chunks; its negative padded to 3), with a full-size random-weight CLIP ViT-L/14 text encoder
(SD 1.x's shape: 12 layers, 768 wide) on the demo tokenizer. Median of ``--runs``:

    .venv/bin/python bench/bench_prompt_encoding.py              # CPU, one thread
    .venv/bin/python bench/bench_prompt_encoding.py --device cuda

The cost is one text-encoder call per distinct chunk (the empty padding chunk is encoded once),
so a prompt without syntax that fits in 75 tokens costs what the plain path does.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import transformers  # noqa: E402

from generation.backend.demo_model import build_demo_pipeline  # noqa: E402
from generation.backend.prompt_encoding import prompt_kwargs  # noqa: E402
from generation.demo_info import WORDS  # noqa: E402

_t: Any = transformers


def _median_ms(fn: Callable[[], object], runs: int, device: str) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipe: Any = build_demo_pipeline()
    tok = pipe.tokenizer
    config = _t.CLIPTextConfig(
        vocab_size=len(tok),
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        max_position_embeddings=77,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    pipe.text_encoder = _t.CLIPTextModel(config).eval()
    pipe.to(args.device)
    one_token = [w for w in WORDS if len(tok(w, add_special_tokens=False)["input_ids"]) == 1]
    long = " ".join((one_token * 10)[:200])
    short = "a castle at dusk, best quality"
    weighted = "a (castle:1.3) at dusk, ((best quality)), [blurry]"
    cases: list[tuple[str, Callable[[], object]]] = [
        (
            "plain encode_prompt, short",
            lambda: pipe.encode_prompt(short, args.device, 1, True, "blurry"),
        ),
        ("a1111, short (no syntax)", lambda: prompt_kwargs(pipe, [short], ["blurry"])),
        ("a1111, weighted", lambda: prompt_kwargs(pipe, [weighted], ["blurry"])),
        ("a1111, 200 tokens (3 chunks)", lambda: prompt_kwargs(pipe, [long], ["blurry"])),
    ]
    with torch.no_grad():
        for name, fn in cases:
            print(f"{name:32s} {_median_ms(fn, args.runs, args.device):8.1f} ms")


if __name__ == "__main__":
    main()
