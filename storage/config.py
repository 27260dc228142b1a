"""The storage section of the config (kept with the store, so storage never imports bot/)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StorageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Empty means sqlite+aiosqlite:///<data_dir>/easel.db
    database_url: str = ""
