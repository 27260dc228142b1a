"""What every part of the Store shares: the database and the clock.

The Store (:mod:`storage.repository`) is one object built from one part per aggregate, each in
its own module: people (users and scopes), jobs (with their images and delivery), the chat
messages that show a job, and the model registry. Every part takes ``(db, now)`` and passes
them on, so ``Store(db, now)`` builds them all.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite

from storage.db import Database


def utc_now() -> datetime:
    return datetime.now(UTC)


def upsert(table: Any, is_sqlite: bool) -> Any:
    """An INSERT with ``on_conflict_do_nothing``/``_update`` in the database's dialect."""
    return sqlite.insert(table) if is_sqlite else postgresql.insert(table)


class Repository:
    """The base of every Store part. ``now`` is the clock (aware UTC)."""

    def __init__(self, db: Database, now: Callable[[], datetime] | None = None) -> None:
        self.db = db
        self.now = now or utc_now

    def upsert(self, table: Any) -> Any:
        """An INSERT with ``on_conflict_do_nothing``/``_update`` in this database's dialect."""
        return upsert(table, self.db.is_sqlite)
