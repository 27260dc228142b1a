"""AUTOMATIC1111's prompt encoding on a diffusers pipeline's own tokenizers and text encoders.

A prompt read with A1111's syntax (:func:`generation.prompt_syntax.parse_attention`) becomes
``prompt_embeds`` the way A1111's ``sd_hijack_clip`` makes its conditioning:

1. each fragment is tokenized without BOS/EOS (multi-vector textual-inversion tokens expanded
   first, by the pipeline's ``maybe_convert_prompt``, as its own ``encode_prompt`` does);
2. the tokens fill chunks of 75 (``model_max_length - 2``); a chunk that is full while a comma
   lies within the last 20 tokens is cut after that comma and the rest starts the next chunk
   (A1111's ``comma_padding_backtrack``, 20 by default); ``BREAK`` ends a chunk early;
3. each chunk is wrapped in BOS ... EOS and padded to 77 with EOS, and for tokenizers whose pad
   token is not EOS (SD 2.x's OpenCLIP, SDXL's second encoder) everything after the first EOS
   becomes the pad token;
4. each chunk goes through the text encoder on its own; the output (the last hidden state for
   SD 1.x/2.x, the penultimate one for SDXL's encoders, as diffusers and A1111 both take it) is
   multiplied by the per-token weights and rescaled so its mean is the unweighted mean
   (A1111's ``emphasis`` option "Original"); the chunks are concatenated along the sequence;
5. SDXL: both encoders do 1-4 and their outputs are concatenated along the features; the pooled
   embedding is encoder 2's for the first chunk (A1111's ``zs[0].pooled``);
6. the negative prompt and every prompt of one pipeline call are padded to the same number of
   chunks with the encoded empty chunk (BOS, EOS, padding), as A1111 pads a batch.

A prompt without syntax that fits in 75 tokens gives exactly the tensors the pipeline's own
``encode_prompt`` makes from the text (same token ids, same call; weights of 1.0 are skipped,
which A1111's multiply-and-rescale leaves bit-identical anyway), so its pictures are the plain
path's.

Differences from A1111, all where diffusers' shape of things leaves no choice:

* A1111 runs the prompt and negative prompt through the UNet separately when their chunk
  counts differ (unless its "Pad prompt/negative prompt" option is on); a diffusers pipeline
  concatenates them, so the shorter is padded with empty chunks (what that option does).
* Emphasis rescales each prompt's own mean; A1111 takes the mean over the batch of prompts it
  encodes together (the same for one prompt, or a batch of the same prompt).
* SDXL's empty negative prompt is encoded, not zeroed: diffusers zeroes it only for
  ``negative_prompt=None``, and the plain path (and every job before this) passes ``""``.

Which pipelines: Stable Diffusion 1.x/2.x and XL text-to-image, image-to-image and inpainting
(:func:`supports`). Others (SD3, Flux: T5 encoders, which A1111 does not weight) keep their
prompts as text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import diffusers as _diffusers
import torch

from generation.prompt_syntax import is_break, parse_attention

_d: Any = _diffusers
COMMA_BACKTRACK = 20  # A1111's comma_padding_backtrack default
_SD_CLASSES = (
    "StableDiffusionPipeline",
    "StableDiffusionImg2ImgPipeline",
    "StableDiffusionInpaintPipeline",
)
_SDXL_CLASSES = (
    "StableDiffusionXLPipeline",
    "StableDiffusionXLImg2ImgPipeline",
    "StableDiffusionXLInpaintPipeline",
)


@dataclass
class Chunk:
    """One encoder call's input: 77 token ids (BOS, 75, EOS) and a weight for each."""

    tokens: list[int]
    weights: list[float]


def _is(pipe: Any, names: Sequence[str]) -> bool:
    return any(isinstance(pipe, getattr(_d, name)) for name in names)


def supports(pipe: Any) -> bool:
    """Whether ``pipe`` takes A1111-encoded prompts: SD 1.x/2.x and SDXL pipelines."""
    return _is(pipe, _SD_CLASSES + _SDXL_CLASSES)


def _encoders(pipe: Any) -> list[tuple[Any, Any]]:
    """(tokenizer, text encoder) pairs in the order diffusers concatenates them (the SDXL
    refiner has only the second)."""
    pairs = [(pipe.tokenizer, pipe.text_encoder)]
    if _is(pipe, _SDXL_CLASSES):
        pairs.append((pipe.tokenizer_2, pipe.text_encoder_2))
    return [(tok, enc) for tok, enc in pairs if tok is not None and enc is not None]


# ----------------------------------------------------------------- tokens


