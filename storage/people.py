"""Users and scopes (a Discord server, a Telegram chat, the web page, an API client) and the
scopes' admin settings.

Both are read on every request and almost never change, so they are remembered here: admission
does not pay two write transactions for them (first sight is one ``write_sync``). Only the
engine's Store writes them (other processes only read), so the memory cannot go stale.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, select, update

from generation.errors import NotFound
from storage.base import Repository, upsert
from storage.convert import columns, scope_record, user_record
from storage.db import Database
from storage.models import ScopeRow, UserRow
from storage.records import ScopeRecord, UserRecord

SettingsChange = Callable[[dict[str, Any]], dict[str, Any]]
_USERS = cast(Table, UserRow.__table__)
_SCOPES = cast(Table, ScopeRow.__table__)


class People(Repository):
    def __init__(self, db: Database, now: Callable[[], datetime] | None = None) -> None:
        super().__init__(db, now)
        self._users: dict[tuple[str, str], UserRecord] = {}
        self._scopes: dict[tuple[str, str], ScopeRecord] = {}
        # Bumped by every settings change: a read that overlapped one keeps nothing (with
        # PostgreSQL, transactions finish in any order, so "last to finish" may be stale).
        self._scopes_generation = 0

    async def get_or_create_user(
        self, platform: str, platform_user_id: str, display_name: str = ""
    ) -> UserRecord:
        """The user, created on first sight; a new non-empty ``display_name`` is remembered."""
        key = (platform, platform_user_id)
        known = self._users.get(key)
        if known is not None and (not display_name or known.display_name == display_name):
            return known
        now, is_sqlite = self.now(), self.db.is_sqlite
        record = await self.db.write_sync(
            lambda c: user_in(c, is_sqlite, platform, platform_user_id, display_name, now)
        )
        self._users[key] = record  # only once the transaction committed
        return record

    async def find_user(self, platform: str, platform_user_id: str) -> UserRecord | None:
        """The user if already known; never writes (reads such as a history query use it)."""
        known = self._users.get((platform, platform_user_id))
        if known is not None:
            return known
        async with self.db.read() as session:
            row = (
                await session.execute(
                    select(UserRow).where(
                        UserRow.platform == platform, UserRow.platform_user_id == platform_user_id
                    )
                )
            ).scalar_one_or_none()
            return None if row is None else user_record(row)

    async def get_user(self, user_id: int) -> UserRecord | None:
        async with self.db.read() as session:
            row = await session.get(UserRow, user_id)
            return None if row is None else user_record(row)

    async def get_or_create_scope(
        self, platform: str, platform_scope_id: str, name: str = ""
    ) -> ScopeRecord:
        """The scope (server, chat, client), created with empty settings on first sight."""
        key = (platform, platform_scope_id)
        known = self._scopes.get(key)
        if known is not None and (not name or known.name == name):
            return known
        generation = self._scopes_generation
        now, is_sqlite = self.now(), self.db.is_sqlite
        record = await self.db.write_sync(
            lambda c: scope_in(c, is_sqlite, platform, platform_scope_id, name, now)
        )
        if generation == self._scopes_generation:  # no settings change ended meanwhile
            self._scopes[key] = record
        return record

    async def get_scope(self, scope_id: int) -> ScopeRecord | None:
        async with self.db.read() as session:
            row = await session.get(ScopeRow, scope_id)
            return None if row is None else scope_record(row)

    async def find_scope(self, platform: str, platform_scope_id: str) -> ScopeRecord | None:
        """The scope if already known; never writes (reads use it)."""
        known = self._scopes.get((platform, platform_scope_id))
        if known is not None:
            return known
        async with self.db.read() as session:
            row = (
                await session.execute(
                    select(ScopeRow).where(
                        ScopeRow.platform == platform,
                        ScopeRow.platform_scope_id == platform_scope_id,
                    )
                )
            ).scalar_one_or_none()
            return None if row is None else scope_record(row)

    async def list_scopes(self) -> list[ScopeRecord]:
        """Every scope seen so far (servers, chats, the HTTP clients), by platform then name."""
        order = (ScopeRow.platform, ScopeRow.name, ScopeRow.platform_scope_id)
        async with self.db.read() as session:
            rows = (await session.execute(select(ScopeRow).order_by(*order))).scalars().all()
            return [scope_record(row) for row in rows]

    async def change_scope_settings(self, scope_id: int, change: SettingsChange) -> ScopeRecord:
        """Apply ``change`` (stored settings -> new settings) in one write transaction.

        Read, change and write happen under the write lock, so two admins changing the same
        scope at once (one blocks a word, the other another) both keep their change. An
        exception from ``change`` leaves the settings as they were.
        """
        async with self.db.write() as session:
            row = await session.get(ScopeRow, scope_id, with_for_update=True)
            if row is None:
                raise NotFound(f"no scope with id {scope_id}")
            row.settings = dict(change(dict(row.settings or {})))
            record = scope_record(row)
        # Forgotten, not replaced: another change may have committed after this one and
        # returned before it. The next read takes the stored truth.
        self._scopes_generation += 1
        self._scopes.pop((record.platform, record.platform_scope_id), None)
        return record

    async def update_scope_settings(self, scope_id: int, settings: dict[str, Any]) -> ScopeRecord:
        """Replace the scope's settings dict."""
        return await self.change_scope_settings(scope_id, lambda _: dict(settings))


