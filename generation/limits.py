"""Rate limits and daily quotas (pure: the caller passes the time in).

Monotonic seconds (``time.monotonic()``) drive the token buckets; calendar-aware ``datetime``
values drive daily quotas, which reset at midnight UTC. Like discord.py's
``Cooldown.get_tokens(current)``, nothing here reads a clock, so tests never sleep.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Hashable
from datetime import UTC, datetime, timedelta

# A token counts as available when this close to 1, so that waiting exactly the advertised
# ``retry_after`` always succeeds despite float rounding.
_EPSILON = 1e-9


class TokenBucket:
    """``capacity`` tokens, refilled continuously at ``rate_per_second``; starts full."""

    __slots__ = ("_last", "_tokens", "capacity", "rate")

    def __init__(self, rate_per_second: float, capacity: int) -> None:
        if not (rate_per_second > 0 and math.isfinite(rate_per_second)):
            raise ValueError(f"rate_per_second must be a positive number, got {rate_per_second}")
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.rate = float(rate_per_second)
        self.capacity = capacity
        self._tokens = float(capacity)
        self._last: float | None = None

    def _refill(self, now: float) -> None:
        if self._last is None:
            self._last = now
            return
        elapsed = now - self._last
        if elapsed > 0:  # a clock that steps back never refills nor moves ``_last`` back
            self._tokens = min(float(self.capacity), self._tokens + elapsed * self.rate)
            self._last = now

    def tokens(self, now: float) -> float:
        """How many tokens are available at ``now`` (fractional)."""
        self._refill(now)
        return self._tokens

    def peek(self, now: float) -> float:
        """Seconds until a token is available (0.0 if one is available now); consumes nothing."""
        self._refill(now)
        if self._tokens >= 1.0 - _EPSILON:
            return 0.0
        return (1.0 - self._tokens) / self.rate

    def try_take(self, now: float) -> float:
        """Take a token and return 0.0, or return the seconds until one is available."""
        wait = self.peek(now)
        if wait == 0.0:
            self._tokens = max(0.0, self._tokens - 1.0)
        return wait

    def refund(self, now: float) -> None:
        """Give one token back (never above capacity)."""
        self._refill(now)
        self._tokens = min(float(self.capacity), self._tokens + 1.0)

    def is_full(self, now: float) -> bool:
        return self.tokens(now) >= self.capacity - _EPSILON


class RateLimiter:
    """Per-key token buckets: ``burst`` requests at once, then ``rate_per_minute`` on average.

    Memory stays bounded: a bucket that has refilled completely behaves exactly like a new one,
    so it is forgotten; and when more than ``max_keys`` keys are active at once, the least
    recently used one is dropped (which can only make the limiter more lenient to that key).
    """

    def __init__(self, rate_per_minute: float, burst: int, *, max_keys: int = 10_000) -> None:
        if not (rate_per_minute > 0 and math.isfinite(rate_per_minute)):
            raise ValueError(f"rate_per_minute must be a positive number, got {rate_per_minute}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {max_keys}")
        self.rate_per_minute = float(rate_per_minute)
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _forget_idle(self, now: float) -> None:
        # Least recently used first; stop at the first bucket still refilling (amortised O(1)).
        while self._buckets:
            key, bucket = next(iter(self._buckets.items()))
            if not bucket.is_full(now):
                break
            del self._buckets[key]
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)

    def try_acquire(self, key: Hashable, now: float) -> float:
        """0.0 if allowed (a token is taken), else the seconds until the next token."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(self.rate_per_minute / 60.0, self.burst)
            self._buckets[key] = bucket
        else:
            self._buckets.move_to_end(key)
        wait = bucket.try_take(now)
        self._forget_idle(now)
        return wait

    def peek(self, key: Hashable, now: float) -> float:
        """Seconds until ``key`` may acquire (0.0 = now); consumes nothing."""
        bucket = self._buckets.get(key)
        return 0.0 if bucket is None else bucket.peek(now)

    def refund(self, key: Hashable, now: float) -> None:
        """Give back the token taken by ``try_acquire`` when a later check refused the job."""
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.refund(now)


def _as_utc(now: datetime) -> datetime:
    """Naive datetimes are taken to be UTC already."""
    if now.tzinfo is None:
        return now.replace(tzinfo=UTC)
    return now.astimezone(UTC)


def utc_day_start(now: datetime) -> datetime:
    """Midnight UTC at the start of ``now``'s UTC day (timezone-aware)."""
    return _as_utc(now).replace(hour=0, minute=0, second=0, microsecond=0)


def seconds_until_utc_midnight(now: datetime) -> float:
    """Seconds from ``now`` until the next midnight UTC, when daily quotas reset (> 0)."""
    return (utc_day_start(now) + timedelta(days=1) - _as_utc(now)).total_seconds()


def format_retry(seconds: float) -> str:
    """``"in 12 s"``, ``"in 3 min"``, ``"in 2 h 5 min"``; always rounds up, so users never retry
    too early."""
    if math.isnan(seconds) or math.isinf(seconds):
        return "later"
    total = math.ceil(seconds)
    if total <= 0:
        return "now"
    if total < 60:
        return f"in {total} s"
    total_minutes = math.ceil(total / 60)
    if total_minutes < 60:
        return f"in {total_minutes} min"
    hours, minutes = divmod(total_minutes, 60)
    return f"in {hours} h" if minutes == 0 else f"in {hours} h {minutes} min"
