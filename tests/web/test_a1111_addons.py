"""A1111's /sdapi/v1/loras and /sdapi/v1/embeddings through HTTP (webuiapi's own calls), and
a txt2img with a <lora:...> tag whose infotext carries A1111's Lora hashes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.addon_files import make_embedding, make_lora, make_sd1_lora
from tests.conftest import WebFactory
from tests.e2e.engine_helpers import origin
from tests.web.conftest import client_app

ADMIN = origin("root", admin=True)


async def test_loras_embeddings_and_a_txt2img_using_them(
    web_factory: WebFactory, tmp_path: Path
) -> None:
    webuiapi = pytest.importorskip("webuiapi")
    client = await web_factory()
    service = client_app(client).service
    lora = make_lora(tmp_path / "pixel.safetensors", 1)
    await service.add_addon(ADMIN, "pixel", str(lora), "lora")
    await service.add_addon(
        ADMIN, "easyneg", str(make_embedding(tmp_path / "e.safetensors", 2)), "embedding"
    )
    await service.add_addon(
        ADMIN, "sd1neg", str(make_embedding(tmp_path / "s.safetensors", 3, width=768)), "embedding"
    )
    await service.add_addon(ADMIN, "sd1", str(make_sd1_lora(tmp_path / "sd1.safetensors")), "lora")
    port = client.server.port

    def calls() -> tuple[Any, Any]:
        api = webuiapi.WebUIApi(host="127.0.0.1", port=port)
        return api.get_loras(), api.get_embeddings()

    loras, embeddings = await asyncio.to_thread(calls)
    pixel_entry = {"name": "pixel", "alias": "pixel", "path": "pixel.safetensors"}
    assert loras == [
        {**pixel_entry, "metadata": {"format": "pt"}},  # the file's safetensors metadata
        {"name": "sd1", "alias": "sd1", "path": "sd1.safetensors", "metadata": {}},
    ]
    nothing = {"step": None, "sd_checkpoint": None, "sd_checkpoint_name": None}
    assert embeddings == {
        "loaded": {"easyneg": {**nothing, "shape": 32, "vectors": 2}},
        "skipped": {"sd1neg": {**nothing, "shape": 768, "vectors": 2}},
    }

    body = {
        "prompt": "a cat <lora:pixel:0.6>",
        "negative_prompt": "easyneg",
        "steps": 2,
        "width": 64,
        "height": 64,
        "seed": 5,
    }
    answer = await client.post("/sdapi/v1/txt2img", json=body)
    assert answer.status == 200, await answer.text()
    infotext = json.loads((await answer.json())["info"])["infotexts"][0]
    pixel = await service.store.get_addon("pixel")
    assert pixel is not None
    assert f'Lora hashes: "pixel: {pixel.sha256[:12]}"' in infotext
    assert 'TI hashes: "easyneg: ' in infotext
    assert infotext.startswith("a cat <lora:pixel:0.6>\n")  # the prompt as A1111 shows it
    refused = await client.post("/sdapi/v1/txt2img", json={**body, "prompt": "<lora:sd1>"})
    assert refused.status == 422 and "is for sd1 models" in await refused.text()
    models = await (await client.get("/api/models")).json()
    assert models["addons"] == [
        {"name": "easyneg", "kind": "embedding", "family": "ctx32"},
        {"name": "pixel", "kind": "lora", "family": "ctx32"},
        {"name": "sd1", "kind": "lora", "family": "sd1"},
        {"name": "sd1neg", "kind": "embedding", "family": "sd1"},
    ]


async def test_admin_page_api_registers_and_removes_addons(
    idle_client: Any, tmp_path: Path
) -> None:
    lora = make_sd1_lora(tmp_path / "ink.safetensors")
    added = await idle_client.post(
        "/api/admin/addons", json={"name": "ink", "path": str(lora), "kind": "lora"}
    )
    assert added.status == 201, await added.text()
    assert (await added.json())["addon"] == {"name": "ink", "kind": "lora", "family": "sd1"}
    pickled = tmp_path / "x.pt"
    pickled.write_bytes(b"\x80\x04")
    for body, message in (
        ({"name": "ink", "path": str(lora), "kind": "lora"}, "already registered"),
        ({"name": "x", "path": str(pickled), "kind": "embedding"}, "pickled"),
        ({"name": "x", "path": str(lora), "kind": "hypernet"}, "kind must be"),
        ({"name": "x"}, "name and path"),
    ):
        refused = await idle_client.post("/api/admin/addons", json=body)
        assert refused.status == 400 and message in (await refused.json())["error"]
    listed = await (await idle_client.get("/api/models")).json()
    assert [a["name"] for a in listed["addons"]] == ["ink"]
    assert (await idle_client.delete("/api/admin/addons/ink")).status == 200
    assert (await idle_client.delete("/api/admin/addons/ink")).status == 404
