"""LoRA and textual-inversion embedding files: checked at registration, without torch.

    inspected = inspect_addon("pixelart", "/models/pixelart.safetensors", "lora")
    inspected.sha256, inspected.family     # A1111's hash; "sd1" | "sd2" | "sdxl" | "ctxN"

Only ``.safetensors`` files are read: the header (8-byte length + JSON) gives every tensor's
name and shape, and its offsets must cover the file exactly (a truncated or padded file is
refused as corrupt). Pickled files (``.pt``, ``.ckpt``, ``.bin``...) are refused unless
``generation.allow_unsafe_weights``; then they are registered unread (family unknown).

**Hashes** are A1111's, so the infotext's ``Lora hashes`` / ``TI hashes`` match what A1111 and
Civitai write: a safetensors LoRA's is the sha256 of its tensor data (the bytes after the
header, kohya's "addnet" hash: editing only the metadata keeps it), an embedding's (and a
pickled file's) the sha256 of the whole file. A rerun compares the stored hash with the file's.

**Family**: the width of the text context the file was made for, from its shapes: a LoRA's
cross-attention ``to_k``/``to_v`` input (or its text encoder's width), an embedding's vectors
(SDXL ones hold ``clip_l`` and ``clip_g``). 768 is ``sd1``, 1024 ``sd2``, 2048 ``sdxl``; any
other width N is ``ctxN`` (the demo model's is ``ctx32``). A model's family comes from its UNet
config the same way (:func:`context_family`).
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generation.demo_info import BUILTINS, UNET_CONFIG
from generation.errors import InvalidRequest
from generation.model_sources import UNSAFE_HINT, UNSAFE_SUFFIXES

ADDON_KINDS = ("lora", "embedding")
_FAMILIES = {768: "sd1", 1024: "sd2", 2048: "sdxl"}
_MAX_HEADER = 100_000_000
_CHUNK = 1 << 22
_LORA_KEY = re.compile(
    r"lora[._](down|up|A|B)\b|\.lora_(A|B)\.|lora_(down|up)\.|lora_linear_layer\.(down|up)\."
)
_CROSS_ATTN = re.compile(r"attn2[._]to_[kv]")
_TEXT_ENCODER = re.compile(r"^(lora_te1?_|text_encoder\.|te_)")
_TEXT_ENCODER_2 = re.compile(r"^(lora_te2_|text_encoder_2\.)")
_EMBEDDING_KEYS = ("emb_params", "clip_l", "clip_g")


@dataclass(frozen=True)
class InspectedAddOn:
    path: str  # absolute
    kind: str
    sha256: str
    family: str | None  # None: not read (a pickled file)


def kind_word(kind: str) -> str:
    """How people call an add-on kind: "LoRA" or "embedding"."""
    return "LoRA" if kind == "lora" else "embedding"


def family_of(width: int) -> str:
    return _FAMILIES.get(width, f"ctx{width}")


def inspect_addon(
    name: str, path: str, kind: str, *, allow_unsafe_weights: bool = False
) -> InspectedAddOn:
    """Check ``path`` as a ``kind`` file; :class:`InvalidRequest` says what is wrong."""
    what = f"{kind} {name!r}"
    if kind not in ADDON_KINDS:
        raise InvalidRequest(f"unknown add-on kind {kind!r}; use lora or embedding")
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise InvalidRequest(f"{what}: no file at {path!r}")
    suffix = file.suffix.lower()
    if suffix != ".safetensors":
        if suffix in UNSAFE_SUFFIXES and allow_unsafe_weights:
            return InspectedAddOn(str(file), kind, sha256_of(file, whole=True), None)
        if suffix in UNSAFE_SUFFIXES:
            raise InvalidRequest(f"{what}: {file.name} is a pickled file: {UNSAFE_HINT}")
        raise InvalidRequest(f"{what}: {file.name} is not a .safetensors file")
    header, _ = read_header(file, what)
    shapes = {key: value.get("shape", []) for key, value in header.items()}
    family = lora_family(shapes, what) if kind == "lora" else embedding_family(shapes, what)
    return InspectedAddOn(str(file), kind, file_hash(file, kind), family)


def read_header(file: Path, what: str) -> tuple[dict[str, dict[str, Any]], int]:
    """The tensors of a safetensors header (``__metadata__`` left out) and where data starts."""
    corrupt = f"{what}: {file.name} is not a readable .safetensors file"
    try:
        size = file.stat().st_size
        with file.open("rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            if length > min(_MAX_HEADER, size - 8):
                raise InvalidRequest(f"{corrupt} (bad header length)")
            header = json.loads(fh.read(length))
    except (OSError, struct.error, ValueError) as e:
        raise InvalidRequest(f"{corrupt} ({type(e).__name__})") from e
    if not isinstance(header, dict):
        raise InvalidRequest(f"{corrupt} (the header is not a table)")
    tensors = {k: v for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)}
    ends = [v.get("data_offsets", [0, 0])[1] for v in tensors.values()]
    if not tensors or max(ends) != size - 8 - length:
        raise InvalidRequest(f"{corrupt} (its tensors do not match the file's size: truncated?)")
    return tensors, 8 + length


def lora_family(shapes: Mapping[str, list[int]], what: str) -> str:
    """The family a LoRA is for, from its tensor shapes; refused when no key is a LoRA's."""
    lora_keys = [key for key in shapes if _LORA_KEY.search(key)]
    if not lora_keys:
        raise InvalidRequest(
            f"{what}: no LoRA weights in this file (no lora_down/lora_up or lora_A/lora_B "
            "tensors); is it a checkpoint or an embedding?"
        )
    if any(_TEXT_ENCODER_2.search(key) for key in lora_keys):
        return "sdxl"
    for key in lora_keys:  # the cross-attention's down projection reads the text context
        shape = shapes[key]
        if _CROSS_ATTN.search(key) and re.search(r"(down|_A|\.A)\b", key) and len(shape) == 2:
            return family_of(int(shape[1]))
    for key in lora_keys:  # a text-encoder-only LoRA: the encoder's width
        shape = shapes[key]
        if _TEXT_ENCODER.search(key) and re.search(r"(down|_A|\.A)\b", key) and len(shape) == 2:
            return family_of(int(shape[1]))
    raise InvalidRequest(f"{what}: cannot tell which model family this LoRA is for")


