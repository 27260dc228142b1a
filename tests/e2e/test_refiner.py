"""The SDXL refiner stage through the backend: the tiny SDXL model and its tiny refiner render
the pixels plain diffusers draws when it runs the base to ``denoising_end`` and the refiner
from ``denoising_start`` by hand (diffusers' documented "ensemble of expert denoisers"); a batch
is its single-image jobs; the refiner is told from an SDXL base by its files."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import diffusers
import numpy as np
import pytest
import torch
from PIL import Image

from generation.backend import DiffusersBackend, RenderJob
from generation.errors import EaselError
from generation.families import family_of_keys, family_of_pipeline
from generation.family_demos_info import (
    DEMO_SDXL_REFINER_SOURCE,
    DEMO_SDXL_SOURCE,
    FAMILY_BUILTINS,
)
from generation.model_sources import inspect_source, model_family
from generation.spec import GenerationSpec, Mode, Refiner

TOLERANCE = 1  # uint8 levels, i.e. 1/255


@pytest.fixture(scope="module")
def data_dir(family_data_dir: Path) -> Path:
    return family_data_dir


@pytest.fixture(scope="module")
def backend(data_dir: Path) -> Iterator[DiffusersBackend]:
    backend = DiffusersBackend(data_dir=data_dir, device="cpu", resident_models=2)
    yield backend
    backend.close()


def _never() -> bool:
    return False


def _ignore(step: int, total: int, preview: bytes | None) -> None:
    pass


def _diff(a: Image.Image, b: Image.Image) -> int:
    pa, pb = (np.asarray(x.convert("RGB"), dtype=np.int16) for x in (a, b))
    return int(np.abs(pa - pb).max())


def _spec(**changes: Any) -> GenerationSpec:
    spec = GenerationSpec(
        mode=Mode.TXT2IMG,
        prompt="a castle at dusk",
        negative_prompt="blurry",
        model="sdxl",
        sampler="Euler a",
        width=64,
        height=64,
        steps=10,
        cfg=5.0,
        seed=21,
        refiner=Refiner("refiner", 0.8),
    )
    return replace(spec, **changes)


def _job(spec: GenerationSpec) -> RenderJob:
    return RenderJob(
        spec,
        inspect_source("sdxl", DEMO_SDXL_SOURCE),
        refiner=inspect_source("refiner", DEMO_SDXL_REFINER_SOURCE),
    )


def _plain(data_dir: Path, cls: str, source: str) -> Any:
    folder = data_dir / "models" / FAMILY_BUILTINS[source][0]
    pipe = getattr(diffusers, cls).from_pretrained(str(folder))
    pipe.scheduler = diffusers.EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _by_hand(data_dir: Path, spec: GenerationSpec, seed: int) -> Image.Image:
    """The refiner stage as diffusers' docs write it, each call with its own seeded generator."""
    assert spec.refiner is not None
    base = _plain(data_dir, "StableDiffusionXLPipeline", DEMO_SDXL_SOURCE)
    refiner = _plain(data_dir, "StableDiffusionXLImg2ImgPipeline", DEMO_SDXL_REFINER_SOURCE)
    common = {
        "prompt": spec.prompt,
        "negative_prompt": spec.negative_prompt,
        "num_inference_steps": spec.steps,
        "guidance_scale": spec.cfg,
    }
    latents = base(
        **common,
        width=spec.width,
        height=spec.height,
        denoising_end=spec.refiner.switch_at,
        output_type="latent",
        generator=torch.Generator("cpu").manual_seed(seed),
    ).images
    return refiner(
        **common,
        image=latents,
        denoising_start=spec.refiner.switch_at,
        generator=torch.Generator("cpu").manual_seed(seed),
    ).images[0]


