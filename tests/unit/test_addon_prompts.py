"""A1111's <lora:...> tags and embedding words (pure)."""

from __future__ import annotations

import pytest

from generation.addon_prompts import (
    TagError,
    embeddings_in,
    infotext_items,
    lora_tags,
    strip_lora_tags,
)


def test_tags_weights_and_stripping_as_a1111() -> None:
    prompt = "<lora:ink:0.5> a cat, <lora:pixel>, <LyCo:soft:-1.5> <hypernet:x:1>"
    assert lora_tags(prompt) == [("ink", 0.5), ("pixel", 1.0), ("soft", -1.5)]
    assert strip_lora_tags(prompt) == " a cat, ,  <hypernet:x:1>"  # others stay, as in A1111
    assert lora_tags("no tags (here:1.2)") == [] and strip_lora_tags("plain") == "plain"


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("<lora:x:0.5:0.2>", "separate text-encoder"),
        ("<lora:x:abc>", "must be a number"),
        ("<lora:x:nan>", "between -10 and 10"),
        ("<lora:x:11>", "between -10 and 10"),
        ("<lora:x> <lora:x:0.3>", "named twice"),
        ("<lora::1>", "write <lora:NAME>"),
    ],
)
def test_malformed_tags_are_refused(prompt: str, message: str) -> None:
    with pytest.raises(TagError, match=message):
        lora_tags(prompt)


def test_embeddings_are_whole_words() -> None:
    names = ["easyneg", "bad-hands", "neg"]
    assert embeddings_in("ugly, easyneg, (bad-hands:1.2)", names) == ["easyneg", "bad-hands"]
    assert embeddings_in("easynegative, my_neg, neg-x", names) == []


def test_infotext_items_are_a1111s() -> None:
    assert infotext_items([("a", "0123456789abcdef"), ("b:c,", "f" * 64)], []) == {
        "Lora hashes": "a: 0123456789ab, bc: ffffffffffff"
    }
    assert infotext_items([], [("neg", "9" * 64)]) == {"TI hashes": "neg: 999999999999"}
    assert infotext_items([], []) == {}
