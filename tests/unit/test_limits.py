from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from generation.config import GenerationConfig
from generation.errors import RateLimited
from generation.limits import (
    RateLimiter,
    TokenBucket,
    format_retry,
    seconds_until_utc_midnight,
    utc_day_start,
)
from generation.policy import AdmissionPolicy, describe_rate, who_allows


def test_bucket_starts_full_and_empties() -> None:
    bucket = TokenBucket(rate_per_second=0.5, capacity=3)
    assert [bucket.try_take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.try_take(100.0) == pytest.approx(2.0)
    assert bucket.peek(101.0) == pytest.approx(1.0)
    assert bucket.try_take(101.0) == pytest.approx(1.0)  # refusing consumes nothing
    assert bucket.try_take(102.0) == 0.0


def test_waiting_exactly_the_advertised_time_succeeds() -> None:
    bucket = TokenBucket(rate_per_second=1 / 7, capacity=1)
    now = 12.345
    assert bucket.try_take(now) == 0.0
    wait = bucket.try_take(now + 0.1)
    assert wait > 0
    assert bucket.try_take(now + 0.1 + wait) == 0.0


def test_bucket_never_exceeds_capacity() -> None:
    bucket = TokenBucket(rate_per_second=10, capacity=2)
    bucket.try_take(0.0)
    assert bucket.tokens(1000.0) == 2.0
    bucket.refund(1000.0)
    assert bucket.tokens(1000.0) == 2.0


def test_peek_does_not_consume() -> None:
    bucket = TokenBucket(rate_per_second=1, capacity=1)
    assert bucket.peek(0.0) == 0.0
    assert bucket.peek(0.0) == 0.0
    assert bucket.try_take(0.0) == 0.0
    assert bucket.peek(0.0) == pytest.approx(1.0)


def test_clock_going_backwards_does_not_refill() -> None:
    bucket = TokenBucket(rate_per_second=1, capacity=1)
    assert bucket.try_take(50.0) == 0.0
    assert bucket.try_take(10.0) == pytest.approx(1.0)
    assert bucket.try_take(51.0) == 0.0


def test_bucket_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="rate_per_second"):
        TokenBucket(0, 1)
    with pytest.raises(ValueError, match="capacity"):
        TokenBucket(1, 0)


@given(st.lists(st.floats(0, 100), min_size=1, max_size=50))
def test_bucket_grants_no_more_than_capacity_plus_refill(gaps: list[float]) -> None:
    bucket = TokenBucket(rate_per_second=0.5, capacity=3)
    now = 0.0
    granted = 0
    for gap in gaps:
        now += gap
        if bucket.try_take(now) == 0.0:
            granted += 1
    assert granted <= 3 + math.floor(now * 0.5 + 1e-6)


def test_rate_limiter_is_per_key() -> None:
    limiter = RateLimiter(rate_per_minute=6, burst=2)
    assert limiter.try_acquire("alice", 0.0) == 0.0
    assert limiter.try_acquire("alice", 0.0) == 0.0
    assert limiter.try_acquire("alice", 0.0) == pytest.approx(10.0)
    assert limiter.try_acquire("bob", 0.0) == 0.0
    assert limiter.try_acquire("alice", 10.0) == 0.0


def test_refund_gives_the_token_back() -> None:
    limiter = RateLimiter(rate_per_minute=1, burst=1)
    assert limiter.try_acquire("alice", 0.0) == 0.0
    limiter.refund("alice", 0.0)  # e.g. the quota check refused the job afterwards
    assert limiter.peek("alice", 0.0) == 0.0
    assert limiter.try_acquire("alice", 0.0) == 0.0
    assert limiter.try_acquire("alice", 0.0) == pytest.approx(60.0)
    limiter.refund("nobody", 0.0)  # unknown keys are a no-op


def test_idle_buckets_are_forgotten() -> None:
    limiter = RateLimiter(rate_per_minute=60, burst=2)
    for index in range(100):
        limiter.try_acquire(f"user{index}", 0.0)
    assert len(limiter) == 100
    limiter.try_acquire("late", 10.0)  # everyone else has refilled by now
    assert len(limiter) == 1


def test_memory_is_bounded_even_when_nobody_is_idle() -> None:
    limiter = RateLimiter(rate_per_minute=1, burst=1, max_keys=50)
    for index in range(1000):
        limiter.try_acquire(f"user{index}", 0.0)
    assert len(limiter) == 50


def test_rate_limiter_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="rate_per_minute"):
        RateLimiter(0, 1)
    with pytest.raises(ValueError, match="burst"):
        RateLimiter(1, 0)


def test_utc_day_start_and_midnight() -> None:
    now = datetime(2024, 5, 1, 23, 59, 30, tzinfo=UTC)
    assert utc_day_start(now) == datetime(2024, 5, 1, tzinfo=UTC)
    assert seconds_until_utc_midnight(now) == 30.0
    assert seconds_until_utc_midnight(datetime(2024, 5, 1, tzinfo=UTC)) == 86400.0


def test_day_boundaries_are_utc_whatever_the_timezone() -> None:
    tokyo = timezone(timedelta(hours=9))
    now = datetime(2024, 5, 2, 8, 0, tzinfo=tokyo)  # 23:00 UTC on May 1st
    assert utc_day_start(now) == datetime(2024, 5, 1, tzinfo=UTC)
    assert seconds_until_utc_midnight(now) == 3600.0


def test_naive_datetimes_are_utc() -> None:
    assert seconds_until_utc_midnight(datetime(2024, 2, 28, 12, 0)) == 12 * 3600.0
    assert utc_day_start(datetime(2024, 2, 29, 5, 0)).tzinfo is UTC


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "now"),
        (-5, "now"),
        (0.2, "in 1 s"),
        (12, "in 12 s"),
        (59.5, "in 1 min"),
        (60, "in 1 min"),
        (61, "in 2 min"),
        (180, "in 3 min"),
        (3599, "in 1 h"),
        (3600, "in 1 h"),
        (2 * 3600 + 5 * 60, "in 2 h 5 min"),
        (2 * 3600 + 4 * 60 + 1, "in 2 h 5 min"),
        (30 * 3600, "in 30 h"),
        (math.inf, "later"),
    ],
)
def test_format_retry(seconds: float, text: str) -> None:
    assert format_retry(seconds) == text


# ---------------------------------------------------------------------- refusals name the limit


def test_the_rate_refusal_says_what_the_limit_is_and_when_to_retry() -> None:
    policy = AdmissionPolicy(GenerationConfig())
    limiter = RateLimiter(rate_per_minute=6, burst=3)
    for _ in range(3):
        policy.check_rate(limiter, "alice", 100.0)
    with pytest.raises(RateLimited) as refused:
        policy.check_rate(limiter, "alice", 100.0)
    message = refused.value.message
    assert "at most 6 drawings a minute (3 at once)" in message
    assert "try again in 10 s" in message, message
    assert describe_rate(0.5, 1) == "at most 30 drawings an hour (1 at once)"
    assert describe_rate(1, 1) == "at most 1 drawing a minute (1 at once)"


def test_a_limit_names_who_set_it() -> None:
    assert who_allows("telegram", by_scope=True) == "this chat's admins allow"
    assert who_allows("discord", by_scope=True) == "this server's admins allow"
    assert who_allows("web", by_scope=True) == "this service allows"  # the owner's own page
    assert who_allows("telegram", by_scope=False) == "this service allows"
