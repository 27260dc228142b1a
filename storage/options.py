"""Options HTTP clients set for their scope (the ``client_options`` table): AUTOMATIC1111's
``POST /sdapi/v1/options`` keys with their JSON values, as sent, one JSON object per scope.

Apart from the scope's settings on purpose: those hold what Easel's admins configure, checked
and normalized (unknown keys dropped); these are whatever a client set, given back unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import Table, select

from storage.base import Repository
from storage.models import ClientOptionRow

_OPTIONS = cast(Table, ClientOptionRow.__table__)


class ClientOptions(Repository):
    async def client_options(self, scope_id: int) -> dict[str, Any]:
        """The options stored for the scope ({} when none)."""
        async with self.db.read() as session:
            row = await session.get(ClientOptionRow, scope_id)
            return {} if row is None else dict(row.options or {})

    async def set_client_options(self, scope_id: int, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Store ``changes`` over the scope's options (other keys kept) in one write
        transaction, so two clients setting different keys at once both keep theirs; return
        the options now stored."""
        now = self.now()
        async with self.db.write() as session:
            # The row first (a concurrent first change waits here, then finds it), then its
            # lock: read, merge and write see every change committed before.
            await session.execute(
                self.upsert(_OPTIONS)
                .values(scope_id=scope_id, options={}, updated_at=now)
                .on_conflict_do_nothing()
            )
            row = (
                await session.execute(
                    select(ClientOptionRow)
                    .where(ClientOptionRow.scope_id == scope_id)
                    .with_for_update()
                )
            ).scalar_one()
            row.options = {**(row.options or {}), **changes}  # a new dict: JSON is replaced
            row.updated_at = now
            return dict(row.options)


__all__ = ["ClientOptions"]
