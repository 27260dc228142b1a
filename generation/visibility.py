"""Who may see which job: the one rule behind every read, action and event stream.

A :class:`Viewer` is an origin resolved once against the store (its user and scope ids); its
checks are then pure and synchronous, so lists and event streams filter without a query per
item. The rule (see :class:`generation.requests.Visibility`): everyone sees their own jobs; a
caller whose scope is public (a Discord server, a Telegram chat) also sees that scope's jobs;
the machine's owner sees every job. To anyone else a job does not exist: a refusal says "no job
with that id", so ids cannot be probed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from generation.events import JobEvent, JobFinished, JobProgress, Subscription
from generation.requests import Visibility
from storage.records import JobRecord

# Job ids an event stream remembers the verdict for (progress events carry only the id).
MAX_REMEMBERED_JOBS = 4096


@dataclass(frozen=True)
class Viewer:
    """What one caller may see. ``user_id``/``scope_id`` are None until they made a request."""

    sees: Visibility
    user_id: int | None = None
    scope_id: int | None = None

    @property
    def resolved(self) -> bool:
        return self.user_id is not None

    def may_see(self, job: JobRecord) -> bool:
        if self.sees is Visibility.ALL or self.owns(job):
            return True
        return (
            self.sees is Visibility.SCOPE
            and self.scope_id is not None
            and job.scope_id == self.scope_id
        )

    def owns(self, job: JobRecord) -> bool:
        """Whether the caller asked for ``job`` (admin rights aside)."""
        return self.user_id is not None and job.user_id == self.user_id


EVERYONE = Viewer(Visibility.ALL)

JobLookup = Callable[[str], Awaitable[JobRecord | None]]
ViewerRefresh = Callable[[], Awaitable[Viewer]]


class EventWatch:
    """The events of the jobs a viewer may see, in order; ``async with`` closes it.

    Queued, started and finished events carry their job and are checked directly; progress
    events carry only the job id, whose verdict is remembered (or looked up once). A viewer who
    had not made any request when the watch began is resolved again when an unknown job
    appears, so their first job shows up in a stream opened before it.
    """

    def __init__(
        self,
        subscription: Subscription,
        viewer: Viewer,
        *,
        lookup: JobLookup,
        refresh: ViewerRefresh | None = None,
    ) -> None:
        self._subscription = subscription
        self.viewer = viewer
        self._lookup = lookup
        self._refresh = refresh
        self._verdicts: OrderedDict[str, bool] = OrderedDict()

    async def get(self) -> JobEvent:
        while True:
            event = await self._subscription.get()
            if await self._allows(event):
                return event

    def close(self) -> None:
        self._subscription.close()

    async def __aenter__(self) -> EventWatch:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    async def __aiter__(self) -> AsyncIterator[JobEvent]:
        while True:
            yield await self.get()

    async def _allows(self, event: JobEvent) -> bool:
        if self.viewer.sees is Visibility.ALL:
            return True
        if isinstance(event, JobProgress):
            verdict = self._verdicts.get(event.job_id)
            if verdict is None:
                job = await self._lookup(event.job_id)
                verdict = job is not None and await self._check(job)
                self._remember(event.job_id, verdict)
            return verdict
        job = event.job
        verdict = self._verdicts.get(job.id)
        if verdict is None:  # first sight of this job: decided once, remembered until it ends
            verdict = await self._check(job)
        if isinstance(event, JobFinished):
            self._verdicts.pop(job.id, None)
        else:
            self._remember(job.id, verdict)
        return verdict

    async def _check(self, job: JobRecord) -> bool:
        if self.viewer.may_see(job):
            return True
        if not self.viewer.resolved and self._refresh is not None:
            self.viewer = await self._refresh()
            return self.viewer.may_see(job)
        return False

    def _remember(self, job_id: str, verdict: bool) -> None:
        self._verdicts[job_id] = verdict
        self._verdicts.move_to_end(job_id)
        while len(self._verdicts) > MAX_REMEMBERED_JOBS:
            self._verdicts.popitem(last=False)
