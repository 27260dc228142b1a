"""Model sources at registration time: classify, validate and identify them, without torch.

``inspect_source`` and ``inspect_upscaler`` run when a model is registered (``easel models add``,
the admin API) and read only file headers and the local Hugging Face cache: they download nothing
and never import torch or diffusers, so registering a model does not pay for them. The backend
also takes its Hub helpers from here (``offline``, ``hub_error``, ``is_sdxl_file``).

Model identity (``ModelSource.revision``):

* ``builtin``: ``DEMO_REVISION``;
* ``hub``: the commit hash of the snapshot in the local Hugging Face cache (``None`` when the
  repository is not cached yet: it is downloaded on first load, after which ``inspect_source``
  returns the commit); a known commit is passed to ``from_pretrained`` so loads are pinned;
* ``folder``: a sha256 fingerprint of the folder: every file's relative path and size, the full
  text of small files (configs) and the first and last MiB of large ones (weights);
* ``single_file`` / ``upscaler``: the sha256 of the file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import struct
from pathlib import Path
from typing import Any, Protocol

from generation.demo_info import BUILTINS
from generation.errors import ModelError
from generation.families import (
    FAMILIES,
    Family,
    family_of_keys,
    family_of_pipeline,
    registration_defaults,
)
from generation.render import ModelSource


class ModelRecordLike(Protocol):
    """What ``model_family`` reads of a model (a ``ModelSource`` or a registry record)."""

    @property
    def kind(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def revision(self) -> str | None: ...


UNSAFE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth", ".pkl")
UNSAFE_HINT = (
    "only .safetensors weights are loaded; set generation.allow_unsafe_weights = true to allow "
    "pickled weights (they can run arbitrary code: only for files you trust)"
)
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_SMALL_FILE = 1 << 20


def offline() -> bool:
    """Whether the Hugging Face Hub is switched off (``HF_HUB_OFFLINE``)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
        return True
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - huggingface_hub comes with diffusers
        return False
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def offline_message(repo: str) -> str:
    return (
        f"model {repo!r} is not in the local Hugging Face cache and the machine is offline "
        "(HF_HUB_OFFLINE=1): download it once with network access, or register a local folder"
    )


def hub_error(model: ModelSource, e: Exception) -> ModelError:
    """What went wrong loading a Hub model, in words (offline, missing or gated, or other)."""
    kind = type(e).__name__
    if offline() and (kind == "LocalEntryNotFoundError" or isinstance(e, OSError)):
        return ModelError(offline_message(model.source))
    if kind in {"RepositoryNotFoundError", "GatedRepoError"}:
        return ModelError(
            f"model {model.name!r}: Hub repository {model.source!r} was not found or needs a "
            "login (run `huggingface-cli login` for gated models)"
        )
    return ModelError(
        f"model {model.name!r} could not be loaded from the Hub ({model.source!r}): {kind}: {e}"
    )


