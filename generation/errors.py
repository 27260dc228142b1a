"""Easel's exception tree.

Every error a person can cause carries a message they can act on; rejections carry data
(``RateLimited.retry_after``) so front ends can say when to try again.

    EaselError                      base of everything Easel raises on purpose
    ├── ConfigError                 bad or unknown key in the TOML config (names the key)
    ├── Rejected                    a request refused by policy; nothing was queued
    │   ├── InvalidRequest          malformed or out-of-range parameters (size, steps, sampler...)
    │   ├── BlockedPrompt           the prompt contains a word on the scope's blocklist
    │   ├── RateLimited             token bucket empty; ``retry_after`` seconds until the next token
    │   ├── QuotaExceeded           daily quota used up; ``retry_after`` until it resets
    │   ├── TooManyQueued           the user's (or the global) queue cap is reached
    │   ├── PermissionDenied        not the requester / not an admin
    │   └── ImageRejected           an uploaded image is too big, a bomb, or not an allowed format
    ├── NotFound                    unknown job id, model or image index
    ├── ModelError                  a model cannot be registered or loaded (offline, unsafe weights)
    ├── EngineBusy                  another Easel engine already owns this data directory
    └── GenerationFailed            the backend raised while rendering (the job is marked failed)
        └── OutOfMemory             the device ran out of memory
    JobInterrupted                  (internal, not an EaselError) a running job was cancelled
"""

from __future__ import annotations


def shown(value: object, limit: int = 40, *, quote: bool = True) -> str:
    """A user's value for a message: ``repr``-quoted, clipped so that a refusal stays a sentence
    that fits a chat message (Discord takes 2,000 characters, Telegram 4,096)."""
    text = str(value)
    clipped = text[:limit]
    out = repr(clipped) if quote else clipped
    return out if len(text) <= limit else f"{out}… ({len(text):,} characters)"


class EaselError(Exception):
    """Base class; ``str(error)`` is a sentence a user can read."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(EaselError):
    """The configuration file has an unknown key or a bad value."""


class Rejected(EaselError):
    """A request refused by policy. Nothing was queued."""


class InvalidRequest(Rejected):
    """Parameters are malformed or outside what this server allows."""


class BlockedPrompt(Rejected):
    """The prompt contains a blocked word."""

    def __init__(self, message: str, word: str) -> None:
        super().__init__(message)
        self.word = word


class RateLimited(Rejected):
    """Too many requests; ``retry_after`` seconds until one more is allowed."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QuotaExceeded(Rejected):
    """The daily quota is used up; ``retry_after`` seconds until it resets."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooManyQueued(Rejected):
    """The user's queued-jobs cap, or the global queue cap, is reached."""


class PermissionDenied(Rejected):
    """The caller may not do this (not the requester, not an admin)."""


class ImageRejected(Rejected):
    """An uploaded image was refused (size, format, decompression bomb, unreadable)."""


class NotFound(EaselError):
    """No such job, model or image."""


class ModelError(EaselError):
    """A model cannot be registered or loaded."""


class EngineBusy(EaselError):
    """Another Easel engine (``easel serve``) already owns this data directory."""


class GenerationFailed(EaselError):
    """The backend raised while rendering."""


class OutOfMemory(GenerationFailed):
    """The device ran out of memory while rendering."""


class JobInterrupted(Exception):
    """Raised inside the worker thread when a running job is cancelled or the engine stops."""