# The first-sight transactions' bodies (run by Database.write_sync; Store.warm_up rehearses them).


def user_in(
    connection: Connection,
    is_sqlite: bool,
    platform: str,
    platform_user_id: str,
    display_name: str,
    now: datetime,
) -> UserRecord:
    """The user's record, the row created if missing and the display name updated if new."""
    row = _USER_SIGHT.seen(
        connection, is_sqlite, platform, platform_user_id, display_name, {"created_at": now}
    )
    return user_record(row)


def scope_in(
    connection: Connection,
    is_sqlite: bool,
    platform: str,
    platform_scope_id: str,
    name: str,
    now: datetime,
) -> ScopeRecord:
    """The scope's record, the row created (with empty settings) if missing, the name updated."""
    extra = {"settings": {}, "created_at": now}
    return scope_record(
        _SCOPE_SIGHT.seen(connection, is_sqlite, platform, platform_scope_id, name, extra)
    )


class _FirstSight:
    """A user's or scope's row by (platform, its id there): added if missing, its name updated
    when a new non-empty one is given. The statements are built once (values bound per call,
    the insert's by column name), so SQLAlchemy reuses their compiled form."""

    def __init__(self, table: Table, id_column: str, name_column: str) -> None:
        self.id_column, self.name_column = id_column, name_column
        self.add = {
            is_sqlite: upsert(table, is_sqlite).on_conflict_do_nothing(
                index_elements=["platform", id_column]
            )
            for is_sqlite in (True, False)
        }
        key = (
            table.c.platform == bindparam("key_platform"),
            table.c[id_column] == bindparam("key_id"),
        )
        self.find = select(table).where(*key)
        self.rename = update(table).where(*key)

    def seen(
        self,
        connection: Connection,
        is_sqlite: bool,
        platform: str,
        platform_id: str,
        name: str,
        extra: dict[str, Any],
    ) -> Any:
        """The row (as :func:`storage.convert.columns` gives it), after adding or renaming."""
        values = {"platform": platform, self.id_column: platform_id, self.name_column: name}
        connection.execute(self.add[is_sqlite], {**values, **extra})
        key = {"key_platform": platform, "key_id": platform_id}
        row = columns(connection.execute(self.find, key).one())
        if name and getattr(row, self.name_column) != name:
            connection.execute(self.rename, {**key, self.name_column: name})
            setattr(row, self.name_column, name)
        return row


_USER_SIGHT = _FirstSight(_USERS, "platform_user_id", "display_name")
_SCOPE_SIGHT = _FirstSight(_SCOPES, "platform_scope_id", "name")
