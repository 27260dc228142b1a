"""Logging set-up with a filter that redacts bot tokens, interaction tokens and webhook URLs.

httpx logs request URLs (which contain the Telegram bot token) at INFO and discord.py logs
webhook URLs at DEBUG; the filter sits on the handler so every logger's records pass it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable

REDACTED = "[redacted]"

_PATTERNS = [
    # Telegram bot token, bare or inside /bot<token>/ URLs
    re.compile(r"\d{6,12}:[A-Za-z0-9_-]{30,}"),
    # Discord bot token (three dot-separated base64url parts)
    re.compile(r"[MNO][A-Za-z0-9_-]{22,}\.[A-Za-z0-9_-]{5,7}\.[A-Za-z0-9_-]{25,}"),
    # Discord webhook / interaction URLs: keep the id, hide the token
    re.compile(r"(?<=/webhooks/)(\d+)/[A-Za-z0-9_.-]{20,}"),
    re.compile(r"(?<=/interactions/)(\d+)/[A-Za-z0-9_.-]{20,}"),
]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in secrets:
        if secret and len(secret) >= 8:
            text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: f"{m.group(1)}/{REDACTED}" if m.groups() else REDACTED, text)
    return text


class RedactingFilter(logging.Filter):
    def __init__(self, secret_env_vars: Iterable[str] = ()) -> None:
        super().__init__()
        self._env_vars = tuple(secret_env_vars)

    def _secrets(self) -> list[str]:
        return [os.environ.get(name, "") for name in self._env_vars]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        cleaned = redact(message, self._secrets())
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self._secrets())
        return True


def setup_logging(level: str, secret_env_vars: Iterable[str] = ()) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(secret_env_vars))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter that is noise at INFO
    for noisy in ("httpx", "httpcore", "urllib3", "diffusers", "aiosqlite", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # transformers (configured on import, from this variable) warns about optional vision
    # back-ends Easel never uses
    if root.level > logging.DEBUG:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
