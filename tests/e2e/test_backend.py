"""The diffusion backend end to end on the built-in demo model (real diffusers, CPU, tiny)."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path
from typing import Any

import diffusers
import numpy as np
import pytest
import torch
from PIL import Image

from generation.backend import DiffusersBackend, ModelSource, RenderJob
from generation.backend.demo_model import (
    DEMO_DEFAULTS,
    save_demo_model,
)
from generation.errors import GenerationFailed, JobInterrupted, ModelError
from generation.model_sources import inspect_source, inspect_upscaler
from generation.samplers import SAMPLERS, scheduler_for
from generation.spec import GenerationSpec, Mode

TOLERANCE = 1  # uint8 levels, i.e. 1/255


def _never() -> bool:
    return False


def _ignore(step: int, total: int, preview: bytes | None) -> None:
    pass


def _pixels(image: Image.Image) -> np.ndarray[Any, np.dtype[np.int16]]:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def _max_diff(a: Image.Image, b: Image.Image) -> int:
    assert a.size == b.size
    return int(np.abs(_pixels(a) - _pixels(b)).max())


@pytest.fixture(scope="module")
def plain_demo_pipe(demo_folder: Path) -> Any:
    pipeline_class: Any = diffusers.StableDiffusionPipeline  # the plain diffusers way
    pipe = pipeline_class.from_pretrained(str(demo_folder))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _spec(**changes: Any) -> GenerationSpec:
    base = GenerationSpec(
        mode=Mode.TXT2IMG,
        prompt="a castle at dusk",
        negative_prompt="blurry",
        model="demo",
        sampler=DEMO_DEFAULTS.sampler,
        width=DEMO_DEFAULTS.width,
        height=DEMO_DEFAULTS.height,
        steps=DEMO_DEFAULTS.steps,
        cfg=DEMO_DEFAULTS.cfg,
        seed=1234,
    )
    return replace(base, **changes)


def _render(backend: DiffusersBackend, model: ModelSource, **changes: Any) -> list[Image.Image]:
    init = changes.pop("init_image", None)
    return backend.render(RenderJob(_spec(**changes), model, init_image=init), _ignore, _never)


# ------------------------------------------------------------------ the demo model itself


def test_demo_folder_is_a_small_plain_diffusers_folder(
    demo_folder: Path, plain_demo_pipe: Any
) -> None:
    assert (demo_folder / "model_index.json").is_file()
    assert not list(demo_folder.rglob("*.bin")) and list(demo_folder.rglob("*.safetensors"))
    size = sum(p.stat().st_size for p in demo_folder.rglob("*") if p.is_file())
    assert size < 5 * 1024 * 1024
    assert plain_demo_pipe.vae_scale_factor == 8
    assert plain_demo_pipe.safety_checker is None


def test_save_demo_model_is_idempotent(demo_folder: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in demo_folder.rglob("*") if p.is_file()}
    assert save_demo_model(demo_folder) == demo_folder
    after = {p: p.stat().st_mtime_ns for p in demo_folder.rglob("*") if p.is_file()}
    assert before == after
    assert not [p for p in demo_folder.parent.iterdir() if p.name.startswith(".")]


# ------------------------------------------------------------------ exactness


@pytest.mark.parametrize("sampler", ["Euler a", "DPM++ 2M Karras", "PLMS"])
def test_single_image_equals_plain_diffusers(
    demo_backend: DiffusersBackend, demo_source: ModelSource, plain_demo_pipe: Any, sampler: str
) -> None:
    spec = _spec(sampler=sampler, width=48, height=64, seed=42)
    [ours] = demo_backend.render(RenderJob(spec, demo_source), _ignore, _never)

    choice = scheduler_for(sampler)
    plain_demo_pipe.scheduler = getattr(diffusers, choice.class_name).from_config(
        plain_demo_pipe.scheduler.config, **choice.options
    )
    theirs = plain_demo_pipe(
        prompt=spec.prompt,
        negative_prompt=spec.negative_prompt,
        num_inference_steps=spec.steps,
        guidance_scale=spec.cfg,
        height=spec.height,
        width=spec.width,
        generator=torch.Generator("cpu").manual_seed(spec.seed),
        output_type="pil",
    ).images[0]
    assert ours.size == (48, 64) and ours.mode == "RGB"
    assert _max_diff(ours, theirs) <= TOLERANCE


def test_count_images_equal_single_images_with_consecutive_seeds(
    demo_backend: DiffusersBackend, demo_source: ModelSource
) -> None:
    many = _render(demo_backend, demo_source, count=3, seed=77)
    assert len(many) == 3
    for i, image in enumerate(many):
        [single] = _render(demo_backend, demo_source, seed=77 + i)
        assert _max_diff(image, single) <= TOLERANCE
    assert _max_diff(many[0], many[1]) > 10  # different seeds, different pictures


def test_same_inputs_same_image_and_negative_prompt_matters(
    demo_backend: DiffusersBackend, demo_source: ModelSource
) -> None:
    [a] = _render(demo_backend, demo_source)
    [b] = _render(demo_backend, demo_source)
    [c] = _render(demo_backend, demo_source, negative_prompt="ugly, low quality")
    assert _max_diff(a, b) == 0
    assert _max_diff(a, c) > 0


def test_render_batch_matches_separate_renders(
    demo_backend: DiffusersBackend, demo_source: ModelSource
) -> None:
    jobs = [
        RenderJob(_spec(prompt="a red dragon", seed=5, count=2), demo_source),
        RenderJob(_spec(prompt="a blue sea", negative_prompt="", seed=9), demo_source),
    ]
    steps: list[tuple[int, int]] = []
    batched = demo_backend.render_batch(jobs, lambda s, n, p: steps.append((s, n)), _never)
    assert [len(images) for images in batched] == [2, 1]
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]  # once per step for the whole batch
    for job, images in zip(jobs, batched, strict=True):
        alone = demo_backend.render(job, _ignore, _never)
        for x, y in zip(images, alone, strict=True):
            assert _max_diff(x, y) <= TOLERANCE


def test_folder_source_renders_like_builtin(
    demo_backend: DiffusersBackend, demo_source: ModelSource, demo_folder: Path
) -> None:
    folder = inspect_source("demo-folder", str(demo_folder))
    assert folder.kind == "folder" and folder.revision and len(folder.revision) == 64
    assert inspect_source("again", str(demo_folder)).revision == folder.revision
    [a] = _render(demo_backend, demo_source)
    [b] = _render(demo_backend, folder)
    assert _max_diff(a, b) == 0


# ------------------------------------------------------------------ samplers and modes


_HAS_SCIPY = importlib.util.find_spec("scipy") is not None


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_every_sampler_renders(
    demo_backend: DiffusersBackend, demo_source: ModelSource, sampler: str
) -> None:
    if SAMPLERS[sampler].class_name == "LMSDiscreteScheduler" and not _HAS_SCIPY:
        with pytest.raises(GenerationFailed, match="needs scipy"):
            _render(demo_backend, demo_source, sampler=sampler)
        pytest.skip("LMS needs scipy, which is not installed (checked the error instead)")
    [image] = _render(demo_backend, demo_source, sampler=sampler, width=48, height=64)
    assert image.size == (48, 64) and image.mode == "RGB"
    assert _pixels(image).std() > 0


def test_img2img_right_size_and_changes_input(
    demo_backend: DiffusersBackend, demo_source: ModelSource
) -> None:
    init = Image.new("RGB", (100, 80), (200, 40, 40))
    [out] = _render(
        demo_backend, demo_source, mode=Mode.IMG2IMG, strength=0.6, init_image=init, count=1
    )
    assert out.size == (64, 64)
    assert _max_diff(out, init.resize((64, 64))) > 10
    two = _render(
        demo_backend, demo_source, mode=Mode.IMG2IMG, strength=0.6, init_image=init, count=2
    )
    assert len(two) == 2 and _max_diff(two[0], out) <= TOLERANCE


def test_img2img_tiny_strength_still_runs_a_step(
    demo_backend: DiffusersBackend, demo_source: ModelSource
) -> None:
    init = Image.new("RGB", (64, 64), (10, 120, 10))
    [out] = _render(demo_backend, demo_source, mode=Mode.IMG2IMG, strength=0.1, init_image=init)
    assert out.size == (64, 64)


def test_hires_upscale_doubles_size(
    demo_backend: DiffusersBackend, demo_source: ModelSource
) -> None:
    [small] = _render(demo_backend, demo_source)
    [big] = _render(
        demo_backend,
        demo_source,
        mode=Mode.UPSCALE,
        upscaler="hires",
        strength=0.35,
        width=128,
        height=128,
        init_image=small,
    )
    assert big.size == (128, 128)


@pytest.mark.skipif(importlib.util.find_spec("spandrel") is not None, reason="spandrel installed")
def test_esrgan_upscaler_without_spandrel_says_what_to_install(
    demo_backend: DiffusersBackend, demo_source: ModelSource, tmp_path: Path
) -> None:
    from safetensors.torch import save_file

    file = tmp_path / "4x-test.safetensors"
    save_file({"w": torch.zeros(1)}, str(file))
    upscaler = inspect_upscaler("4x", str(file))
    assert upscaler.kind == "upscaler" and upscaler.revision and len(upscaler.revision) == 64
    job = RenderJob(
        _spec(mode=Mode.UPSCALE, upscaler="4x", width=128, height=128),
        demo_source,
        init_image=Image.new("RGB", (64, 64)),
        upscaler=upscaler,
    )
    with pytest.raises(ModelError, match=r"pip install 'easel\[upscalers\]'"):
        demo_backend.render(job, _ignore, _never)


# ------------------------------------------------------------------ progress and cancel


def test_progress_reports_every_step_with_previews(
    demo_backend: DiffusersBackend, demo_source: ModelSource
) -> None:
    seen: list[tuple[int, int, bytes | None]] = []
    demo_backend.render(
        RenderJob(_spec(steps=5), demo_source), lambda s, n, p: seen.append((s, n, p)), _never
    )
    assert [(s, n) for s, n, _ in seen] == [(i, 5) for i in range(1, 6)]
    # The first step always carries a preview; later ones at most every PREVIEW_INTERVAL_S.
    preview = seen[0][2]
    assert preview is not None and preview.startswith(b"\x89PNG")


def test_previews_are_throttled_in_time(
    demo_backend: DiffusersBackend, demo_source: ModelSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    import generation.backend.renderer as backend_module

    monkeypatch.setattr(backend_module, "PREVIEW_INTERVAL_S", 3600.0)
    seen: list[bytes | None] = []
    demo_backend.render(
        RenderJob(_spec(steps=5), demo_source), lambda s, n, p: seen.append(p), _never
    )
    assert [p is not None for p in seen] == [True, False, False, False, False]


def test_previews_off(demo_data_dir: Path, demo_source: ModelSource) -> None:
    backend = DiffusersBackend(data_dir=demo_data_dir, device="cpu", previews=False)
    seen: list[bytes | None] = []
    backend.render(RenderJob(_spec(), demo_source), lambda s, n, p: seen.append(p), _never)
    assert seen == [None] * DEMO_DEFAULTS.steps
    backend.close()


def test_should_stop_interrupts_and_backend_keeps_working(
    demo_backend: DiffusersBackend, demo_source: ModelSource
) -> None:
    steps: list[int] = []
    with pytest.raises(JobInterrupted):
        demo_backend.render(
            RenderJob(_spec(), demo_source), lambda s, n, p: steps.append(s), lambda: bool(steps)
        )
    assert steps == [1]
    with pytest.raises(JobInterrupted):
        demo_backend.render(RenderJob(_spec(), demo_source), _ignore, lambda: True)
    assert len(_render(demo_backend, demo_source)) == 1


def test_pipeline_errors_become_generation_failed(
    demo_backend: DiffusersBackend, demo_source: ModelSource
) -> None:
    with pytest.raises(GenerationFailed, match="divisible by 8"):
        _render(demo_backend, demo_source, width=60)


# ------------------------------------------------------------------ device and loading


def test_device_and_dtype(demo_data_dir: Path) -> None:
    backend = DiffusersBackend(data_dir=demo_data_dir, device="cpu", dtype="float16")
    assert backend.device_name == "cpu"
    auto = DiffusersBackend(data_dir=demo_data_dir)
    assert auto.device_name in {"cpu", "cuda", "mps"}


def test_loading_uncached_hub_model_offline_is_a_model_error(
    demo_backend: DiffusersBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub = ModelSource("x", "easel-tests/surely-not-cached-model-0", "hub", None)
    with pytest.raises(ModelError, match="not in the local Hugging Face cache"):
        demo_backend.render(RenderJob(_spec(model="x"), hub), _ignore, _never)
    with pytest.raises(ModelError, match="not in the local Hugging Face cache"):
        demo_backend.preload(hub)
