"""A pure edit throttle for status messages (platform-neutral; time is an argument).

Chat platforms rate-limit message edits, and Telegram refuses an edit that changes nothing, so a
front end that shows progress asks this throttle before each edit:

    throttle = EditThrottle(min_interval=2.0)
    if throttle.should_send(job_id, text, now):
        await edit(text)
    # later, e.g. from a timer after throttle.wait_time(job_id, now) seconds:
    text = throttle.take_pending(job_id, now)
    if text is not None:
        await edit(text)

Rules: at most one edit per ``min_interval`` seconds per key, never the same text twice in a
row, and updates that arrive too early are coalesced: only the latest one is kept as pending.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _KeyState:
    last_text: str | None = None
    last_time: float | None = None
    pending: str | None = None


class EditThrottle:
    def __init__(self, min_interval: float) -> None:
        if min_interval < 0:
            raise ValueError("min_interval must be >= 0")
        self.min_interval = float(min_interval)
        self._keys: dict[str, _KeyState] = {}

    def should_send(self, key: str, text: str, now: float) -> bool:
        """Whether ``text`` may be sent for ``key`` now; if so it is recorded as sent.

        When it may not (too early), ``text`` replaces any pending text for ``key``; text equal
        to what was last sent is dropped (and clears the pending text).
        """
        state = self._keys.setdefault(key, _KeyState())
        if text == state.last_text:
            state.pending = None
            return False
        if state.last_time is not None and now - state.last_time < self.min_interval:
            state.pending = text
            return False
        state.last_text, state.last_time, state.pending = text, now, None
        return True

    def pending(self, key: str) -> str | None:
        """The latest text held back for ``key``, if any."""
        state = self._keys.get(key)
        return state.pending if state else None

    def wait_time(self, key: str, now: float) -> float:
        """Seconds until an edit for ``key`` is allowed (0 when it is allowed now)."""
        state = self._keys.get(key)
        if state is None or state.last_time is None:
            return 0.0
        return max(0.0, self.min_interval - (now - state.last_time))

    def take_pending(self, key: str, now: float) -> str | None:
        """The pending text if it may be sent now (recording it as sent), else None."""
        text = self.pending(key)
        if text is None or not self.should_send(key, text, now):
            return None
        return text

    def force(self, key: str, text: str, now: float) -> bool:
        """Record a final text that must go out regardless of the interval (unless unchanged)."""
        state = self._keys.setdefault(key, _KeyState())
        if text == state.last_text:
            state.pending = None
            return False
        state.last_text, state.last_time, state.pending = text, now, None
        return True

    def forget(self, key: str) -> None:
        self._keys.pop(key, None)

    def __len__(self) -> int:
        return len(self._keys)
