"""Tiny LoRA and embedding files for the demo model, made in code (peft on its UNet and text
encoder with random non-zero weights, saved as diffusers saves LoRA; an A1111-style embedding)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

LORA_UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
LORA_TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


def make_lora(path: Path, seed: int, *, scale: float = 0.5) -> Path:
    """A LoRA for the demo model (UNet and text encoder, rank 4) at ``path``."""
    import diffusers
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict

    from generation.backend.demo_model import build_demo_pipeline

    d: Any = diffusers
    convert = d.utils.convert_state_dict_to_diffusers

    pipe: Any = build_demo_pipeline()
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=LORA_UNET_TARGETS))
    # transformers' own add_adapter wants a newer peft than the index has: peft directly
    inject_adapter_in_model(
        LoraConfig(r=4, lora_alpha=4, target_modules=LORA_TEXT_TARGETS), pipe.text_encoder
    )
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in (pipe.unet, pipe.text_encoder):
            for name, parameter in module.named_parameters():
                if "lora" in name:
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
    save = d.StableDiffusionPipeline.save_lora_weights
    save(
        path.parent,
        unet_lora_layers=get_peft_model_state_dict(pipe.unet),
        text_encoder_lora_layers=convert(get_peft_model_state_dict(pipe.text_encoder)),
        weight_name=path.name,
        safe_serialization=True,
    )
    return path


def make_embedding(path: Path, seed: int, *, vectors: int = 2, width: int = 32) -> Path:
    """An A1111-style embedding (``emb_params``: ``vectors`` x ``width``) at ``path``."""
    generator = torch.Generator().manual_seed(seed)
    save_file({"emb_params": torch.randn(vectors, width, generator=generator)}, str(path))
    return path


def make_sd1_lora(path: Path) -> Path:
    """A kohya-style LoRA for SD 1.x models (768-wide cross-attention): not for the demo."""
    key = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
    tensors = {
        f"{key}.lora_down.weight": torch.ones(4, 768),
        f"{key}.lora_up.weight": torch.ones(320, 4),
    }
    save_file(tensors, str(path))
    return path


def make_sdxl_lora(path: Path, seed: int, *, scale: float = 0.5) -> Path:
    """A LoRA for the tiny SDXL demo (UNet and both text encoders) at ``path``."""
    import diffusers
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict

    from generation.backend.family_demos import build_family_demo
    from generation.family_demos_info import DEMO_SDXL_SOURCE

    d: Any = diffusers
    convert = d.utils.convert_state_dict_to_diffusers
    pipe = build_family_demo(DEMO_SDXL_SOURCE)
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=LORA_UNET_TARGETS))
    for encoder in (pipe.text_encoder, pipe.text_encoder_2):
        inject_adapter_in_model(
            LoraConfig(r=4, lora_alpha=4, target_modules=LORA_TEXT_TARGETS), encoder
        )
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in (pipe.unet, pipe.text_encoder, pipe.text_encoder_2):
            for name, parameter in module.named_parameters():
                if "lora" in name:
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
    d.StableDiffusionXLPipeline.save_lora_weights(
        path.parent,
        unet_lora_layers=get_peft_model_state_dict(pipe.unet),
        text_encoder_lora_layers=convert(get_peft_model_state_dict(pipe.text_encoder)),
        text_encoder_2_lora_layers=convert(get_peft_model_state_dict(pipe.text_encoder_2)),
        weight_name=path.name,
        safe_serialization=True,
    )
    return path


def make_sdxl_embedding(path: Path, seed: int, *, vectors: int = 2) -> Path:
    """An SDXL embedding (``clip_l`` and ``clip_g``, the tiny demo's 32-wide encoders)."""
    generator = torch.Generator().manual_seed(seed)
    tensors = {
        "clip_l": torch.randn(vectors, 32, generator=generator),
        "clip_g": torch.randn(vectors, 32, generator=generator),
    }
    save_file(tensors, str(path))
    return path
