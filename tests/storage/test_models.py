"""The model registry: add, list, default, remove, and the messages people see."""

from __future__ import annotations

import asyncio

import pytest

from generation.errors import InvalidRequest, NotFound
from storage.db import Database
from storage.repository import Store


async def test_first_model_becomes_default(store: Store) -> None:
    assert await store.default_model() is None
    assert await store.list_models() == []
    demo = await store.add_model("demo", source="builtin:demo", kind="builtin")
    assert demo.is_default
    assert demo.default_sampler == "DPM++ 2M Karras" and demo.default_width == 512
    sd = await store.add_model(
        "sd15",
        source="runwayml/stable-diffusion-v1-5",
        kind="hub",
        revision="abc",
        default_steps=30,
        default_cfg=6.5,
    )
    assert not sd.is_default
    assert [m.name for m in await store.list_models()] == ["demo", "sd15"]
    assert (await store.default_model()) == demo
    fetched = await store.get_model("sd15")
    assert fetched == sd and fetched.revision == "abc" and fetched.default_cfg == 6.5


async def test_exactly_one_default(store: Store) -> None:
    await store.add_model("demo", source="builtin:demo", kind="builtin")
    await store.add_model("sd15", source="x/y", kind="hub")
    xl = await store.add_model("sdxl", source="x/z", kind="hub", is_default=True)
    assert xl.is_default
    assert [m.name for m in await store.list_models() if m.is_default] == ["sdxl"]
    chosen = await store.set_default_model("sd15")
    assert chosen.is_default
    assert [m.name for m in await store.list_models() if m.is_default] == ["sd15"]
    assert (await store.set_default_model("sd15")).is_default  # already default: fine
    assert (await store.default_model()) == chosen
    with pytest.raises(NotFound, match="no model named 'nope'"):
        await store.set_default_model("nope")


async def test_duplicate_and_bad_kind_are_refused(store: Store) -> None:
    await store.add_model("demo", source="builtin:demo", kind="builtin")
    with pytest.raises(InvalidRequest, match="'demo' is already registered"):
        await store.add_model("demo", source="other", kind="hub")
    with pytest.raises(InvalidRequest, match=r"unknown model kind 'ckpt'.*single_file"):
        await store.add_model("x", source="x.ckpt", kind="ckpt")
    with pytest.raises(InvalidRequest, match="1 to 128 characters"):
        await store.add_model("  ", source="x", kind="hub")


async def test_remove_rules(store: Store) -> None:
    await store.add_model("demo", source="builtin:demo", kind="builtin")
    await store.add_model("sd15", source="x/y", kind="hub")
    with pytest.raises(InvalidRequest, match="'demo' is the default model; make another"):
        await store.remove_model("demo")
    with pytest.raises(NotFound, match="no model named 'nope'"):
        await store.remove_model("nope")
    await store.remove_model("sd15")
    assert [m.name for m in await store.list_models()] == ["demo"]
    assert await store.get_model("sd15") is None
    # Removed models can be registered again.
    await store.add_model("sd15", source="x/y", kind="hub")


async def test_update_revision(store: Store) -> None:
    await store.add_model("sd15", source="x/y", kind="hub", revision="old")
    updated = await store.update_model_revision("sd15", "new")
    assert updated.revision == "new"
    assert (await store.get_model("sd15")) == updated
    with pytest.raises(NotFound):
        await store.update_model_revision("nope", "x")


async def test_registry_changes_from_another_process_are_seen_within_the_cache_time(
    store: Store, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("storage.registry.MODEL_CACHE_SECONDS", 0.2)
    await store.add_model("demo", source="builtin:demo", kind="builtin")
    assert await store.get_model("other") is None  # the registry is now remembered
    async with Database(database_url) as elsewhere:  # e.g. `easel models add` beside serve
        await Store(elsewhere).add_model("other", source="/m", kind="folder", is_default=True)
    await asyncio.sleep(0.25)
    other = await store.get_model("other")
    assert other is not None and other.is_default
    assert (await store.default_model()) == other


async def test_registry_changes_through_this_store_are_seen_at_once(store: Store) -> None:
    await store.add_model("demo", source="builtin:demo", kind="builtin")
    assert (await store.default_model()) is not None
    await store.add_model("sd15", source="/m", kind="folder")
    await store.set_default_model("sd15")
    default = await store.default_model()
    assert default is not None and default.name == "sd15"
    await store.set_default_model("demo")
    await store.remove_model("sd15")
    assert await store.get_model("sd15") is None
