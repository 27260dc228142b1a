"""The built-in demo model: a tiny, randomly initialised Stable Diffusion pipeline built in code.

It has the real SD 1.x architecture (CLIP text encoder + UNet2DConditionModel + AutoencoderKL with
latents at 1/8 of the image size), only very small, so Easel works offline, in tests and on a
laptop CPU without downloading anything. Its pictures are coloured noise, not art.

Identity: ``DEMO_REVISION`` is ``"demo-v<N>-<hash>"`` where the hash covers every architecture
setting, the tokenizer word list and the seeds below. Change any of them and the revision changes
by itself; bump ``ARCH_VERSION`` by hand only when something else changes the weights (for
instance a different initialisation routine). Once saved in a data directory the folder is reused
as it is, so reruns stay exact even if a later torch initialises layers differently.

Saved folders are ordinary diffusers folders: ``StableDiffusionPipeline.from_pretrained(folder)``
loads them with no network. ``easel-demo.json`` inside marks a complete folder and names its
revision.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, cast

import diffusers as _diffusers
import torch
import transformers as _transformers
from diffusers import StableDiffusionPipeline

from generation.demo_info import (  # noqa: F401  (re-exported)
    ARCH_VERSION,
    BUILTINS,
    DEMO_DEFAULTS,
    DEMO_INPAINT_SOURCE,
    DEMO_NAME,
    DEMO_REVISION,
    DEMO_SOURCE,
    INPAINT_UNET_CONFIG,
    MARKER_FILE,
    MERGES,
    SCHEDULER_CONFIG,
    SEED,
    TEXT_CONFIG,
    UNET_CONFIG,
    VAE_CONFIG,
    WORDS,
    DemoDefaults,
)
from generation.family_demos_info import FAMILY_BUILTINS

# diffusers/transformers are only partly typed; go through Any at this edge.
_d: Any = _diffusers
_t: Any = _transformers


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, codes, strict=True)}


def _train_merges(words: list[str], count: int) -> list[tuple[str, str]]:
    """Plain BPE training over ``words`` (CLIP style: the last symbol carries ``</w>``)."""
    table = _bytes_to_unicode()
    corpus: collections.Counter[tuple[str, ...]] = collections.Counter()
    for word in words:
        chars = [table[b] for b in word.encode()]
        chars[-1] += "</w>"
        corpus[tuple(chars)] += 1
    merges: list[tuple[str, str]] = []
    for _ in range(count):
        pairs: collections.Counter[tuple[str, str]] = collections.Counter()
        for symbols, n in corpus.items():
            for pair in itertools.pairwise(symbols):
                pairs[pair] += n
        if not pairs:
            break
        best = max(sorted(pairs), key=lambda p: pairs[p])  # ties: alphabetically first
        merges.append(best)
        merged: collections.Counter[tuple[str, ...]] = collections.Counter()
        for symbols, n in corpus.items():
            out: list[str] = []
            i = 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    out.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            merged[tuple(out)] += n
        corpus = merged
    return merges


def _tokenizer_files() -> dict[str, str]:
    """``vocab.json`` and ``merges.txt`` of the demo's byte-level BPE tokenizer."""
    chars = list(_bytes_to_unicode().values())
    merges = _train_merges(WORDS, MERGES)
    tokens = [
        *chars,
        *(c + "</w>" for c in chars),
        *("".join(m) for m in merges),
        "<|startoftext|>",
        "<|endoftext|>",
    ]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
    return {
        "vocab.json": json.dumps(vocab, ensure_ascii=False),
        "merges.txt": "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges),
    }


def _build_tokenizer() -> Any:
    with tempfile.TemporaryDirectory(prefix="easel-demo-tok-") as tmp:
        for name, text in _tokenizer_files().items():
            (Path(tmp) / name).write_text(text, encoding="utf-8")
        # from_pretrained reads vocab.json + merges.txt in both transformers 4.x and 5.x.
        return _t.CLIPTokenizer.from_pretrained(
            tmp, local_files_only=True, model_max_length=TEXT_CONFIG["max_position_embeddings"]
        )


