"""A1111's ``GET /sdapi/v1/loras`` and ``GET /sdapi/v1/embeddings``: the registered LoRA and
embeddings (``easel models add NAME FILE --lora`` / ``--embedding``).

``loras``: A1111's ``{name, alias, path, metadata}`` per file; ``alias`` is the name (what a
prompt writes in ``<lora:...>``), ``path`` the file's name only (not the server's folders),
``metadata`` the file's safetensors metadata. ``embeddings``: ``{"loaded": {name: {step,
sd_checkpoint, sd_checkpoint_name, shape, vectors}}, "skipped": {...}}``; as in A1111,
"loaded" holds the embeddings the default model can use and "skipped" those for another model
family; ``step`` and the checkpoint fields are unknown (null) for files Easel did not train.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.web.auth import principal
from bot.web.common import api_origin
from bot.web.keys import app_of
from generation.addon_files import context_family, embedding_vectors, file_metadata


async def loras(request: web.Request) -> web.Response:
    service = app_of(request).service

    def entries() -> list[dict[str, Any]]:
        return [
            {
                "name": lora.name,
                "alias": lora.name,
                "path": Path(lora.path).name,
                "metadata": file_metadata(lora.path),
            }
            for lora in listed
        ]

    listed = await service.list_addons("lora")
    return web.json_response(await asyncio.to_thread(entries))


async def embeddings(request: web.Request) -> web.Response:
    service = app_of(request).service
    listed = await service.list_addons("embedding")
    # the model an A1111 client's txt2img would use (the API scope's, else the server's)
    model = await service.current_model(api_origin(principal(request)))

    def answer() -> dict[str, dict[str, Any]]:
        family = context_family(model.source, model.kind) if model is not None else None
        loaded: dict[str, Any] = {}
        skipped: dict[str, Any] = {}
        for embedding in listed:
            vectors = embedding_vectors(embedding.path)
            entry = {
                "step": None,
                "sd_checkpoint": None,
                "sd_checkpoint_name": None,
                "shape": vectors[1] if vectors else None,
                "vectors": vectors[0] if vectors else None,
            }
            usable = not family or not embedding.family or embedding.family == family
            (loaded if usable else skipped)[embedding.name] = entry
        return {"loaded": loaded, "skipped": skipped}

    return web.json_response(await asyncio.to_thread(answer))


def setup_routes(web_app: web.Application) -> None:
    web_app.router.add_get("/sdapi/v1/loras", loras)
    web_app.router.add_get("/sdapi/v1/embeddings", embeddings)
