"""AUTOMATIC1111 infotext and PNG text chunks (A1111-API.md §6), with Pillow only.

Every PNG Easel writes carries two text chunks:

* ``parameters``: the A1111 infotext, so A1111's "PNG Info" tab, sd-parsers and image browsers
  recognise our images (``tEXt`` when Latin-1 encodable, else UTF-8 ``iTXt``);
* ``easel_job_id``: the job that made it, so a re-uploaded image finds its record.
"""

from __future__ import annotations

import io
import json
import re
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path

from PIL import Image, PngImagePlugin

from generation.errors import ImageRejected

PARAMETERS_KEY = "parameters"
JOB_ID_KEY = "easel_job_id"
JOB_ID_PARAM = "Easel job"

# §6.5: A1111's own patterns (modules/infotext_utils.py).
_PARAM_RE = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_IMAGE_SIZE_RE = re.compile(r"^(\d+)x(\d+)$")
_KEY_RE = re.compile(r"^\w[\w \-/]+$")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MAX_TEXT_BYTES = 1 << 20  # cap on one decompressed text chunk (zip bombs in metadata)


def _quote(value: str) -> str:
    """§6.4: JSON-quote a value containing ``,``, ``:`` or a newline, else write it raw.

    Also quoted (harmless for A1111, which JSON-decodes any quoted value): values with
    surrounding whitespace or quote marks, which would not survive the parser raw.
    """
    if (
        any(ch in value for ch in ",:\n")
        or value != value.strip()
        or value.startswith('"')
        or value.endswith('"')
    ):
        return json.dumps(value, ensure_ascii=False)
    return value


def _item(key: str, value: object) -> str:
    text = str(value)
    if text == key:  # §6.2: a value equal to its key is written as the bare key (extras only)
        return key
    return f"{key}: {_quote(text)}"


def build_infotext(
    *,
    prompt: str,
    negative_prompt: str,
    steps: int,
    sampler: str,
    cfg: float,
    seed: int,
    width: int,
    height: int,
    model: str,
    model_hash: str | None,
    job_id: str,
    strength: float | None = None,
    extra: Mapping[str, object] | None = None,
    version: str = "Easel",
) -> str:
    """The A1111 infotext for one image (§6.2–6.4).

    ``cfg`` is rendered as a float (``7.0``) like A1111's API; ``model_hash`` is cut to the 10
    hex characters A1111 shows. ``extra`` items (``None`` values skipped) come after
    ``Denoising strength``, before ``Easel job`` and ``Version``.
    """
    params: list[tuple[str, object]] = [
        ("Steps", int(steps)),
        ("Sampler", sampler),
        ("CFG scale", float(cfg)),
        ("Seed", int(seed)),
        ("Size", f"{int(width)}x{int(height)}"),
    ]
    if model_hash:
        params.append(("Model hash", model_hash[:10]))
    params.append(("Model", model))
    if strength is not None:
        params.append(("Denoising strength", float(strength)))
    fixed = {key for key, _ in params} | {JOB_ID_PARAM, "Version", "Prompt", "Negative prompt"}
    for key, value in (extra or {}).items():
        if not _KEY_RE.match(key) or key in fixed:
            raise ValueError(f"invalid or reserved infotext key {key!r}")
        if value is not None:
            params.append((key, value))
    params.append((JOB_ID_PARAM, job_id))
    params.append(("Version", version))

    text = prompt
    if negative_prompt:
        text += "\nNegative prompt: " + negative_prompt
    items = [
        _item(key, value) if key not in fixed else f"{key}: {_quote(str(value))}"
        for key, value in params
    ]
    text += "\n" + ", ".join(items)
    return text.strip()


def _unquote(value: str) -> str:
    try:
        decoded = json.loads(value)
    except ValueError:
        return value
    return decoded if isinstance(decoded, str) else value


