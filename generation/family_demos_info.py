"""Tiny random-weight models of the other families (SDXL and its refiner, SD3, Flux.1), without
torch.

``generation.backend.family_demos`` builds them from these settings, as the SD demo is built
from ``generation.demo_info``: the real architectures (two CLIP encoders for SDXL; two CLIPs and
a T5 for SD3; a CLIP and a T5 for Flux; a VAE with latents at 1/8 of the image) at a size that
renders 64x64 in a fraction of a second on a CPU. Their pictures are noise. Each revision is a
hash of everything that decides the weights, so a change makes a new folder by itself.

Registered as ``builtin:demo-sdxl``, ``builtin:demo-sd3`` and ``builtin:demo-flux``;
``builtin:demo-sdxl-refiner`` is a tiny SDXL refiner (image-to-image only, the second text
encoder alone) for ``builtin:demo-sdxl``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from generation.demo_info import (
    ARCH_VERSION,
    MERGES,
    SCHEDULER_CONFIG,
    SEED,
    TEXT_CONFIG,
    VAE_CONFIG,
    WORDS,
    DemoDefaults,
)

DEMO_SDXL_SOURCE = "builtin:demo-sdxl"
DEMO_SDXL_REFINER_SOURCE = "builtin:demo-sdxl-refiner"
DEMO_SD3_SOURCE = "builtin:demo-sd3"
DEMO_FLUX_SOURCE = "builtin:demo-flux"

# CLIP encoders with a projection (SDXL's second encoder, SD3's two; their pooled outputs).
CLIP_CONFIG: dict[str, Any] = {**TEXT_CONFIG, "projection_dim": 32}
# A T5 encoder small enough for tests; its tokenizer is a Unigram model built from WORDS.
T5_CONFIG: dict[str, Any] = {
    "d_model": 64,
    "d_kv": 16,
    "d_ff": 64,
    "num_layers": 2,
    "num_heads": 4,
    "relative_attention_num_buckets": 8,
    "is_encoder_decoder": False,
    "use_cache": False,
}
T5_MAX_LENGTH = 512

SDXL_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 8,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 1,
    "block_out_channels": (16, 32),
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
    "attention_head_dim": (2, 4),
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 8,
    "transformer_layers_per_block": (1, 1),
    # 6 size numbers x 8 + the second encoder's pooled projection (32)
    "projection_class_embeddings_input_dim": 80,
    "cross_attention_dim": 64,  # both encoders' hidden states side by side (32 + 32)
    "norm_num_groups": 8,
}
SDXL_SCHEDULER_CONFIG: dict[str, Any] = {**SCHEDULER_CONFIG}  # PNDM as in the SD demo
# The SDXL refiner's UNet: only the second (OpenCLIP-like) encoder, and an aesthetic score in its
# micro-conditioning (5 numbers instead of 6). Its VAE is the base's (same latent space).
SDXL_REFINER_UNET_CONFIG: dict[str, Any] = {
    **SDXL_UNET_CONFIG,
    "projection_class_embeddings_input_dim": 72,  # 5 x 8 + the pooled projection (32)
    "cross_attention_dim": 32,  # the second encoder's hidden states alone
}

# SD3/Flux VAEs have no quant convs and shift their latents; 16 latent channels as the real ones.
FLOW_VAE_CONFIG: dict[str, Any] = {
    **VAE_CONFIG,
    "latent_channels": 16,
    "use_quant_conv": False,
    "use_post_quant_conv": False,
    "shift_factor": 0.0609,
    "scaling_factor": 1.5035,
}
SD3_TRANSFORMER_CONFIG: dict[str, Any] = {
    "sample_size": 8,
    "patch_size": 2,
    "in_channels": 16,
    "out_channels": 16,
    "num_layers": 2,
    "attention_head_dim": 8,
    "num_attention_heads": 4,
    "joint_attention_dim": 64,  # T5's width; the CLIP states (32 + 32) are padded to it
    "caption_projection_dim": 32,
    "pooled_projection_dim": 64,  # both CLIP pooled projections (32 + 32)
    "pos_embed_max_size": 16,
}
# Every key explicit (see demo_info.SCHEDULER_CONFIG: defaults are dropped by from_config).
_FLOW_SCHEDULER_BASE: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "base_shift": 0.5,
    "max_shift": 1.15,
    "base_image_seq_len": 256,
    "max_image_seq_len": 4096,
    "invert_sigmas": False,
    "shift_terminal": None,
    "use_karras_sigmas": False,
    "use_exponential_sigmas": False,
    "use_beta_sigmas": False,
    "time_shift_type": "exponential",
    "stochastic_sampling": False,
}
SD3_SCHEDULER_CONFIG: dict[str, Any] = {
    **_FLOW_SCHEDULER_BASE,
    "shift": 3.0,
    "use_dynamic_shifting": False,
}
FLUX_TRANSFORMER_CONFIG: dict[str, Any] = {
    "patch_size": 1,
    "in_channels": 64,  # 16 latent channels packed 2x2
    "num_layers": 1,
    "num_single_layers": 1,
    "attention_head_dim": 16,
    "num_attention_heads": 2,
    "joint_attention_dim": 64,  # T5's width
    "pooled_projection_dim": 32,  # CLIP's pooled output
    "guidance_embeds": True,  # Flux.1-dev: distilled guidance is an input
    "axes_dims_rope": (4, 4, 8),  # sums to attention_head_dim
}
FLUX_SCHEDULER_CONFIG: dict[str, Any] = {
    **_FLOW_SCHEDULER_BASE,
    "shift": 3.0,
    "use_dynamic_shifting": True,
}

# Defaults registered with each (tiny models: 64x64, few steps).
FAMILY_DEMO_DEFAULTS: dict[str, DemoDefaults] = {
    DEMO_SDXL_SOURCE: DemoDefaults(sampler="Euler a"),
    DEMO_SDXL_REFINER_SOURCE: DemoDefaults(sampler="Euler a"),
    DEMO_SD3_SOURCE: DemoDefaults(sampler="Euler", cfg=5.0),
    DEMO_FLUX_SOURCE: DemoDefaults(sampler="Euler", cfg=3.5),
}


def _revision(prefix: str, *parts: Any) -> str:
    blob = json.dumps([*parts, MERGES, WORDS, SEED], sort_keys=True, default=list)
    return f"{prefix}-v{ARCH_VERSION}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


FAMILY_BUILTINS: dict[str, tuple[str, str]] = {
    DEMO_SDXL_SOURCE: (
        "demo-sdxl",
        _revision("demo-sdxl", SDXL_UNET_CONFIG, VAE_CONFIG, CLIP_CONFIG, SDXL_SCHEDULER_CONFIG),
    ),
    DEMO_SDXL_REFINER_SOURCE: (
        "demo-sdxl-refiner",
        _revision(
            "demo-sdxl-refiner",
            SDXL_REFINER_UNET_CONFIG,
            VAE_CONFIG,
            CLIP_CONFIG,
            SDXL_SCHEDULER_CONFIG,
        ),
    ),
    DEMO_SD3_SOURCE: (
        "demo-sd3",
        _revision(
            "demo-sd3",
            SD3_TRANSFORMER_CONFIG,
            FLOW_VAE_CONFIG,
            CLIP_CONFIG,
            T5_CONFIG,
            SD3_SCHEDULER_CONFIG,
        ),
    ),
    DEMO_FLUX_SOURCE: (
        "demo-flux",
        _revision(
            "demo-flux",
            FLUX_TRANSFORMER_CONFIG,
            FLOW_VAE_CONFIG,
            CLIP_CONFIG,
            T5_CONFIG,
            FLUX_SCHEDULER_CONFIG,
        ),
    ),
}
# builtin source -> family name (a builtin's folder is also detected like any folder).
FAMILY_OF_BUILTIN: dict[str, str] = {
    DEMO_SDXL_SOURCE: "sdxl",
    DEMO_SDXL_REFINER_SOURCE: "sdxl_refiner",
    DEMO_SD3_SOURCE: "sd3",
    DEMO_FLUX_SOURCE: "flux",
}
