"""LoRA and embeddings in the engine: registration (admins), resolution at admission, and the
files a render needs.

* :class:`AddOnAdministration` (a base of ``Administration``, so of the Service):
  ``add_addon`` / ``remove_addon`` / ``list_addons``; admins only, like models.
* :func:`checked_addons` (called by ``Admission.admit`` before anything is written): a new
  draw's ``<lora:...>`` tags and embedding words become the spec's ``loras`` / ``embeddings``
  (each with the file's hash now); a job made from another (rerun, reroll, upscale, vary,
  repaint) keeps its parent's and is refused when one of those files was removed or changed.
  Unknown names, files for another model family and files changed since registration are
  refused: nothing is queued.
* :func:`addon_files` (the worker): the registered paths of a job's add-ons.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import replace
from pathlib import Path

from generation.addon_files import context_family, current_hash, inspect_addon, kind_word
from generation.addon_prompts import NAME_RE, TagError, embeddings_in, lora_tags
from generation.errors import InvalidRequest, PermissionDenied, shown
from generation.model_sources import model_family
from generation.render import AddOnFile
from generation.requests import Origin
from generation.spec import Action, AddOn, GenerationSpec
from storage.addons import AddOnRecord
from storage.records import ModelRecord
from storage.repository import Store

# Families whose LoRA/embeddings Easel cannot check or load yet (transformer-based models).
UNSUPPORTED_FAMILIES = ("sd3", "flux")


MAX_UPLOAD_BYTES = 256 * 1024**2  # a LoRA or embedding sent in a chat (SD 1.x LoRA: 10-150 MB)


class AddOnAdministration:
    """The add-on half of the admin use cases. ``store``, ``allow_unsafe_addons`` and
    ``addon_folder`` (where uploaded files are kept) come from the class that mixes it in."""

    store: Store
    allow_unsafe_addons: bool = False
    addon_folder: Path | None = None

    async def list_addons(self, kind: str | None = None) -> list[AddOnRecord]:
        """Registered LoRA and embeddings (of ``kind``), by name; anyone may list them."""
        return await self.store.list_addons(kind)

    async def add_addon(self, origin: Origin, name: str, path: str, kind: str) -> AddOnRecord:
        """Register a LoRA or embedding file (checked: see ``generation.addon_files``)."""
        _require_admin(origin)
        name = name.strip()
        if not NAME_RE.match(name):
            raise InvalidRequest(
                "A LoRA or embedding name is 1-64 letters, digits, '_' or '-' (it is written "
                f"in prompts); not {shown(name)}."
            )
        if await self.store.get_model(name) is not None and kind == "embedding":
            raise InvalidRequest(f"{name!r} is a model's name; choose another one.")
        inspected = await asyncio.to_thread(
            inspect_addon, name, path, kind, allow_unsafe_weights=self.allow_unsafe_addons
        )
        return await self.store.add_addon(
            name,
            kind=kind,
            path=inspected.path,
            sha256=inspected.sha256,
            family=inspected.family,
        )

    async def add_addon_upload(
        self, origin: Origin, name: str, data: bytes, kind: str
    ) -> AddOnRecord:
        """Register a LoRA or embedding sent as a file in a chat: owners only (every scope
        sees what is registered). The bytes are kept in ``addon_folder`` as a .safetensors
        file, checked like any (a pickle or anything else is refused and nothing is kept)."""
        if not origin.is_owner:
            raise PermissionDenied(
                "Only Easel's owners can add LoRA or embeddings from a chat (every server "
                "shares them); a server's admins can allow or deny the registered ones."
            )
        if len(data) > MAX_UPLOAD_BYTES:
            raise InvalidRequest(
                f"That file is {len(data) / 1024**2:.0f} MB; a LoRA or embedding sent in a chat "
                f"may be at most {MAX_UPLOAD_BYTES // 1024**2} MB (register larger ones on the "
                "machine: easel models add NAME FILE --lora)."
            )
        if self.addon_folder is None:
            raise InvalidRequest("This Easel instance keeps no uploaded LoRA or embeddings.")
        if await self.store.get_addon(name.strip()) is not None:
            raise InvalidRequest(
                f"A LoRA or embedding named {name.strip()!r} is already registered."
            )
        digest = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest()[:16])
        path = self.addon_folder / f"{kind}-{digest}.safetensors"
        existed = path.exists()
        if not existed:
            await asyncio.to_thread(_write_new, path, data)
        try:
            return await self.add_addon(origin, name, str(path), kind)
        except BaseException:
            if not existed:  # refused: nothing kept
                path.unlink(missing_ok=True)
            raise

    async def check_allowed_loras(self, value: object) -> None:
        """A scope's ``allowed_loras`` names registered LoRA only (refused naming them)."""
        names = value if isinstance(value, list) else []
        loras = {a.name for a in await self.store.list_addons("lora")}
        for name in names:
            if isinstance(name, str) and name.strip() not in loras:
                known = ", ".join(sorted(loras)) or "none"
                raise InvalidRequest(f"Unknown LoRA {shown(name)}. Registered: {known}.")

    async def remove_addon(self, origin: Origin, name: str) -> AddOnRecord:
        _require_admin(origin)
        return await self.store.remove_addon(name)


