"""SDXL, SD3 and Flux.1 through the backend: the tiny built-in models of each family render the
pixels plain diffusers draws from the same folder (CPU generator, same seed, within 1/255),
reruns are identical, image-to-image and inpainting work, and what a family cannot do is
refused with its reason."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import diffusers
import numpy as np
import pytest
import torch
from PIL import Image

from generation.backend import DiffusersBackend, ModelSource, RenderJob
from generation.backend.family_calls import call_kwargs
from generation.errors import EaselError, InvalidRequest
from generation.families import FAMILIES, check_spec, family_of_keys, family_of_pipeline
from generation.family_demos_info import FAMILY_BUILTINS, FAMILY_DEMO_DEFAULTS
from generation.model_sources import inspect_source, model_family
from generation.spec import GenerationSpec, Hires, Mode

TOLERANCE = 1  # uint8 levels, i.e. 1/255
# family -> (builtin source, the plain diffusers pipeline classes: text, image-to-image)
CASES: dict[str, tuple[str, str, str]] = {
    "sdxl": ("builtin:demo-sdxl", "StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline"),
    "sd3": ("builtin:demo-sd3", "StableDiffusion3Pipeline", "StableDiffusion3Img2ImgPipeline"),
    "flux": ("builtin:demo-flux", "FluxPipeline", "FluxImg2ImgPipeline"),
}


@pytest.fixture(scope="module")
def backend(family_data_dir: Path) -> Iterator[DiffusersBackend]:
    backend = DiffusersBackend(data_dir=family_data_dir, device="cpu", resident_models=3)
    yield backend
    backend.close()


def _ignore(step: int, total: int, preview: bytes | None) -> None:
    pass


def _never() -> bool:
    return False


def _diff(a: Image.Image, b: Image.Image) -> int:
    assert a.size == b.size
    pa, pb = (np.asarray(x.convert("RGB"), dtype=np.int16) for x in (a, b))
    return int(np.abs(pa - pb).max())


def _spec(family: str, **changes: Any) -> GenerationSpec:
    source = CASES[family][0]
    d = FAMILY_DEMO_DEFAULTS[source]
    negative = "blurry" if FAMILIES[family].negative_prompt else ""
    base = GenerationSpec(
        mode=Mode.TXT2IMG,
        prompt="a castle at dusk",
        negative_prompt=negative,
        model=family,
        sampler=d.sampler,
        width=d.width,
        height=d.height,
        steps=d.steps,
        cfg=d.cfg,
        seed=1234,
    )
    return replace(base, **changes)


def _source(family: str) -> ModelSource:
    return inspect_source(family, CASES[family][0])


def _plain(family_data_dir: Path, family: str, which: int) -> Any:
    folder = family_data_dir / "models" / FAMILY_BUILTINS[CASES[family][0]][0]
    pipe = getattr(diffusers, CASES[family][which]).from_pretrained(str(folder))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _plain_kwargs(family: str, spec: GenerationSpec) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "prompt": spec.prompt,
        "num_inference_steps": spec.steps,
        "guidance_scale": spec.cfg,
        "generator": torch.Generator("cpu").manual_seed(spec.seed),
    }
    if FAMILIES[family].negative_prompt:
        kwargs["negative_prompt"] = spec.negative_prompt
    return kwargs


@pytest.mark.parametrize("family", list(CASES))
def test_text_to_image_equals_plain_diffusers_and_reruns_exactly(
    backend: DiffusersBackend, family_data_dir: Path, family: str
) -> None:
    spec = _spec(family)
    ours = backend.render(RenderJob(spec, _source(family)), _ignore, _never)
    again = backend.render(RenderJob(spec, _source(family)), _ignore, _never)
    plain = _plain(family_data_dir, family, 1)
    if family == "sdxl":  # the demo's sampler, as A1111's "Euler a" maps it
        plain.scheduler = diffusers.EulerAncestralDiscreteScheduler.from_config(
            plain.scheduler.config
        )
    theirs = plain(width=spec.width, height=spec.height, **_plain_kwargs(family, spec)).images[0]
    assert ours[0].size == (64, 64)
    assert _diff(ours[0], theirs) <= TOLERANCE
    assert _diff(ours[0], again[0]) == 0
    other = backend.render(RenderJob(replace(spec, seed=99), _source(family)), _ignore, _never)
    assert _diff(ours[0], other[0]) > 10


@pytest.mark.parametrize("family", list(CASES))
def test_image_to_image_equals_plain_diffusers(
    backend: DiffusersBackend, family_data_dir: Path, family: str
) -> None:
    init = Image.radial_gradient("L").resize((64, 64)).convert("RGB")
    spec = _spec(family, mode=Mode.IMG2IMG, strength=0.5, init_image="x" * 64)
    ours = backend.render(RenderJob(spec, _source(family), init_image=init), _ignore, _never)
    plain = _plain(family_data_dir, family, 2)
    if family == "sdxl":
        plain.scheduler = diffusers.EulerAncestralDiscreteScheduler.from_config(
            plain.scheduler.config
        )
    sizes = {"width": 64, "height": 64} if family != "sdxl" else {}
    theirs = plain(image=init, strength=0.5, **sizes, **_plain_kwargs(family, spec)).images[0]
    assert _diff(ours[0], theirs) <= TOLERANCE
    assert _diff(ours[0], init) > 10


@pytest.mark.parametrize("family", list(CASES))
def test_inpainting_keeps_the_unmasked_part(backend: DiffusersBackend, family: str) -> None:
    init = Image.new("RGB", (64, 64), (200, 40, 40))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))
    spec = _spec(family, mode=Mode.INPAINT, strength=0.9, init_image="x" * 64)
    job = RenderJob(spec, _source(family), init_image=init, mask_image=mask)
    out = backend.render(job, _ignore, _never)[0]
    right = np.asarray(out)[:, 48:].astype(int)
    left = np.asarray(out)[:, :16].astype(int)
    assert np.abs(right - (200, 40, 40)).max() <= 2  # pasted back as it was
    assert np.abs(left - (200, 40, 40)).max() > 10  # repainted


def test_sd3_heun_is_its_flow_matching_heun(backend: DiffusersBackend) -> None:
    euler = backend.render(RenderJob(_spec("sd3"), _source("sd3")), _ignore, _never)[0]
    heun = backend.render(RenderJob(_spec("sd3", sampler="Heun"), _source("sd3")), _ignore, _never)
    assert _diff(euler, heun[0]) > 0


def test_a_sampler_the_family_lacks_is_refused_by_the_backend_too(
    backend: DiffusersBackend,
) -> None:
    spec = _spec("flux", sampler="DPM++ 2M Karras")
    with pytest.raises(EaselError, match=r"Flux\.1 models cannot use the sampler"):
        backend.render(RenderJob(spec, _source("flux")), _ignore, _never)


# ------------------------------------------------------------------ families (pure)


def test_family_detection_from_builtins_folders_classes_and_keys(family_data_dir: Path) -> None:
    for family, (source, _, _) in CASES.items():
        assert model_family(_source(family)).name == family
        folder = family_data_dir / "models" / FAMILY_BUILTINS[source][0]
        assert model_family(inspect_source("f", str(folder))).name == family
    assert model_family(inspect_source("d", "builtin:demo")).name == "sd1"
    assert family_of_pipeline("StableDiffusionXLInpaintPipeline").name == "sdxl"
    assert family_of_pipeline("StableDiffusionPipeline", v2=True).name == "sd2"
    assert family_of_pipeline("KandinskyV22Pipeline").name == "other"
    assert family_of_keys(["double_blocks.0.img_attn.qkv.weight"]).name == "flux"
    assert family_of_keys(["model.diffusion_model.joint_blocks.0.x"]).name == "sd3"
    assert family_of_keys(["conditioner.embedders.1.model.ln_final.weight"]).name == "sdxl"
    assert family_of_keys(["cond_stage_model.model.ln_final.weight"]).name == "sd2"
    assert family_of_keys(["cond_stage_model.transformer.x"]).name == "sd1"


def test_refusals_say_why() -> None:
    flux, sd3 = FAMILIES["flux"], FAMILIES["sd3"]
    with pytest.raises(InvalidRequest, match=r"Flux\.1 ignores the negative prompt"):
        check_spec(flux, _spec("flux", negative_prompt="blurry"))
    with pytest.raises(InvalidRequest, match="only Euler does"):
        check_spec(flux, _spec("flux", sampler="Euler a"))
    with pytest.raises(InvalidRequest, match="only Euler, Heun do"):
        check_spec(sd3, _spec("sd3", sampler="DPM++ 2M Karras"))
    with pytest.raises(InvalidRequest, match="cannot use the hires upscaler 'Latent'"):
        check_spec(sd3, _spec("sd3", hires=Hires(128, 128, "Latent", 0.5)))
    check_spec(sd3, _spec("sd3", hires=Hires(128, 128, "Lanczos", 0.5)))
    check_spec(FAMILIES["sdxl"], _spec("sdxl", sampler="DPM++ 2M Karras"))  # every A1111 one


def test_call_kwargs_per_family() -> None:
    assert call_kwargs(FAMILIES["flux"], [""], True, width=64, height=64) == {}
    xl = call_kwargs(FAMILIES["sdxl"], ["x", "y"], False, width=96, height=64)
    assert xl == {"negative_prompt": ["x", "y"], "original_size": (64, 96), "target_size": (64, 96)}


def test_family_dtype_registered_then_auto_then_configured() -> None:
    from generation.backend.family_calls import family_dtype

    sd1, flux = FAMILIES["sd1"], FAMILIES["flux"]
    f16, f32 = torch.float16, torch.float32
    assert family_dtype(flux, "cpu", "auto", f32, "bfloat16") == f32  # the CPU renders in fp32
    assert family_dtype(sd1, "cuda", "auto", f16, "bfloat16") == torch.bfloat16  # --dtype wins
    assert family_dtype(sd1, "cuda", "auto", f16, None) == f16
    assert family_dtype(flux, "mps", "float16", f16, None) == f16  # a fixed config dtype


@pytest.mark.parametrize(
    ("key", "label", "example"),
    [
        ("double_blocks.0.img_attn.qkv.weight", "Flux.1", "black-forest-labs/FLUX.1-dev"),
        ("model.diffusion_model.joint_blocks.0.x.w", "Stable Diffusion 3", "stable-diffusion-3.5"),
    ],
)
def test_a_single_file_loads_with_its_familys_pipeline(
    backend: DiffusersBackend, tmp_path: Path, key: str, label: str, example: str
) -> None:
    """A checkpoint file is read by its family's pipeline class; without --config (no configs
    offline) the refusal names the family and a Hub id to take the configs from."""
    from safetensors.torch import save_file

    file = tmp_path / "model.safetensors"
    save_file({key: torch.zeros(1)}, str(file))
    model = inspect_source("one", str(file))
    assert model.kind == "single_file"
    with pytest.raises(EaselError, match=f"{label} single file") as refused:
        backend.render(RenderJob(_spec("flux", model="one"), model), _ignore, _never)
    assert example in str(refused.value)


def test_flow_models_report_every_step_without_preview_warnings(
    backend: DiffusersBackend, caplog: pytest.LogCaptureFixture
) -> None:
    for family in ("sd3", "flux"):
        seen: list[tuple[int, int]] = []

        def report(step: int, total: int, png: bytes | None, seen: list[Any] = seen) -> None:
            seen.append((step, total))

        backend.render(RenderJob(_spec(family), _source(family)), report, _never)
        assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert "previews failed" not in caplog.text


def test_hub_loading_path_on_a_local_cache(
    backend: DiffusersBackend,
    family_data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real Hub code path (registration reads the cached commit, the loader downloads
    model_index.json and calls from_pretrained offline) on a Hugging Face cache holding the
    tiny Flux folder: the family is read from the cached index, the pixels are the folder's."""
    import huggingface_hub.constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--easel--tiny-flux"
    shutil.copytree(family_data_dir / "models" / "demo-flux", repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    model = inspect_source("hubflux", "easel/tiny-flux")
    assert (model.kind, model.revision, model_family(model).name) == ("hub", commit, "flux")
    ours = backend.render(RenderJob(_spec("flux"), model), _ignore, _never)[0]
    folder = backend.render(RenderJob(_spec("flux"), _source("flux")), _ignore, _never)[0]
    assert _diff(ours, folder) == 0


@pytest.mark.parametrize("family", ["sd3", "flux"])
def test_flow_models_hires_fix_is_the_first_pass_then_the_upscale_action(
    backend: DiffusersBackend, family: str
) -> None:
    """With a pixel upscaler the hires fix needs no SD latents: the first pass, Lanczos to the
    final size, then image-to-image, exactly what the Upscale action does to that picture."""
    hires = Hires(128, 128, "Lanczos", 0.5)
    [ours] = backend.render(RenderJob(_spec(family, hires=hires), _source(family)), _ignore, _never)
    assert ours.size == (128, 128)
    [first] = backend.render(RenderJob(_spec(family), _source(family)), _ignore, _never)
    upscale = _spec(
        family, mode=Mode.UPSCALE, width=128, height=128, strength=0.5, upscaler="hires",
        init_image="x" * 64,
    )  # fmt: skip
    [theirs] = backend.render(
        RenderJob(upscale, _source(family), init_image=first), _ignore, _never
    )
    assert _diff(ours, theirs) == 0


@pytest.mark.parametrize("family", ["sd3", "flux"])
def test_flow_image_to_image_keeps_a_non_square_size(
    backend: DiffusersBackend, family: str
) -> None:
    """SD3's and Flux's image-to-image pipelines draw at the model's default square size unless
    told the size: Easel tells them the picture's."""
    init = Image.radial_gradient("L").resize((96, 64)).convert("RGB")
    spec = _spec(family, mode=Mode.IMG2IMG, strength=0.5, width=96, height=64, init_image="x" * 64)
    [out] = backend.render(RenderJob(spec, _source(family), init_image=init), _ignore, _never)
    assert out.size == (96, 64)


def test_a_flux_schnell_folder_is_registered_with_four_steps(
    family_data_dir: Path, tmp_path: Path
) -> None:
    """FLUX.1-schnell (a transformer without a guidance input) gets its model card's steps;
    Flux.1-dev keeps the family's 28; steps the admin gives are kept."""
    import json

    from generation.model_sources import family_defaults

    dev = family_data_dir / "models" / FAMILY_BUILTINS[CASES["flux"][0]][0]
    schnell = tmp_path / "schnell"
    shutil.copytree(dev, schnell)
    config = schnell / "transformer" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "guidance_embeds": False}))
    pixels = 1024 * 1024
    assert family_defaults(inspect_source("s", str(schnell)), {}, pixels)["steps"] == 4
    assert family_defaults(inspect_source("d", str(dev)), {}, pixels)["steps"] == 28
    assert family_defaults(inspect_source("s", str(schnell)), {"steps": 8}, pixels)["steps"] == 8
