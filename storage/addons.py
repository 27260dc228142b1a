"""The add-on registry (the ``addons`` table, migration 0009): LoRA and textual-inversion
embedding files an admin registered by name.

Names are unique across both kinds and across nothing else (a LoRA may share a model's name):
a prompt names a LoRA in ``<lora:NAME:weight>`` and an embedding as a bare word, and one name
for two files would make a prompt ambiguous. Reads are one short query each; the table holds
tens of rows, so every admission reads the embeddings' names afresh (no cache to invalidate
when ``easel models add`` runs in another process).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from generation.errors import InvalidRequest, NotFound
from storage.base import Repository
from storage.models import ADDON_KINDS, AddOnRow


@dataclass(frozen=True)
class AddOnRecord:
    """A registered add-on. ``sha256``: see :mod:`generation.addon_files` (a LoRA's is
    A1111's hash of its tensors, an embedding's the whole file's); ``family``: the model family
    it is for (``sd1``, ``sd2``, ``sdxl``, or ``ctxN`` for another text-context width)."""

    name: str
    kind: str  # "lora" | "embedding"
    path: str
    sha256: str
    family: str | None
    created_at: datetime


def addon_record(row: AddOnRow) -> AddOnRecord:
    return AddOnRecord(
        name=row.name,
        kind=row.kind,
        path=row.path,
        sha256=row.sha256,
        family=row.family,
        created_at=row.created_at,
    )


class AddOns(Repository):
    async def list_addons(self, kind: str | None = None) -> list[AddOnRecord]:
        """Every registered add-on (of ``kind``, when given), by name."""
        query = select(AddOnRow).order_by(AddOnRow.name)
        if kind is not None:
            query = query.where(AddOnRow.kind == kind)
        async with self.db.read() as session:
            return [addon_record(row) for row in (await session.execute(query)).scalars()]

    async def get_addon(self, name: str) -> AddOnRecord | None:
        async with self.db.read() as session:
            row = await session.get(AddOnRow, name.strip())
            return None if row is None else addon_record(row)

    async def add_addon(
        self, name: str, *, kind: str, path: str, sha256: str, family: str | None
    ) -> AddOnRecord:
        name = name.strip()
        if not name or len(name) > 128:
            raise InvalidRequest("an add-on name must be 1 to 128 characters long")
        if kind not in ADDON_KINDS:
            raise InvalidRequest(f"unknown add-on kind {kind!r}; use one of: lora, embedding")
        async with self.db.write() as session:
            existing = await session.get(AddOnRow, name)
            if existing is not None:
                raise InvalidRequest(
                    f"a {existing.kind} named {name!r} is already registered; "
                    "remove it first or choose another name"
                )
            row = AddOnRow(
                name=name,
                kind=kind,
                path=path,
                sha256=sha256,
                family=family,
                created_at=self.now(),
            )
            session.add(row)
            await session.flush()
            return addon_record(row)

    async def remove_addon(self, name: str) -> AddOnRecord:
        """Unregister an add-on (jobs that used it keep their record; their reruns are
        refused). Returns what was removed."""
        async with self.db.write() as session:
            row = await session.get(AddOnRow, name.strip())
            if row is None:
                raise NotFound(f"no LoRA or embedding named {name.strip()!r} is registered")
            record = addon_record(row)
            await session.delete(row)
            return record
