"""The Store: every read and write of Easel's records, each one a short transaction.

Methods return frozen records from :mod:`storage.records`, never ORM objects. The Store is built
from one part per aggregate (see :mod:`storage.base`):

* :mod:`storage.people`: users and scopes, and the scopes' admin settings;
* :mod:`storage.jobs`: jobs, their images, their delivery, and the counts limits need;
* :mod:`storage.messages`: which chat message shows which job;
* :mod:`storage.registry`: the model registry.
"""

from __future__ import annotations

from storage.base import utc_now
from storage.jobs import (
    JOB_ID_ALPHABET,
    JOB_ID_LENGTH,
    UNDELIVERABLE_PREFIX,
    Jobs,
    new_job_id,
    normalize_job_id,
)
from storage.messages import Messages
from storage.people import People
from storage.registry import MODEL_CACHE_SECONDS, ModelRegistry


class Store(People, Jobs, Messages, ModelRegistry):
    """Repository over a connected :class:`storage.db.Database`: ``Store(db, now=clock)``."""


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
