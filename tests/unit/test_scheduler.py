from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generation.scheduler import FairQueue, QueuedItem

_seq = iter(range(10**9))


def item(
    job_id: str, user: str, key: tuple[object, ...] | None = None, cost: float = 1.0
) -> QueuedItem:
    return QueuedItem(job_id=job_id, user_key=user, seq=next(_seq), batch_key=key, cost=cost)


def drain(queue: FairQueue) -> list[str]:
    out = []
    while (popped := queue.pop()) is not None:
        out.append(popped.job_id)
    return out


def test_empty_queue() -> None:
    queue = FairQueue()
    assert queue.pop() is None
    assert queue.pop_batch(4) == []
    assert queue.peek() is None
    assert len(queue) == 0
    assert queue.order() == []


def test_round_robin_across_users_fifo_within() -> None:
    queue = FairQueue()
    for job in ["a1", "a2", "a3"]:
        queue.push(item(job, "alice"))
    queue.push(item("b1", "bob"))
    queue.push(item("b2", "bob"))
    queue.push(item("c1", "carol"))
    expected = ["a1", "b1", "c1", "a2", "b2", "a3"]
    assert [i.job_id for i in queue.order()] == expected
    assert [queue.position(j) for j in expected] == list(range(6))
    assert drain(queue) == expected


def test_newcomer_joins_the_back_of_the_rotation() -> None:
    queue = FairQueue()
    for index in range(3):
        queue.push(item(f"a{index}", "alice"))
    queue.push(item("b0", "bob"))
    assert queue.pop().job_id == "a0"  # type: ignore[union-attr]
    queue.push(item("c0", "carol"))  # rotation is now bob, alice, carol
    assert drain(queue) == ["b0", "a1", "c0", "a2"]


def test_fifty_jobs_delay_a_single_job_by_at_most_one() -> None:
    queue = FairQueue()
    for index in range(50):
        queue.push(item(f"hog{index}", "hog"))
    queue.push(item("single", "me"))
    assert queue.position("single") == 1
    assert drain(queue).index("single") == 1
    # Also when the single job arrives while the hog is being served.
    for index in range(50):
        queue.push(item(f"hog{index}", "hog"))
    for _ in range(10):
        queue.pop()
    queue.push(item("late", "me"))
    assert queue.position("late") == 1
    assert drain(queue).index("late") == 1


def test_remove_and_contains() -> None:
    queue = FairQueue()
    queue.push(item("a1", "alice"))
    queue.push(item("a2", "alice"))
    queue.push(item("b1", "bob"))
    assert "a2" in queue
    assert queue.remove("a2") is True
    assert queue.remove("a2") is False
    assert "a2" not in queue
    assert queue.user_count("alice") == 1
    assert queue.remove("b1") is True
    assert queue.users() == ["alice"]
    assert queue.position("b1") is None
    assert drain(queue) == ["a1"]


def test_duplicate_push_is_refused() -> None:
    queue = FairQueue()
    queue.push(item("a1", "alice"))
    with pytest.raises(ValueError, match="already queued"):
        queue.push(item("a1", "alice"))


def test_user_count() -> None:
    queue = FairQueue()
    assert queue.user_count("alice") == 0
    queue.push(item("a1", "alice"))
    queue.push(item("a2", "alice"))
    assert queue.user_count("alice") == 2


K1 = ("txt2img", "sd15", 512)
K2 = ("txt2img", "sdxl", 1024)


def test_batch_takes_compatible_heads_in_rotation_order() -> None:
    queue = FairQueue()
    queue.push(item("a1", "alice", K1))
    queue.push(item("a2", "alice", K1))
    queue.push(item("b1", "bob", K1))
    queue.push(item("c1", "carol", K1))
    assert [i.job_id for i in queue.pop_batch(3)] == ["a1", "b1", "c1"]
    assert drain(queue) == ["a2"]


def test_batch_repeats_rotations_while_nobody_is_skipped() -> None:
    queue = FairQueue()
    for index in range(5):
        queue.push(item(f"a{index}", "alice", K1))
    queue.push(item("b0", "bob", K1))
    assert [i.job_id for i in queue.pop_batch(4)] == ["a0", "b0", "a1", "a2"]


