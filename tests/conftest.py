"""Shared fixtures. Everything runs offline: nothing is fetched from the Hugging Face Hub."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import logging
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import App
from bot.config import Config, parse_config
from bot.logsetup import RedactingFilter
from generation.requests import Origin, Visibility

# The machine's owner (as at the command line): an admin who sees every job.
OWNER = Origin("cli", "local", "owner", is_admin=True, sees=Visibility.ALL)

# The libraries ``setup_logging`` quiets to WARNING (bot/logsetup.py).
QUIETED_LIBRARIES = ("httpx", "httpcore", "urllib3", "diffusers", "aiosqlite", "alembic")


class SecretSpotter(logging.Handler):
    """Sees every record of the whole suite at DEBUG, after the redacting filter ``easel``
    installs on its own handler, and notes any that still shows a secret the tests use."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__(logging.DEBUG)
        self.secrets = secrets
        self.leaks: list[str] = []
        self.addFilter(RedactingFilter(parse_config({}).secret_env_vars))
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        for secret in self.secrets:
            if secret in text:
                self.leaks.append(f"{secret[:12]}… in {text[:300]!r}")


@pytest.fixture(scope="session", autouse=True)
def _no_secret_in_any_log() -> Iterator[None]:
    """The whole suite runs with DEBUG logging; no test secret may reach a log line."""
    from tests.telegram.fake_telegram import TOKEN as TELEGRAM_TOKEN

    spotter = SecretSpotter(
        (
            TELEGRAM_TOKEN.split(":", 1)[1],
            "simcord_interaction_",
            "simcord_webhook_",
            "simcord.fake.token",
            "api-Tok3n-4f9c2d81e7",  # tests/reliability/test_secrets.py
            "adm-Tok3n-b73e10c55a",
            "pw-S3cret-",
        )
    )
    root = logging.getLogger()
    level = root.level
    root.addHandler(spotter)
    root.setLevel(logging.DEBUG)
    yield
    root.removeHandler(spotter)
    root.setLevel(level)
    assert not spotter.leaks, "secrets in the log:\n" + "\n".join(spotter.leaks[:20])


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo what a test's ``easel`` run did to logging (``setup_logging`` replaces the root
    handlers with one writing to that test's captured stderr, closed once the test ends)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quieted = {name: logging.getLogger(name).level for name in QUIETED_LIBRARIES}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, library_level in quieted.items():
        logging.getLogger(name).setLevel(library_level)


@pytest.fixture(scope="session")
def saved_demo_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo model written once per test session (copied into each test's data dir)."""
    from generation.backend.demo_model import save_demo_model

    return save_demo_model(tmp_path_factory.mktemp("demo") / "demo")


def make_config(data_dir: Path, **sections: dict[str, Any]) -> Config:
    data: dict[str, Any] = {"data_dir": str(data_dir)}
    data.update(sections)
    return parse_config(data)


@pytest.fixture
def data_dir(tmp_path: Path, saved_demo_model: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(saved_demo_model, target / "models" / "demo")
    return target


AppFactory = Callable[..., Awaitable[App]]


@pytest.fixture
async def app_factory(data_dir: Path) -> AsyncIterator[AppFactory]:
    """``await app_factory(limits={...})`` -> a started App on this test's data dir."""
    apps: list[App] = []

    async def factory(worker: bool = True, **sections: dict[str, Any]) -> App:
        sections.setdefault("generation", {})
        sections["generation"].setdefault("shutdown_grace_seconds", 5.0)
        # Generous limits unless a test is about limits: tests submit many jobs quickly.
        sections.setdefault("limits", {})
        sections["limits"].setdefault("burst", 1000)
        sections["limits"].setdefault("max_queued_per_user", 1000)
        app = App.from_config(make_config(data_dir, **sections))
        await app.start(worker=worker)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        if app.started:
            await app.stop()


WebFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def web_factory(app_factory: AppFactory) -> AsyncIterator[WebFactory]:
    """``await web_factory(worker=True, **config_sections)`` -> a started aiohttp TestClient
    serving a real App on 127.0.0.1 (see tests/web/conftest.py)."""
    from bot.web.server import create_web_app

    clients: list[TestClient[Any, Any]] = []

    async def factory(worker: bool = True, **sections: dict[str, Any]) -> TestClient[Any, Any]:
        app = await app_factory(worker=worker, **sections)
        client: TestClient[Any, Any] = TestClient(TestServer(create_web_app(app), host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield factory
    for client in clients:  # before app_factory stops the apps
        await client.close()


# ---------------------------------------------------------------------- real servers


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A PostgreSQL server for the session (tests.servers); ``create_database()`` per test."""
    from tests.servers import PostgresServer, postgres_bin, unavailable

    bin_dir = postgres_bin()
    if bin_dir is None:
        unavailable("PostgreSQL (Debian package postgresql)")
    assert bin_dir is not None
    server = PostgresServer(bin_dir)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Any]:
    """A Redis server for the session, append-only file on (tests.servers)."""
    from tests.servers import RedisServer, unavailable

    try:
        server = RedisServer()
    except FileNotFoundError:
        unavailable("Redis (Debian package redis-server)")
        raise
    yield server
    server.close()
