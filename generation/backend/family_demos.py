"""Builds the tiny SDXL (and its refiner), SD3 and Flux.1 models of
``generation.family_demos_info``.

    pipe = build_family_demo("builtin:demo-flux")        # FluxPipeline, fp32, CPU
    write_family_demo("builtin:demo-flux", folder)      # save_pretrained + tokenizer files

The CLIP tokenizers are the SD demo's (byte-level BPE trained on its word list); the T5
tokenizer is a SentencePiece-style Unigram model over the same words, built with ``tokenizers``
and wrapped as ``T5TokenizerFast`` (no sentencepiece model file, no download). Saved folders are
ordinary diffusers folders that ``FluxPipeline.from_pretrained(folder)`` etc. load offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import diffusers as _diffusers
import torch
import transformers as _transformers

from generation.backend.demo_model import _build_tokenizer, _tokenizer_files
from generation.demo_info import SEED, VAE_CONFIG, WORDS
from generation.family_demos_info import (
    CLIP_CONFIG,
    DEMO_FLUX_SOURCE,
    DEMO_SD3_SOURCE,
    DEMO_SDXL_REFINER_SOURCE,
    DEMO_SDXL_SOURCE,
    FLOW_VAE_CONFIG,
    FLUX_SCHEDULER_CONFIG,
    FLUX_TRANSFORMER_CONFIG,
    SD3_SCHEDULER_CONFIG,
    SD3_TRANSFORMER_CONFIG,
    SDXL_REFINER_UNET_CONFIG,
    SDXL_SCHEDULER_CONFIG,
    SDXL_UNET_CONFIG,
    T5_CONFIG,
    T5_MAX_LENGTH,
)

_d: Any = _diffusers  # only partly typed
_t: Any = _transformers


def build_t5_tokenizer() -> Any:
    """A T5 tokenizer (Unigram, ``▁`` word marks, ``</s>`` appended) over the demo's words;
    anything else falls back to single characters."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    chars = sorted({ch for word in WORDS for ch in word} | set("0123456789"))
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [(f"▁{word}", -1.0) for word in dict.fromkeys(WORDS)]
    vocab += [(ch, -3.0) for ch in chars]
    tok = Tokenizer(models.Unigram(vocab, unk_id=2))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    return _t.T5TokenizerFast(
        tokenizer_object=tok,
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_ids=0,
        model_max_length=T5_MAX_LENGTH,
    )


def _clip_config(tokenizer: Any, **extra: Any) -> Any:
    return _t.CLIPTextConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **{**CLIP_CONFIG, **extra},
    )


def _t5(tokenizer: Any) -> Any:
    config = _t.T5Config(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        **T5_CONFIG,
    )
    return _t.T5EncoderModel(config)


def build_family_demo(source: str) -> Any:
    """The pipeline of the built-in ``source`` in memory (fp32, CPU); same weights every time."""
    builders = {
        DEMO_SDXL_SOURCE: _sdxl,
        DEMO_SDXL_REFINER_SOURCE: _sdxl_refiner,
        DEMO_SD3_SOURCE: _sd3,
        DEMO_FLUX_SOURCE: _flux,
    }
    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG untouched
        pipe = builders[source]()
    for name in ("unet", "transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3"):
        module = getattr(pipe, name, None)
        if module is not None:
            module.eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _sdxl() -> Any:
    clip = _build_tokenizer()
    torch.manual_seed(SEED)
    unet = _d.UNet2DConditionModel(**SDXL_UNET_CONFIG)
    torch.manual_seed(SEED + 1)
    vae = _d.AutoencoderKL(**VAE_CONFIG)
    torch.manual_seed(SEED + 2)
    text_encoder = _t.CLIPTextModel(_clip_config(clip))
    torch.manual_seed(SEED + 3)
    text_encoder_2 = _t.CLIPTextModelWithProjection(_clip_config(clip))
    return _d.StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=clip,
        tokenizer_2=_build_tokenizer(),
        unet=unet,
        scheduler=_d.PNDMScheduler(**SDXL_SCHEDULER_CONFIG),
        force_zeros_for_empty_prompt=True,
    )