def chunks(pipe: Any, tokenizer: Any, text: str) -> list[Chunk]:
    """``text`` in A1111's chunks for ``tokenizer`` (see the module docstring, 1-3)."""
    parts = parse_attention(text)
    fragments = [_convert(pipe, tokenizer, t) for t, _ in parts]
    tokenized = tokenizer(fragments, truncation=False, add_special_tokens=False)["input_ids"]
    length = int(tokenizer.model_max_length) - 2
    comma = tokenizer.get_vocab().get(",</w>")
    bos, eos = int(tokenizer.bos_token_id), int(tokenizer.eos_token_id)
    pad = eos if tokenizer.pad_token_id is None else int(tokenizer.pad_token_id)
    done: list[Chunk] = []
    current = Chunk([], [])
    last_comma = -1

    def close() -> None:
        nonlocal current, last_comma
        fill = length - len(current.tokens)
        tokens = [bos, *current.tokens, *[eos] * fill, eos]
        if pad != eos:  # after the first EOS: padding
            end = tokens.index(eos)
            tokens[end + 1 :] = [pad] * (len(tokens) - end - 1)
        done.append(Chunk(tokens, [1.0, *current.weights, *[1.0] * fill, 1.0]))
        current, last_comma = Chunk([], []), -1

    for ids, part in zip(tokenized, parts, strict=True):
        if is_break(part):
            close()
            continue
        weight = part[1]
        for token in ids:
            if token == comma:
                last_comma = len(current.tokens)
            elif (
                len(current.tokens) == length
                and last_comma != -1
                and length - last_comma <= COMMA_BACKTRACK
            ):  # full: move what follows the last comma to the next chunk
                cut = last_comma + 1
                moved = Chunk(current.tokens[cut:], current.weights[cut:])
                current = Chunk(current.tokens[:cut], current.weights[:cut])
                close()
                current = moved
            if len(current.tokens) == length:
                close()
            current.tokens.append(int(token))
            current.weights.append(weight)
    if current.tokens or not done:
        close()
    return done


def _convert(pipe: Any, tokenizer: Any, text: str) -> str:
    """Multi-vector textual-inversion tokens spelled out, as ``encode_prompt`` does."""
    convert = getattr(pipe, "maybe_convert_prompt", None)
    return str(convert(text, tokenizer)) if convert is not None and text else text


def chunk_count(pipe: Any, text: str) -> int:
    """How many 77-token chunks ``text`` takes on ``pipe`` (its first tokenizer)."""
    tokenizer = _encoders(pipe)[0][0]
    return len(chunks(pipe, tokenizer, text))


def empty_chunk(tokenizer: Any) -> Chunk:
    """A1111's padding chunk: BOS, EOS, padding (what an empty prompt encodes to)."""
    length = int(tokenizer.model_max_length)
    eos = int(tokenizer.eos_token_id)
    pad = eos if tokenizer.pad_token_id is None else int(tokenizer.pad_token_id)
    tokens = [int(tokenizer.bos_token_id), eos, *[pad] * (length - 2)]
    return Chunk(tokens, [1.0] * length)


# ----------------------------------------------------------------- tensors


@dataclass
class Encoded:
    """One prompt: ``embeds`` (1, 77 x chunks, features); ``pooled`` (1, dim) for SDXL."""

    embeds: torch.Tensor
    pooled: torch.Tensor | None

    @property
    def chunks(self) -> int:
        return int(self.embeds.shape[1]) // 77


