"""``easel models add NAME FILE --lora`` / ``--embedding``, and the add-on lines of
``easel models list`` (the registry of LoRA and embedding files: ``generation.addons``)."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from generation.errors import InvalidRequest
from generation.requests import Origin
from generation.service import Service


def add_arguments(add: argparse.ArgumentParser) -> None:
    kind = add.add_mutually_exclusive_group()
    kind.add_argument("--lora", action="store_true", help="SOURCE is a LoRA .safetensors file")
    kind.add_argument(
        "--embedding", action="store_true", help="SOURCE is a textual-inversion embedding file"
    )


def addon_kind(args: argparse.Namespace) -> str | None:
    """ "lora", "embedding", or None for a model."""
    return "lora" if args.lora else "embedding" if args.embedding else None


async def add(service: Service, origin: Origin, args: argparse.Namespace, kind: str) -> None:
    if args.upscaler or args.model_config:
        raise InvalidRequest("--upscaler and --config are for models, not LoRA or embeddings")
    addon = await service.add_addon(origin, args.name, args.source, kind)
    family = addon.family or "unknown family"
    print(f"registered {kind} {addon.name} ({family}, sha256 {addon.sha256[:12]})")


async def listed(service: Service) -> list[dict[str, Any]]:
    return [
        {**asdict(a), "created_at": a.created_at.isoformat()} for a in await service.list_addons()
    ]


async def print_list(service: Service) -> None:
    for addon in await service.list_addons():
        family = addon.family or "?"
        print(f"  {addon.name:<16} {addon.kind:<11} {addon.path}  ({family})")


async def remove(service: Service, origin: Origin, name: str) -> bool:
    """Remove ``name`` if it is a LoRA or embedding; False when it is not one."""
    if all(addon.name != name for addon in await service.list_addons()):
        return False
    await service.remove_addon(origin, name)
    return True
