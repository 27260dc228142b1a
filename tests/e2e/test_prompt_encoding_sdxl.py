"""A1111 prompt encoding on SDXL: both text encoders, each chunked and weighted on its own and
concatenated along the features, the pooled embedding from encoder 2's first chunk; checked
against hand computations and, through the backend, against plain diffusers.

The tiny SDXL is built here from diffusers' own tiny test configs (random weights, the demo's
tokenizer; encoder 2's tokenizer pads with "!" like SDXL's OpenCLIP one, so the pad != EOS path
runs)."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path
from typing import Any

import diffusers
import numpy as np
import pytest
import torch
import transformers
from PIL import Image

from generation.backend import DiffusersBackend, ModelSource, RenderJob
from generation.backend.demo_model import build_demo_pipeline
from generation.backend.prompt_encoding import chunk_count, prompt_kwargs
from generation.model_sources import inspect_source
from generation.samplers import scheduler_for
from generation.spec import GenerationSpec, Mode
from tests.e2e.test_prompt_encoding import LONG

_d: Any = diffusers
_t: Any = transformers
SAMPLER = "Euler"


def _tiny_sdxl() -> Any:
    base = build_demo_pipeline()
    tokenizer = base.tokenizer
    tokenizer_2 = copy.deepcopy(tokenizer)
    tokenizer_2.pad_token = "!"
    torch.manual_seed(0)
    unet = _d.UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=80,  # 6 x 8 + encoder 2's projection (32)
        cross_attention_dim=64,  # 32 + 32: both encoders
        norm_num_groups=1,
    )
    config = _t.CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=3,
        vocab_size=len(tokenizer),
        max_position_embeddings=77,
        projection_dim=32,
    )
    pipe = _d.StableDiffusionXLPipeline(
        vae=base.vae,
        text_encoder=_t.CLIPTextModel(config),
        text_encoder_2=_t.CLIPTextModelWithProjection(config),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=_d.EulerDiscreteScheduler.from_config(base.scheduler.config),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def sdxl_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sdxl") / "tiny-sdxl"
    _tiny_sdxl().save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def pipe(sdxl_folder: Path) -> Any:
    p = _d.StableDiffusionXLPipeline.from_pretrained(str(sdxl_folder))
    p.set_progress_bar_config(disable=True)
    choice = scheduler_for(SAMPLER)
    p.scheduler = getattr(_d, choice.class_name).from_config(p.scheduler.config, **choice.options)
    return p


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _hand(pipe: Any, text_parts: list[tuple[str, float]]) -> tuple[torch.Tensor, torch.Tensor]:
    """One chunk by hand on both encoders: (embeds, pooled)."""
    outs, pooled = [], None
    for tok, enc in ((pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2)):
        tokens: list[int] = []
        weights: list[float] = []
        for text, weight in text_parts:
            ids = _ids(tok, text)
            tokens += ids
            weights += [weight] * len(ids)
        ids = [tok.bos_token_id, *tokens, tok.eos_token_id]
        ids += [tok.pad_token_id] * (77 - len(ids))
        with torch.no_grad():
            out = enc(torch.tensor([ids]), output_hidden_states=True)
        z = out.hidden_states[-2]
        if any(w != 1.0 for w in weights):
            w = torch.tensor([1.0, *weights, *[1.0] * (76 - len(weights))]).reshape(1, -1, 1)
            mean = z.mean()
            z = z * w.expand(z.shape)
            z = z * (mean / z.mean())
        outs.append(z)
        pooled = out[0]
    assert pooled is not None
    return torch.cat(outs, dim=-1), pooled


def test_plain_prompt_gives_exactly_encode_prompt(pipe: Any) -> None:
    ours = prompt_kwargs(pipe, ["a castle at dusk"], ["blurry"])
    theirs = pipe.encode_prompt(
        "a castle at dusk", device="cpu", num_images_per_prompt=1, negative_prompt="blurry"
    )
    names = (
        "prompt_embeds",
        "negative_prompt_embeds",
        "pooled_prompt_embeds",
        "negative_pooled_prompt_embeds",
    )
    for name, tensor in zip(names, theirs, strict=True):
        assert torch.equal(ours[name], tensor), name


def test_weighted_long_and_break_prompts_by_hand(pipe: Any) -> None:
    ours = prompt_kwargs(pipe, ["a (castle:1.3) at dusk"], [""])
    embeds, pooled = _hand(pipe, [("a ", 1.0), ("castle", 1.3), (" at dusk", 1.0)])
    assert torch.allclose(ours["prompt_embeds"], embeds, atol=1e-6, rtol=0)
    assert torch.allclose(ours["pooled_prompt_embeds"], pooled, atol=1e-6, rtol=0)

    assert chunk_count(pipe, LONG) == 3
    long = prompt_kwargs(pipe, [LONG], ["blurry"])
    ids = _ids(pipe.tokenizer, LONG)
    chunks = [pipe.tokenizer.decode(ids[i : i + 75]) for i in (0, 75, 150)]
    hands = [_hand(pipe, [(c, 1.0)]) for c in chunks]
    assert long["prompt_embeds"].shape == (1, 231, 64)
    assert torch.allclose(
        long["prompt_embeds"], torch.cat([h[0] for h in hands], dim=1), atol=1e-6, rtol=0
    )
    assert torch.allclose(long["pooled_prompt_embeds"], hands[0][1], atol=1e-6, rtol=0)
    empty = _hand(pipe, [])[0]
    negative = long["negative_prompt_embeds"]
    assert torch.equal(negative[:, 77:154], empty) and torch.equal(negative[:, 154:], empty)

    broken = prompt_kwargs(pipe, ["a castle BREAK at dusk"], [""])["prompt_embeds"]
    hand = torch.cat([_hand(pipe, [("a castle", 1.0)])[0], _hand(pipe, [("at dusk", 1.0)])[0]], 1)
    assert torch.allclose(broken, hand, atol=1e-6, rtol=0)


def _spec(**changes: Any) -> GenerationSpec:
    base = GenerationSpec(
        mode=Mode.TXT2IMG,
        prompt="a castle at dusk",
        negative_prompt="blurry",
        model="tiny-sdxl",
        sampler=SAMPLER,
        width=64,
        height=64,
        steps=3,
        cfg=7.0,
        seed=11,
        prompt_syntax="a1111",
    )
    return replace(base, **changes)


def _never() -> bool:
    return False


def _ignore(step: int, total: int, preview: bytes | None) -> None:
    pass


def _array(image: Image.Image) -> np.ndarray[Any, Any]:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_backend_renders_sdxl_prompts_like_plain_diffusers(
    sdxl_folder: Path, pipe: Any, tmp_path: Path
) -> None:
    source: ModelSource = inspect_source("tiny-sdxl", str(sdxl_folder))
    backend = DiffusersBackend(data_dir=tmp_path, device="cpu")
    try:

        def render(**changes: Any) -> np.ndarray[Any, Any]:
            job = RenderJob(_spec(**changes), source)
            return _array(backend.render(job, _ignore, _never)[0])

        plain, a1111 = render(prompt_syntax="plain"), render()
        assert np.array_equal(plain, a1111)  # no syntax: the plain path's pixels
        weighted = render(prompt="a (castle:1.3) at dusk")
    finally:
        backend.close()
    embeds, pooled = _hand(pipe, [("a ", 1.0), ("castle", 1.3), (" at dusk", 1.0)])
    negative, negative_pooled = _hand(pipe, [("blurry", 1.0)])
    hand = pipe(
        prompt_embeds=embeds,
        pooled_prompt_embeds=pooled,
        negative_prompt_embeds=negative,
        negative_pooled_prompt_embeds=negative_pooled,
        generator=torch.Generator("cpu").manual_seed(11),
        num_inference_steps=3,
        guidance_scale=7.0,
        width=64,
        height=64,
    ).images[0]
    assert np.abs(weighted - _array(hand)).max() <= 1
    assert np.abs(weighted - plain).max() > 0
