"""TOML -> typed, validated, frozen settings.

Unknown keys and bad values are errors that name the key (``generation.max_steps: ...``).
Secrets are never in the file: the file names the environment variable that holds each token.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from cluster.config import ClusterConfig
from generation.config import GenerationConfig, LimitsConfig
from generation.config import Section as _Section
from generation.errors import ConfigError
from storage.config import StorageConfig

CONFIG_ENV = "EASEL_CONFIG"


class DiscordConfig(_Section):
    token_env: str = "EASEL_DISCORD_TOKEN"
    owner_ids: tuple[int, ...] = ()
    sync_commands: bool = True  # sync slash commands with Discord at start-up
    status_edit_interval: float = Field(2.0, ge=0.0)  # seconds between progress edits per job
    max_upload_mb: float = Field(10.0, gt=0.0, le=200.0)  # largest /draw image attachment
    # Channels without an /nsfw setting: "refuse" flagged prompts (age-restricted channels
    # always allow them unless set otherwise), "spoiler" or "allow".
    nsfw_default: Literal["refuse", "spoiler", "allow"] = "refuse"
    # false: a job's status message goes away when its result arrives (one message per job);
    # true: it stays, showing "✅ ... finished".
    keep_status_messages: bool = False

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


TELEGRAM_REACTION_ACTIONS = ("reroll", "upscale", "vary")


class TelegramConfig(_Section):
    token_env: str = "EASEL_TELEGRAM_TOKEN"
    owner_ids: tuple[int, ...] = ()
    # Bot API server; empty = python-telegram-bot's defaults (https://api.telegram.org/...).
    base_url: str = ""
    base_file_url: str = ""
    local_mode: bool = False  # a self-hosted server started with --local (files on its disk)
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str = ""  # public https URL Telegram posts updates to (webhook mode)
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = Field(8443, ge=0, le=65535)
    webhook_secret_env: str = "EASEL_TELEGRAM_WEBHOOK_SECRET"
    # Reaction emoji (Telegram's allowed set) -> action on the result it was put on.
    reactions: dict[str, str] = Field(
        default_factory=lambda: {"⚡": "reroll", "🔥": "upscale", "🎉": "vary"}
    )
    # Seconds between two edits of one status message (groups: at least 3, i.e. 20 a minute).
    status_edit_interval: float = Field(1.5, ge=0.0, le=60.0)
    # false: a job's status message is deleted when its picture arrives (one message per job);
    # true: it stays, showing "✅ ... finished".
    keep_status_messages: bool = False

    @model_validator(mode="after")
    def _check_telegram(self) -> TelegramConfig:
        for emoji, action in self.reactions.items():
            if action not in TELEGRAM_REACTION_ACTIONS:
                raise ValueError(
                    f"telegram.reactions[{emoji!r}]: unknown action {action!r}; "
                    f"use {', '.join(TELEGRAM_REACTION_ACTIONS)}"
                )
        if self.mode == "webhook" and not self.webhook_url.startswith("https://"):
            raise ValueError('telegram.webhook_url must be an https:// URL when mode = "webhook"')
        return self


class WebConfig(_Section):
    """The local web page, Easel's JSON API and the AUTOMATIC1111-compatible API (one server)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(7860, ge=0, le=65535)  # 0 = any free port (tests)
    # Environment variables holding credentials (never the credentials themselves).
    api_auth_env: str = "EASEL_API_AUTH"  # "user:pass,user2:pass2" (HTTP basic)
    api_token_env: str = "EASEL_API_TOKEN"  # bearer token for API clients
    admin_token_env: str = "EASEL_ADMIN_TOKEN"  # bearer token for the admin routes
    max_upload_mb: float = Field(10.0, gt=0.0, le=200.0)
    sync_timeout_seconds: float = Field(600.0, gt=0.0)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


class Config(_Section):
    data_dir: Path = Path("./data")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    storage: StorageConfig = StorageConfig()
    generation: GenerationConfig = GenerationConfig()
    limits: LimitsConfig = LimitsConfig()
    discord: DiscordConfig = DiscordConfig()
    telegram: TelegramConfig = TelegramConfig()
    web: WebConfig = WebConfig()
    cluster: ClusterConfig = ClusterConfig()

    @model_validator(mode="after")
    def _check_web(self) -> Config:
        if not self.web.host.strip():
            raise ValueError('web.host must not be empty (use "0.0.0.0" for every interface)')
        return self

    @property
    def database_url(self) -> str:
        return self.storage.url() or f"sqlite+aiosqlite:///{(self.data_dir / 'easel.db').resolve()}"

    @property
    def secret_env_vars(self) -> tuple[str, ...]:
        """The environment variables that hold secrets (redacted from every log line)."""
        return (
            self.discord.token_env,
            self.telegram.token_env,
            self.telegram.webhook_secret_env,
            self.web.api_auth_env,
            self.web.api_token_env,
            self.web.admin_token_env,
            self.storage.database_url_env,
            self.cluster.broker_url_env,
        )

    def token(self, platform: Literal["discord", "telegram"]) -> str | None:
        """The bot token from the environment variable the config names, or None."""
        section: DiscordConfig | TelegramConfig = getattr(self, platform)
        return os.environ.get(section.token_env) or None


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown key")
        else:
            lines.append(f"{where}: {item['msg']}")
    return "; ".join(lines)


def parse_config(data: dict[str, Any], source: str = "config") -> Config:
    try:
        config = Config.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"{source}: {_describe(error)}") from None
    return config


def load_config(path: str | Path | None = None) -> Config:
    """Load the TOML file at ``path`` (or ``$EASEL_CONFIG``); None and no env var = defaults."""
    chosen = path if path is not None else os.environ.get(CONFIG_ENV)
    if chosen is None:
        return _absolute_data_dir(Config())
    file = Path(chosen)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"Cannot read config file {file}: {error.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{file}: not valid TOML: {error}") from None
    return _absolute_data_dir(parse_config(data, str(file)))


def _absolute_data_dir(config: Config) -> Config:
    """A relative data_dir is relative to the working directory, like every other CLI path."""
    if config.data_dir.is_absolute():
        return config
    return config.model_copy(update={"data_dir": Path(os.path.abspath(config.data_dir))})


__all__ = [
    "Config",
    "ConfigError",
    "GenerationConfig",
    "LimitsConfig",
    "StorageConfig",
    "load_config",
    "parse_config",
]
