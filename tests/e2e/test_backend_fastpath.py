"""The GPU fast path, checked on the CPU with the demo model: batch buckets and padding, SDPA and
VAE switches, TAESD previews, the resident-model memory budget and the config keys behind them."""

from __future__ import annotations

import io
import logging
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import diffusers
import numpy as np
import pytest
import torch
from PIL import Image

from bot.app import App
from bot.config import parse_config
from generation.backend import DiffusersBackend, ModelSource, RenderJob
from generation.backend.demo_model import DEMO_DEFAULTS
from generation.backend.fast_path import batch_bucket, fit_vae, pipeline_bytes, use_sdpa
from generation.backend.previews import TinyDecoder
from generation.errors import ConfigError, OutOfMemory
from generation.model_sources import inspect_source
from generation.spec import GenerationSpec, Mode

TOLERANCE = 1  # uint8 levels, as in test_backend.py
Seen = list[bytes | None]


def _never() -> bool:
    return False


def _ignore(step: int, total: int, preview: bytes | None) -> None:
    pass


def _max_diff(a: Image.Image, b: Image.Image) -> int:
    assert a.size == b.size
    pa = np.asarray(a.convert("RGB"), dtype=np.int16)
    pb = np.asarray(b.convert("RGB"), dtype=np.int16)
    return int(np.abs(pa - pb).max())


def _spec(**changes: Any) -> GenerationSpec:
    base = GenerationSpec(
        mode=Mode.TXT2IMG,
        prompt="a castle at dusk",
        negative_prompt="blurry",
        model="demo",
        sampler=DEMO_DEFAULTS.sampler,
        width=64,
        height=64,
        steps=2,
        cfg=DEMO_DEFAULTS.cfg,
        seed=1234,
    )
    return replace(base, **changes)


@pytest.fixture(scope="module")
def projected(demo_backend: DiffusersBackend, demo_source: ModelSource) -> bytes | None:
    """The first preview of the default job, from the latent projection."""
    return _previews(demo_backend, demo_source)[0]


def _render(backend: DiffusersBackend, model: ModelSource, **changes: Any) -> list[Image.Image]:
    return backend.render(RenderJob(_spec(**changes), model), _ignore, _never)


def _previews(backend: DiffusersBackend, model: ModelSource) -> Seen:
    seen: Seen = []
    backend.render(RenderJob(_spec(), model), lambda s, n, p: seen.append(p), _never)
    return seen


def _tiny_autoencoder(folder: Path, latent_channels: int = 4) -> Path:
    torch.manual_seed(0)
    vae = diffusers.AutoencoderTiny(
        encoder_block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        num_encoder_blocks=(1, 1, 1, 1),
        num_decoder_blocks=(1, 1, 1, 1),
        latent_channels=latent_channels,
    )
    vae.save_pretrained(str(folder))
    return folder


# ------------------------------------------------------------------ batch buckets and padding


@pytest.mark.parametrize(
    ("n", "max_batch", "bucket"),
    [(1, 16, 1), (2, 16, 2), (3, 16, 4), (5, 16, 8), (9, 16, 16), (16, 16, 16),
     (3, 3, 3), (5, 6, 6), (7, 4, 7), (1, 1, 1)],
)  # fmt: skip
def test_batch_bucket(n: int, max_batch: int, bucket: int) -> None:
    assert batch_bucket(n, max_batch) == bucket


def test_batch_bucket_refuses_an_empty_batch() -> None:
    with pytest.raises(ValueError, match="at least one"):
        batch_bucket(0, 4)


def test_padded_batches_give_the_same_images(
    demo_data_dir: Path, demo_source: ModelSource, demo_backend: DiffusersBackend
) -> None:
    padded = DiffusersBackend(
        data_dir=demo_data_dir, device="cpu", pad_batches=True, max_batch_images=8
    )
    padded.preload(demo_source)
    unet = padded._pipes.get(("demo", demo_source.revision)).pipe.unet  # type: ignore[union-attr]
    batch_sizes: list[int] = []
    hook = unet.register_forward_pre_hook(
        lambda module, args, kwargs: batch_sizes.append(
            int(kwargs.get("sample", args[0]).shape[0])
        ),
        with_kwargs=True,
    )
    ours = _render(padded, demo_source, count=3, seed=99)
    hook.remove()
    theirs = _render(demo_backend, demo_source, count=3, seed=99)
    assert len(ours) == 3  # the throwaway fourth image is not returned
    guidance = 2 if DEMO_DEFAULTS.cfg > 1 else 1
    assert set(batch_sizes) == {4 * guidance}  # 3 images ran as a bucket of 4
    for a, b in zip(ours, theirs, strict=True):
        assert _max_diff(a, b) <= TOLERANCE
    padded.close()


