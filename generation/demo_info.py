"""The demo model's recipe and identity, without torch: safe to import anywhere.

``generation/demo_model.py`` builds the pipeline from these settings. ``DEMO_REVISION`` is
``"demo-v<N>-<hash>"`` where the hash covers every architecture setting, the tokenizer word list
and the seed: change any of them and the revision changes by itself; bump ``ARCH_VERSION`` by
hand only when something else changes the weights (a different initialisation routine).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

DEMO_SOURCE = "builtin:demo"
DEMO_NAME = "demo"
MARKER_FILE = "easel-demo.json"


@dataclass(frozen=True)
class DemoDefaults:
    """Parameters that suit the demo model (it is trained on nothing; bigger buys nothing)."""

    width: int = 64
    height: int = 64
    steps: int = 4
    cfg: float = 7.0
    sampler: str = "Euler a"


DEMO_DEFAULTS = DemoDefaults()

ARCH_VERSION = 1
SEED = 20240607

UNET_CONFIG: dict[str, Any] = {
    "sample_size": 8,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 1,
    "block_out_channels": (16, 32),
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
    "cross_attention_dim": 32,
    "attention_head_dim": 4,
    "norm_num_groups": 8,
}
VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "block_out_channels": (8, 16, 16, 16),  # four blocks: latents are 1/8 of the image, as in SD
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "sample_size": 64,
}
TEXT_CONFIG: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 77,
}
# The SD 1.5 scheduler configuration (PNDM). Every key is explicit: a key left to its default is
# listed in ``_use_default_values`` and then *dropped* by ``OtherScheduler.from_config``, so the
# in-memory pipeline would sample differently from the saved one (e.g. "linspace" vs "leading").
SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "skip_prk_steps": True,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "trained_betas": None,
    "prediction_type": "epsilon",
    "timestep_spacing": "leading",
}
MERGES = 256
# Words the tokenizer learns whole (byte-level BPE merges trained on this list); anything else is
# spelled out byte by byte, which is fine for a demo.
_WORD_TEXT = (
    "a an the of and in on at with by for to from is are this that photo photograph painting "
    "drawing sketch portrait picture image render illustration art style castle dusk dawn cat "
    "dog bird horse fox wolf city street house tower bridge sky forest mountain river lake sea "
    "ocean beach sunset sunrise night day light dark shadow red blue green yellow orange purple "
    "pink white black grey gold golden silver old new small large big tiny huge beautiful "
    "detailed landscape tree flower garden girl boy man woman child robot dragon knight wizard "
    "space star stars moon sun cloud clouds rain water fire snow winter summer autumn spring oil "
    "watercolor digital anime fantasy blurry ugly low quality high realistic cinematic lighting "
    "masterpiece best worst deformed bad hands text watermark"
)
WORDS = _WORD_TEXT.split()

DEMO_REVISION = "demo-v{}-{}".format(
    ARCH_VERSION,
    hashlib.sha256(
        json.dumps(
            [UNET_CONFIG, VAE_CONFIG, TEXT_CONFIG, SCHEDULER_CONFIG, MERGES, WORDS, SEED],
            sort_keys=True,
        ).encode()
    ).hexdigest()[:12],
)

# The demo's inpainting variant: the same text encoder, VAE and tokenizer, and a UNet that takes
# 9 channels (4 latent + 1 mask + 4 masked-image latent), like runwayml/stable-diffusion-inpainting.
# Admins register it as "builtin:demo-inpaint"; it only inpaints (text-to-image needs 4 channels).
DEMO_INPAINT_SOURCE = "builtin:demo-inpaint"
DEMO_INPAINT_NAME = "demo-inpaint"
INPAINT_UNET_CONFIG: dict[str, Any] = {**UNET_CONFIG, "in_channels": 9}
DEMO_INPAINT_REVISION = "demo-inpaint-v{}-{}".format(
    ARCH_VERSION,
    hashlib.sha256(
        json.dumps(
            [INPAINT_UNET_CONFIG, VAE_CONFIG, TEXT_CONFIG, SCHEDULER_CONFIG, MERGES, WORDS, SEED],
            sort_keys=True,
        ).encode()
    ).hexdigest()[:12],
)
# builtin source -> (folder name under data_dir/models, revision)
BUILTINS: dict[str, tuple[str, str]] = {
    DEMO_SOURCE: (DEMO_NAME, DEMO_REVISION),
    DEMO_INPAINT_SOURCE: (DEMO_INPAINT_NAME, DEMO_INPAINT_REVISION),
}


def _add_family_builtins() -> None:
    """The tiny SDXL / SD3 / Flux models (``generation.family_demos_info``) are builtins too."""
    from generation.family_demos_info import FAMILY_BUILTINS

    BUILTINS.update(FAMILY_BUILTINS)


_add_family_builtins()
