"""The model registry: diffusion models and upscalers by name, one of them the default.

The registry is read on every draw. It can also be changed by another process (``easel models
add`` while ``easel serve`` runs), so reads come from a snapshot that is dropped after
``MODEL_CACHE_SECONDS``; changes made through this Store are seen at once (a generation counter
stops a read that raced a registry write from keeping stale data). Under steady traffic the
snapshot is read again in the background once it is half that old, so no request waits for it
(a reload on the request path put a few-ms stall into every draw arriving meanwhile).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from generation.errors import InvalidRequest, NotFound
from storage.base import Repository
from storage.convert import model_record
from storage.db import Database
from storage.models import MODEL_KINDS, ModelRow
from storage.records import ModelRecord

log = logging.getLogger(__name__)
MODEL_CACHE_SECONDS = 2.0


class ModelRegistry(Repository):
    def __init__(self, db: Database, now: Callable[[], datetime] | None = None) -> None:
        super().__init__(db, now)
        self._models: dict[str, ModelRecord] | None = None
        self._models_read_at = 0.0
        self._models_generation = 0
        self._models_refresh: asyncio.Task[None] | None = None

    async def list_models(self) -> list[ModelRecord]:
        """Every registered model by name, from the snapshot (A1111 clients name a checkpoint
        in every call: no query per call)."""
        return sorted((await self._model_snapshot()).values(), key=lambda model: model.name)

    async def get_model(self, name: str) -> ModelRecord | None:
        return (await self._model_snapshot()).get(name.strip())

    async def default_model(self) -> ModelRecord | None:
        return next((m for m in (await self._model_snapshot()).values() if m.is_default), None)

    async def _model_snapshot(self) -> dict[str, ModelRecord]:
        models = self._models
        age = time.monotonic() - self._models_read_at
        if models is None or age > MODEL_CACHE_SECONDS:
            return await self._read_models()
        if age > MODEL_CACHE_SECONDS / 2 and self._models_refresh is None:
            self._models_refresh = asyncio.create_task(self._refresh_models())
        return models

    async def _read_models(self) -> dict[str, ModelRecord]:
        read_at, generation = time.monotonic(), self._models_generation
        async with self.db.read() as session:
            rows = (await session.execute(select(ModelRow))).scalars()
            models = {row.name: model_record(row) for row in rows}
        if generation == self._models_generation:  # no registry write ended meanwhile
            self._models, self._models_read_at = models, read_at
        return models

    async def _refresh_models(self) -> None:
        try:
            await self._read_models()
        except Exception as error:  # e.g. the database is closing: the next request reads
            log.debug("background read of the model registry failed: %s", error)
        finally:
            self._models_refresh = None

    @asynccontextmanager
    async def _model_write(self) -> AsyncIterator[AsyncSession]:
        """A write transaction on the registry; the snapshot is dropped once it has ended."""
        try:
            async with self.db.write() as session:
                yield session
        finally:
            self._models = None
            self._models_generation += 1

    async def add_model(
        self,
        name: str,
        *,
        source: str,
        kind: str,
        revision: str | None = None,
        config: str | None = None,
        default_width: int = 512,
        default_height: int = 512,
        default_steps: int = 25,
        default_cfg: float = 7.0,
        default_sampler: str = "DPM++ 2M Karras",
        is_default: bool = False,
        dtype: str | None = None,
    ) -> ModelRecord:
        """Register a model. The first model registered becomes the default."""
        name = name.strip()
        if not name or len(name) > 128:
            raise InvalidRequest("a model name must be 1 to 128 characters long")
        if kind not in MODEL_KINDS:
            raise InvalidRequest(
                f"unknown model kind {kind!r}; use one of: {', '.join(MODEL_KINDS)}"
            )
        async with self._model_write() as session:
            if await session.get(ModelRow, name) is not None:
                raise InvalidRequest(
                    f"a model named {name!r} is already registered; "
                    "remove it first or choose another name"
                )
            has_default = (
                await session.execute(select(ModelRow.name).where(ModelRow.is_default.is_(True)))
            ).first() is not None
            make_default = is_default or not has_default
            if make_default and has_default:
                await session.execute(update(ModelRow).values(is_default=False))
            row = ModelRow(
                name=name,
                source=source,
                kind=kind,
                revision=revision,
                config=config,
                default_width=default_width,
                default_height=default_height,
                default_steps=default_steps,
                default_cfg=float(default_cfg),
                default_sampler=default_sampler,
                is_default=make_default,
                created_at=self.now(),
                dtype=dtype,
            )
            session.add(row)
            await session.flush()
            return model_record(row)

    async def update_model_revision(self, name: str, revision: str | None) -> ModelRecord:
        async with self._model_write() as session:
            row = await _get_model_row(session, name)
            row.revision = revision
            return model_record(row)

    async def remove_model(self, name: str) -> None:
        """Unregister a model (its jobs keep their history). The default cannot be removed."""
        async with self._model_write() as session:
            row = await _get_model_row(session, name)
            if row.is_default:
                raise InvalidRequest(
                    f"{row.name!r} is the default model; make another model the default "
                    "before removing it"
                )
            await session.delete(row)

    async def set_default_model(self, name: str) -> ModelRecord:
        """Make ``name`` the one default model."""
        async with self._model_write() as session:
            row = await _get_model_row(session, name)
            if not row.is_default:
                await session.execute(
                    update(ModelRow).where(ModelRow.is_default.is_(True)).values(is_default=False)
                )
                await session.refresh(row)
                row.is_default = True
                await session.flush()
            return model_record(row)


async def _get_model_row(session: AsyncSession, name: str) -> ModelRow:
    row = await session.get(ModelRow, name.strip())
    if row is None:
        raise NotFound(f"no model named {name.strip()!r}; see the model list for registered names")
    return row
