"""One status message per job, kept up to date: what Discord and Telegram both do.

    statuses = StatusMessages(edit, interval=lambda job_id: 2.0)
    statuses.show(job_id, "⏳ queued", Rank.QUEUED)      # before or after the message exists
    statuses.ready(job_id, shown="⏳ queued")             # the message exists, showing this
    statuses.show(job_id, "🎨 step 3/20", Rank.progress(3))
    finished = await statuses.finish(job_id)             # stop; the caller writes the last word

Rules:

* each text has a rank (queued < started < progress steps): a late event never replaces newer
  news (the command that queued a job may answer after the worker already started it);
* state changes (queued, started) go out at once; progress edits at most one per ``interval``
  seconds per job, coalesced (only the newest waiting text is sent), never the same text twice;
* one edit at a time per job, by a task of its own that lives only while there is something to
  send, so a slow platform never holds up the event stream; ``edit`` says when the platform
  asked to wait (:attr:`EditResult.RETRY`, after the platform blocked its own flood gate, which
  ``hold`` reports) or when the message is gone (:attr:`EditResult.GONE`: no more edits);
* nothing depends on timing luck: which edits go out is decided by ranks and the interval, and
  a finished job's timers are cancelled;
* ``finish`` returns only once no edit can land any more: an edit already sent is waited for
  (cancelling a request does not unsend it), so a late "step 1/1" can never arrive after the
  result the caller sends next.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum, IntEnum

from bot.chat.throttle import EditThrottle

FINISHED_REMEMBERED = 1000  # finished jobs whose late events are ignored
RETRY_PAUSE = 1.0  # seconds before retrying an edit the platform refused without a wait


class Rank(IntEnum):
    QUEUED = 0
    STARTED = 1
    PROGRESS = 2  # + the step

    @staticmethod
    def progress(step: int) -> int:
        return Rank.PROGRESS + max(0, step)


class EditResult(Enum):
    DONE = "done"
    RETRY = "retry"  # rate-limited: send it again once ``hold`` allows
    GONE = "gone"  # the message cannot be edited any more


EditFn = Callable[[str, str], Awaitable[EditResult]]  # (job id, text)


@dataclass(frozen=True)
class Finished:
    shown: str | None  # the text the message shows now (None: nothing known)
    has_message: bool  # whether there is a status message to edit


@dataclass
class _Status:
    job_id: str
    latest: str | None = None  # the newest text the message should show
    shown: str | None = None  # the text it shows now
    rank: int = -1
    urgent: bool = False  # the latest text is a state change: no interval applies
    has_message: bool = False
    editor: asyncio.Task[None] | None = None  # runs while there is something to send
    sending: bool = False  # the editor is waiting for the platform to answer an edit
    closed: bool = False  # finished: no further edit may start


class StatusMessages:
    def __init__(
        self,
        edit: EditFn,
        *,
        interval: Callable[[str], float],
        hold: Callable[[str], float] = lambda job_id: 0.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._edit = edit
        self._interval = interval
        self._hold = hold
        self._monotonic = monotonic
        self._statuses: dict[str, _Status] = {}
        self._throttles: dict[float, EditThrottle] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()

    @property
    def active(self) -> int:
        """Jobs whose status message is being kept up to date (each may hold a timer)."""
        return len(self._statuses)

    def knows(self, job_id: str) -> bool:
        return job_id in self._statuses

    def has_message(self, job_id: str) -> bool:
        status = self._statuses.get(job_id)
        return status is not None and status.has_message

    def is_finished(self, job_id: str) -> bool:
        return job_id in self._finished

    def show(self, job_id: str, text: str, rank: int) -> None:
        """The job's message should show ``text`` (ignored if it is older news)."""
        if job_id in self._finished:
            return
        status = self._statuses.setdefault(job_id, _Status(job_id))
        if rank < status.rank:
            return
        state_change = rank < Rank.PROGRESS and rank > status.rank
        status.rank, status.latest = rank, text
        status.urgent = status.urgent or state_change
        if status.has_message:
            self._wake(status)

    def ready(self, job_id: str, shown: str | None = None) -> None:
        """The job's status message exists and shows ``shown``: keep it up to date."""
        if job_id in self._finished:
            return
        status = self._statuses.setdefault(job_id, _Status(job_id))
        status.has_message = True
        if shown is not None:
            status.shown = shown
            self._throttle(job_id).force(job_id, shown, self._monotonic())
        if status.latest is not None and status.latest != status.shown:
            self._wake(status)

    async def finish(self, job_id: str) -> Finished:
        """Stop keeping ``job_id``'s message up to date (its last word is the caller's)."""
        self._finished[job_id] = None
        while len(self._finished) > FINISHED_REMEMBERED:
            self._finished.popitem(last=False)
        status = self._statuses.pop(job_id, None)
        self._throttle(job_id).forget(job_id)
        if status is None:
            return Finished(None, False)
        status.closed = True
        editor = status.editor
        if editor is not None and editor is not asyncio.current_task():
            if status.sending:
                # An edit is on its way: cancelling it would not unsend it (the platform may
                # still apply it after the result went out). Let it land, then stop.
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(editor)
            else:
                editor.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await editor
        return Finished(status.shown, status.has_message)

    async def close(self) -> None:
        editors = [s.editor for s in self._statuses.values() if s.editor is not None]
        for editor in editors:
            editor.cancel()
        await asyncio.gather(*editors, return_exceptions=True)
        self._statuses.clear()

    # ------------------------------------------------------------------ internals

    def _throttle(self, job_id: str) -> EditThrottle:
        interval = self._interval(job_id)
        throttle = self._throttles.get(interval)
        if throttle is None:
            throttle = self._throttles[interval] = EditThrottle(interval)
        return throttle

    def _wake(self, status: _Status) -> None:
        if status.editor is None or status.editor.done():
            status.editor = asyncio.create_task(
                self._run(status), name=f"easel-status-{status.job_id}"
            )

    async def _run(self, status: _Status) -> None:
        """Edits one status message, one edit at a time, as soon as the rules allow; ends when
        the message shows the newest text (a later ``show`` starts it again)."""
        while (
            not status.closed and status.has_message and status.latest not in (None, status.shown)
        ):
            throttle = self._throttle(status.job_id)
            now = self._monotonic()
            wait = 0.0 if status.urgent else throttle.wait_time(status.job_id, now)
            wait = max(wait, self._hold(status.job_id))
            if wait > 0:
                await asyncio.sleep(wait)  # whatever is newest afterwards goes out
                continue
            text, urgent = status.latest, status.urgent
            assert text is not None
            status.urgent = False
            throttle.force(status.job_id, text, now)
            status.sending = True
            try:
                result = await self._edit(status.job_id, text)
            finally:
                status.sending = False
            if result is EditResult.GONE:
                status.has_message = False
                return
            if result is EditResult.RETRY:
                if status.closed:
                    return  # finished meanwhile: the caller writes the last word
                throttle.forget(status.job_id)  # it did not get through
                status.urgent = status.urgent or urgent
                if self._hold(status.job_id) <= 0:
                    await asyncio.sleep(RETRY_PAUSE)  # the platform named no wait
                continue
            status.shown = text
