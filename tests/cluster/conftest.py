"""The ``cluster_factory`` fixture: an engine on a fresh Redis prefix (see harness.py)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.config import load_config
from tests.cluster.harness import Cluster, write_config

ClusterFactory = Callable[..., AbstractAsyncContextManager[Cluster]]


@pytest.fixture
async def cluster_factory(
    tmp_path: Path, data_dir: Path, redis_server: Any
) -> AsyncIterator[ClusterFactory]:
    """``async with cluster_factory(seconds=0.05) as cluster:`` an engine on a fresh prefix."""
    clusters: list[Cluster] = []

    @contextlib.asynccontextmanager
    async def factory(seconds: float = 0.05, database: str = "") -> AsyncIterator[Cluster]:
        prefix = f"t{uuid.uuid4().hex[:10]}"
        logs = tmp_path / f"logs-{prefix}"
        logs.mkdir()
        path = write_config(
            tmp_path / f"{prefix}.toml", data_dir, redis_server.url, prefix, database
        )
        app = App.from_config(load_config(path))
        await app.start()
        cluster = Cluster(app, path, logs, seconds)
        clusters.append(cluster)
        try:
            yield cluster
        finally:
            await cluster.close()

    yield factory
    for cluster in clusters:
        await cluster.close()
