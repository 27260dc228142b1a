"""The pure edit throttle: at most one edit per interval, never the same text twice."""

from __future__ import annotations

import pytest

from bot.chat.throttle import EditThrottle


def test_first_edit_goes_out_and_later_ones_wait_for_the_interval() -> None:
    throttle = EditThrottle(2.0)
    assert throttle.should_send("job", "step 1", now=100.0)
    assert not throttle.should_send("job", "step 2", now=100.5)
    assert not throttle.should_send("job", "step 3", now=101.9)
    assert throttle.pending("job") == "step 3"  # coalesced to the latest
    assert throttle.wait_time("job", now=101.0) == pytest.approx(1.0)
    assert throttle.should_send("job", "step 4", now=102.0)
    assert throttle.pending("job") is None


def test_the_same_text_is_never_sent_twice_in_a_row() -> None:
    throttle = EditThrottle(0.0)
    assert throttle.should_send("job", "50%", now=0.0)
    assert not throttle.should_send("job", "50%", now=10.0)
    assert throttle.should_send("job", "60%", now=10.0)
    assert throttle.should_send("job", "50%", now=10.0)  # different from the last one


def test_take_pending_sends_the_latest_held_back_text_once() -> None:
    throttle = EditThrottle(2.0)
    throttle.should_send("job", "a", now=0.0)
    throttle.should_send("job", "b", now=0.5)
    throttle.should_send("job", "c", now=1.0)
    assert throttle.take_pending("job", now=1.5) is None  # still too early
    assert throttle.take_pending("job", now=2.0) == "c"
    assert throttle.take_pending("job", now=9.0) is None
    # A held-back text equal to what is on screen is dropped.
    throttle.should_send("job", "c", now=2.5)
    assert throttle.pending("job") is None


def test_keys_are_independent_and_forgotten() -> None:
    throttle = EditThrottle(5.0)
    assert throttle.should_send("a", "x", now=0.0)
    assert throttle.should_send("b", "x", now=0.0)
    assert not throttle.should_send("a", "y", now=1.0)
    throttle.forget("a")
    assert throttle.pending("a") is None and throttle.wait_time("a", now=1.0) == 0.0
    assert throttle.should_send("a", "y", now=1.0)
    assert len(throttle) == 2


def test_force_ignores_the_interval_but_not_repetition() -> None:
    throttle = EditThrottle(60.0)
    throttle.should_send("job", "drawing", now=0.0)
    throttle.should_send("job", "50%", now=1.0)
    assert throttle.force("job", "done", now=1.0)
    assert throttle.pending("job") is None
    assert not throttle.force("job", "done", now=2.0)


def test_negative_interval_is_refused() -> None:
    with pytest.raises(ValueError):
        EditThrottle(-1)
