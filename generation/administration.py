"""Administration: the model registry and each scope's settings (limits, blocklist, models).

The part of :class:`generation.service.Service` that admins use; every change checks admin
rights first (``Origin.is_admin``, which each front end decides by its own rules: Manage Server
on Discord, chat admins on Telegram, the admin token on the web, the machine's owner on the CLI).
Scope settings change in one transaction (read, change, write), so two admins at once never
lose each other's change.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import Any

from generation.addons import AddOnAdministration
from generation.errors import InvalidRequest, NotFound, PermissionDenied, shown
from generation.model_sources import check_dtype, family_defaults, model_family
from generation.policy import AdmissionPolicy, ScopeSettings
from generation.requests import Origin
from generation.styles import check_style, style_map
from storage.records import ModelRecord, ScopeRecord
from storage.repository import Store

# What one scope's client options may take stored (JSON, UTF-8).
MAX_CLIENT_OPTIONS_BYTES = 64 * 1024

# Called at registration to classify a model source and compute its revision (backend/).
ModelInspector = Callable[[str, str, str | None], Any]
UpscalerInspector = Callable[[str, str], Any]


class Administration(AddOnAdministration):
    def __init__(
        self,
        *,
        store: Store,
        policy: AdmissionPolicy,
        inspect_model: ModelInspector | None = None,
        inspect_upscaler: UpscalerInspector | None = None,
    ) -> None:
        self.store = store
        self._policy = policy
        self._inspect_model = inspect_model
        self._inspect_upscaler = inspect_upscaler

    # ------------------------------------------------------------------ models

    async def list_models(self) -> list[ModelRecord]:
        return await self.store.list_models()

    async def current_model(self, origin: Origin) -> ModelRecord | None:
        """What a draw from ``origin`` uses by default: its scope's model, else the server's."""
        scope = await self.store.find_scope(origin.platform, origin.scope_id)
        name = ScopeSettings.from_dict(scope.settings if scope else None).default_model
        if name:
            model = await self.store.get_model(name)
            if model is not None:
                return model
        return await self.store.default_model()

    async def add_model(
        self,
        origin: Origin,
        name: str,
        source: str,
        *,
        upscaler: bool = False,
        config_source: str | None = None,
        defaults: dict[str, Any] | None = None,
        dtype: str | None = None,
    ) -> ModelRecord:
        """Register a model; ``dtype`` (float16, bfloat16, float32): its precision on a GPU,
        None = the config's ``generation.dtype``."""
        self._require_admin(origin)
        check_dtype(dtype)
        name = name.strip()
        if not name or any(ch.isspace() for ch in name) or len(name) > 64:
            raise InvalidRequest("A model name is 1-64 characters without spaces.")
        if await self.store.get_model(name) is not None:
            raise InvalidRequest(f"A model named {name!r} is already registered.")
        if upscaler:
            if self._inspect_upscaler is None:
                raise InvalidRequest("This Easel instance cannot inspect upscalers.")
            inspected = await asyncio.to_thread(self._inspect_upscaler, name, source)
        else:
            if self._inspect_model is None:
                raise InvalidRequest("This Easel instance cannot inspect models.")
            inspected = await asyncio.to_thread(self._inspect_model, name, source, config_source)
        if not upscaler:  # a Flux model's defaults are not Stable Diffusion's
            defaults = family_defaults(inspected, defaults or {}, self._policy.config.max_pixels)
        checked = self._policy.model_defaults(defaults or {})
        return await self.store.add_model(
            name=name,
            source=inspected.source,
            kind=inspected.kind,
            revision=inspected.revision,
            config=inspected.config,
            dtype=dtype,
            **checked,
        )

    async def remove_model(self, origin: Origin, name: str) -> None:
        self._require_admin(origin)
        await self.store.remove_model(name)

    async def set_default_model(self, origin: Origin, name: str) -> ModelRecord:
        self._require_admin(origin)
        model = await self.store.get_model(name)
        if model is None:
            raise NotFound(f"No model named {name!r}. Known: {await self._model_names()}.")
        if model.kind == "upscaler":
            raise InvalidRequest(f"{name!r} is an upscaler; the default must be a diffusion model.")
        _check_draws(model)
        await self.store.set_default_model(name)
        return model

    # ------------------------------------------------------------------ scope settings

    async def scopes(self, origin: Origin) -> list[ScopeRecord]:
        """Every scope with settings an admin may edit: the web page, the A1111 API clients, and
        each Discord server and Telegram chat that has used Easel (admins only)."""
        self._require_admin(origin)
        return await self.store.list_scopes()

    async def find_scope(self, origin: Origin, platform: str, scope_id: str) -> ScopeRecord | None:
        """A scope by its platform's id, if it has been seen (admins only; never creates one)."""
        self._require_admin(origin)
        return await self.store.find_scope(platform, scope_id)

    async def scope_settings(self, origin: Origin) -> ScopeSettings:
        scope = await self.store.find_scope(origin.platform, origin.scope_id)
        return ScopeSettings.from_dict(scope.settings if scope else None)

    async def update_scope_settings(self, origin: Origin, **changes: Any) -> ScopeSettings:
        """Change this scope's limits, blocklist or models; ``None`` restores a default."""
        self._require_admin(origin)
        for key in ("default_model", "allowed_models"):
            value = changes.get(key)
            names = [value] if isinstance(value, str) else value if isinstance(value, list) else []
            for name in names:
                model = await self.store.get_model(name.strip()) if isinstance(name, str) else None
                if isinstance(name, str) and model is None:
                    raise InvalidRequest(
                        f"Unknown model {shown(name)}. Available: {await self._model_names()}."
                    )
                if key == "default_model" and model is not None:
                    _check_draws(model)
        await self.check_allowed_loras(changes.get("allowed_loras"))  # generation.addons
        return await self._change_settings(origin, lambda settings: settings.updated(changes))

    async def block_words(self, origin: Origin, words: list[str]) -> ScopeSettings:
        self._require_admin(origin)

        def add(settings: ScopeSettings) -> ScopeSettings:
            return settings.updated({"blocklist": [*settings.blocklist, *words]})

        return await self._change_settings(origin, add)

    async def unblock_words(self, origin: Origin, words: list[str]) -> ScopeSettings:
        self._require_admin(origin)
        drop = {word.lower() for word in words}

        def remove(settings: ScopeSettings) -> ScopeSettings:
            kept = [word for word in settings.blocklist if word.lower() not in drop]
            return settings.updated({"blocklist": kept})

        return await self._change_settings(origin, remove)

    async def set_style(
        self, origin: Origin, name: str, prompt: str, negative_prompt: str = ""
    ) -> ScopeSettings:
        """Add or replace this scope's prompt style ``name`` (see :mod:`generation.styles`)."""
        self._require_admin(origin)
        style = check_style(name, prompt, negative_prompt)

        def put(settings: ScopeSettings) -> ScopeSettings:
            kept = [s for s in settings.styles if s.name.lower() != style.name.lower()]
            return settings.updated({"styles": style_map([*kept, style])})

        return await self._change_settings(origin, put)

    async def remove_style(self, origin: Origin, name: str) -> ScopeSettings:
        self._require_admin(origin)

        def drop(settings: ScopeSettings) -> ScopeSettings:
            kept = [s for s in settings.styles if s.name.lower() != name.strip().lower()]
            if len(kept) == len(settings.styles):
                raise InvalidRequest(f"This scope has no style {shown(name.strip())}.")
            return settings.updated({"styles": style_map(kept)})

        return await self._change_settings(origin, drop)

    async def _change_settings(
        self, origin: Origin, change: Callable[[ScopeSettings], ScopeSettings]
    ) -> ScopeSettings:
        """Read, change and write the scope's settings in one transaction: two admins at once
        both keep their change (a blocked word is never lost)."""
        scope = await self.store.get_or_create_scope(
            origin.platform, origin.scope_id, origin.scope_name
        )
        record = await self.store.change_scope_settings(
            scope.id, lambda stored: change(ScopeSettings.from_dict(stored)).to_dict()
        )
        return ScopeSettings.from_dict(record.settings)

    # ------------------------------------------------------------------ client options

    async def client_options(self, origin: Origin) -> dict[str, Any]:
        """The options clients stored for ``origin``'s scope (e.g. A1111's ``/options``)."""
        scope = await self.store.find_scope(origin.platform, origin.scope_id)  # a read: no row
        return {} if scope is None else await self.store.client_options(scope.id)

    async def set_client_options(
        self, origin: Origin, changes: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Store ``changes`` (JSON values, kept as sent) over the scope's client options; admins
        only, since every client of the scope reads them. At most MAX_CLIENT_OPTIONS_BYTES."""
        self._require_admin(origin)
        scope = await self.store.get_or_create_scope(
            origin.platform, origin.scope_id, origin.scope_name
        )
        merged = {**await self.store.client_options(scope.id), **changes}
        size = len(json.dumps(merged, ensure_ascii=False).encode("utf-8"))
        if size > MAX_CLIENT_OPTIONS_BYTES:
            raise InvalidRequest(
                f"The options would take {size:,} bytes stored; at most "
                f"{MAX_CLIENT_OPTIONS_BYTES:,} (64 KB) are kept. Send fewer or shorter values."
            )
        return await self.store.set_client_options(scope.id, changes)

    # ------------------------------------------------------------------ internals

    def _require_admin(self, origin: Origin) -> None:
        if not origin.is_admin:
            raise PermissionDenied("Only an admin of this server can do that.")

    async def _model_names(self) -> str:
        models = await self.store.list_models()
        return ", ".join(m.name for m in models if m.kind != "upscaler") or "none"


def _check_draws(model: ModelRecord) -> None:
    """Refuse a model that cannot draw on its own (an SDXL refiner) as a default."""
    if not model_family(model).draws:
        raise InvalidRequest(
            f"{model.name!r} is an SDXL refiner: it cannot draw on its own, so it cannot be the "
            "default model. Make an SDXL model the default and add --refiner to draws."
        )
