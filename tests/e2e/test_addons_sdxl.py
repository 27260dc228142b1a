"""LoRA and an embedding on the tiny SDXL demo (both text encoders) against plain diffusers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import diffusers
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from generation.addon_files import inspect_addon
from generation.backend import DiffusersBackend
from generation.backend.demo_model import save_demo_model
from generation.family_demos_info import DEMO_SDXL_SOURCE, FAMILY_BUILTINS
from generation.model_sources import inspect_source
from generation.render import AddOnFile, RenderJob
from generation.spec import AddOn, GenerationSpec, Mode
from tests.addon_files import make_sdxl_embedding, make_sdxl_lora


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("easel-sdxl")
    return save_demo_model(
        data_dir / "models" / FAMILY_BUILTINS[DEMO_SDXL_SOURCE][0], DEMO_SDXL_SOURCE
    )


@pytest.fixture(scope="module")
def backend(folder: Path) -> Iterator[DiffusersBackend]:
    backend = DiffusersBackend(data_dir=folder.parent.parent, device="cpu")
    yield backend
    backend.close()


def _never() -> bool:
    return False


def _ignore(step: int, total: int, preview: bytes | None) -> None:
    pass


def test_sdxl_lora_and_embedding_equal_plain_diffusers(
    backend: DiffusersBackend, folder: Path, tmp_path: Path
) -> None:
    files = []
    for name, path, kind in (
        ("xl", make_sdxl_lora(tmp_path / "xl.safetensors", 4), "lora"),
        ("xlneg", make_sdxl_embedding(tmp_path / "neg.safetensors", 5), "embedding"),
    ):
        inspected = inspect_addon(name, str(path), kind)
        assert inspected.family == "sdxl"
        files.append(AddOnFile(name, kind, inspected.path, inspected.sha256))
    lora, embedding = files
    spec = GenerationSpec(
        mode=Mode.TXT2IMG,
        prompt="a castle <lora:xl:0.8>",
        negative_prompt="blurry, xlneg",
        model="sdxl",
        sampler="Euler",
        width=64,
        height=64,
        steps=4,
        cfg=5.0,
        seed=11,
        loras=(AddOn("xl", lora.sha256, 0.8),),
        embeddings=(AddOn("xlneg", embedding.sha256),),
    )
    source = inspect_source("sdxl", DEMO_SDXL_SOURCE)
    [ours] = backend.render(RenderJob(spec, source, addon_files=(lora, embedding)), _ignore, _never)

    d: Any = diffusers
    pipe = d.StableDiffusionXLPipeline.from_pretrained(str(folder))
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = d.EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.load_lora_weights(lora.path, adapter_name="xl")
    pipe.set_adapters(["xl"], [0.8])
    tensors = load_file(embedding.path)
    pipe.load_textual_inversion(
        tensors["clip_l"], token="xlneg", text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer
    )
    pipe.load_textual_inversion(
        tensors["clip_g"],
        token="xlneg",
        text_encoder=pipe.text_encoder_2,
        tokenizer=pipe.tokenizer_2,
    )
    [theirs] = pipe(
        prompt="a castle ",
        negative_prompt="blurry, xlneg",
        width=64,
        height=64,
        num_inference_steps=4,
        guidance_scale=5.0,
        generator=torch.Generator("cpu").manual_seed(11),
    ).images
    a, b = (np.asarray(x.convert("RGB"), dtype=np.int16) for x in (ours, theirs))
    assert int(np.abs(a - b).max()) <= 1
    plain_spec = replace(spec, loras=(), embeddings=(), prompt="a castle ")
    [bare] = backend.render(RenderJob(plain_spec, source), _ignore, _never)
    assert int(np.abs(a - np.asarray(bare.convert("RGB"), dtype=np.int16)).max()) > 5
