"""Model sources at registration time: classification, validation and identity (no torch)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from generation.demo_info import DEMO_REVISION, DEMO_SOURCE
from generation.errors import ModelError
from generation.model_sources import inspect_source, inspect_upscaler, is_sdxl_file
from generation.render import ModelSource


def _diffusers_folder(root: Path, weights: str = "diffusion_pytorch_model.safetensors") -> Path:
    (root / "unet").mkdir(parents=True)
    (root / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    save_file({"w": np.zeros(2, dtype=np.float32)}, str(root / "unet" / weights))
    return root


def test_importing_does_not_import_torch() -> None:
    code = "import generation.model_sources, sys; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_inspect_builtin() -> None:
    source = inspect_source("demo", DEMO_SOURCE)
    assert source == ModelSource("demo", DEMO_SOURCE, "builtin", DEMO_REVISION)
    with pytest.raises(ModelError, match="builtin:demo"):
        inspect_source("x", "builtin:nope")


def test_inspect_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such file or folder"):
        inspect_source("x", str(tmp_path / "nothing-here.safetensors"))
    with pytest.raises(ModelError, match="no such file or folder"):
        inspect_source("x", "./models/nothing")


def test_inspect_folder_fingerprint_is_stable_and_content_sensitive(tmp_path: Path) -> None:
    folder = _diffusers_folder(tmp_path / "model")
    source = inspect_source("m", str(folder))
    assert source.kind == "folder" and source.revision and len(source.revision) == 64
    assert source.source == str(folder.resolve())
    assert inspect_source("again", str(folder)).revision == source.revision
    (folder / ".cache").write_text("ignored")  # hidden files do not count
    assert inspect_source("again", str(folder)).revision == source.revision
    (folder / "model_index.json").write_text('{"_class_name": "StableDiffusionXLPipeline"}')
    assert inspect_source("again", str(folder)).revision != source.revision


def test_inspect_folder_needs_model_index_and_weights(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(ModelError, match=r"no model_index\.json"):
        inspect_source("x", str(plain))
    (plain / "model_index.json").write_text("{}")
    with pytest.raises(ModelError, match="contains no weight files"):
        inspect_source("x", str(plain))


def test_inspect_refuses_pickled_weights(tmp_path: Path) -> None:
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"not really a pickle")
    hint = r"only \.safetensors weights are loaded.*generation\.allow_unsafe_weights = true"
    with pytest.raises(ModelError, match=hint):
        inspect_source("x", str(ckpt))
    folder = tmp_path / "pickled"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    (folder / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(ModelError, match="allow_unsafe_weights"):
        inspect_source("x", str(folder))
    assert inspect_source("x", str(ckpt), allow_unsafe_weights=True).kind == "single_file"
    assert inspect_source("x", str(folder), allow_unsafe_weights=True).kind == "folder"


def test_inspect_single_safetensors_file(tmp_path: Path) -> None:
    file = tmp_path / "tiny.safetensors"
    save_file({"model.diffusion_model.x": np.zeros(2, dtype=np.float32)}, str(file))
    source = inspect_source("tiny", str(file))
    assert source.kind == "single_file" and source.revision and len(source.revision) == 64
    with pytest.raises(ModelError, match="--config"):
        inspect_source("tiny", str(file), config=str(tmp_path / "no-such-config"))
    config = _diffusers_folder(tmp_path / "config")
    assert inspect_source("tiny", str(file), config=str(config)).config == str(config.resolve())


def test_inspect_rejects_broken_and_foreign_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x01")
    with pytest.raises(ModelError, match=r"not a valid \.safetensors file"):
        inspect_source("x", str(broken))
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ModelError, match="not a model file"):
        inspect_source("x", str(text))


def test_inspect_hub_id_offline_and_uncached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError) as info:
        inspect_source("x", "easel-tests/surely-not-cached-model-0")
    message = str(info.value)
    assert "not in the local Hugging Face cache" in message
    assert "offline (HF_HUB_OFFLINE=1)" in message
    assert "register a local folder" in message


def test_inspect_upscaler(tmp_path: Path) -> None:
    file = tmp_path / "4x-test.safetensors"
    save_file({"w": np.zeros(1, dtype=np.float32)}, str(file))
    upscaler = inspect_upscaler("4x", str(file))
    assert upscaler.kind == "upscaler" and upscaler.revision and len(upscaler.revision) == 64
    with pytest.raises(ModelError, match="no such file"):
        inspect_upscaler("4x", str(tmp_path / "missing.safetensors"))
    pickled = tmp_path / "4x.pth"
    pickled.write_bytes(b"x")
    with pytest.raises(ModelError, match="allow_unsafe_weights"):
        inspect_upscaler("4x", str(pickled))
    assert inspect_upscaler("4x", str(pickled), allow_unsafe_weights=True).kind == "upscaler"


def test_is_sdxl_file(tmp_path: Path) -> None:
    sd15 = tmp_path / "sd15.safetensors"
    save_file({"model.diffusion_model.x": np.zeros(1, dtype=np.float32)}, str(sd15))
    sdxl = tmp_path / "plain-name.safetensors"
    save_file({"conditioner.embedders.1.model.x": np.zeros(1, dtype=np.float32)}, str(sdxl))
    assert not is_sdxl_file(sd15) and is_sdxl_file(sdxl)
    assert is_sdxl_file(tmp_path / "juggernautXL.ckpt") and not is_sdxl_file(tmp_path / "v1.ckpt")