def build_demo_pipeline() -> StableDiffusionPipeline:
    """Build the demo pipeline in memory (fp32, CPU). Same weights every time."""
    return cast(StableDiffusionPipeline, _build(_d.StableDiffusionPipeline, UNET_CONFIG))


def build_demo_inpaint_pipeline() -> Any:
    """The demo's inpainting variant (``builtin:demo-inpaint``): the demo's text encoder, VAE
    and tokenizer with a 9-channel UNet (latents + mask + masked-image latents), as a
    ``StableDiffusionInpaintPipeline`` (fp32, CPU). Same weights every time."""
    return _build(_d.StableDiffusionInpaintPipeline, INPAINT_UNET_CONFIG)


def _build(pipeline_class: Any, unet_config: dict[str, Any]) -> Any:
    tokenizer = _build_tokenizer()
    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG untouched
        torch.manual_seed(SEED)
        unet = _d.UNet2DConditionModel(**unet_config)
        torch.manual_seed(SEED + 1)
        vae = _d.AutoencoderKL(**VAE_CONFIG)
        torch.manual_seed(SEED + 2)
        text_encoder = _t.CLIPTextModel(
            _t.CLIPTextConfig(
                vocab_size=len(tokenizer),
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
                **TEXT_CONFIG,
            )
        )
    for module in (unet, vae, text_encoder):
        module.eval()
    pipe = pipeline_class(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=_d.PNDMScheduler(**SCHEDULER_CONFIG),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _is_complete(directory: Path, revision: str = DEMO_REVISION) -> bool:
    marker = directory / MARKER_FILE
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("revision") == revision


def save_demo_model(directory: Path, source: str = DEMO_SOURCE) -> Path:
    """Write the built-in model ``source`` (the demo, or its inpainting variant) to
    ``directory`` as a diffusers folder; return ``directory``.

    Idempotent (a complete folder of this revision is left alone) and atomic: the folder is written
    next to its final place and renamed into it, so a crash never leaves a half-written model. A
    folder of another revision is replaced.
    """
    directory = Path(directory)
    revision = BUILTINS[source][1]
    if _is_complete(directory, revision):
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        if source in FAMILY_BUILTINS:  # the tiny SDXL / SD3 / Flux models
            from generation.backend.family_demos import write_family_demo

            write_family_demo(source, tmp)
        else:
            pipe: Any = (
                build_demo_inpaint_pipeline()
                if source == DEMO_INPAINT_SOURCE
                else build_demo_pipeline()
            )
            pipe.save_pretrained(str(tmp), safe_serialization=True)
            # transformers 5 saves only tokenizer.json; keep the plain BPE files too, so the
            # folder also loads with a transformers 4.x install.
            for name, text in _tokenizer_files().items():
                target = tmp / "tokenizer" / name
                if not target.exists():
                    target.write_text(text, encoding="utf-8")
        (tmp / MARKER_FILE).write_text(
            json.dumps({"source": source, "revision": revision}), encoding="utf-8"
        )
        if directory.exists():
            if _is_complete(directory, revision):  # another process finished first
                return directory
            stale = directory.with_name(f".{directory.name}-stale-{os.getpid()}")
            os.replace(directory, stale)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(tmp, directory)
        except OSError:
            if not _is_complete(directory, revision):  # lost a race to a broken writer: report it
                raise
        return directory
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_demo_model(data_dir: Path, source: str = DEMO_SOURCE) -> Path:
    """Return ``data_dir/models/<name>`` of the built-in model ``source`` (``demo``, or
    ``demo-inpaint``), writing it there on first use."""
    return save_demo_model(Path(data_dir) / "models" / BUILTINS[source][0], source)
