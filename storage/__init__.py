"""Persistence: the SQLite database, the Store repository and the content-addressed image files.

Database      engine, migrations, ``read()``/``write()`` transactions (db.py)
Store         every query and state change, returning frozen records (repository.py)
ImageStore    PNG files named by their sha256 (images.py)
"""

from storage.db import Database
from storage.images import ImageStore
from storage.records import (
    ImageRecord,
    JobRecord,
    JobStatus,
    ModelRecord,
    NewImage,
    NewJob,
    PlatformMessage,
    ScopeRecord,
    UserRecord,
)
from storage.repository import Store

__all__ = [
    "Database",
    "ImageRecord",
    "ImageStore",
    "JobRecord",
    "JobStatus",
    "ModelRecord",
    "NewImage",
    "NewJob",
    "PlatformMessage",
    "ScopeRecord",
    "Store",
    "UserRecord",
]
