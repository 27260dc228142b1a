"""What every part of the Store shares: the database and the clock.

The Store (:mod:`storage.repository`) is one object built from one part per aggregate, each in
its own module: people (users and scopes), jobs (with their images and delivery), the chat
messages that show a job, and the model registry. Every part takes ``(db, now)`` and passes
them on, so ``Store(db, now)`` builds them all.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from storage.db import Database


def utc_now() -> datetime:
    return datetime.now(UTC)


class Repository:
    """The base of every Store part. ``now`` is the clock (aware UTC)."""

    def __init__(self, db: Database, now: Callable[[], datetime] | None = None) -> None:
        self.db = db
        self.now = now or utc_now
