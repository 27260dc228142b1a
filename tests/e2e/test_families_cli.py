"""Each model family through the ``easel`` command: registered by its builtin name (its defaults
come from the family), drawn with ``--model``, rerun to the same pixels, and what the family
cannot do refused with its reason and nothing queued."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot.cli import run
from generation.worker import model_source
from storage.records import ModelRecord

FAMILIES = {"sdxl": "Euler a", "sd3": "Euler", "flux": "Euler"}


@pytest.fixture
def config_file(tmp_path: Path, data_dir: Path) -> Path:
    path = tmp_path / "easel.toml"
    path.write_text(f'data_dir = "{data_dir}"\n[generation]\nshutdown_grace_seconds = 5.0\n')
    return path


def easel(config_file: Path, *args: str) -> int:
    return run(["--config", str(config_file), *args])


def easel_json(capsys: pytest.CaptureFixture[str], config_file: Path, *args: str) -> object:
    capsys.readouterr()
    assert easel(config_file, *args, "--json") == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_add_draw_and_rerun_each_family(
    config_file: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path, family: str
) -> None:
    assert easel(config_file, "models", "add", family, f"builtin:demo-{family}") == 0
    assert f"registered {family} (builtin" in capsys.readouterr().out
    models = easel_json(capsys, config_file, "models", "list")
    assert isinstance(models, list)
    mine = next(m for m in models if m["name"] == family)
    assert mine["default_sampler"] == FAMILIES[family]  # the family's, not SD's DPM++ 2M Karras
    assert (mine["default_width"], mine["default_height"], mine["default_steps"]) == (64, 64, 4)

    out = tmp_path / "out"
    job = easel_json(
        capsys, config_file, "draw", "a cat at dusk", "--model", family, "--seed", "7",
        "--out", str(out),
    )  # fmt: skip
    assert isinstance(job, dict) and job["status"] == "succeeded"
    assert (job["model"], job["sampler"], job["width"]) == (family, FAMILIES[family], 64)
    again = easel_json(capsys, config_file, "rerun", job["id"], "--out", str(tmp_path / "again"))
    assert isinstance(again, dict) and again["status"] == "succeeded"
    first, second = (sorted(d.glob("*.png"))[0] for d in (out, tmp_path / "again"))
    a, b = (np.asarray(Image.open(p).convert("RGB"), dtype=np.int16) for p in (first, second))
    assert np.abs(a - b).max() == 0


def test_flux_refusals_say_why_and_queue_nothing(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert easel(config_file, "models", "add", "flux", "builtin:demo-flux") == 0
    before = easel_json(capsys, config_file, "history")
    assert easel(config_file, "draw", "a cat", "--model", "flux", "--negative", "blurry") == 2
    assert "Flux.1 ignores the negative prompt" in capsys.readouterr().err
    assert easel(config_file, "draw", "a cat", "--model", "flux", "--sampler", "Euler a") == 2
    err = capsys.readouterr().err
    assert "cannot use the sampler 'Euler a'" in err and "only Euler does" in err
    assert easel_json(capsys, config_file, "history") == before
    # The hires fix works with its default upscaler (Lanczos: no SD latents needed)
    job = easel_json(capsys, config_file, "draw", "a cat", "--model", "flux", "--hires", "2")
    assert isinstance(job, dict) and job["status"] == "succeeded"
    assert job["hires"]["width"] == 128 and job["hires"]["upscaler"] == "Lanczos"


def test_a_model_dtype_is_registered_and_listed(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        easel(config_file, "models", "add", "flux", "builtin:demo-flux", "--dtype", "bfloat16") == 0
    )
    assert easel(config_file, "models", "list") == 0
    assert "Euler, cfg 3.5, bfloat16" in capsys.readouterr().out
    models = easel_json(capsys, config_file, "models", "list")
    assert isinstance(models, list)
    flux = next(m for m in models if m["name"] == "flux")
    assert flux["dtype"] == "bfloat16"
    demo = next(m for m in models if m["name"] == "demo")
    assert demo["dtype"] is None  # the config's generation.dtype
    with pytest.raises(SystemExit):
        easel(config_file, "models", "add", "x", "builtin:demo-sd3", "--dtype", "float8")
    assert "invalid choice: 'float8'" in capsys.readouterr().err
    # the worker hands it to the backend (which uses it on a GPU; the CPU stays in float32)
    fields = {k: v for k, v in flux.items() if k != "created_at"}
    record = ModelRecord(**fields, created_at=datetime.now(UTC))
    assert model_source(record).dtype == "bfloat16"


def test_a_flux_model_with_an_sd_default_sampler_draws_with_euler(
    config_file: Path, capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    """A Hub Flux model registered before it was downloaded got SD's defaults: a draw naming
    no sampler takes the family's (Euler); registering one the family lacks is refused."""
    import asyncio

    from storage.db import Database
    from storage.repository import Store

    async def register_as_before() -> None:
        async with Database(f"sqlite+aiosqlite:///{data_dir / 'easel.db'}") as db:
            await Store(db).add_model(
                "flux", source="builtin:demo-flux", kind="builtin", default_width=64,
                default_height=64, default_steps=4, default_sampler="DPM++ 2M Karras",
            )  # fmt: skip

    assert easel(config_file, "models", "list") == 0  # creates the database
    asyncio.run(register_as_before())
    job = easel_json(capsys, config_file, "draw", "a cat", "--model", "flux")
    assert isinstance(job, dict) and (job["sampler"], job["status"]) == ("Euler", "succeeded")
    args = ("models", "add", "f2", "builtin:demo-flux", "--default-sampler", "Euler a")
    assert easel(config_file, *args) == 2
    assert "cannot use the sampler 'Euler a'" in capsys.readouterr().err