def embedding_family(shapes: Mapping[str, list[int]], what: str) -> str:
    """The family an embedding is for: its vectors' width (SDXL's hold clip_l and clip_g)."""
    if "clip_l" in shapes and "clip_g" in shapes:
        return "sdxl"
    keys = [key for key in shapes if key in _EMBEDDING_KEYS or key.startswith("string_to_param")]
    if not keys and len(shapes) == 1:  # diffusers' own format: {token: vectors}
        keys = list(shapes)
    shape = shapes[keys[0]] if keys else []
    if not keys or len(shape) not in (1, 2) or not shape[-1]:
        raise InvalidRequest(
            f"{what}: no embedding vectors in this file (expected emb_params, string_to_param "
            "or clip_l/clip_g tensors); is it a LoRA or a checkpoint?"
        )
    return family_of(int(shape[-1]))


def sha256_of(file: Path, *, whole: bool) -> str:
    """The sha256 of ``file``, or (``whole=False``) of its safetensors data (A1111's addnet)."""
    digest = hashlib.sha256()
    with file.open("rb") as fh:
        if not whole:
            (length,) = struct.unpack("<Q", fh.read(8))
            fh.seek(8 + length)
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


_HASHES: dict[tuple[str, str, int, int], str] = {}


def file_hash(file: Path, kind: str) -> str:
    """A1111's hash of an add-on file (see the module docstring), remembered per path, size
    and modification time, so an unchanged file is read once per process."""
    stat = file.stat()
    key = (str(file), kind, stat.st_size, stat.st_mtime_ns)
    cached = _HASHES.get(key)
    if cached is None:
        whole = kind == "embedding" or file.suffix.lower() != ".safetensors"
        cached = _HASHES[key] = sha256_of(file, whole=whole)
    return cached


def current_hash(path: str, kind: str) -> str | None:
    """The file's hash now, or None when it is gone or unreadable."""
    try:
        return file_hash(Path(path), kind)
    except (OSError, struct.error):
        return None


def context_family(source: str, kind: str) -> str | None:
    """The family of a registered model from its UNet config (builtin, folder, a single
    file's header, a Hub model in the local cache); None when it cannot be told."""
    try:
        if kind == "builtin" and source in BUILTINS:
            return family_of(int(UNET_CONFIG["cross_attention_dim"]))
        if kind == "folder":
            return _config_family(Path(source) / "unet" / "config.json")
        if kind == "single_file" and source.lower().endswith(".safetensors"):
            tensors, _ = read_header(Path(source), "model")
            for key, value in tensors.items():
                if _CROSS_ATTN.search(key) and key.endswith("weight"):
                    return family_of(int(value["shape"][1]))
        if kind == "hub":
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(source, "unet/config.json")
            if isinstance(cached, str):
                return _config_family(Path(cached))
    except (OSError, ValueError, KeyError, IndexError, InvalidRequest):
        return None
    return None


def _config_family(config: Path) -> str | None:
    if not config.is_file():
        return None
    width = json.loads(config.read_text(encoding="utf-8")).get("cross_attention_dim")
    return family_of(int(width)) if isinstance(width, int) else None


def file_metadata(path: str) -> dict[str, str]:
    """A safetensors file's ``__metadata__`` (kohya's ``ss_*`` keys...); {} when it has none
    or cannot be read (a pickled file)."""
    try:
        with Path(path).open("rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            if length > _MAX_HEADER:
                return {}
            metadata = json.loads(fh.read(length)).get("__metadata__") or {}
    except (OSError, struct.error, ValueError, AttributeError):
        return {}
    return {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {}


def embedding_vectors(path: str) -> tuple[int, int] | None:
    """(vectors, width) of an embedding file (SDXL's: clip_l's and clip_g's widths added), or
    None when it cannot be read."""
    try:
        tensors, _ = read_header(Path(path), "embedding")
    except InvalidRequest:
        return None
    shapes = {key: value.get("shape", []) for key, value in tensors.items()}
    if "clip_l" in shapes and "clip_g" in shapes:
        return int(shapes["clip_l"][0]), int(shapes["clip_l"][-1]) + int(shapes["clip_g"][-1])
    shape = next(iter(shapes.values()))
    return (int(shape[0]) if len(shape) == 2 else 1), int(shape[-1])
