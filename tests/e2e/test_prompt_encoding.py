"""A1111 prompt encoding on real diffusers pipelines (the demo SD model, a tiny SDXL), checked
against hand computations from the pipeline's own tokenizer and text encoder, and through the
backend against plain diffusers given the same embeddings."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import diffusers
import numpy as np
import pytest
import torch
from PIL import Image

from generation.backend import DiffusersBackend, ModelSource, RenderJob
from generation.backend.demo_model import DEMO_DEFAULTS, WORDS, build_demo_pipeline
from generation.backend.prompt_encoding import (
    chunk_count,
    chunks,
    encode,
    encode_prompts,
    prompt_kwargs,
)
from generation.samplers import scheduler_for
from generation.spec import GenerationSpec, Mode

_d: Any = diffusers
# The demo tokenizer's one-token words (no commas): 200 of them = 2 full chunks + 50 tokens.
_TOKENIZER = build_demo_pipeline().tokenizer
_WORDS = [
    w
    for w in WORDS
    if w != "break" and len(_TOKENIZER(w, add_special_tokens=False)["input_ids"]) == 1
]
LONG = " ".join((_WORDS * 10)[:200])


def _never() -> bool:
    return False


def _ignore(step: int, total: int, preview: bytes | None) -> None:
    pass


def _max_diff(a: Image.Image, b: Image.Image) -> int:
    pa = np.asarray(a.convert("RGB"), dtype=np.int16)
    pb = np.asarray(b.convert("RGB"), dtype=np.int16)
    return int(np.abs(pa - pb).max())


@pytest.fixture(scope="module")
def pipe() -> Any:
    p = build_demo_pipeline()
    p.set_progress_bar_config(disable=True)
    return p


def _ids(pipe: Any, text: str) -> list[int]:
    return list(pipe.tokenizer(text, add_special_tokens=False)["input_ids"])


def _hand_chunk(pipe: Any, tokens: list[int], weights: list[float] | None = None) -> torch.Tensor:
    """One chunk by hand: BOS, tokens, EOS padding to 77; last hidden state; A1111's
    "Original" emphasis (multiply, then restore the mean)."""
    tok = pipe.tokenizer
    ids = [tok.bos_token_id, *tokens, *[tok.eos_token_id] * (76 - len(tokens))]
    with torch.no_grad():
        z = pipe.text_encoder(torch.tensor([ids]))[0]
    if weights is not None:
        w = torch.tensor([1.0, *weights, *[1.0] * (76 - len(tokens))]).reshape(1, -1, 1)
        mean = z.mean()
        z = z * w.expand(z.shape)
        z = z * (mean / z.mean())
    return z


# ----------------------------------------------------------------- embeddings, by hand


def test_plain_prompt_gives_exactly_encode_prompt(pipe: Any) -> None:
    ours = prompt_kwargs(pipe, ["a castle at dusk"], ["blurry"])
    embeds, negative = pipe.encode_prompt("a castle at dusk", "cpu", 1, True, "blurry")
    assert torch.equal(ours["prompt_embeds"], embeds)
    assert torch.equal(ours["negative_prompt_embeds"], negative)


def test_weighted_prompt_equals_hand_weighted_embeds(pipe: Any) -> None:
    weighted = encode(pipe, "a (castle:1.3) at [dusk]").embeds
    plain = encode(pipe, "a castle at dusk").embeds
    a, castle, at, dusk = (_ids(pipe, w) for w in ("a ", "castle", " at ", "dusk"))
    tokens = a + castle + at + dusk
    weights = [1.0] * len(a) + [1.3] * len(castle) + [1.0] * len(at) + [1 / 1.1] * len(dusk)
    hand = _hand_chunk(pipe, tokens, weights)
    assert torch.allclose(weighted, hand, atol=1e-6, rtol=0)
    assert (weighted - plain).abs().max() > 0.01  # measurably different
    assert torch.allclose(weighted.mean(), plain.mean(), atol=1e-6)  # the mean restored


def test_200_tokens_make_3_chunks_equal_to_per_chunk_encodes(pipe: Any) -> None:
    ids = _ids(pipe, LONG)
    assert len(ids) == 200
    assert chunk_count(pipe, LONG) == 3
    ours = encode(pipe, LONG).embeds
    hand = torch.cat([_hand_chunk(pipe, ids[i : i + 75]) for i in (0, 75, 150)], dim=1)
    assert ours.shape == (1, 231, 32)
    assert torch.equal(ours, hand)


def test_a_full_chunk_moves_the_words_after_its_last_comma(pipe: Any) -> None:
    head = " ".join(_WORDS[:30])
    tail = " ".join(_WORDS[:40])  # 30 + 1 (comma) + 40 tokens = 71: the chunk fills on "tail"
    text = f"{head}, {tail} {' '.join(_WORDS[:10])}"
    parts = chunks(pipe, pipe.tokenizer, text)
    comma = pipe.tokenizer.get_vocab()[",</w>"]
    # 81 tokens; the comma is at 30, 45 from the end of the chunk > 20: no backtrack
    assert len(parts) == 2 and parts[0].tokens[76] == pipe.tokenizer.eos_token_id
    assert parts[0].tokens[1:76] == _ids(pipe, text)[:75]
    late = f"{' '.join(_WORDS[:40])} {' '.join(_WORDS[:20])}, {' '.join(_WORDS[:30])}"
    parts = chunks(pipe, pipe.tokenizer, late)  # the comma at 60: within 20 of 75
    first = parts[0].tokens
    assert first[61] == comma and first[62:] == [pipe.tokenizer.eos_token_id] * 15
    assert parts[1].tokens[1:31] == _ids(pipe, " ".join(_WORDS[:30]))


def test_break_starts_a_new_chunk(pipe: Any) -> None:
    ours = encode(pipe, "a castle BREAK at dusk").embeds
    hand = torch.cat(
        [_hand_chunk(pipe, _ids(pipe, "a castle")), _hand_chunk(pipe, _ids(pipe, "at dusk"))],
        dim=1,
    )
    assert torch.equal(ours, hand)


def test_negative_is_padded_with_empty_chunks(pipe: Any) -> None:
    calls: list[int] = []
    hook = pipe.text_encoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        kwargs = prompt_kwargs(pipe, [LONG], ["blurry"])
    finally:
        hook.remove()
    assert len(calls) == 5  # 3 chunks, "blurry", one empty chunk (encoded once, used twice)
    negative = kwargs["negative_prompt_embeds"]
    assert kwargs["prompt_embeds"].shape == negative.shape == (1, 231, 32)
    assert torch.equal(negative[:, :77], _hand_chunk(pipe, _ids(pipe, "blurry")))
    empty = _hand_chunk(pipe, [])
    assert torch.equal(negative[:, 77:154], empty) and torch.equal(negative[:, 154:], empty)


def test_plain_syntax_and_unknown_pipelines_keep_the_text(pipe: Any) -> None:
    call = {"prompt": "(a:1.3)", "negative_prompt": "x", "guidance_scale": 7.0}
    assert encode_prompts(pipe, "plain", call) is call
    assert encode_prompts(object(), "a1111", call) is call
    encoded = encode_prompts(pipe, "a1111", call)
    assert set(encoded) == {"prompt_embeds", "negative_prompt_embeds", "guidance_scale"}


# ----------------------------------------------------------------- pictures, through the backend


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
        prompt_syntax="a1111",
    )
    return replace(base, **changes)


def _render(backend: DiffusersBackend, model: ModelSource, **changes: Any) -> list[Image.Image]:
    init = changes.pop("init_image", None)
    return backend.render(RenderJob(_spec(**changes), model, init_image=init), _ignore, _never)


def _plain(pipe: Any, seed: int = 1234, **kwargs: Any) -> Image.Image:
    """Plain diffusers with the demo's settings (its default sampler is the scheduler the
    saved demo folder carries)."""
    image = pipe(
        generator=torch.Generator("cpu").manual_seed(seed),
        num_inference_steps=DEMO_DEFAULTS.steps,
        guidance_scale=DEMO_DEFAULTS.cfg,
        width=DEMO_DEFAULTS.width,
        height=DEMO_DEFAULTS.height,
        **kwargs,
    ).images[0]
    return image.convert("RGB")


@pytest.fixture(scope="module")
def saved_pipe(demo_folder: Any) -> Any:
    p = _d.StableDiffusionPipeline.from_pretrained(str(demo_folder))
    p.set_progress_bar_config(disable=True)
    choice = scheduler_for(DEMO_DEFAULTS.sampler)
    p.scheduler = getattr(_d, choice.class_name).from_config(p.scheduler.config, **choice.options)
    return p


def test_a1111_without_syntax_renders_the_plain_pixels(
    demo_backend: DiffusersBackend, demo_source: ModelSource
) -> None:
    plain = _render(demo_backend, demo_source, prompt_syntax="plain")[0]
    a1111 = _render(demo_backend, demo_source)[0]
    assert np.array_equal(np.asarray(plain), np.asarray(a1111))


def test_weighted_and_long_prompts_match_plain_diffusers_with_hand_embeds(
    demo_backend: DiffusersBackend, demo_source: ModelSource, saved_pipe: Any
) -> None:
    pipe = saved_pipe
    word = _render(demo_backend, demo_source, prompt="a castle at dusk")[0]
    weighted = _render(demo_backend, demo_source, prompt="a (castle:1.3) at dusk")[0]
    a, castle, rest = (_ids(pipe, w) for w in ("a ", "castle", " at dusk"))
    weights = [1.0] * len(a) + [1.3] * len(castle) + [1.0] * len(rest)
    hand = _plain(
        pipe,
        prompt_embeds=_hand_chunk(pipe, a + castle + rest, weights),
        negative_prompt_embeds=_hand_chunk(pipe, _ids(pipe, "blurry")),
    )
    assert _max_diff(weighted, hand) <= 1
    assert _max_diff(weighted, word) > 0  # the weight changes the picture

    long = _render(demo_backend, demo_source, prompt=LONG)[0]
    ids = _ids(pipe, LONG)
    empty = _hand_chunk(pipe, [])
    hand_long = _plain(
        pipe,
        prompt_embeds=torch.cat([_hand_chunk(pipe, ids[i : i + 75]) for i in (0, 75, 150)], 1),
        negative_prompt_embeds=torch.cat(
            [_hand_chunk(pipe, _ids(pipe, "blurry")), empty, empty], 1
        ),
    )
    assert _max_diff(long, hand_long) <= 1


def test_a_batch_of_unequal_chunk_counts_renders_as_each_alone(
    demo_backend: DiffusersBackend, demo_source: ModelSource
) -> None:
    short, long = _spec(), _spec(prompt=LONG, seed=99)
    together = demo_backend.render_batch(
        [RenderJob(short, demo_source), RenderJob(long, demo_source)], _ignore, _never
    )
    alone = [demo_backend.render(RenderJob(s, demo_source), _ignore, _never) for s in (short, long)]
    for got, want in zip(together, alone, strict=True):
        assert np.array_equal(np.asarray(got[0]), np.asarray(want[0]))


def test_image_to_image_reads_the_syntax_too(
    demo_backend: DiffusersBackend, demo_source: ModelSource
) -> None:
    init = Image.new("RGB", (DEMO_DEFAULTS.width, DEMO_DEFAULTS.height), (200, 40, 40))
    common: dict[str, Any] = {"mode": Mode.IMG2IMG, "strength": 0.8, "init_image": init}
    plain = _render(demo_backend, demo_source, prompt_syntax="plain", **common)[0]
    same = _render(demo_backend, demo_source, **common)[0]
    weighted = _render(demo_backend, demo_source, prompt="a (castle:1.5) at dusk", **common)[0]
    assert np.array_equal(np.asarray(plain), np.asarray(same))
    assert _max_diff(plain, weighted) > 0


def test_a_batch_of_weighted_prompts_renders_as_each_alone(
    demo_backend: DiffusersBackend, demo_source: ModelSource
) -> None:
    """The mean is restored per prompt, so a weighted prompt's pictures do not depend on the
    other prompts in its pipeline call (A1111 takes the mean over its batch)."""
    one, two = _spec(prompt="a (castle:1.3) at dusk"), _spec(prompt="[a castle] at dawn", seed=5)
    together = demo_backend.render_batch(
        [RenderJob(one, demo_source), RenderJob(two, demo_source)], _ignore, _never
    )
    for got, spec in zip(together, (one, two), strict=True):
        alone = demo_backend.render(RenderJob(spec, demo_source), _ignore, _never)
        assert _max_diff(got[0], alone[0]) <= 1
