"""Logging set-up with a filter that redacts bot tokens, interaction tokens and webhook URLs.

httpx logs request URLs (which contain the Telegram bot token) at INFO and discord.py logs
webhook URLs at DEBUG; the filter sits on the handler so every logger's records pass it.

:func:`redact` hides, by shape: Telegram bot tokens (bare, in ``/bot<token>/`` API URLs and
``/file/bot<token>/`` file URLs), Discord bot tokens, Discord interaction tokens, the token part
of webhook and interaction URLs (``/webhooks/<id>/<token>``, ``/interactions/<id>/<token>``),
``Bearer``/``Basic`` credentials and ``user:password@`` in URLs; and, by value, the secrets it is
given (the filter passes the values of the environment variables that hold Easel's tokens).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable, Iterable
from urllib.parse import quote, unquote, urlsplit

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 6  # shorter values would redact ordinary words

# Patterns whose first group (if any) is kept and the rest of the match hidden.
_PATTERNS = [
    # Telegram bot token in Bot API and file URLs (/bot<token>/, /file/bot<token>/); httpx
    # logs file URLs with the colon percent-encoded (/file/bot123%3AABC.../photos/x.jpg)
    re.compile(r"(/bot)\d+(?::|%3[Aa])[^/\s?#'\"]+"),
    # Telegram bot token, bare
    re.compile(r"\d{6,12}:[A-Za-z0-9_-]{30,}"),
    # Discord bot token (three dot-separated base64url parts)
    re.compile(r"[A-Za-z0-9_-]{23,28}\.[A-Za-z0-9_-]{6,7}\.[A-Za-z0-9_-]{27,}"),
    # Discord interaction token ("interaction:..." in base64)
    re.compile(r"aW50ZXJhY3Rpb246[A-Za-z0-9_.+/=-]+"),
    # Discord webhook / interaction URLs: keep the id, hide the token
    re.compile(r"(/webhooks/\d+/)[^/\s?#'\"]+"),
    re.compile(r"(/interactions/\d+/)[^/\s?#'\"]+"),
    # HTTP credentials: Authorization headers, bearer/basic values, user:password@ in URLs
    re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?(?:bot |bearer |basic )?)[^\s'\",}]+"),
    # (a credential has a digit or symbol: "basic credentials" stays readable)
    re.compile(
        r"(?i)(\b(?:bearer|basic) +)"
        r"(?=[A-Za-z.]*(?:[0-9_~+/=-]|\.[A-Za-z0-9]))[A-Za-z0-9._~+/=-]{6,}"
    ),
    re.compile(r"(://)[^/\s:@'\"]+:[^/\s@'\"]+(?=@)"),
]


def _keep_group(match: re.Match[str]) -> str:
    return f"{match.group(1)}{REDACTED}" if match.groups() else REDACTED


def secret_values(raw: str) -> list[str]:
    """The secrets in one environment variable: the value, for a URL its password, and for
    ``user:pass,...`` lists each entry and each password."""
    values = [raw]
    if "://" in raw:  # a database or broker URL: its password alone too
        with contextlib.suppress(ValueError):
            password = urlsplit(raw).password
            if password:
                values += [password, unquote(password)]
        return [v for v in values if len(v) >= MIN_SECRET_LENGTH]
    for entry in raw.split(","):
        entry = entry.strip()
        values.append(entry)
        if ":" in entry:
            values.append(entry.split(":", 1)[1])
    return [v for v in values if len(v) >= MIN_SECRET_LENGTH]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in sorted(secrets, key=len, reverse=True):  # "a:b,c:d" before "b"
        if secret and len(secret) >= MIN_SECRET_LENGTH:
            # as written, and as it appears inside a URL (percent-encoded)
            for form in {secret, quote(secret, safe="")}:
                text = text.replace(form, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(_keep_group, text)
    return text


def secrets_in(env_vars: Iterable[str]) -> list[str]:
    """The secrets held now by the environment variables named ``env_vars``."""
    return [value for name in env_vars for value in secret_values(os.environ.get(name, ""))]


def redactor(env_vars: Iterable[str]) -> Callable[[str], str]:
    """:func:`redact` with the secrets of ``env_vars`` (read at each call, like the filter)."""
    names = tuple(env_vars)
    return lambda text: redact(text, secrets_in(names))


class RedactingFilter(logging.Filter):
    def __init__(self, secret_env_vars: Iterable[str] = ()) -> None:
        super().__init__()
        self._env_vars = tuple(secret_env_vars)

    def _secrets(self) -> list[str]:
        return secrets_in(self._env_vars)

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
