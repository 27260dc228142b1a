"""``easel models add NAME FILE --lora`` / ``--embedding``, the list, a draw using both, and
the refusals (exit 2, a message, nothing registered)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import run
from tests.addon_files import make_embedding, make_lora


@pytest.fixture
def config_file(tmp_path: Path, data_dir: Path) -> Path:
    path = tmp_path / "easel.toml"
    path.write_text(f'data_dir = "{data_dir}"\n[generation]\nshutdown_grace_seconds = 5.0\n')
    return path


def easel(config_file: Path, *args: str) -> int:
    return run(["--config", str(config_file), *args])


def test_register_list_draw_and_remove(
    config_file: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lora = make_lora(tmp_path / "pixel.safetensors", 1)
    embedding = make_embedding(tmp_path / "easyneg.safetensors", 2)
    assert easel(config_file, "models", "add", "pixel", str(lora), "--lora") == 0
    assert "registered lora pixel (ctx32, sha256 " in capsys.readouterr().out
    assert easel(config_file, "models", "add", "easyneg", str(embedding), "--embedding") == 0
    capsys.readouterr()
    assert easel(config_file, "models", "list") == 0
    out = capsys.readouterr().out
    assert "* demo" in out and "pixel" in out and "easyneg" in out and "embedding" in out
    assert easel(config_file, "models", "list", "--json") == 0
    listed = {entry["name"]: entry for entry in json.loads(capsys.readouterr().out)}
    assert listed["pixel"]["kind"] == "lora" and listed["pixel"]["family"] == "ctx32"

    assert (
        easel(config_file, "draw", "a cat <lora:pixel:0.7> --size 64x64 --steps 2", "--json") == 0
    )
    job = json.loads(capsys.readouterr().out)
    assert job["status"] == "succeeded", job
    # the job says what it used: the LoRA with its weight and hash, and the prompt rules
    assert [(lora["name"], lora["weight"]) for lora in job["loras"]] == [("pixel", 0.7)]
    assert job["loras"][0]["sha256"] == listed["pixel"]["sha256"]
    assert job["embeddings"] == [] and job["prompt_syntax"] == "a1111"
    assert easel(config_file, "draw", "a cat <lora:nope> --size 64x64", "--json") == 2
    assert "Unknown LoRA 'nope'. Registered: pixel." in capsys.readouterr().err

    pickled = tmp_path / "old.ckpt"
    pickled.write_bytes(b"\x80\x04")
    assert easel(config_file, "models", "add", "old", str(pickled), "--lora") == 2
    assert "pickled" in capsys.readouterr().err
    assert easel(config_file, "models", "remove", "pixel") == 0
    capsys.readouterr()
    assert easel(config_file, "models", "list") == 0
    assert "pixel" not in capsys.readouterr().out
