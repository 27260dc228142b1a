"""Which worker gets a batch, and which waiting batch goes back for a newcomer (pure policy)."""

from __future__ import annotations

from cluster.routing import BatchView, WorkerView, can_ever_render, choose_worker, recall_candidate


def worker(name: str, held: int = 0, **kw: object) -> WorkerView:
    return WorkerView(name=name, alive=kw.pop("alive", True), held=held, **kw)  # type: ignore[arg-type]


def test_a_worker_with_the_model_loaded_wins_over_an_idle_one_without() -> None:
    warm = worker("b", held=1, loaded=frozenset({"sdxl"}))
    assert choose_worker([worker("a"), warm], "sdxl") == "b"
    assert choose_worker([worker("a"), warm], "sd15") == "a"  # nobody warm: the least busy


def test_the_least_busy_then_the_soonest_free_then_the_name() -> None:
    assert choose_worker([worker("a", held=1), worker("b")], "m") == "b"
    soon = worker("z", held=1, busy_since=10.0)
    late = worker("a", held=1, busy_since=50.0)
    assert choose_worker([late, soon], "m") == "z"  # its batch started first: frees first
    assert choose_worker([worker("b"), worker("a")], "m") == "a"


def test_full_dead_or_incapable_workers_get_nothing() -> None:
    full = worker("full", held=2)
    dead = worker("dead", alive=False)
    cannot = worker("small", can_load=frozenset({"sd15"}))
    assert choose_worker([full, dead, cannot], "flux") is None
    assert choose_worker([full, dead, cannot], "sd15") == "small"
    assert not can_ever_render([dead, cannot], "flux")
    assert can_ever_render([full], "flux")  # said nothing about its models: it may try


def batch(batch_id: str, users: set[str], started: bool, order: int, w: str = "w") -> BatchView:
    return BatchView(batch_id, w, frozenset(users), started, order)


def test_a_newcomer_takes_back_the_busiest_users_newest_waiting_batch() -> None:
    batches = [
        batch("r1", {"ann"}, True, 1),
        batch("r2", {"bob"}, True, 2),
        batch("w1", {"ann"}, False, 3),
        batch("w2", {"ann"}, False, 4),
        batch("w3", {"bob"}, False, 5),
    ]
    assert recall_candidate("cat", batches) == "w2"


def test_no_recall_when_it_would_not_help() -> None:
    running = [batch("r1", {"ann"}, True, 1), batch("r2", {"ann"}, True, 2)]
    assert recall_candidate("cat", running) is None  # nothing waiting: never a started one
    spread = [batch("r1", {"ann"}, True, 1), batch("w1", {"bob"}, False, 2)]
    assert recall_candidate("cat", spread) is None  # bob has one job in flight: it is his turn
    mine = [batch("r1", {"cat"}, True, 1), batch("w1", {"ann"}, False, 2)]
    assert recall_candidate("cat", mine) is None  # cat is served by the round-robin already


def test_the_batch_taken_back_is_behind_the_worker_that_frees_first() -> None:
    batches = [
        batch("r1", {"ann"}, True, 1, w="a"),
        batch("r2", {"ann"}, True, 2, w="b"),
        batch("w1", {"ann"}, False, 3, w="a"),
        batch("w2", {"ann"}, False, 4, w="b"),
    ]
    assert recall_candidate("cat", batches, {"a": 5.0, "b": 9.0}) == "w1"  # a started first
    assert recall_candidate("cat", batches, {"a": 9.0, "b": 5.0}) == "w2"
    assert recall_candidate("cat", batches) == "w2"  # nothing known: the newest
