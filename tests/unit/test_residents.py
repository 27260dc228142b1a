"""The resident-pipeline LRU: count limit, byte budget, never evicting the one just loaded."""

from __future__ import annotations

from generation.backend.residents import Residents


def test_count_limit_evicts_least_recently_used() -> None:
    r: Residents[str, int] = Residents(max_count=2)
    assert r.make_room("a") == [] and r.add("a", 1, 10) == []
    assert r.make_room("b") == [] and r.add("b", 2, 10) == []
    assert r.get("a") == 1  # "a" is now the most recently used
    assert r.make_room("c") == ["b"]
    assert r.add("c", 3, 10) == []
    assert r.keys() == ["a", "c"] and r.get("b") is None


def test_budget_evicts_after_load_but_never_the_new_one() -> None:
    r: Residents[str, str] = Residents(max_count=5, budget_bytes=100)
    r.add("a", "A", 40)
    r.add("b", "B", 40)
    assert r.add("c", "C", 50) == ["a"]  # 130 > 100: drop the oldest until it fits
    assert r.keys() == ["b", "c"] and r.total_bytes == 90
    assert r.add("huge", "H", 500) == ["b", "c"]  # alone over budget, but still loaded
    assert r.keys() == ["huge"]


def test_budget_evicts_before_load_when_the_size_is_known() -> None:
    r: Residents[str, str] = Residents(max_count=5, budget_bytes=100)
    r.add("a", "A", 70)
    assert r.make_room("b") == []  # size unknown: nothing to go on yet
    r.add("b", "B", 30)
    r.evict_all()
    r.add("b", "B", 30)
    r.add("c", "C", 10)
    assert r.make_room("a") == ["b"]  # a (70) + c (10) fits; b had to go first
    assert r.add("a", "A", 70) == []


def test_no_budget_means_count_only() -> None:
    r: Residents[str, int] = Residents(max_count=3, budget_bytes=0)
    for i, key in enumerate("abc"):
        assert r.add(key, i, 10**12) == []
    assert len(r) == 3 and "a" in r