def _sdxl_refiner() -> Any:
    """As stabilityai/stable-diffusion-xl-refiner-1.0 is laid out: an image-to-image pipeline
    with no first text encoder, the aesthetic score in its micro-conditioning, and the base's
    VAE (the same weights as the demo SDXL's: base latents go straight into it)."""
    torch.manual_seed(SEED + 10)
    unet = _d.UNet2DConditionModel(**SDXL_REFINER_UNET_CONFIG)
    torch.manual_seed(SEED + 1)
    vae = _d.AutoencoderKL(**VAE_CONFIG)
    torch.manual_seed(SEED + 3)
    text_encoder_2 = _t.CLIPTextModelWithProjection(_clip_config(_build_tokenizer()))
    return _d.StableDiffusionXLImg2ImgPipeline(
        vae=vae,
        text_encoder=None,
        text_encoder_2=text_encoder_2,
        tokenizer=None,
        tokenizer_2=_build_tokenizer(),
        unet=unet,
        scheduler=_d.PNDMScheduler(**SDXL_SCHEDULER_CONFIG),
        requires_aesthetics_score=True,
        force_zeros_for_empty_prompt=False,
    )


def _sd3() -> Any:
    clip, t5_tok = _build_tokenizer(), build_t5_tokenizer()
    torch.manual_seed(SEED)
    transformer = _d.SD3Transformer2DModel(**SD3_TRANSFORMER_CONFIG)
    torch.manual_seed(SEED + 1)
    vae = _d.AutoencoderKL(**FLOW_VAE_CONFIG)
    torch.manual_seed(SEED + 2)
    text_encoder = _t.CLIPTextModelWithProjection(_clip_config(clip))
    torch.manual_seed(SEED + 3)
    text_encoder_2 = _t.CLIPTextModelWithProjection(_clip_config(clip))
    torch.manual_seed(SEED + 4)
    text_encoder_3 = _t5(t5_tok)
    return _d.StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=_d.FlowMatchEulerDiscreteScheduler(**SD3_SCHEDULER_CONFIG),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=clip,
        text_encoder_2=text_encoder_2,
        tokenizer_2=_build_tokenizer(),
        text_encoder_3=text_encoder_3,
        tokenizer_3=t5_tok,
    )


def _flux() -> Any:
    clip, t5_tok = _build_tokenizer(), build_t5_tokenizer()
    torch.manual_seed(SEED)
    transformer = _d.FluxTransformer2DModel(**FLUX_TRANSFORMER_CONFIG)
    torch.manual_seed(SEED + 1)
    vae = _d.AutoencoderKL(**FLOW_VAE_CONFIG)
    torch.manual_seed(SEED + 2)
    text_encoder = _t.CLIPTextModel(_clip_config(clip))
    torch.manual_seed(SEED + 4)
    text_encoder_2 = _t5(t5_tok)
    return _d.FluxPipeline(
        scheduler=_d.FlowMatchEulerDiscreteScheduler(**FLUX_SCHEDULER_CONFIG),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=clip,
        text_encoder_2=text_encoder_2,
        tokenizer_2=t5_tok,
        transformer=transformer,
    )


def write_family_demo(source: str, folder: Path) -> None:
    """Save the built-in ``source`` into the (empty, temporary) ``folder``."""
    pipe = build_family_demo(source)
    pipe.save_pretrained(str(folder), safe_serialization=True)
    # As the SD demo: keep CLIP's plain BPE files next to tokenizer.json for transformers 4.x.
    for sub in ("tokenizer", "tokenizer_2"):
        if (folder / sub / "tokenizer_config.json").is_file():
            data = (folder / sub / "tokenizer_config.json").read_text(encoding="utf-8")
            if "CLIPTokenizer" in data:
                for name, text in _tokenizer_files().items():
                    target = folder / sub / name
                    if not target.exists():
                        target.write_text(text, encoding="utf-8")
