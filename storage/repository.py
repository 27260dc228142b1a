"""The Store: every read and write of Easel's records, each one a short transaction.

Methods return frozen records from :mod:`storage.records`, never ORM objects. The Store is built
from one part per aggregate (see :mod:`storage.base`):

* :mod:`storage.people`: users and scopes, and the scopes' admin settings;
* :mod:`storage.jobs`: jobs, their images, their delivery, and the counts limits need;
* :mod:`storage.messages`: which chat message shows which job;
* :mod:`storage.registry`: the model registry;
* :mod:`storage.options`: the options HTTP clients set (``/sdapi/v1/options``);
* :mod:`storage.addons`: registered LoRA and embedding files.
"""

from __future__ import annotations

import contextlib

from sqlalchemy import Connection

from generation.spec import GenerationSpec, Mode
from storage.addons import AddOns
from storage.base import utc_now
from storage.jobs import (
    JOB_ID_ALPHABET,
    JOB_ID_LENGTH,
    UNDELIVERABLE_PREFIX,
    Jobs,
    finish_job,
    insert_job,
    job_values,
    jobs_since,
    new_job_id,
    normalize_job_id,
    start_job,
)
from storage.messages import Messages
from storage.options import ClientOptions
from storage.people import People, scope_in, user_in
from storage.records import NewJob
from storage.registry import MODEL_CACHE_SECONDS, ModelRegistry


class _Rehearsed(Exception):
    """Raised at the end of the warm-up transaction, so it rolls back."""


class Store(People, Jobs, Messages, ModelRegistry, ClientOptions, AddOns):
    """Repository over a connected :class:`storage.db.Database`: ``Store(db, now=clock)``."""

    async def warm_up(self) -> None:
        """Read the model registry and rehearse admission's and the worker's transactions
        (a user and a scope seen first, a daily count, a job added, started and finished) in
        one transaction that is rolled back: SQLAlchemy compiles each statement on first use
        (~1-2 ms each), which the first requests after a start would otherwise pay, all
        arriving at once, while the rest of the burst waits behind them."""
        await self.default_model()
        now, is_sqlite = self.now(), self.db.is_sqlite
        spec = GenerationSpec(
            mode=Mode.TXT2IMG,
            prompt="warm-up",
            negative_prompt="",
            model="warm-up",
            sampler="Euler a",
            width=64,
            height=64,
            steps=1,
            cfg=1.0,
            seed=0,
        )
        image = {"job_id": "warm-up", "index": 0, "seed": 0, "sha256": "0" * 64, "created_at": now}

        def rehearse(connection: Connection) -> None:
            user = user_in(connection, is_sqlite, "easel", "warm-up", "", now)
            scope = scope_in(connection, is_sqlite, "easel", "warm-up", "", now)
            jobs_since(connection, user.id, now)
            new = NewJob(spec=spec, user_id=user.id, scope_id=scope.id, platform="easel")
            insert_job(connection, is_sqlite, "warm-up", job_values(new, now))
            start_job(connection, "warm-up", now)
            finish_job(connection, "warm-up", now, [{**image, "width": 64, "height": 64}])
            raise _Rehearsed

        with contextlib.suppress(_Rehearsed):
            await self.db.write_sync(rehearse)


__all__ = [
    "JOB_ID_ALPHABET",
    "JOB_ID_LENGTH",
    "MODEL_CACHE_SECONDS",
    "UNDELIVERABLE_PREFIX",
    "Store",
    "new_job_id",
    "normalize_job_id",
    "utc_now",
]