def parse_infotext(text: str) -> dict[str, str]:
    """Parse an infotext the way A1111 does (§6.5 steps 1–4); every value stays a string.

    The result also has ``"Prompt"`` and ``"Negative prompt"`` (``""`` when absent). ``WxH``
    values become ``<Key>-1``/``<Key>-2``. A1111's defaults (§6.5 step 5) are not added.
    """
    *lines, last_line = text.strip().split("\n")
    if len(_PARAM_RE.findall(last_line)) < 3:
        lines.append(last_line)
        last_line = ""

    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    in_negative = False
    for raw in lines:
        line = raw.strip()
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:") :].strip()
        (negative_lines if in_negative else prompt_lines).append(line)

    result: dict[str, str] = {
        "Prompt": "\n".join(prompt_lines),
        "Negative prompt": "\n".join(negative_lines),
    }
    for key, raw_value in _PARAM_RE.findall(last_line):
        value = raw_value
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            value = _unquote(value)
        size = _IMAGE_SIZE_RE.match(value)
        if size is not None:
            result[f"{key}-1"] = size.group(1)
            result[f"{key}-2"] = size.group(2)
        else:
            result[key] = value
    return result


def encode_png(image: Image.Image, infotext: str, job_id: str) -> bytes:
    """The image as PNG bytes with ``parameters`` and ``easel_job_id`` text chunks.

    Identical input gives identical bytes (Pillow writes no timestamp chunk).
    """
    info = PngImagePlugin.PngInfo()
    info.add_text(PARAMETERS_KEY, infotext)  # tEXt if Latin-1 encodable, else iTXt (UTF-8)
    info.add_text(JOB_ID_KEY, job_id)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, _MAX_TEXT_BYTES)
    if inflater.unconsumed_tail:
        raise ImageRejected("A compressed PNG text chunk is too large.")
    return out


def _text_chunk(kind: bytes, body: bytes) -> tuple[str, str] | None:
    if kind == b"tEXt":
        key, _, value = body.partition(b"\0")
        return key.decode("latin-1"), value.decode("latin-1")
    if kind == b"zTXt":
        key, _, rest = body.partition(b"\0")
        return key.decode("latin-1"), _inflate(rest[1:]).decode("latin-1")
    if kind == b"iTXt":
        key, _, rest = body.partition(b"\0")
        if len(rest) < 2:
            return None
        compressed, rest = rest[0], rest[2:]
        _lang, _, rest = rest.partition(b"\0")
        _tkey, _, value = rest.partition(b"\0")
        if compressed:
            value = _inflate(value)
        return key.decode("latin-1"), value.decode("utf-8", "replace")
    return None


def read_png_text(data: bytes) -> dict[str, str]:
    """All text chunks (tEXt, zTXt, iTXt, before or after the pixels) of a PNG, by keyword.

    Reads the chunk structure only, without decoding pixels, so a huge or hostile image costs
    nothing; raises :class:`ImageRejected` when ``data`` is not a PNG. Truncated trailing data is
    tolerated (the chunks read so far are returned).
    """
    if not data.startswith(_PNG_SIGNATURE):
        raise ImageRejected("Not a PNG image.")
    texts: dict[str, str] = {}
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if len(body) < length:
            break
        pos += 12 + length  # length, type, body, CRC
        try:
            parsed = _text_chunk(kind, body)
        except (zlib.error, UnicodeDecodeError):
            continue
        if parsed is not None and parsed[0] not in texts:
            texts[parsed[0]] = parsed[1]
        if kind == b"IEND":
            break
    return texts


def job_id_from_png(data: bytes) -> str | None:
    """The Easel job that made this PNG: the ``easel_job_id`` chunk, else the ``Easel job`` key
    of its ``parameters``; ``None`` when neither is there or ``data`` is not a PNG."""
    try:
        texts = read_png_text(data)
    except ImageRejected:
        return None
    job_id = texts.get(JOB_ID_KEY, "").strip()
    if job_id:
        return job_id
    parameters = texts.get(PARAMETERS_KEY)
    if parameters:
        return parse_infotext(parameters).get(JOB_ID_PARAM) or None
    return None


_PNG_HEAD_BYTES = 64 * 1024  # text chunks precede the pixels in every PNG Easel writes


def read_infotext_file(path: Path) -> str:
    """The ``parameters`` text of a PNG file, "" when it has none (blocking: use a thread)."""
    with path.open("rb") as handle:
        head = handle.read(_PNG_HEAD_BYTES)
        texts = read_png_text(head)
        if PARAMETERS_KEY not in texts:
            texts = read_png_text(head + handle.read())
    return texts.get(PARAMETERS_KEY, "")


def short_hash(revision: str | None) -> str | None:
    """A1111's "Model hash" is 10 hex characters; use it when our revision is a hex digest."""
    if revision and len(revision) >= 10 and all(c in "0123456789abcdef" for c in revision[:10]):
        return revision[:10]
    return None