def test_compile_on_cpu_is_ignored_with_a_log_line(
    demo_data_dir: Path, demo_source: ModelSource, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="generation.backend"):
        backend = DiffusersBackend(data_dir=demo_data_dir, device="cpu", compile_unet=True)
    assert "generation.compile only works on CUDA" in caplog.text
    [image] = _render(backend, demo_source)
    assert image.size == (64, 64)
    backend.close()


# ------------------------------------------------------------------ SDPA, VAE switches, sizes


def test_sdpa_replaces_plain_attention_only(demo_folder: Path) -> None:
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    pipe: Any = diffusers.StableDiffusionPipeline.from_pretrained(str(demo_folder))
    pipe.unet.set_attn_processor(AttnProcessor())
    assert use_sdpa(pipe) == len(pipe.unet.attn_processors)
    for module in (pipe.unet, pipe.vae):
        assert all(type(p) is AttnProcessor2_0 for p in module.attn_processors.values())
    assert use_sdpa(pipe) == 0  # already SDPA: nothing to do

    fit_vae(pipe.vae, images=2, width=2048, height=2048)
    assert pipe.vae.use_slicing and pipe.vae.use_tiling
    fit_vae(pipe.vae, images=1, width=512, height=512)
    assert not pipe.vae.use_slicing and not pipe.vae.use_tiling

    expected = sum(
        t.numel() * t.element_size()
        for c in pipe.components.values()
        if isinstance(c, torch.nn.Module)
        for t in [*c.parameters(), *c.buffers()]
    )
    assert pipeline_bytes(pipe) == expected > 0


# ------------------------------------------------------------------ TAESD previews


def _png_size(png: bytes | None) -> tuple[int, int]:
    assert png is not None and png.startswith(b"\x89PNG")
    with Image.open(io.BytesIO(png)) as image:
        return image.size


def test_tiny_autoencoder_decodes_previews(
    demo_data_dir: Path, demo_source: ModelSource, projected: bytes | None, tmp_path: Path
) -> None:
    folder = _tiny_autoencoder(tmp_path / "taesd-test")
    backend = DiffusersBackend(data_dir=demo_data_dir, device="cpu", preview_decoder=str(folder))
    calls: list[int] = []
    tiny = backend._tiny
    assert tiny is not None
    original = tiny.preview_png
    tiny.preview_png = lambda lat, pipe: calls.append(1) or original(lat, pipe)  # type: ignore[method-assign]
    ours = _previews(backend, demo_source)
    assert calls and _png_size(ours[0]) == (128, 128)
    assert ours[0] != projected
    backend.close()


@pytest.mark.parametrize(("name", "channels"), [("taesd-16ch", 16), ("taesdxl", 4)])
def test_tiny_autoencoder_must_fit_the_pipeline(
    demo_source: ModelSource,
    demo_backend: DiffusersBackend,
    tmp_path: Path,
    name: str,
    channels: int,
) -> None:
    """16 latent channels (an SD3/FLUX decoder) or an SDXL decoder do not fit an SD 1.x model."""
    folder = _tiny_autoencoder(tmp_path / name, latent_channels=channels)
    demo_backend.preload(demo_source)
    pipe = demo_backend._pipes.get(("demo", demo_source.revision)).pipe  # type: ignore[union-attr]
    assert TinyDecoder(str(folder), "cpu", torch.float32).fits(pipe) is False
    fitting = _tiny_autoencoder(tmp_path / "taesd")
    assert TinyDecoder(str(fitting), "cpu", torch.float32).fits(pipe) is True


