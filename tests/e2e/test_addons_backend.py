"""LoRA on the pipelines made from the resident one (image-to-image, the hires fix) and the
backend's own refusals, against plain diffusers on the demo model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import diffusers
import numpy as np
import pytest
import torch
from PIL import Image

from generation.addon_files import inspect_addon
from generation.backend import DiffusersBackend
from generation.demo_info import DEMO_DEFAULTS
from generation.errors import GenerationFailed
from generation.render import AddOnFile, ModelSource, RenderJob
from generation.samplers import scheduler_for
from generation.spec import AddOn, GenerationSpec, Hires, Mode
from tests.addon_files import make_lora, make_sd1_lora

SAMPLER = "Euler a"


def _never() -> bool:
    return False


def _ignore(step: int, total: int, preview: bytes | None) -> None:
    pass


def _pixels(image: Image.Image) -> np.ndarray[Any, np.dtype[np.int16]]:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="module")
def pixel(tmp_path_factory: pytest.TempPathFactory) -> AddOnFile:
    path = make_lora(tmp_path_factory.mktemp("lora") / "pixel.safetensors", 1)
    inspected = inspect_addon("pixel", str(path), "lora")
    return AddOnFile("pixel", "lora", inspected.path, inspected.sha256)


def _spec(pixel: AddOnFile, **changes: Any) -> GenerationSpec:
    base = GenerationSpec(
        mode=Mode.TXT2IMG,
        prompt="a red house <lora:pixel:0.8>",
        negative_prompt="blurry",
        model="demo",
        sampler=SAMPLER,
        width=64,
        height=64,
        steps=DEMO_DEFAULTS.steps,
        cfg=7.0,
        seed=7,
        loras=(AddOn("pixel", pixel.sha256, 0.8),),
    )
    return replace(base, **changes)


def _plain(folder: Path, pixel: AddOnFile, image_to_image: bool) -> Any:
    d: Any = diffusers
    pipe = d.StableDiffusionPipeline.from_pretrained(str(folder))
    if image_to_image:
        pipe = d.AutoPipelineForImage2Image.from_pipe(pipe)
    pipe.set_progress_bar_config(disable=True)
    choice = scheduler_for(SAMPLER)
    pipe.scheduler = getattr(d, choice.class_name).from_config(
        pipe.scheduler.config, **choice.options
    )
    pipe.load_lora_weights(pixel.path, adapter_name="pixel")
    pipe.set_adapters(["pixel"], [0.8])
    return pipe


def test_image_to_image_with_a_lora_equals_plain_diffusers(
    demo_backend: DiffusersBackend, demo_source: ModelSource, demo_folder: Path, pixel: AddOnFile
) -> None:
    init = Image.new("RGB", (64, 64), (200, 40, 40))
    spec = _spec(pixel, mode=Mode.IMG2IMG, strength=0.6)
    job = RenderJob(spec, demo_source, init_image=init, addon_files=(pixel,))
    [ours] = demo_backend.render(job, _ignore, _never)
    plain = _plain(demo_folder, pixel, image_to_image=True)
    [theirs] = plain(
        prompt="a red house ",
        negative_prompt="blurry",
        image=init,
        strength=0.6,
        num_inference_steps=spec.steps,
        guidance_scale=7.0,
        generator=torch.Generator("cpu").manual_seed(7),
    ).images
    assert int(np.abs(_pixels(ours) - _pixels(theirs)).max()) <= 1
    without = replace(spec, loras=(), prompt="a red house ")
    [bare] = demo_backend.render(RenderJob(without, demo_source, init_image=init), _ignore, _never)
    assert int(np.abs(_pixels(ours) - _pixels(bare)).max()) > 5


def test_hires_fix_uses_the_lora_in_both_passes(
    demo_backend: DiffusersBackend, demo_source: ModelSource, pixel: AddOnFile
) -> None:
    hires = Hires(width=96, height=96, upscaler="Lanczos", strength=0.5, steps=2, scale=1.5)
    spec = _spec(pixel, hires=hires)
    [ours] = demo_backend.render(
        RenderJob(spec, demo_source, addon_files=(pixel,)), _ignore, _never
    )
    [again] = demo_backend.render(
        RenderJob(spec, demo_source, addon_files=(pixel,)), _ignore, _never
    )
    bare = replace(spec, loras=(), prompt="a red house ")
    [plain] = demo_backend.render(RenderJob(bare, demo_source), _ignore, _never)
    assert ours.size == (96, 96)
    assert int(np.abs(_pixels(ours) - _pixels(again)).max()) == 0
    assert int(np.abs(_pixels(ours) - _pixels(plain)).max()) > 5


def test_a_job_without_its_file_or_with_another_file_fails(
    demo_backend: DiffusersBackend, demo_source: ModelSource, pixel: AddOnFile
) -> None:
    with pytest.raises(GenerationFailed, match="not given the file of lora 'pixel'"):
        demo_backend.render(RenderJob(_spec(pixel), demo_source), _ignore, _never)
    other = replace(pixel, sha256="0" * 64)
    with pytest.raises(GenerationFailed, match="not the one the job used"):
        demo_backend.render(
            RenderJob(_spec(pixel), demo_source, addon_files=(other,)), _ignore, _never
        )


def test_a_lora_that_fails_to_load_leaves_the_pipeline_clean(
    demo_backend: DiffusersBackend, demo_source: ModelSource, pixel: AddOnFile, tmp_path: Path
) -> None:
    wrong_path = make_sd1_lora(tmp_path / "wrong.safetensors")  # 768-wide: not the demo's
    wrong = AddOnFile(
        "wrong", "lora", str(wrong_path), inspect_addon("w", str(wrong_path), "lora").sha256
    )
    plain_spec = replace(_spec(pixel), loras=(), prompt="a red house ")
    [before] = demo_backend.render(RenderJob(plain_spec, demo_source), _ignore, _never)
    bad = replace(_spec(pixel), loras=(AddOn("wrong", wrong.sha256, 1.0),), prompt="x <lora:wrong>")
    with pytest.raises(GenerationFailed):
        demo_backend.render(RenderJob(bad, demo_source, addon_files=(wrong,)), _ignore, _never)
    [after] = demo_backend.render(RenderJob(plain_spec, demo_source), _ignore, _never)
    assert int(np.abs(_pixels(before) - _pixels(after)).max()) == 0
    with pytest.raises(GenerationFailed):  # the same name again: still refused, not "in use"
        demo_backend.render(RenderJob(bad, demo_source, addon_files=(wrong,)), _ignore, _never)
    [good] = demo_backend.render(
        RenderJob(_spec(pixel), demo_source, addon_files=(pixel,)), _ignore, _never
    )
    assert int(np.abs(_pixels(good) - _pixels(before)).max()) > 5