def encode_chunk(
    encoder: Any, chunk: Chunk, device: Any, *, penultimate: bool, eos: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One chunk through ``encoder`` with A1111's "Original" emphasis; (hidden, pooled)."""
    ids = torch.tensor([chunk.tokens], dtype=torch.long, device=device)
    mask = None
    if getattr(encoder.config, "use_attention_mask", False):  # as encode_prompt: BOS ... EOS
        mask = torch.zeros_like(ids)
        mask[:, : chunk.tokens.index(eos, 1) + 1] = 1
    out = encoder(ids, attention_mask=mask, output_hidden_states=penultimate)
    hidden = out.hidden_states[-2] if penultimate else out[0]
    pooled = out[0] if penultimate and out[0].ndim == 2 else None
    hidden = hidden.to(dtype=encoder.dtype, device=device)
    if any(w != 1.0 for w in chunk.weights):
        weights = torch.tensor(chunk.weights, dtype=hidden.dtype, device=device)
        mean = hidden.mean()
        hidden = hidden * weights.reshape(1, -1, 1).expand(hidden.shape)
        hidden = hidden * (mean / hidden.mean())
    return hidden, pooled


# Encoded chunks of one pipeline call: (encoder index, tokens, weights) -> (hidden, pooled).
ChunkMemo = dict[tuple[int, tuple[int, ...], tuple[float, ...]], tuple[torch.Tensor, Any]]


def encode(pipe: Any, text: str, *, min_chunks: int = 1, memo: ChunkMemo | None = None) -> Encoded:
    """``text`` the A1111 way on ``pipe``, padded to ``min_chunks`` chunks with empty ones.
    ``memo``: chunks already encoded (the padding chunk, mostly), reused as they are."""
    memo = {} if memo is None else memo
    device = pipe._execution_device
    sdxl = _is(pipe, _SDXL_CLASSES)
    per_encoder: list[torch.Tensor] = []
    pooled: torch.Tensor | None = None
    with torch.no_grad():
        for index, (tokenizer, encoder) in enumerate(_encoders(pipe)):
            parts = chunks(pipe, tokenizer, text)
            parts += [empty_chunk(tokenizer)] * max(0, min_chunks - len(parts))
            hidden = []
            for i, chunk in enumerate(parts):
                key = (index, tuple(chunk.tokens), tuple(chunk.weights))
                if key not in memo:
                    memo[key] = encode_chunk(
                        encoder, chunk, device, penultimate=sdxl, eos=int(tokenizer.eos_token_id)
                    )
                z, p = memo[key]
                hidden.append(z)
                if i == 0 and p is not None:
                    pooled = p
            per_encoder.append(torch.cat(hidden, dim=1))
    embeds = torch.cat(per_encoder, dim=-1) if len(per_encoder) > 1 else per_encoder[0]
    return Encoded(embeds, pooled)


def prompt_kwargs(pipe: Any, prompts: Sequence[str], negatives: Sequence[str]) -> dict[str, Any]:
    """The pipeline call's prompt arguments for ``prompts``/``negatives`` (one per image):
    ``prompt_embeds``/``negative_prompt_embeds`` (and the pooled ones for SDXL), every prompt
    padded to the batch's largest chunk count. Each distinct chunk is encoded once."""
    texts = list(dict.fromkeys([*prompts, *negatives]))
    counts = {t: chunk_count(pipe, t) for t in texts}
    target = max(counts.values())
    memo: ChunkMemo = {}
    cache = {t: encode(pipe, t, min_chunks=target, memo=memo) for t in texts}
    kwargs: dict[str, Any] = {
        "prompt_embeds": torch.cat([cache[t].embeds for t in prompts]),
        "negative_prompt_embeds": torch.cat([cache[t].embeds for t in negatives]),
    }
    if _is(pipe, _SDXL_CLASSES):
        kwargs["pooled_prompt_embeds"] = torch.cat([_pooled(cache[t]) for t in prompts])
        kwargs["negative_pooled_prompt_embeds"] = torch.cat([_pooled(cache[t]) for t in negatives])
    return kwargs


def _pooled(encoded: Encoded) -> torch.Tensor:
    if encoded.pooled is None:
        raise ValueError("this SDXL pipeline's second text encoder gave no pooled embedding")
    return encoded.pooled


# ----------------------------------------------------------------- the renderer's hook


def encode_prompts(pipe: Any, syntax: str, call: dict[str, Any]) -> dict[str, Any]:
    """A pipeline call's keyword arguments with its ``prompt``/``negative_prompt`` text turned
    into A1111 embeddings (:func:`prompt_kwargs`) when ``syntax`` is "a1111" and ``pipe`` is
    SD 1.x/2.x/XL; else ``call`` unchanged, so "plain" jobs (all from before issue 16) and
    other families get exactly the call they always got."""
    if syntax != "a1111" or not supports(pipe) or "prompt" not in call:
        return call
    out = dict(call)
    prompt = out.pop("prompt")
    negative = out.pop("negative_prompt", None)
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    if negative is None:
        negatives = [""] * len(prompts)
    else:
        negatives = [negative] * len(prompts) if isinstance(negative, str) else list(negative)
    out.update(prompt_kwargs(pipe, prompts, negatives))
    return out


def batchable(pipe: Any, specs: Sequence[Any]) -> bool:
    """Whether jobs (``GenerationSpec``s) can share one pipeline call without changing their
    pictures: A1111 prompts must take the same number of chunks (a shorter one would be padded
    with empty chunks, and its pictures would depend on its neighbours in the batch)."""
    if len(specs) < 2 or specs[0].prompt_syntax != "a1111" or not supports(pipe):
        return True
    counts = {max(chunk_count(pipe, s.prompt), chunk_count(pipe, s.negative_prompt)) for s in specs}
    return len(counts) == 1
