"""Which worker renders a batch, and when a batch not started yet goes back (pure policy).

Each worker holds at most ``SLOTS`` batches: the one it renders and one waiting behind it, so it
never idles between batches, and the fair queue still decides the order across the cluster.

* :func:`choose_worker`: among live workers with a free slot that can load the batch's model,
  one that already has the model loaded (loading costs seconds to minutes on a GPU), else any;
  then the least busy: the fewest batches held, then the one whose running batch started
  first (it frees soonest), then the name (deterministic).
* :func:`recall_candidate`: when every slot is taken and the fair queue's next job belongs to a
  user with nothing in flight, the waiting (not started) batch of the user with the most in
  flight goes back to the queue — the one behind the running batch that started first — so the
  newcomer starts when the next batch ends rather than behind every worker's waiting batch.
  At most one recall per decision; it never touches a started batch.

Time never appears here: callers pass what they know.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SLOTS = 2


@dataclass(frozen=True)
class WorkerView:
    name: str
    alive: bool
    held: int  # batches assigned to it and not finished
    loaded: frozenset[str] = frozenset()
    can_load: frozenset[str] | None = None  # None: it did not say (anything goes)
    busy_since: float = 0.0  # when its running batch started (any clock; 0: idle)

    @property
    def free(self) -> bool:
        return self.alive and self.held < SLOTS

    def can(self, model: str) -> bool:
        return self.can_load is None or model in self.can_load


@dataclass(frozen=True)
class BatchView:
    batch_id: str
    worker: str
    users: frozenset[str]
    started: bool
    order: int  # dispatch order (lower = older)


def choose_worker(workers: Sequence[WorkerView], model: str) -> str | None:
    """The worker for a batch of ``model``, or None when no capable worker has a free slot."""
    free = [w for w in workers if w.free and w.can(model)]
    if not free:
        return None
    warm = [w for w in free if model in w.loaded]
    pool = warm or free
    return min(pool, key=lambda w: (w.held, w.busy_since, w.name)).name


def can_ever_render(workers: Sequence[WorkerView], model: str) -> bool:
    """Whether some live worker could load ``model`` (else the batch must wait for one)."""
    return any(w.alive and w.can(model) for w in workers)


def recall_candidate(
    next_user: str, batches: Sequence[BatchView], busy_since: Mapping[str, float] | None = None
) -> str | None:
    """The waiting batch to take back for ``next_user`` (see the module's docstring).
    ``busy_since``: when each worker's running batch started; among the busiest user's waiting
    batches, the one behind the batch that started first goes (its slot frees soonest)."""
    since = busy_since or {}
    if any(next_user in b.users for b in batches):
        return None  # they already have something in flight: the round-robin serves them
    waiting = [b for b in batches if not b.started]
    if not waiting:
        return None
    load: Counter[str] = Counter(user for b in batches for user in b.users)

    def weight(batch: BatchView) -> tuple[int, float, int]:
        heaviest = max(load[user] for user in batch.users)
        # The busiest user's batch on the worker that frees first, else the newest.
        return heaviest, -since.get(batch.worker, 0.0), batch.order

    best = max(waiting, key=weight)
    return best.batch_id if max(load[u] for u in best.users) > 1 else None
