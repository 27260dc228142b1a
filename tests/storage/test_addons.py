"""The add-on registry (LoRA and embeddings): add, list by kind, get, remove, and refusals."""

from __future__ import annotations

import pytest

from generation.errors import InvalidRequest, NotFound
from storage.repository import Store


async def test_add_list_get_remove(store: Store) -> None:
    assert await store.list_addons() == []
    pixel = await store.add_addon(
        "pixel", kind="lora", path="/x/pixel.safetensors", sha256="a" * 64, family="sd1"
    )
    neg = await store.add_addon(
        "easyneg", kind="embedding", path="/x/neg.safetensors", sha256="b" * 64, family=None
    )
    assert pixel.kind == "lora" and pixel.family == "sd1" and neg.family is None
    assert [a.name for a in await store.list_addons()] == ["easyneg", "pixel"]
    assert await store.list_addons("lora") == [pixel]
    assert await store.list_addons("embedding") == [neg]
    assert await store.get_addon(" pixel ") == pixel
    assert await store.get_addon("nope") is None
    assert await store.remove_addon("pixel") == pixel
    assert await store.list_addons() == [neg]
    with pytest.raises(NotFound, match="no LoRA or embedding named 'pixel'"):
        await store.remove_addon("pixel")


async def test_names_are_unique_across_kinds_and_kinds_checked(store: Store) -> None:
    await store.add_addon("x", kind="lora", path="/x", sha256="a" * 64, family=None)
    with pytest.raises(InvalidRequest, match="a lora named 'x' is already registered"):
        await store.add_addon("x", kind="embedding", path="/y", sha256="b" * 64, family=None)
    with pytest.raises(InvalidRequest, match="unknown add-on kind"):
        await store.add_addon("y", kind="hypernet", path="/y", sha256="b" * 64, family=None)
    with pytest.raises(InvalidRequest, match="1 to 128"):
        await store.add_addon(" ", kind="lora", path="/y", sha256="b" * 64, family=None)
