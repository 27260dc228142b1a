"""Which job runs next: a fair queue and batching (pure policy; waiting times: estimate.py).

Fairness is round-robin across users and FIFO within a user. The *rotation* lists the users
with queued jobs; :meth:`FairQueue.pop` serves the user at the front and moves them to the back
if they still have jobs; a user whose first job arrives joins at the back. So a user with 50
queued jobs delays another user's single job by at most one job (one per other user ahead).
Across a cluster, where many jobs are in flight at once, the caller passes how many each user
has in flight and the user with the fewest goes first (ties: rotation order).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class QueuedItem:
    """One queued job as the scheduler sees it.

    ``seq`` is the store's insertion order (kept for callers; the queue itself is ordered by
    arrival). Jobs with equal, non-``None`` ``batch_key`` may share one pipeline call. ``cost``
    is the job's size in batch units (usually its image count).
    """

    job_id: str
    user_key: str
    seq: int
    batch_key: tuple[object, ...] | None = None
    cost: float = 1.0
    model: str = ""  # what a worker must load for it (cluster routing)
    scope: str = ""  # "<platform>:<scope number>" (queue depth per scope in /metrics)


class FairQueue:
    """Round-robin across users, FIFO within a user. push/pop are O(1); order/position O(n)."""

    def __init__(self) -> None:
        # Rotation order = insertion order of this dict; each value is that user's FIFO.
        self._users: OrderedDict[str, deque[QueuedItem]] = OrderedDict()
        self._items: dict[str, QueuedItem] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._items

    def __iter__(self) -> Iterator[QueuedItem]:
        return iter(self.order())

    def push(self, item: QueuedItem) -> None:
        """Queue ``item`` at the end of its user's FIFO; a new user joins the rotation's back."""
        if item.job_id in self._items:
            raise ValueError(f"job {item.job_id!r} is already queued")
        queue = self._users.get(item.user_key)
        if queue is None:
            queue = self._users[item.user_key] = deque()
        queue.append(item)
        self._items[item.job_id] = item

    def get(self, job_id: str) -> QueuedItem | None:
        return self._items.get(job_id)

    def remove(self, job_id: str) -> bool:
        """Drop a queued job (cancelled); False if it was not queued. O(jobs of that user)."""
        item = self._items.pop(job_id, None)
        if item is None:
            return False
        queue = self._users[item.user_key]
        queue.remove(item)
        if not queue:
            del self._users[item.user_key]
        return True

    def _take_head(self, user_key: str) -> QueuedItem:
        queue = self._users[user_key]
        item = queue.popleft()
        del self._items[item.job_id]
        if queue:
            self._users.move_to_end(user_key)
        else:
            del self._users[user_key]
        return item

    def push_front(self, item: QueuedItem) -> None:
        """Put a job taken earlier back at the head of its user's FIFO (it goes first again);
        a user not in the rotation any more joins it at the back."""
        if item.job_id in self._items:
            raise ValueError(f"job {item.job_id!r} is already queued")
        queue = self._users.get(item.user_key)
        if queue is None:
            queue = self._users[item.user_key] = deque()
        queue.appendleft(item)
        self._items[item.job_id] = item

    def next_user(self, in_flight: Mapping[str, int] | None = None) -> str | None:
        """Whose job :meth:`pop` takes next: the rotation's front, or, given the jobs each user
        has in flight (on a cluster's workers), the first in rotation order with the fewest."""
        if not self._users:
            return None
        if in_flight is None:
            return next(iter(self._users))
        return min(self._users, key=lambda user: in_flight.get(user, 0))

    def peek(self, in_flight: Mapping[str, int] | None = None) -> QueuedItem | None:
        """The job :meth:`pop` would return, without taking it."""
        user = self.next_user(in_flight)
        return None if user is None else self._users[user][0]

    def pop(self, in_flight: Mapping[str, int] | None = None) -> QueuedItem | None:
        """Take the next job by fairness, or ``None`` when empty (see :meth:`next_user`)."""
        user = self.next_user(in_flight)
        return None if user is None else self._take_head(user)

    def pop_batch(
        self, max_size: float, in_flight: Mapping[str, int] | None = None
    ) -> list[QueuedItem]:
        """Take the next job by fairness plus compatible jobs to run in the same pipeline call.

        The first job is always taken (whatever its cost). Then the rotation is walked in order
        and each user's *head* job is added when it has the same non-``None`` ``batch_key`` and
        fits (the batch's total ``cost`` stays within ``max_size``); a user whose head does not
        fit or match is skipped and keeps their place, which is then ahead of every user who
        contributed. Further rotations are walked only while nobody was skipped, so a skipped
        user waits for this one batch and is served next: batching never delays anyone by more
        than one pipeline call beyond what :meth:`pop` order would. ``in_flight`` as in
        :meth:`next_user`.
        """
        first = self.pop(in_flight)
        if first is None:
            return []
        batch = [first]
        key = first.batch_key
        if key is None:
            return batch
        total = first.cost
        while total < max_size and self._users:
            skipped = False
            taken = False
            for user_key in list(self._users):
                head = self._users[user_key][0]
                if head.batch_key == key and total + head.cost <= max_size:
                    batch.append(self._take_head(user_key))
                    total += head.cost
                    taken = True
                    if total >= max_size:
                        break
                else:
                    skipped = True
            if skipped or not taken:
                break
        return batch

    def order(self) -> list[QueuedItem]:
        """Every queued job in the exact order :meth:`pop` would return them. O(n)."""
        return list(self.iter_order())

    def iter_order(self) -> Iterator[QueuedItem]:
        """:meth:`order`, lazily: taking the first k jobs costs O(k + users). The queue must
        not change while this is iterated."""
        active = [iter(queue) for queue in self._users.values()]
        while active:  # one round: the next job of every user who has one left
            still: list[Iterator[QueuedItem]] = []
            for jobs in active:
                item = next(jobs, None)
                if item is not None:
                    yield item
                    still.append(jobs)
            active = still

    def position(self, job_id: str) -> int | None:
        """How many jobs :meth:`pop` returns before ``job_id`` (0 = next), or ``None``. O(n)."""
        item = self._items.get(job_id)
        if item is None:
            return None
        depth = self._users[item.user_key].index(item)  # jobs of the same user ahead of it
        before = 0
        seen_self = False
        for user_key, queue in self._users.items():
            if user_key == item.user_key:
                seen_self = True
                before += depth
                continue
            # Every other user gets one job per rotation; those ahead in the rotation also get
            # one in the rotation where ``item`` is served.
            before += min(len(queue), depth if seen_self else depth + 1)
        return before

    def user_count(self, user_key: str) -> int:
        """How many jobs ``user_key`` has queued."""
        queue = self._users.get(user_key)
        return 0 if queue is None else len(queue)

    def users(self) -> list[str]:
        """Users with queued jobs, in rotation order (front first)."""
        return list(self._users)
