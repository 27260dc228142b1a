"""A1111 prompt syntax through the ``easel`` command: a weighted prompt is read as A1111 reads
it, the job records the rules, the infotext keeps the prompt as typed, and a job stored before
issue 16 ("plain") reruns exactly as it rendered then (the text to the pipeline)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import diffusers
import numpy as np
import pytest
import torch
from PIL import Image

from bot.cli import run
from generation.metadata import read_png_text
from generation.samplers import scheduler_for

_d: Any = diffusers
SAMPLER = "Euler a"


@pytest.fixture
def config_file(tmp_path: Path, data_dir: Path) -> Path:
    path = tmp_path / "easel.toml"
    path.write_text(f'data_dir = "{data_dir}"\n[generation]\nshutdown_grace_seconds = 5.0\n')
    return path


def _json(capsys: pytest.CaptureFixture[str], config_file: Path, *args: str) -> Any:
    capsys.readouterr()
    assert run(["--config", str(config_file), *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _draw(capsys: pytest.CaptureFixture[str], config_file: Path, prompt: str, out: Path) -> Any:
    args = ("--seed", "7", "--steps", "3", "--size", "64x64", "--sampler", SAMPLER)
    return _json(capsys, config_file, "draw", prompt, *args, "--out", str(out))


def _pixels(path: str) -> np.ndarray[Any, Any]:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def _plain_diffusers(folder: Path, prompt: str) -> np.ndarray[Any, Any]:
    """What Easel drew before issue 16: the prompt text handed to plain diffusers."""
    pipe = _d.StableDiffusionPipeline.from_pretrained(str(folder))
    pipe.set_progress_bar_config(disable=True)
    choice = scheduler_for(SAMPLER)
    pipe.scheduler = getattr(_d, choice.class_name).from_config(
        pipe.scheduler.config, **choice.options
    )
    image = pipe(
        prompt=prompt,
        negative_prompt="",
        generator=torch.Generator("cpu").manual_seed(7),
        num_inference_steps=3,
        guidance_scale=7.0,
        width=64,
        height=64,
    ).images[0]
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_weighted_prompt_via_the_cli_and_an_old_plain_job_rerun(
    config_file: Path, data_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    typed = "a (castle:1.3) at dusk"
    weighted = _draw(capsys, config_file, typed, tmp_path / "w")
    plain_words = _draw(capsys, config_file, "a castle at dusk", tmp_path / "p")
    assert weighted["status"] == plain_words["status"] == "succeeded"
    assert weighted["prompt"] == typed  # stored as typed
    infotext = read_png_text(Path(weighted["images"][0]).read_bytes())["parameters"]
    assert infotext.startswith(typed + "\n")  # A1111's infotext: the prompt as typed
    a, b = _pixels(weighted["images"][0]), _pixels(plain_words["images"][0])
    assert np.abs(a - b).max() > 0  # the weight changes the picture

    database = data_dir / "easel.db"
    with sqlite3.connect(database) as connection:
        (syntax,) = connection.execute(
            "SELECT prompt_syntax FROM jobs WHERE id = ?", (weighted["id"],)
        ).fetchone()
        assert syntax == "a1111"
        # The same job as it would be stored before issue 16: NULL = "plain".
        connection.execute("UPDATE jobs SET prompt_syntax = NULL WHERE id = ?", (weighted["id"],))
    rerun = _json(capsys, config_file, "rerun", weighted["id"], "--out", str(tmp_path / "r"))
    assert rerun["status"] == "succeeded"
    with sqlite3.connect(database) as connection:
        (syntax,) = connection.execute(
            "SELECT prompt_syntax FROM jobs WHERE id = ?", (rerun["id"],)
        ).fetchone()
    assert syntax is None  # the rerun keeps the old rules
    old = _plain_diffusers(data_dir / "models" / "demo", typed)
    assert np.abs(_pixels(rerun["images"][0]) - old).max() <= 1
    assert np.abs(_pixels(rerun["images"][0]) - a).max() > 0