def _write_new(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(path)


def _require_admin(origin: Origin) -> None:
    if not origin.is_admin:
        raise PermissionDenied("Only an admin of this server can do that.")


async def checked_addons(
    store: Store,
    spec: GenerationSpec,
    action: Action,
    model: ModelRecord,
    allowed_loras: tuple[str, ...] | None = None,
    parent_id: str | None = None,
) -> GenerationSpec:
    """``spec`` with its add-ons resolved (a draw, or a child job given new prompts: a repaint
    with its own prompt) or checked (any other child: it keeps its parent's files).
    ``allowed_loras``: the scope's ``allowed_loras`` setting (None: any registered LoRA)."""
    if action is not Action.DRAW and not await _new_prompts(store, spec, parent_id):
        for addon in (*spec.loras, *spec.embeddings):
            await _still_there(store, addon)
        return spec
    try:
        tags = lora_tags(spec.prompt)
    except TagError as e:
        raise InvalidRequest(str(e)) from e
    embedding_names = [a.name for a in await store.list_addons("embedding")]
    words = embeddings_in(spec.prompt, embedding_names)
    negative = embeddings_in(spec.negative_prompt, embedding_names)
    used = [name for name in embedding_names if name in words or name in negative]
    if not tags and not used:  # (a child given new prompts drops its parent's add-ons)
        return replace(spec, loras=(), embeddings=())
    for name, _ in tags:
        if allowed_loras is not None and name not in allowed_loras:
            allowed = ", ".join(allowed_loras) or "none"
            raise InvalidRequest(f"LoRA {shown(name)} is not allowed here. Allowed: {allowed}.")
    kind = await asyncio.to_thread(lambda: model_family(model).name)
    if kind in UNSUPPORTED_FAMILIES:
        raise InvalidRequest(
            f"LoRA and embeddings work with Stable Diffusion 1.x, 2.x and SDXL models; model "
            f"{model.name!r} is {kind}."
        )
    family = await asyncio.to_thread(context_family, model.source, model.kind)
    loras = [await _resolve(store, name, weight, "lora", model, family) for name, weight in tags]
    embeddings = [await _resolve(store, name, 1.0, "embedding", model, family) for name in used]
    return replace(spec, loras=tuple(loras), embeddings=tuple(embeddings))


async def _new_prompts(store: Store, spec: GenerationSpec, parent_id: str | None) -> bool:
    """Whether a child job's prompts differ from its parent's (then they are read afresh)."""
    parent = await store.get_job(parent_id) if parent_id else None
    return parent is not None and (
        parent.spec.prompt != spec.prompt or parent.spec.negative_prompt != spec.negative_prompt
    )


async def _resolve(
    store: Store, name: str, weight: float, kind: str, model: ModelRecord, family: str | None
) -> AddOn:
    record = await store.get_addon(name)
    if record is None or record.kind != kind:
        known = ", ".join(a.name for a in await store.list_addons(kind)) or "none"
        raise InvalidRequest(f"Unknown {kind_word(kind)} {shown(name)}. Registered: {known}.")
    if family and record.family and record.family != family:
        raise InvalidRequest(
            f"{kind_word(kind)} {name!r} is for {record.family} models; model {model.name!r} is "
            f"{family}."
        )
    sha256 = await asyncio.to_thread(current_hash, record.path, record.kind)
    if sha256 is None:
        raise InvalidRequest(f"The file of {kind_word(kind)} {name!r} is gone ({record.path}).")
    if sha256 != record.sha256:
        raise InvalidRequest(
            f"The file of {kind_word(kind)} {name!r} changed since it was registered; an admin "
            "must remove and add it again."
        )
    return AddOn(record.name, sha256, weight)


async def _still_there(store: Store, addon: AddOn) -> AddOnRecord:
    """The registered add-on ``addon`` names, with the very file the job used."""
    record = await store.get_addon(addon.name)
    if record is None:
        raise InvalidRequest(
            f"This job used {addon.name!r}, which is no longer registered; it cannot be redone."
        )
    now = await asyncio.to_thread(current_hash, record.path, record.kind)
    if record.sha256 != addon.sha256 or now != addon.sha256:
        raise InvalidRequest(
            f"The file of {kind_word(record.kind)} {addon.name!r} changed since this job used it; "
            "it cannot be redone exactly."
        )
    return record


async def addon_files(store: Store, spec: GenerationSpec) -> tuple[AddOnFile, ...]:
    """The files of the job's add-ons as registered now (refused if one went or changed)."""
    files = []
    for addon in (*spec.loras, *spec.embeddings):
        record = await _still_there(store, addon)
        files.append(AddOnFile(record.name, record.kind, record.path, record.sha256))
    return tuple(files)
