"""LoRA and embeddings through the one door: registered by an admin, named in prompts as in
A1111, rendered by the real diffusers pipeline on the demo model and checked against plain
diffusers doing the same by hand; refusals queue nothing; reruns are exact or refused."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import diffusers
import numpy as np
import pytest
import torch
from PIL import Image

from bot.app import App
from generation.errors import InvalidRequest, PermissionDenied
from generation.metadata import parse_infotext, read_png_text
from generation.requests import InpaintRequest
from generation.samplers import scheduler_for
from tests.addon_files import make_embedding, make_lora, make_sd1_lora
from tests.e2e.engine_helpers import max_diff, origin, pixels, small, wait_finished

ADMIN = origin("root", admin=True)
SAMPLER = "Euler a"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("addons")
    return {
        "pixel": make_lora(folder / "pixel.safetensors", 1),
        "ink": make_lora(folder / "ink.safetensors", 2),
        "easyneg": make_embedding(folder / "easyneg.safetensors", 3),
        "sd1": make_sd1_lora(folder / "sd1.safetensors"),
    }


async def registered(app_factory: Any, files: dict[str, Path]) -> App:
    app: App = await app_factory()
    await app.service.add_addon(ADMIN, "pixel", str(files["pixel"]), "lora")
    await app.service.add_addon(ADMIN, "ink", str(files["ink"]), "lora")
    await app.service.add_addon(ADMIN, "easyneg", str(files["easyneg"]), "embedding")
    return app


def plain(app: App, prompt: str, negative: str, seed: int, setup: Any = None) -> np.ndarray:
    """What plain diffusers draws from the demo folder after ``setup(pipe)``."""
    d: Any = diffusers
    pipe = d.StableDiffusionPipeline.from_pretrained(str(app.config.data_dir / "models" / "demo"))
    pipe.set_progress_bar_config(disable=True)
    choice = scheduler_for(SAMPLER)
    pipe.scheduler = getattr(diffusers, choice.class_name).from_config(
        pipe.scheduler.config, **choice.options
    )
    if setup is not None:
        setup(pipe)
    image = pipe(
        prompt=prompt,
        negative_prompt=negative,
        generator=torch.Generator("cpu").manual_seed(seed),
        num_inference_steps=4,
        guidance_scale=7.0,
        width=64,
        height=64,
    ).images[0]
    return np.asarray(image.convert("RGB"), dtype=np.int16)


async def drawn(app: App, prompt: str, negative: str = "") -> Any:
    request = small(prompt, negative_prompt=negative, sampler=SAMPLER, cfg=7.0)
    job = await wait_finished(app, (await app.service.draw(origin(), request)).job.id)
    assert job.status == "succeeded", job.error
    return job


async def test_loras_and_an_embedding_equal_plain_diffusers_and_rerun_exactly(
    app_factory: Any, files: dict[str, Path]
) -> None:
    app = await registered(app_factory, files)
    base = await drawn(app, "a cat")
    one = await drawn(app, "a cat <lora:pixel:0.8>")
    assert [(a.name, a.weight) for a in one.spec.loras] == [("pixel", 0.8)]
    assert one.spec.prompt == "a cat <lora:pixel:0.8>"  # stored as typed (infotext, reruns)

    def pixel_08(pipe: Any) -> None:
        pipe.load_lora_weights(str(files["pixel"]), adapter_name="pixel")
        pipe.set_adapters(["pixel"], [0.8])

    assert max_diff(pixels(app, one), plain(app, "a cat ", "", 42, pixel_08)) <= 1
    assert max_diff(pixels(app, one), pixels(app, base)) > 10  # the LoRA changes the picture

    two = await drawn(app, "<lora:ink:0.5> a cat, <lora:pixel>")

    def both(pipe: Any) -> None:
        pipe.load_lora_weights(str(files["ink"]), adapter_name="ink")
        pipe.load_lora_weights(str(files["pixel"]), adapter_name="pixel")
        pipe.set_adapters(["ink", "pixel"], [0.5, 1.0])

    assert max_diff(pixels(app, two), plain(app, " a cat, ", "", 42, both)) <= 1

    neg = await drawn(app, "a cat", "blurry, easyneg")
    assert [a.name for a in neg.spec.embeddings] == ["easyneg"] and not neg.spec.loras

    def embedding(pipe: Any) -> None:
        pipe.load_textual_inversion(str(files["easyneg"]), token="easyneg")

    assert max_diff(pixels(app, neg), plain(app, "a cat", "blurry, easyneg", 42, embedding)) <= 1

    # After all that, a job without add-ons draws what it drew first (adapters off, embedding
    # unloaded), and a rerun of each is identical.
    again = await drawn(app, "a cat")
    assert max_diff(pixels(app, again), pixels(app, base)) == 0
    for job in (one, two, neg):
        rerun = await wait_finished(app, (await app.service.rerun(origin(), job.id)).job.id)
        assert rerun.spec.loras == job.spec.loras and rerun.spec.embeddings == job.spec.embeddings
        assert max_diff(pixels(app, rerun), pixels(app, job)) == 0

    info = parse_infotext(read_png_text(app.images.read(two.images[0].sha256))["parameters"])
    sha = {a.name: a.sha256 for a in two.spec.loras}
    assert info["Lora hashes"] == f"ink: {sha['ink'][:12]}, pixel: {sha['pixel'][:12]}"
    info = parse_infotext(read_png_text(app.images.read(neg.images[0].sha256))["parameters"])
    assert info["TI hashes"] == f"easyneg: {neg.spec.embeddings[0].sha256[:12]}"


async def test_refusals_queue_nothing(
    app_factory: Any, files: dict[str, Path], tmp_path: Path
) -> None:
    app = await registered(app_factory, files)
    service = app.service
    pickled = tmp_path / "old.pt"
    pickled.write_bytes(b"\x80\x04not really")
    corrupt = tmp_path / "broken.safetensors"
    corrupt.write_bytes(files["pixel"].read_bytes()[:-100])
    cases = [
        ("missing", str(tmp_path / "nope.safetensors"), "lora", "no file"),
        ("broken", str(corrupt), "lora", "not a readable .safetensors"),
        ("old", str(pickled), "lora", "pickled"),
        ("emb_as_lora", str(files["easyneg"]), "lora", "no LoRA weights"),
        ("lora_as_emb", str(files["pixel"]), "embedding", "no embedding vectors"),
        ("bad name", str(files["pixel"]), "lora", "letters, digits"),
        ("pixel", str(files["ink"]), "lora", "already registered"),
    ]
    for name, path, kind, message in cases:
        with pytest.raises(InvalidRequest, match=message):
            await service.add_addon(ADMIN, name, path, kind)
    with pytest.raises(PermissionDenied):
        await service.add_addon(origin(), "x", str(files["ink"]), "lora")
    await service.add_addon(ADMIN, "sd1", str(files["sd1"]), "lora")
    assert (await app.store.get_addon("sd1")).family == "sd1"  # type: ignore[union-attr]

    draws = [
        ("a cat <lora:nope>", "Unknown LoRA 'nope'. Registered: ink, pixel, sd1."),
        ("a cat <lora:easyneg>", "Unknown LoRA 'easyneg'"),
        ("a cat <lora:sd1:0.5>", "is for sd1 models; model 'demo' is ctx32"),
        ("a cat <lora:pixel:lots>", "the weight must be a number"),
        ("a cat <lora:pixel> <lora:pixel:0.2>", "named twice"),
    ]
    for prompt, message in draws:
        with pytest.raises(InvalidRequest, match=message):
            await service.draw(origin(), small(prompt))
    await service.add_model(ADMIN, "flux", "builtin:demo-flux")
    with pytest.raises(InvalidRequest, match=r"1\.x, 2\.x and SDXL models; model .flux. is flux"):
        await service.draw(origin(), small("a cat <lora:pixel>", model="flux", sampler="Euler"))
    with pytest.raises(InvalidRequest, match=r"Unknown LoRA 'easyneg'\. Registered: ink, pixel"):
        await service.update_scope_settings(ADMIN, allowed_loras=["ink", "easyneg"])
    await service.update_scope_settings(ADMIN, allowed_loras=["ink"])
    with pytest.raises(InvalidRequest, match=r"LoRA 'pixel' is not allowed here. Allowed: ink."):
        await service.draw(origin(), small("a cat <lora:pixel>"))
    assert await app.store.list_jobs() == []  # nothing was queued

    # A rerun whose file changed, or whose add-on was removed, is refused.
    job = await drawn(app, "a cat <lora:ink:0.7>, easyneg")
    make_embedding(files["easyneg"].parent / "changed.safetensors", 9)
    files["easyneg"].write_bytes((files["easyneg"].parent / "changed.safetensors").read_bytes())
    with pytest.raises(InvalidRequest, match="changed since this job used it"):
        await service.rerun(origin(), job.id)
    with pytest.raises(InvalidRequest, match="changed since it was registered"):
        await service.draw(origin(), small("easyneg"))
    await service.remove_addon(ADMIN, "easyneg")
    await service.add_addon(ADMIN, "easyneg", str(files["easyneg"]), "embedding")
    with pytest.raises(InvalidRequest, match="changed since this job used it"):
        await service.rerun(origin(), job.id)
    await service.remove_addon(ADMIN, "ink")
    with pytest.raises(InvalidRequest, match="'ink', which is no longer registered"):
        await service.reroll(origin(), job.id)


async def test_a_repaint_with_its_own_prompt_reads_its_tags_a_vary_keeps_the_parents(
    app_factory: Any, files: dict[str, Path]
) -> None:
    app = await registered(app_factory, files)
    parent = await drawn(app, "a cat <lora:pixel:0.8>")
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")

    async def repaint(prompt: str | None) -> Any:
        request = InpaintRequest(mask=buffer.getvalue(), prompt=prompt)
        accepted = await app.service.inpaint(origin(), parent.id, request)
        job = await wait_finished(app, accepted.job.id)
        assert job.status == "succeeded", job.error
        return job

    same = await repaint(None)  # the parent's prompt: the parent's LoRA
    assert same.spec.loras == parent.spec.loras
    other = await repaint("a dog <lora:ink:0.5>, easyneg")
    assert [(a.name, a.weight) for a in other.spec.loras] == [("ink", 0.5)]
    assert [a.name for a in other.spec.embeddings] == ["easyneg"]
    plain = await repaint("a dog")
    assert plain.spec.loras == () and plain.spec.embeddings == ()
    vary = await wait_finished(app, (await app.service.vary(origin(), parent.id)).job.id)
    assert vary.status == "succeeded" and vary.spec.loras == parent.spec.loras
    with pytest.raises(InvalidRequest, match="Unknown LoRA 'nope'"):
        await app.service.inpaint(
            origin(), parent.id, InpaintRequest(mask=buffer.getvalue(), prompt="<lora:nope>")
        )