def test_batch_skips_incompatible_user_who_is_served_next() -> None:
    queue = FairQueue()
    for index in range(5):
        queue.push(item(f"a{index}", "alice", K1))
    queue.push(item("b0", "bob", K2))
    queue.push(item("c0", "carol", K1))
    # Rotation after a0: bob (skipped, keeps his place), carol, alice. One rotation only.
    assert [i.job_id for i in queue.pop_batch(8)] == ["a0", "c0", "a1"]
    assert queue.peek().job_id == "b0"  # type: ignore[union-attr]
    assert [i.job_id for i in queue.pop_batch(8)] == ["b0"]
    assert [i.job_id for i in queue.pop_batch(8)] == ["a2", "a3", "a4"]


def test_batch_without_key_is_a_single_job() -> None:
    queue = FairQueue()
    queue.push(item("a1", "alice"))
    queue.push(item("b1", "bob"))
    assert [i.job_id for i in queue.pop_batch(8)] == ["a1"]


def test_batch_respects_cost() -> None:
    queue = FairQueue()
    queue.push(item("a1", "alice", K1, cost=4))
    queue.push(item("b1", "bob", K1, cost=4))
    queue.push(item("c1", "carol", K1, cost=2))
    queue.push(item("d1", "dave", K1, cost=2))
    # b1 does not fit beside a1 in 6 units: it is skipped and keeps the front.
    assert [i.job_id for i in queue.pop_batch(6)] == ["a1", "c1"]
    assert [i.job_id for i in queue.pop_batch(6)] == ["b1", "d1"]
    big = FairQueue()
    big.push(item("x", "xavier", K1, cost=10))
    assert [i.job_id for i in big.pop_batch(6)] == ["x"]  # the first job always goes


# --- properties ---------------------------------------------------------------------------

_ops = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.sampled_from("abcd"), st.sampled_from([None, K1, K2])),
        st.tuples(st.just("pop"), st.just(""), st.none()),
        st.tuples(st.just("batch"), st.integers(1, 4).map(str), st.none()),
        st.tuples(st.just("remove"), st.integers(0, 30).map(str), st.none()),
    ),
    max_size=80,
)


@settings(max_examples=300)
@given(_ops)
def test_queue_invariants(ops: list[tuple[str, str, tuple[object, ...] | None]]) -> None:
    queue = FairQueue()
    pushed: dict[str, QueuedItem] = {}
    out: list[str] = []
    removed: set[str] = set()
    counter = 0
    for op, arg, key in ops:
        if op == "push":
            new = QueuedItem(job_id=str(counter), user_key=arg, seq=counter, batch_key=key)
            counter += 1
            queue.push(new)
            pushed[new.job_id] = new
        elif op == "remove":
            if queue.remove(arg):
                removed.add(arg)
        else:
            expected_order = queue.order()
            taken = [queue.pop()] if op == "pop" else queue.pop_batch(int(arg))
            got = [t for t in taken if t is not None]
            if op == "pop" or (got and got[0].batch_key is None):
                assert [g.job_id for g in got] == [e.job_id for e in expected_order[: len(got)]]
            if got:
                assert got[0] == expected_order[0]
                assert len(got) <= max(1, int(arg) if op == "batch" else 1)
                assert len({g.batch_key for g in got}) == 1
            out.extend(g.job_id for g in got)
        order = queue.order()
        assert len(order) == len(queue)
        assert [queue.position(i.job_id) for i in order] == list(range(len(order)))
    out.extend(i.job_id for i in queue.order())
    # Every pushed job leaves exactly once (popped, or still queued) unless removed.
    assert sorted(out + sorted(removed), key=int) == sorted(pushed, key=int)
    # FIFO per user.
    for user in "abcd":
        mine = [int(j) for j in out if pushed[j].user_key == user]
        assert mine == sorted(mine)


@settings(max_examples=200)
@given(st.lists(st.sampled_from("abcde"), min_size=1, max_size=60), st.sampled_from("vwxyz"))
def test_one_job_fairness_bound(backlog: list[str], newcomer: str) -> None:
    """A newcomer's single job waits at most one job per other user with queued work."""
    queue = FairQueue()
    for index, user in enumerate(backlog):
        queue.push(QueuedItem(job_id=f"j{index}", user_key=user, seq=index))
    queue.pop()  # some work is already under way
    others = len(queue.users())
    queue.push(QueuedItem(job_id="new", user_key=newcomer, seq=10**6))
    position = queue.position("new")
    assert position is not None and position <= others
    popped = []
    while (p := queue.pop()) is not None:
        popped.append(p.job_id)
    assert popped.index("new") == position
