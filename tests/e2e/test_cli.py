"""The ``easel`` command, run in-process (and ``easel serve`` as a real process)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageChops

from bot.cli import run
from generation.metadata import job_id_from_png


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


def test_draw_json_then_show_history_rerun(config_file, capsys, tmp_path) -> None:
    out = tmp_path / "out"
    job = easel_json(
        capsys,
        config_file,
        "draw",
        "a castle at dusk",
        "--negative",
        "blurry",
        "--seed",
        "42",
        "--steps",
        "3",
        "--cfg",
        "6.5",
        "--size",
        "64x64",
        "--sampler",
        "DPM++ 2M Karras",
        "--count",
        "2",
        "--out",
        str(out),
    )
    assert isinstance(job, dict)
    for key in (
        "id",
        "status",
        "seed",
        "seeds",
        "images",
        "model",
        "prompt",
        "negative_prompt",
        "steps",
        "cfg",
        "width",
        "height",
        "sampler",
    ):
        assert key in job
    assert job["status"] == "succeeded"
    assert job["seeds"] == [42, 43] and job["seed"] == 42
    assert (job["steps"], job["cfg"], job["sampler"]) == (3, 6.5, "DPM++ 2M Karras")
    assert len(job["id"]) == 8
    files = [Path(p) for p in job["images"]]
    assert [f.parent for f in files] == [out, out] and all(f.exists() for f in files)
    assert job_id_from_png(files[0].read_bytes()) == job["id"]

    shown = easel_json(capsys, config_file, "show", job["id"])
    assert isinstance(shown, dict) and shown["prompt"] == "a castle at dusk"
    history = easel_json(capsys, config_file, "history", "--limit", "5")
    assert isinstance(history, list) and history[0]["id"] == job["id"]

    rerun = easel_json(capsys, config_file, "rerun", job["id"], "--out", str(tmp_path / "re"))
    assert isinstance(rerun, dict) and rerun["seeds"] == [42, 43]
    for before, after in zip(job["images"], rerun["images"], strict=True):
        a = np.asarray(Image.open(before).convert("RGB"))
        b = np.asarray(Image.open(after).convert("RGB"))
        assert np.array_equal(a, b)


def test_plain_output_progress_and_children(config_file, capsys) -> None:
    assert easel(config_file, "draw", "a red fox", "--seed", "5", "--size", "64x64") == 0
    captured = capsys.readouterr()
    assert "queued" in captured.err
    line = captured.out.splitlines()[0]
    assert line.startswith("job ") and "succeeded" in line
    job_id = line.split()[1].rstrip(":")
    assert "seed 5" in captured.out
    assert easel(config_file, "upscale", job_id, "--index", "1") == 0
    assert "128x128" in capsys.readouterr().out
    assert easel(config_file, "vary", job_id, "--strength", "strong") == 0
    assert "strength 0.7" in capsys.readouterr().out
    assert easel(config_file, "reroll", job_id) == 0
    assert f"reroll of {job_id}" in capsys.readouterr().out


def test_draw_speaks_the_draw_grammar_and_its_options_win(config_file, capsys) -> None:
    """``--no`` inside the prompt used to end up in the positive prompt."""
    job = easel_json(
        capsys,
        config_file,
        "draw",
        "a castle --no blurry, fog --seed 5 --size 64x64",
        "--seed",
        "9",  # the prompt's own --seed wins, as on every front end
        "--negative",
        "text",  # negative prompts from both are kept
        "--steps",
        "2",
    )
    assert isinstance(job, dict)
    assert job["prompt"] == "a castle"
    assert job["negative_prompt"] == "blurry, fog, text"
    assert (job["seed"], job["steps"], job["width"], job["height"]) == (5, 2, 64, 64)
    capsys.readouterr()
    assert easel(config_file, "draw", "a castle --sedd 5") == 2  # a typo is refused clearly
    assert "Unknown option --sedd. Did you mean --seed?" in capsys.readouterr().err


def test_init_image_makes_it_image_to_image(config_file, capsys, tmp_path) -> None:
    photo = tmp_path / "photo.png"
    Image.new("RGB", (80, 80), (200, 30, 30)).save(photo)
    job = easel_json(
        capsys,
        config_file,
        "draw",
        "a red square",
        "--size",
        "64x64",
        "--init-image",
        str(photo),
        "--strength",
        "0.6",
    )
    assert isinstance(job, dict) and job["mode"] == "img2img" and job["strength"] == 0.6


def test_refusals_exit_2_with_a_message(config_file, capsys, tmp_path) -> None:
    assert easel(config_file, "draw", "x", "--steps", "10000") == 2
    assert "Steps 10000 is above" in capsys.readouterr().err
    assert easel(config_file, "draw", "x", "--size", "big") == 2
    assert "size" in capsys.readouterr().err.lower()
    assert easel(config_file, "show", "nosuchid") == 2
    assert "No job with id" in capsys.readouterr().err
    assert easel(config_file, "draw", "x", "--init-image", str(tmp_path / "missing.png")) == 2
    assert "Cannot read" in capsys.readouterr().err


def test_bad_config_names_the_key(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[generation]\nmax_stepz = 3\n")
    assert run(["--config", str(bad), "history"]) == 2
    assert "generation.max_stepz: unknown key" in capsys.readouterr().err


def test_models_registry_commands(config_file, capsys, tmp_path, data_dir) -> None:
    assert easel(config_file, "models", "list") == 0
    assert "* demo" in capsys.readouterr().out
    folder = tmp_path / "copy"
    assert easel(config_file, "demo-model", str(folder)) == 0
    capsys.readouterr()
    assert (
        easel(
            config_file,
            "models",
            "add",
            "mine",
            str(folder),
            "--default-steps",
            "3",
            "--default-size",
            "64x64",
            "--default-sampler",
            "euler",
        )
        == 0
    )
    assert "registered mine (folder" in capsys.readouterr().out
    assert easel(config_file, "models", "default", "mine") == 0
    models = easel_json(capsys, config_file, "models", "list")
    assert isinstance(models, list)
    mine = next(m for m in models if m["name"] == "mine")
    assert mine["is_default"] and mine["default_sampler"] == "Euler" and mine["revision"]
    job = easel_json(capsys, config_file, "draw", "uses the default model")
    assert isinstance(job, dict) and job["model"] == "mine" and job["steps"] == 3
    assert easel(config_file, "models", "remove", "mine") == 2  # the default cannot go
    capsys.readouterr()
    assert easel(config_file, "models", "default", "demo") == 0
    assert easel(config_file, "models", "remove", "mine") == 0
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"pickle")
    assert easel(config_file, "models", "add", "unsafe", str(ckpt)) == 2
    assert "safetensors" in capsys.readouterr().err
    assert easel(config_file, "models", "add", "hub", "someone/not-cached-model") == 2
    assert "offline" in capsys.readouterr().err


def test_generation_refused_while_another_engine_runs(config_file, capsys, data_dir) -> None:
    from bot.app import EngineLock

    lock = EngineLock(data_dir)
    lock.acquire()
    try:
        assert easel(config_file, "draw", "x") == 2
        assert "Another Easel engine" in capsys.readouterr().err
        assert easel(config_file, "history") == 0  # read-only commands still work
    finally:
        lock.release()


def test_serve_runs_the_web_server_and_stops_cleanly_on_sigterm(config_file) -> None:
    config_file.write_text(config_file.read_text() + "[web]\nport = 0\n")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from bot.cli import main; main()",
            "--config",
            str(config_file),
            "serve",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 60
        seen = []
        url = None
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            seen.append(line)
            if "Easel web page: " in line:
                url = line.split("Easel web page: ")[1].strip()
            if "engine running" in line:
                break
        else:
            pytest.fail("serve did not start: " + "".join(seen))
        assert url is not None and url.startswith("http://127.0.0.1:"), seen
        with urllib.request.urlopen(f"{url}/sdapi/v1/sd-models", timeout=10) as response:
            models = json.loads(response.read())
        assert [m["model_name"] for m in models] == ["demo"]
        with urllib.request.urlopen(f"{url}/api/models", timeout=10) as response:
            assert json.loads(response.read())["models"][0]["name"] == "demo"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        rest = process.stderr.read()
        assert "stopped cleanly" in rest
    finally:
        if process.poll() is None:
            process.kill()


def test_serve_refuses_a_public_address_without_credentials(
    config_file, capsys, monkeypatch
) -> None:
    config_file.write_text(config_file.read_text() + '[web]\nhost = "0.0.0.0"\nport = 0\n')
    for name in ("EASEL_API_AUTH", "EASEL_API_TOKEN", "EASEL_ADMIN_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    assert easel(config_file, "serve") == 2
    assert "no API credentials" in capsys.readouterr().err


def test_inpaint_repaints_the_masked_part_of_a_job(config_file, capsys, tmp_path) -> None:
    parent = easel_json(
        capsys, config_file, "draw", "a lighthouse", "--size", "64x64", "--steps", "2"
    )
    assert isinstance(parent, dict)
    mask = tmp_path / "mask.png"
    image = Image.new("L", (64, 64), 0)
    image.paste(255, (0, 0, 32, 64))  # repaint the left half
    image.save(mask)
    job = easel_json(
        capsys,
        config_file,
        "inpaint",
        parent["id"],
        "--mask",
        str(mask),
        "--prompt",
        "a red door",
        "--fill",
        "latent-noise",
        "--only-masked",
        "--padding",
        "8",
    )
    assert isinstance(job, dict) and job["status"] == "succeeded"
    assert (job["mode"], job["parent_id"], job["prompt"]) == ("inpaint", parent["id"], "a red door")
    assert job["inpaint"]["inpainting_fill"] == 2 and job["inpaint"]["inpaint_full_res"] is True
    repainted = Image.open(job["images"][0]).convert("RGB").crop((48, 0, 64, 64))
    original = Image.open(parent["images"][0]).convert("RGB").crop((48, 0, 64, 64))
    # Beyond the blur band (a 4 px Gaussian reaches ~12 px) the right part is the parent's
    # (within 1/255: A1111's overlay, like diffusers' apply_overlay, is premultiplied alpha).
    difference = ImageChops.difference(repainted, original).getextrema()
    assert max(high for _, high in difference) <= 1, difference

    black = tmp_path / "black.png"
    Image.new("L", (64, 64), 0).save(black)
    assert easel(config_file, "inpaint", parent["id"], "--mask", str(black)) == 2
    assert "all black" in capsys.readouterr().err
    assert easel(config_file, "inpaint", parent["id"], "--mask", str(tmp_path / "no.png")) == 2
    assert "Cannot read" in capsys.readouterr().err


def test_inpaint_a_region_preset_then_zoom_out_and_pan(config_file, capsys) -> None:
    parent = easel_json(
        capsys, config_file, "draw", "a lighthouse", "--size", "64x64", "--steps", "2"
    )
    assert isinstance(parent, dict)
    region = easel_json(capsys, config_file, "inpaint", parent["id"], "--region", "top")
    assert isinstance(region, dict) and region["status"] == "succeeded"
    bottom = (0, 48, 64, 64)  # beyond the top half's blur band: the parent's pixels
    repainted = Image.open(region["images"][0]).convert("RGB").crop(bottom)
    original = Image.open(parent["images"][0]).convert("RGB").crop(bottom)
    assert max(high for _, high in ImageChops.difference(repainted, original).getextrema()) <= 1

    zoomed = easel_json(capsys, config_file, "zoom-out", region["id"], "1.5")
    assert isinstance(zoomed, dict) and zoomed["status"] == "succeeded"
    assert Image.open(zoomed["images"][0]).size == (96, 96)
    assert (zoomed["parent_id"], zoomed["inpaint"]["outpaint"]) == (region["id"], "zoom 1.5")
    panned = easel_json(capsys, config_file, "pan", parent["id"], "down")
    assert isinstance(panned, dict) and Image.open(panned["images"][0]).size == (64, 96)

    assert easel(config_file, "inpaint", parent["id"], "--region", "elsewhere") == 2
    assert "Unknown region" in capsys.readouterr().err
    assert easel(config_file, "zoom-out", parent["id"], "3") == 2
    assert "at most 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: the four directions only
        easel(config_file, "pan", parent["id"], "sideways")
    assert "invalid choice" in capsys.readouterr().err


def test_draw_hires_flag_and_grammar_make_the_same_hires_fix(config_file, capsys) -> None:
    """``easel draw ... --hires`` (alone: 2) and ``--hires`` typed in the prompt are one field;
    the job JSON shows the options, the image is the final size."""
    job = easel_json(
        capsys, config_file, "draw", "a castle --size 64x64 --steps 2 --seed 3", "--hires"
    )
    assert isinstance(job, dict) and job["mode"] == "txt2img"
    assert (job["width"], job["height"]) == (64, 64)  # the first pass's
    assert job["hires"] == {
        "width": 128,
        "height": 128,
        "upscaler": "Lanczos",
        "strength": 0.3,
        "steps": 0,
        "scale": 2.0,
        "resize_x": 0,
        "resize_y": 0,
    }
    with Image.open(job["images"][0]) as image:
        assert image.size == (128, 128)
    capsys.readouterr()
    assert easel(config_file, "draw", "x --size 64x64", "--hires", "5") == 2
    assert "Hires scale 5 is not allowed" in capsys.readouterr().err
    assert easel(config_file, "draw", "x --hires 0.5") == 2
    assert "--hires is out of range" in capsys.readouterr().err
