"""The TOML config: documented example, defaults, and errors that name the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from bot.config import Config, load_config, parse_config
from generation.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"


def keys_of(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= keys_of(annotation, f"{prefix}{name}.")
        else:
            keys.add(prefix + name)
    return keys


def flatten(data: dict[str, object], prefix: str = "") -> set[str]:
    keys = set()
    for name, value in data.items():
        # a map of names (Telegram's reactions, the prompt styles) is one key, not a section
        if isinstance(value, dict) and not name.startswith("reactions") and name != "styles":
            keys |= flatten(value, f"{prefix}{name}.")
        else:
            keys.add(prefix + name)
    return keys


def test_example_documents_every_key_with_the_default_value() -> None:
    documented = flatten(tomllib.loads(EXAMPLE.read_text()))
    assert documented == keys_of(Config)
    example = load_config(EXAMPLE).model_dump(exclude={"data_dir"})
    assert example == Config().model_dump(exclude={"data_dir"})


def test_unknown_keys_and_bad_values_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"generation\.max_stepz: unknown key"):
        parse_config({"generation": {"max_stepz": 3}})
    with pytest.raises(ConfigError, match=r"limits\.burst: Input should be greater than"):
        parse_config({"limits": {"burst": 0}})
    with pytest.raises(ConfigError, match="multiples of 8"):
        parse_config({"generation": {"max_width": 1001}})
    bad = tmp_path / "bad.toml"
    bad.write_text("[generation\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="Cannot read config file"):
        load_config(tmp_path / "missing.toml")


def test_keep_status_messages_is_a_per_platform_switch_off_by_default() -> None:
    config = Config()
    assert not config.discord.keep_status_messages and not config.telegram.keep_status_messages
    kept = parse_config({"telegram": {"keep_status_messages": True}})
    assert kept.telegram.keep_status_messages and not kept.discord.keep_status_messages
    for platform in ("discord", "telegram"):
        with pytest.raises(ConfigError, match=rf"{platform}\.keep_status_messages: .*boolean"):
            parse_config({platform: {"keep_status_messages": "sometimes"}})


def test_tokens_come_from_the_named_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = parse_config({"discord": {"token_env": "MY_DISCORD"}})
    monkeypatch.delenv("MY_DISCORD", raising=False)
    assert config.token("discord") is None
    monkeypatch.setenv("MY_DISCORD", "secret-value")
    assert config.token("discord") == "secret-value"


def test_relative_data_dir_becomes_absolute(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EASEL_CONFIG", raising=False)
    assert load_config(None).data_dir == tmp_path / "data"
    assert load_config(None).database_url.endswith(f"{tmp_path}/data/easel.db")


def test_database_and_broker_urls_are_checked_and_keep_passwords_out_of_the_file() -> None:
    with pytest.raises(ConfigError, match=r"storage\.database_url must not hold a password"):
        parse_config({"storage": {"database_url": "postgresql://easel:hunter2@db/easel"}})
    with pytest.raises(ConfigError, match="sqlite:// or postgresql://"):
        parse_config({"storage": {"database_url": "mysql://db/easel"}})
    with pytest.raises(ConfigError, match=r"cluster\.broker_url must not hold a password"):
        parse_config({"cluster": {"broker_url": "redis://:hunter2@redis:6379/0"}})
    with pytest.raises(ConfigError, match="redis:// or rediss:// URL"):
        parse_config({"cluster": {"broker_url": "amqp://rabbit"}})
    with pytest.raises(ConfigError, match="at least twice heartbeat_seconds"):
        parse_config({"cluster": {"heartbeat_seconds": 5, "heartbeat_timeout_seconds": 6}})
    config = parse_config({"cluster": {"broker_url": "redis://redis-host:6379/0"}})
    assert config.cluster.broker() == "redis://redis-host:6379/0"


def test_urls_from_the_environment_win_and_their_passwords_are_redacted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bot.logsetup import redactor

    monkeypatch.setenv("EASEL_DATABASE_URL", "postgresql+asyncpg://easel:pg%40Secret99@db/easel")
    monkeypatch.setenv("EASEL_BROKER_URL", "redis://:redisSecret77@redis:6379/0")
    config = parse_config({"cluster": {"broker_url": "redis://other:6379/0"}})
    assert config.database_url.startswith("postgresql+asyncpg://easel:")
    assert config.cluster.broker() == "redis://:redisSecret77@redis:6379/0"
    redact = redactor(config.secret_env_vars)
    line = "asyncpg: password authentication failed for pg@Secret99 (pg%40Secret99); redisSecret77"
    cleaned = redact(line)
    assert "Secret99" not in cleaned and "redisSecret77" not in cleaned
