"""PURE: which loaded pipelines stay in memory (least recently used first out; no torch here).

Two limits: a count (``generation.resident_models``) and, optionally, a byte budget
(``generation.resident_memory_gb``). A pipeline's size is only known once it is loaded, so the
budget is checked twice: before a load, for a model whose size is remembered from an earlier
load, and after it, when the caller ``add``s it with its measured size. The entry just added is
never evicted, even when it alone exceeds the budget (then it is the only one left).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Residents(Generic[K, V]):
    def __init__(self, max_count: int, budget_bytes: int = 0) -> None:
        self.max_count = max(1, max_count)
        self.budget_bytes = max(0, budget_bytes)  # 0 = no budget
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._known_sizes: dict[K, int] = {}  # measured sizes, kept after eviction

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: K) -> bool:
        return key in self._items

    def keys(self) -> list[K]:
        """Least recently used first."""
        return list(self._items)

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self._items.values())

    def get(self, key: K) -> V | None:
        """The resident value for ``key`` (now the most recently used), or None."""
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def make_room(self, key: K) -> list[K]:
        """Before loading ``key``: evict until one more fits the count, and its remembered size
        (if any) fits the budget. Returns the evicted keys, least recently used first."""
        evicted: list[K] = []
        while self._items and len(self._items) >= self.max_count:
            evicted.append(self._pop_oldest())
        known = self._known_sizes.get(key)
        if self.budget_bytes and known is not None:
            while self._items and self.total_bytes + known > self.budget_bytes:
                evicted.append(self._pop_oldest())
        return evicted

    def add(self, key: K, value: V, size_bytes: int) -> list[K]:
        """Make ``value`` resident as the most recently used; evict others (never ``key``) until
        the count and the budget hold. Returns the evicted keys."""
        self._items[key] = (value, size_bytes)
        self._items.move_to_end(key)
        self._known_sizes[key] = size_bytes
        evicted: list[K] = []
        while len(self._items) > 1 and (
            len(self._items) > self.max_count
            or (self.budget_bytes and self.total_bytes > self.budget_bytes)
        ):
            evicted.append(self._pop_oldest())
        return evicted

    def evict_all(self) -> list[K]:
        evicted = list(self._items)
        self._items.clear()
        return evicted

    def _pop_oldest(self) -> K:
        key, _ = self._items.popitem(last=False)
        return key
