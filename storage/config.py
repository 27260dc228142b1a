"""The storage section of the config (kept with the store, so storage never imports bot/).

``database_url`` empty means SQLite in the data directory. A PostgreSQL URL with a password
belongs in the variable named by ``database_url_env`` (redacted from every log line), not in
the file.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, model_validator
from sqlalchemy.engine import make_url


class StorageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Empty means sqlite+aiosqlite:///<data_dir>/easel.db; or postgresql+asyncpg://user@host/db
    database_url: str = ""
    database_url_env: str = "EASEL_DATABASE_URL"

    @model_validator(mode="after")
    def _check(self) -> StorageConfig:
        if self.database_url:
            try:
                url = make_url(self.database_url)
            except Exception as error:
                raise ValueError(f"storage.database_url is not a database URL ({error})") from None
            if url.get_backend_name() not in ("sqlite", "postgresql"):
                raise ValueError("storage.database_url must be a sqlite:// or postgresql:// URL")
            if url.password:
                raise ValueError(
                    "storage.database_url must not hold a password: put the whole URL in the "
                    f"variable named by storage.database_url_env (${self.database_url_env})"
                )
        return self

    def url(self) -> str | None:
        """The configured URL (the environment variable's first), or None for the default."""
        return os.environ.get(self.database_url_env) or self.database_url or None