def test_refined_job_equals_plain_diffusers_base_then_refiner(
    backend: DiffusersBackend, data_dir: Path
) -> None:
    spec = _spec()
    steps: list[tuple[int, int]] = []

    def report(step: int, total: int, preview: bytes | None) -> None:
        steps.append((step, total))

    [ours] = backend.render(_job(spec), report, _never)
    assert _diff(ours, _by_hand(data_dir, spec, spec.seed)) <= TOLERANCE
    # One run of the job's steps: the base's, then the refiner's, counted on
    assert [step for step, _ in steps] == list(range(1, 11))
    assert {total for _, total in steps} == {10}
    assert set(backend.loaded_models()) == {"sdxl", "refiner"}

    [again] = backend.render(_job(spec), _ignore, _never)
    assert _diff(ours, again) == 0
    [unrefined] = backend.render(_job(replace(spec, refiner=None)), _ignore, _never)
    assert _diff(ours, unrefined) > 2 * TOLERANCE  # the refiner did the last steps
    [later] = backend.render(_job(_spec(refiner=Refiner("refiner", 0.5))), _ignore, _never)
    assert _diff(ours, later) > 2 * TOLERANCE  # the switch point matters


def test_a_refined_batch_is_its_single_image_jobs(backend: DiffusersBackend) -> None:
    spec = _spec(count=2)
    images = backend.render(_job(spec), _ignore, _never)
    for index, image in enumerate(images):
        [single] = backend.render(_job(replace(spec, count=1, seed=21 + index)), _ignore, _never)
        assert _diff(image, single) <= TOLERANCE
    # two jobs with the same settings share a pipeline call, as unrefined ones do
    jobs = [_job(_spec(seed=5)), _job(_spec(seed=6, prompt="a red barn"))]
    together = backend.render_batch(jobs, _ignore, _never)
    for job, [image] in zip(jobs, together, strict=True):
        assert _diff(image, backend.render(job, _ignore, _never)[0]) <= TOLERANCE


def test_the_refiner_is_told_from_a_base_by_its_files(data_dir: Path) -> None:
    folder = data_dir / "models" / FAMILY_BUILTINS[DEMO_SDXL_REFINER_SOURCE][0]
    assert model_family(inspect_source("r", str(folder))).name == "sdxl_refiner"
    assert model_family(inspect_source("r", DEMO_SDXL_REFINER_SOURCE)).name == "sdxl_refiner"
    assert family_of_pipeline("StableDiffusionXLImg2ImgPipeline").name == "sdxl"
    refiner = family_of_pipeline("StableDiffusionXLImg2ImgPipeline", first_encoder=False)
    assert refiner.name == "sdxl_refiner" and not refiner.draws and refiner.refines
    assert family_of_keys(["conditioner.embedders.0.model.ln_final.weight"]) is refiner
    assert family_of_keys(["conditioner.embedders.1.model.ln_final.weight"]).takes_refiner


def test_a_single_file_refiner_loads_as_one(backend: DiffusersBackend, tmp_path: Path) -> None:
    """A refiner checkpoint is read by the SDXL image-to-image pipeline; offline without
    --config the refusal names the refiner's Hub id to take the configs from."""
    from safetensors.torch import save_file

    file = tmp_path / "refiner.safetensors"
    save_file({"conditioner.embedders.0.model.ln_final.weight": torch.zeros(1)}, str(file))
    job = replace(_job(_spec()), refiner=inspect_source("file", str(file)))
    with pytest.raises(EaselError, match="Stable Diffusion XL refiner single file") as refused:
        backend.render(job, _ignore, _never)
    assert "stabilityai/stable-diffusion-xl-refiner-1.0" in str(refused.value)


def test_padded_batches_pad_the_latents_too(backend: DiffusersBackend, data_dir: Path) -> None:
    """With batch padding (a compiled UNet's buckets) three refined images are drawn as four;
    the refiner's latents are padded with the prompts, and the three are as unpadded."""
    padded = DiffusersBackend(data_dir=data_dir, device="cpu", resident_models=2, pad_batches=True)
    try:
        spec = _spec(count=3)
        for ours, plain in zip(
            padded.render(_job(spec), _ignore, _never),
            backend.render(_job(spec), _ignore, _never),
            strict=True,
        ):
            assert _diff(ours, plain) <= TOLERANCE
    finally:
        padded.close()
