"""The ``[cluster]`` section: rendering on ``easel worker`` processes through a Redis broker.

Empty (the default) means the engine renders on its own worker thread and needs no Redis. The
broker URL holds no password in the file: put a URL with one in the variable named by
``broker_url_env`` (redacted from every log line, like the bot tokens).
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from generation.config import Section


class ClusterConfig(Section):
    broker_url: str = ""  # redis://host:6379/0
    broker_url_env: str = "EASEL_BROKER_URL"
    # Redis key prefix, so several Easels can share one Redis.
    prefix: str = Field("easel", pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    heartbeat_seconds: float = Field(1.0, gt=0.0, le=60.0)
    # A worker silent this long is taken for dead: its batches are rendered elsewhere.
    heartbeat_timeout_seconds: float = Field(10.0, gt=0.0, le=3600.0)
    # A batch a (live) worker has held this long is rendered elsewhere too (a hung GPU).
    job_timeout_seconds: float = Field(1800.0, gt=0.0)
    # This worker's name (`easel worker`); empty = the host name. Two workers never share one.
    worker_name: str = Field("", max_length=80)

    @model_validator(mode="after")
    def _check(self) -> ClusterConfig:
        if self.heartbeat_timeout_seconds < 2 * self.heartbeat_seconds:
            raise ValueError(
                "cluster.heartbeat_timeout_seconds must be at least twice heartbeat_seconds"
            )
        if self.broker_url:
            url = urlsplit(self.broker_url)
            if url.scheme not in ("redis", "rediss") or not url.netloc:
                raise ValueError("cluster.broker_url must be a redis:// or rediss:// URL")
            if url.password:
                raise ValueError(
                    "cluster.broker_url must not hold a password: put the whole URL in the "
                    f"variable named by cluster.broker_url_env (${self.broker_url_env})"
                )
        return self

    def broker(self) -> str | None:
        """The broker URL: the environment variable's, else the file's; None = no cluster."""
        return os.environ.get(self.broker_url_env) or self.broker_url or None
