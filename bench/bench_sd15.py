"""Benchmark helpers: an SD 1.5-architecture pipeline with random weights, and FLOP counting.

Nothing is downloaded: the UNet, VAE and CLIP text encoder are built from configs written here
(the published SD 1.5 shapes) and the demo model's tokenizer is reused (its vocabulary is small,
which changes only the embedding table, not the FLOPs of a forward pass).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import diffusers
import torch
import transformers
from torch.utils.flop_counter import FlopCounterMode

_d: Any = diffusers
_t: Any = transformers

SD15_UNET: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280, 1280),
    "down_block_types": (
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ),
    "up_block_types": (
        "UpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
    ),
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
}
SD15_VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}
SD15_TEXT: dict[str, Any] = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "projection_dim": 768,
}
# --tiny: the same code path with toy sizes (to catch bugs on a CPU before renting a GPU).
TINY_UNET: dict[str, Any] = {
    **SD15_UNET,
    "sample_size": 8,
    "layers_per_block": 1,
    "block_out_channels": (32, 32, 64, 64),
    "cross_attention_dim": 32,
    "attention_head_dim": 4,
    "norm_num_groups": 8,
}
TINY_VAE: dict[str, Any] = {
    **SD15_VAE,
    "block_out_channels": (8, 16, 16, 16),
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "sample_size": 64,
}
TINY_TEXT: dict[str, Any] = {
    **SD15_TEXT,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "projection_dim": 32,
}


def build_random_sd15(
    folder: Path, demo_folder: Path, *, tiny: bool, device: str, dtype: torch.dtype
) -> Path:
    """Write a random-weight SD 1.5-architecture diffusers folder; return it."""
    unet_cfg, vae_cfg, text_cfg = (
        (TINY_UNET, TINY_VAE, TINY_TEXT) if tiny else (SD15_UNET, SD15_VAE, SD15_TEXT)
    )
    tokenizer = _t.CLIPTokenizer.from_pretrained(
        str(demo_folder / "tokenizer"), local_files_only=True, model_max_length=77
    )
    scheduler = _d.PNDMScheduler.from_pretrained(str(demo_folder / "scheduler"))
    torch.manual_seed(1234)
    with torch.device(device):  # initialise on the GPU when there is one: much faster
        unet = _d.UNet2DConditionModel(**unet_cfg)
        vae = _d.AutoencoderKL(**vae_cfg)
        text_encoder = _t.CLIPTextModel(
            _t.CLIPTextConfig(
                vocab_size=len(tokenizer),
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
                **text_cfg,
            )
        )
    pipe = _d.StableDiffusionPipeline(
        vae=vae.to(dtype).eval(),
        text_encoder=text_encoder.to(dtype).eval(),
        tokenizer=tokenizer,
        unet=unet.to(dtype).eval(),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(str(folder), safe_serialization=True)
    del pipe, unet, vae, text_encoder
    if device == "cuda":
        torch.cuda.empty_cache()
    return folder


def count_flops(pipe: Any, width: int, height: int) -> dict[str, float]:
    """FLOPs (2 per multiply-add) of one UNet forward at batch 2 (classifier-free guidance),
    one text-encoder forward at batch 2 (prompt + negative) and one VAE decode at batch 1."""
    device = pipe.unet.device
    dtype = pipe.unet.dtype
    latent = torch.randn(2, 4, height // 8, width // 8, device=device, dtype=dtype)
    t = torch.tensor([500, 500], device=device)
    text_len = pipe.tokenizer.model_max_length
    context = torch.randn(2, text_len, pipe.unet.config.cross_attention_dim, device=device)
    ids = torch.zeros(2, text_len, dtype=torch.long, device=device)
    out: dict[str, float] = {}
    with torch.inference_mode():
        with FlopCounterMode(display=False) as counter:
            pipe.unet(latent, t, encoder_hidden_states=context.to(dtype))
        out["unet_forward_cfg"] = float(counter.get_total_flops())
        with FlopCounterMode(display=False) as counter:
            pipe.text_encoder(ids)
        out["text_encoder_cfg"] = float(counter.get_total_flops())
        with FlopCounterMode(display=False) as counter:
            pipe.vae.decode(latent[:1] / pipe.vae.config.scaling_factor)
        out["vae_decode"] = float(counter.get_total_flops())
    return out
