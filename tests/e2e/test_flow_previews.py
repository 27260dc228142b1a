"""Step previews of SD3 and Flux.1 through the backend: their 16-channel latents (Flux's packed
2x2 into tokens) get a latent -> RGB projection preview at the picture's aspect, with no
"previews failed" warning; unpacking Flux's tokens gives back the latents diffusers packed."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import diffusers
import pytest
import torch
from PIL import Image

from generation.backend import DiffusersBackend, ModelSource, RenderJob
from generation.backend.previews import (
    PREVIEW_SIDE,
    RGB_FLUX,
    RGB_FLUX_BIAS,
    RGB_SD3,
    projection_png,
    unpack_tokens,
)
from generation.family_demos_info import FAMILY_DEMO_DEFAULTS
from generation.model_sources import inspect_source
from generation.spec import GenerationSpec, Mode

SOURCES = {"sd3": "builtin:demo-sd3", "flux": "builtin:demo-flux"}


@pytest.fixture(scope="module")
def backend(family_data_dir: Path) -> Iterator[DiffusersBackend]:
    backend = DiffusersBackend(data_dir=family_data_dir, device="cpu", resident_models=3)
    yield backend
    backend.close()


def _never() -> bool:
    return False


def _spec(family: str, width: int, height: int) -> GenerationSpec:
    d = FAMILY_DEMO_DEFAULTS[SOURCES[family]]
    return GenerationSpec(
        mode=Mode.TXT2IMG,
        prompt="a castle at dusk",
        negative_prompt="",
        model=family,
        sampler=d.sampler,
        width=width,
        height=height,
        steps=d.steps,
        cfg=d.cfg,
        seed=1234,
    )


def _source(family: str) -> ModelSource:
    return inspect_source(family, SOURCES[family])


def _pack(latents: torch.Tensor) -> torch.Tensor:
    batch, channels, height, width = latents.shape
    packed: torch.Tensor = diffusers.FluxPipeline._pack_latents(
        latents, batch, channels, height, width
    )
    return packed


@pytest.mark.parametrize("height, width", [(8, 8), (8, 12), (12, 8), (6, 20)])
def test_unpacking_flux_tokens_gives_back_the_packed_latents(height: int, width: int) -> None:
    latents = torch.randn(1, 16, height, width, generator=torch.Generator().manual_seed(7)) * 4
    packed = _pack(latents)
    size = (width * 8, height * 8)  # the picture (width, height), vae_scale_factor 8
    assert torch.equal(unpack_tokens(packed[0], size), latents[0])  # type: ignore[arg-type]
    expected = projection_png(latents, RGB_FLUX, RGB_FLUX_BIAS)
    assert expected is not None
    assert projection_png(packed, RGB_FLUX, RGB_FLUX_BIAS, size) == expected
    # A size rounded to 16 pixels, as diffusers floors it, still finds the grid.
    rounded = (size[0] + 8, size[1] + 8)
    assert projection_png(packed, RGB_FLUX, RGB_FLUX_BIAS, rounded) == expected
    # Without a size only a square grid is unambiguous.
    alone = projection_png(packed, RGB_FLUX, RGB_FLUX_BIAS)
    assert (alone == expected) if height == width else alone is None


def test_odd_latents_give_no_preview() -> None:
    square = (64, 64)
    assert projection_png(torch.zeros(1, 5, 64), RGB_FLUX, size=square) is None  # 5 tokens: 1x5
    assert projection_png(torch.zeros(1, 16, 63), RGB_FLUX, size=square) is None
    assert projection_png(torch.zeros(1, 0, 64), RGB_FLUX, size=square) is None
    assert projection_png(torch.zeros(1, 4, 8, 8), RGB_SD3) is None  # SD latents, SD3 factors
    assert projection_png(torch.zeros(1, 24, 64), RGB_FLUX, size=(0, 0)) is None  # no aspect
    assert projection_png(torch.zeros(3), RGB_FLUX) is None


@pytest.mark.parametrize(
    "family, width, height",
    [("sd3", 64, 64), ("sd3", 96, 64), ("flux", 64, 64), ("flux", 96, 64), ("flux", 64, 96)],
)
def test_flow_models_send_previews_at_the_pictures_aspect(
    backend: DiffusersBackend,
    caplog: pytest.LogCaptureFixture,
    family: str,
    width: int,
    height: int,
) -> None:
    previews: list[bytes | None] = []

    def report(step: int, total: int, png: bytes | None) -> None:
        previews.append(png)

    images = backend.render(
        RenderJob(_spec(family, width, height), _source(family)), report, _never
    )
    assert images[0].size == (width, height)
    first = previews[0]  # the first step always has one (later ones are rate-limited)
    assert first is not None
    preview = Image.open(io.BytesIO(first))
    assert preview.mode == "RGB"
    longest = max(width, height)
    assert preview.size == (
        round(width * PREVIEW_SIDE / longest),
        round(height * PREVIEW_SIDE / longest),
    )
    assert "previews failed" not in caplog.text
    assert "preview decoder" not in caplog.text