def test_broken_preview_decoder_warns_once_and_jobs_still_succeed(
    demo_data_dir: Path,
    demo_source: ModelSource,
    projected: bytes | None,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = tmp_path / "not-a-taesd"
    broken.mkdir()
    (broken / "config.json").write_text("{ this is not json")
    backend = DiffusersBackend(data_dir=demo_data_dir, device="cpu", preview_decoder=str(broken))
    with caplog.at_level(logging.WARNING):
        first = _previews(backend, demo_source)
        second = _previews(backend, demo_source)
    assert first[0] is not None and first[0] == second[0] == projected
    assert caplog.text.count("could not be loaded") == 1
    backend.close()


# ------------------------------------------------------------------ resident memory budget


@pytest.fixture
def two_models(demo_folder: Path, tmp_path: Path) -> tuple[ModelSource, ModelSource]:
    sources = []
    for name in ("alpha", "beta"):
        shutil.copytree(demo_folder, tmp_path / name)
        sources.append(inspect_source(name, str(tmp_path / name)))
    assert all(s.kind == "folder" for s in sources)
    return sources[0], sources[1]


def test_memory_budget_keeps_one_pipeline_resident(
    demo_data_dir: Path,
    two_models: tuple[ModelSource, ModelSource],
    demo_backend: DiffusersBackend,
    demo_source: ModelSource,
    caplog: pytest.LogCaptureFixture,
) -> None:
    alpha, beta = two_models
    demo_backend.preload(demo_source)
    one = pipeline_bytes(demo_backend._pipes.get(("demo", demo_source.revision)).pipe)  # type: ignore[union-attr]
    budget_gb = 1.5 * one / 1024**3  # room for one demo pipeline, not two
    backend = DiffusersBackend(
        data_dir=demo_data_dir, device="cpu", resident_models=4, resident_memory_gb=budget_gb
    )
    with caplog.at_level(logging.INFO, logger="generation.backend"):
        [a] = _render(backend, alpha)
        [b] = _render(backend, beta)
        assert backend._pipes.keys() == [("beta", beta.revision)]
        [a_again] = _render(backend, alpha)
        assert backend._pipes.keys() == [("alpha", alpha.revision)]
    assert "unloaded model(s) 'alpha' to fit 'beta' in the budget" in caplog.text
    assert "over resident_memory_gb" not in caplog.text
    assert _max_diff(a, b) == 0 and _max_diff(a, a_again) == 0  # the same weights twice
    backend.close()


def test_out_of_memory_while_loading_unloads_the_others_and_retries(
    demo_data_dir: Path,
    two_models: tuple[ModelSource, ModelSource],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alpha, beta = two_models
    backend = DiffusersBackend(data_dir=demo_data_dir, device="cpu", resident_models=4)
    backend.preload(alpha)
    real_load = backend._load_and_place
    failures = [1]

    def flaky(model: ModelSource) -> Any:
        if failures:
            failures.pop()
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_load(model)

    monkeypatch.setattr(backend, "_load_and_place", flaky)
    backend.preload(beta)
    assert failures == [] and backend._pipes.keys() == [("beta", beta.revision)]

    def always(model: ModelSource) -> Any:
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(backend, "_load_and_place", always)
    with pytest.raises(OutOfMemory, match="every other model unloaded"):
        _render(backend, alpha)
    backend.close()


# ------------------------------------------------------------------ config


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"resident_memory_gb": -1}, "generation.resident_memory_gb"),
        ({"compile": "maybe"}, "generation.compile"),
        ({"preview_decoder": 5}, "generation.preview_decoder"),
    ],
)
def test_bad_fast_path_settings_name_the_key(values: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        parse_config({"generation": values})


def test_app_hands_the_settings_to_the_backend(tmp_path: Path) -> None:
    config = parse_config(
        {
            "data_dir": str(tmp_path),
            "generation": {
                "device": "cpu",
                "compile": True,
                "preview_decoder": " madebyollin/taesd ",
                "resident_memory_gb": 2.5,
                "max_batch": 2,
                "max_count": 3,
            },
        }
    )
    lazy: Any = App.from_config(config).backend
    assert not lazy.ready  # built on the worker's thread at first use, not here
    backend = lazy.get()
    assert backend._tiny.source == "madebyollin/taesd"
    assert backend._pipes.budget_bytes == int(2.5 * 1024**3)
    assert backend._max_batch_images == 6 and not backend._compile
    backend.close()
