"""PURE: how a prompt names LoRA and embeddings, as in AUTOMATIC1111.

    lora_tags("a cat <lora:pixel:0.8>, <lora:ink>")   # [("pixel", 0.8), ("ink", 1.0)]
    strip_lora_tags("a cat <lora:pixel:0.8>, x")      # "a cat , x"
    embeddings_in("ugly, easynegative", ["easynegative", "other"])   # ["easynegative"]

``<lora:NAME>`` / ``<lora:NAME:WEIGHT>`` may stand anywhere in the prompt (A1111's extra-network
syntax; ``<lyco:...>`` is its alias). The tags stay in the job's stored prompt (so the infotext
shows them, as A1111's does, and a copied infotext redraws the same picture); the renderer
removes them (:func:`strip_lora_tags`, exactly A1111's ``re.sub`` to "") before the prompt
reaches the text encoder — and only for a job that has LoRA, so an older job whose prompt held
the text literally renders as it did. A prompt encoder (``generation.backend.prompt_encoding``)
receives the prompt already stripped.

An embedding is used by writing its registered name as a word (letters, digits, ``_`` and ``-``
around it do not count as a boundary) in the prompt or the negative prompt.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# A1111's re_extra_net: <kind:args>, args split at ':'.
_EXTRA_NET = re.compile(r"<(\w+):([^>]+)>")
LORA_KINDS = ("lora", "lyco")
NAME_RE = re.compile(r"^[A-Za-z0-9][\w\-]{0,63}$")


class TagError(ValueError):
    """A malformed ``<lora:...>`` tag (the message says which and why)."""


def lora_tags(prompt: str) -> list[tuple[str, float]]:
    """Every ``<lora:name[:weight]>`` in ``prompt``, in order; :class:`TagError` if one is
    malformed or a name is given twice."""
    found: list[tuple[str, float]] = []
    for match in _EXTRA_NET.finditer(prompt):
        if match.group(1).lower() not in LORA_KINDS:
            continue
        parts = [part.strip() for part in match.group(2).split(":")]
        if len(parts) > 2 or not parts[0]:
            raise TagError(
                f"{match.group(0)!r}: write <lora:NAME> or <lora:NAME:WEIGHT> "
                "(separate text-encoder and UNet weights are not supported)"
            )
        try:
            weight = float(parts[1]) if len(parts) == 2 else 1.0
        except ValueError as e:
            raise TagError(f"{match.group(0)!r}: the weight must be a number") from e
        if not -10.0 <= weight <= 10.0 or weight != weight:
            raise TagError(f"{match.group(0)!r}: the weight must be between -10 and 10")
        if any(name == parts[0] for name, _ in found):
            raise TagError(f"LoRA {parts[0]!r} is named twice in the prompt")
        found.append((parts[0], weight))
    return found


def strip_lora_tags(prompt: str) -> str:
    """``prompt`` without its LoRA tags (A1111 replaces each with "", nothing else changes)."""
    return _EXTRA_NET.sub(lambda m: "" if m.group(1).lower() in LORA_KINDS else m.group(0), prompt)


def embeddings_in(text: str, names: Iterable[str]) -> list[str]:
    """The ``names`` that appear in ``text`` as words, in the order of ``names``."""
    return [
        name
        for name in names
        if re.search(rf"(?<![\w\-]){re.escape(name)}(?![\w\-])", text) is not None
    ]


def infotext_items(
    loras: Iterable[tuple[str, str]], embeddings: Iterable[tuple[str, str]]
) -> dict[str, str]:
    """A1111's ``Lora hashes`` and ``TI hashes`` for (name, sha256) pairs: ``"name: hash"``
    joined by ", ", the hash cut to A1111's 12 characters (its ``shorthash``; ':' and ','
    dropped from names as it does). Keys with nothing to list are left out."""
    items = {}
    for key, pairs in (("Lora hashes", loras), ("TI hashes", embeddings)):
        listed = [f"{name.replace(':', '').replace(',', '')}: {sha[:12]}" for name, sha in pairs]
        if listed:
            items[key] = ", ".join(listed)
    return items