def cached_commit(repo: str) -> str | None:
    """The commit of ``repo``'s cached snapshot (``model_index.json`` present), else None."""
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(repo, "model_index.json")
    if not isinstance(hit, str):
        return None
    parts = Path(hit).parts
    return parts[-2] if len(parts) >= 2 and parts[-3] == "snapshots" else None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def folder_fingerprint(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if any(part.startswith(".") for part in rel.split("/")):
            continue
        size = path.stat().st_size
        digest.update(f"{rel}\0{size}\0".encode())
        with path.open("rb") as fh:
            if size <= 2 * _SMALL_FILE:
                digest.update(fh.read())
            else:
                digest.update(fh.read(_SMALL_FILE))
                fh.seek(-_SMALL_FILE, os.SEEK_END)
                digest.update(fh.read(_SMALL_FILE))
    return digest.hexdigest()


def safetensors_keys(path: Path) -> list[str]:
    """Tensor names from a .safetensors header, without reading the weights."""
    with path.open("rb") as fh:
        (length,) = struct.unpack("<Q", fh.read(8))
        if length > 100_000_000:
            raise ModelError(f"{path} is not a valid .safetensors file (header too large)")
        header = json.loads(fh.read(length))
    return [key for key in header if key != "__metadata__"]


def is_sdxl_file(path: Path) -> bool:
    """Whether a single-file checkpoint is SDXL (its second text encoder), else SD 1.x/2.x."""
    if path.suffix.lower() == ".safetensors":
        return any(key.startswith("conditioner.embedders.1") for key in safetensors_keys(path))
    return "xl" in path.stem.lower()


# ----------------------------------------------------------------- registration


def inspect_source(
    name: str, source: str, config: str | None = None, *, allow_unsafe_weights: bool = False
) -> ModelSource:
    """Classify and validate ``source``; compute its revision. Downloads nothing."""
    source = source.strip()
    if source.startswith("builtin:"):
        if source not in BUILTINS:
            known = " and ".join(BUILTINS)
            raise ModelError(f"unknown built-in model {source!r}; the built-in ones are {known}")
        return ModelSource(name, source, "builtin", BUILTINS[source][1])
    path = Path(source).expanduser()
    if path.is_dir():
        return _inspect_folder(name, path, allow_unsafe_weights)
    if path.is_file():
        return _inspect_file(name, path, config, allow_unsafe_weights)
    looks_like_path = (
        source.startswith((".", "/", "~", "\\"))
        or source.lower().endswith((".safetensors", *UNSAFE_SUFFIXES))
        or bool(re.match(r"^[A-Za-z]:[\\/]", source))
    )
    if HUB_ID.match(source) and not looks_like_path:
        commit = cached_commit(source)
        if commit is None and offline():
            raise ModelError(offline_message(source))
        return ModelSource(name, source, "hub", commit)
    raise ModelError(
        f"model {name!r}: no such file or folder: {str(path)!r} (give a diffusers folder, a "
        ".safetensors file, a Hugging Face repo id like 'org/name', or builtin:demo)"
    )


def _inspect_folder(name: str, path: Path, allow_unsafe: bool) -> ModelSource:
    if not (path / "model_index.json").is_file():
        raise ModelError(
            f"model {name!r}: {str(path)!r} is not a diffusers folder (no model_index.json); "
            "for a single checkpoint register the .safetensors file itself"
        )
    files = [p for p in path.rglob("*") if p.is_file()]
    has_safe = any(p.suffix.lower() == ".safetensors" for p in files)
    has_unsafe = any(p.suffix.lower() in UNSAFE_SUFFIXES for p in files)
    if not has_safe and has_unsafe and not allow_unsafe:
        raise ModelError(
            f"model {name!r}: {str(path)!r} has no .safetensors weights: {UNSAFE_HINT}"
        )
    if not has_safe and not has_unsafe:
        raise ModelError(f"model {name!r}: {str(path)!r} contains no weight files")
    return ModelSource(name, str(path.resolve()), "folder", folder_fingerprint(path))


def _inspect_file(name: str, path: Path, config: str | None, allow_unsafe: bool) -> ModelSource:
    suffix = path.suffix.lower()
    if suffix in UNSAFE_SUFFIXES and not allow_unsafe:
        raise ModelError(f"model {name!r}: {path.name} is a pickled checkpoint: {UNSAFE_HINT}")
    if suffix not in {".safetensors", *UNSAFE_SUFFIXES}:
        raise ModelError(f"model {name!r}: {path.name} is not a model file (expected .safetensors)")
    if suffix == ".safetensors":
        try:
            safetensors_keys(path)
        except (OSError, ValueError, struct.error) as e:
            raise ModelError(
                f"model {name!r}: {path.name} is not a valid .safetensors file: {e}"
            ) from e
    if config is not None:
        config = _check_config(name, config)
    return ModelSource(name, str(path.resolve()), "single_file", sha256_file(path), config)


def _check_config(name: str, config: str) -> str:
    folder = Path(config).expanduser()
    if folder.is_dir():
        if not (folder / "model_index.json").is_file():
            raise ModelError(
                f"model {name!r}: --config {config!r} is not a diffusers folder "
                "(no model_index.json)"
            )
        return str(folder.resolve())
    if HUB_ID.match(config):
        if cached_commit(config) is None:
            raise ModelError(
                f"model {name!r}: --config {config!r} is not in the local Hugging Face cache; "
                "single files load their configs offline: download that repo once, or give a "
                "local diffusers folder of the same architecture"
            )
        return config
    raise ModelError(f"model {name!r}: --config {config!r}: no such folder or Hub repo id")


def inspect_upscaler(name: str, path: str, *, allow_unsafe_weights: bool = False) -> ModelSource:
    """An ESRGAN-family upscaler file (loaded later with spandrel); revision = file sha256."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ModelError(f"upscaler {name!r}: no such file: {str(file)!r}")
    suffix = file.suffix.lower()
    if suffix in UNSAFE_SUFFIXES and not allow_unsafe_weights:
        raise ModelError(f"upscaler {name!r}: {file.name} is pickled: {UNSAFE_HINT}")
    if suffix not in {".safetensors", *UNSAFE_SUFFIXES}:
        raise ModelError(f"upscaler {name!r}: {file.name} is not a weights file")
    return ModelSource(name, str(file.resolve()), "upscaler", sha256_file(file))


# ----------------------------------------------------------------- families


def _hub_index(repo: str, revision: str | None) -> Path | None:
    """``repo``'s cached model_index.json, if it has been downloaded."""
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(repo, "model_index.json", revision=revision)
    return Path(hit) if isinstance(hit, str) else None


@functools.lru_cache(maxsize=256)
def _family_name(kind: str, source: str, revision: str | None) -> str:
    """The family of a registered model (see ``generation.families``), read from its files; a
    model's files do not change under one revision, so the answer is cached by it."""
    from generation.family_demos_info import FAMILY_OF_BUILTIN

    if kind == "builtin":
        return FAMILY_OF_BUILTIN.get(source, "sd1")
    if kind == "single_file":
        path = Path(source)
        if path.suffix.lower() == ".safetensors" and path.is_file():
            return family_of_keys(safetensors_keys(path)).name
        stem = path.stem.lower()
        return "flux" if "flux" in stem else "sdxl" if "xl" in stem else "sd1"
    index: Path | None = None
    if kind == "folder":
        index = Path(source) / "model_index.json"
    elif kind == "hub":
        index = _hub_index(source, revision)
    if index is None or not index.is_file():
        return "other"  # not downloaded yet: nothing to tell from
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
        class_name = str(data.get("_class_name", ""))
        encoder = index.parent / "text_encoder" / "config.json"
        v2 = encoder.is_file() and json.loads(encoder.read_text("utf-8")).get("hidden_size") == 1024
    except (OSError, ValueError, AttributeError):
        return "other"
    first_encoder = data.get("text_encoder") not in (None, [None, None])  # refiners have none
    return family_of_pipeline(class_name, v2=v2, first_encoder=first_encoder).name


def model_family(model: ModelSource | ModelRecordLike) -> Family:
    """The family of a registered model (a ``ModelSource`` or a registry record)."""
    if model.kind == "hub" and _hub_index(model.source, model.revision) is None:
        return FAMILIES["other"]  # not downloaded yet: asked again (uncached) after the download
    try:
        name = _family_name(model.kind, model.source, model.revision)
    except (OSError, ValueError, ModelError, struct.error):
        name = "other"
    return FAMILIES[name]


def family_defaults(model: ModelSource, given: dict[str, Any], max_pixels: int) -> dict[str, Any]:
    """The ``--default-*`` values to register ``model`` with: ``given`` (None = not given)
    completed with its family's (an SD3 or Flux model cannot keep the registry's SD sampler),
    or the tiny built-in model's own."""
    from generation.family_demos_info import FAMILY_DEMO_DEFAULTS

    family = model_family(model)
    if given.get("sampler") is not None:
        family.scheduler(str(given["sampler"]))  # refuses a sampler the family has no use for
    demo = FAMILY_DEMO_DEFAULTS.get(model.source) if model.kind == "builtin" else None
    if demo is not None:
        out = {key: value for key, value in given.items() if value is not None}
        out.setdefault("sampler", demo.sampler)
        out.setdefault("steps", demo.steps)
        out.setdefault("cfg", demo.cfg)
        if "width" not in out:
            out["width"], out["height"] = demo.width, demo.height
        return out
    if family.name == "flux" and given.get("steps") is None and is_flux_schnell(model):
        given = {**given, "steps": SCHNELL_STEPS}  # timestep-distilled: 28 steps waste 7x
    return registration_defaults(family, given, max_pixels)


SCHNELL_STEPS = 4  # FLUX.1-schnell's model card: 1-4 steps


def is_flux_schnell(model: ModelSource) -> bool:
    """Whether a Flux model is timestep-distilled like FLUX.1-schnell: its transformer takes no
    guidance input (``guidance_embeds`` false; a single file without ``guidance_in`` weights).
    Unknown (a Hub model not downloaded yet): False."""
    try:
        if model.kind == "single_file":
            return not any("guidance_in." in key for key in safetensors_keys(Path(model.source)))
        config: Path | None = None
        if model.kind == "folder":
            config = Path(model.source) / "transformer" / "config.json"
        elif model.kind == "hub":
            from huggingface_hub import try_to_load_from_cache

            hit = try_to_load_from_cache(
                model.source, "transformer/config.json", revision=model.revision
            )
            config = Path(hit) if isinstance(hit, str) else None
        if config is None or not config.is_file():
            return False
        return json.loads(config.read_text(encoding="utf-8")).get("guidance_embeds") is False
    except (OSError, ValueError, AttributeError, struct.error):
        return False


def model_capabilities(model: ModelRecordLike) -> dict[str, object]:
    """What a front end may offer for ``model``: its family and what that supports
    (``Family.capabilities``); nothing for an upscaler."""
    return {} if model.kind == "upscaler" else model_family(model).capabilities()


MODEL_DTYPES = ("float16", "bfloat16", "float32")


def check_dtype(dtype: str | None) -> None:
    """Refuse a registration dtype that is not one of ``MODEL_DTYPES`` (None: the config's)."""
    if dtype is not None and dtype not in MODEL_DTYPES:
        raise ModelError(
            f"dtype {dtype!r} is not one Easel loads models in: use {', '.join(MODEL_DTYPES)}, "
            "or leave it out for the config's generation.dtype"
        )