def test_an_sdxl_refiner_from_the_command_line(
    config_file: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Registered like any model, listed as a refiner, used with --refiner (and --switch-at,
    in the prompt or as a flag); as a model of its own it is refused with what to do."""
    assert easel(config_file, "models", "add", "xl", "builtin:demo-sdxl") == 0
    assert easel(config_file, "models", "add", "xl-refiner", "builtin:demo-sdxl-refiner") == 0
    assert "an SDXL refiner: add --refiner xl-refiner" in capsys.readouterr().out
    assert easel(config_file, "models", "list") == 0
    listed = capsys.readouterr().out
    assert "xl-refiner       builtin, Stable Diffusion XL refiner" in listed

    args = ("draw", "a cat --switch-at 0.6", "--model", "xl", "--refiner", "xl-refiner")
    job = easel_json(capsys, config_file, *args, "--seed", "5", "--steps", "6")
    assert isinstance(job, dict) and job["status"] == "succeeded"
    assert job["refiner"]["model"] == "xl-refiner" and job["refiner"]["switch_at"] == 0.6
    assert easel(config_file, "show", job["id"]) == 0
    assert "refined by xl-refiner from 60% of the steps" in capsys.readouterr().out
    again = easel_json(capsys, config_file, "rerun", job["id"], "--out", str(tmp_path / "a"))
    assert isinstance(again, dict) and again["refiner"] == job["refiner"]

    before = easel_json(capsys, config_file, "history")
    assert easel(config_file, "draw", "a cat", "--model", "xl-refiner") == 2
    assert "is an SDXL refiner: it finishes SDXL pictures" in capsys.readouterr().err
    assert easel(config_file, "draw", "a cat", "--model", "xl", "--refiner", "xl") == 0
    capsys.readouterr()
    assert easel(config_file, "draw", "a cat", "--refiner", "xl-refiner", "--model", "demo") == 2
    assert "only Stable Diffusion XL models take a refiner" in capsys.readouterr().err
    history = easel_json(capsys, config_file, "history")
    assert isinstance(history, list) and isinstance(before, list)
    assert len(history) == len(before) + 1  # only the draw refined by another SDXL model
