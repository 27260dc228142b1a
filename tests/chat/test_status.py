"""The status message of a job, as both chat bots keep it (bot.chat.status).

Which edits go out is decided by ranks and the interval, never by how fast the machine is: the
tests wait for the editor to go idle (``settled``), not for time to pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from bot.chat.status import EditResult, Rank, StatusMessages


class Message:
    """A status message on a fake platform: records edits, answers as told."""

    def __init__(self) -> None:
        self.edits: list[str] = []
        self.sent: list[str] = []
        self.answers: list[EditResult] = []  # next answers (DONE once they run out)
        self.hold = 0.0
        self.gate = asyncio.Event()  # set: edits go through at once
        self.gate.set()

    async def edit(self, job_id: str, text: str) -> EditResult:
        self.sent.append(text)  # on its way to the platform
        await self.gate.wait()
        self.edits.append(text)
        return self.answers.pop(0) if self.answers else EditResult.DONE


def board(message: Message, interval: float = 0.0) -> StatusMessages:
    return StatusMessages(message.edit, interval=lambda _: interval, hold=lambda _: message.hold)


async def settled(statuses: StatusMessages, job_id: str = "j") -> None:
    """Until the job's editor has nothing more to send now (it may be sleeping on a timer)."""
    status = statuses._statuses.get(job_id)
    for _ in range(1000):
        editor = status.editor if status else None
        if editor is None or editor.done():
            return
        if status is not None and status.latest == status.shown:
            return
        await asyncio.sleep(0)
    raise AssertionError("the editor never settled")


async def test_nothing_is_edited_until_the_message_exists_then_the_newest_text() -> None:
    message = Message()
    statuses = board(message)
    statuses.show("j", "⏳ queued", Rank.QUEUED)
    statuses.show("j", "🎨 started", Rank.STARTED)
    await asyncio.sleep(0)
    assert message.edits == []  # no message yet: nothing to edit
    statuses.ready("j", shown="⏳ queued")
    await settled(statuses)
    assert message.edits == ["🎨 started"]


async def test_late_news_never_replaces_newer_news() -> None:
    message = Message()
    statuses = board(message)
    statuses.ready("j")
    statuses.show("j", "🎨 started", Rank.STARTED)
    await settled(statuses)
    statuses.show("j", "⏳ queued", Rank.QUEUED)  # the command that queued it answers late
    statuses.show("j", "step 2", Rank.progress(2))
    await settled(statuses)
    statuses.show("j", "step 1", Rank.progress(1))  # an older progress event
    await settled(statuses)
    assert message.edits == ["🎨 started", "step 2"]


async def test_state_changes_go_out_at_once_progress_waits_for_the_interval() -> None:
    message = Message()
    statuses = board(message, interval=600.0)
    statuses.ready("j", shown="⏳ queued")  # just shown: the interval runs from now
    statuses.show("j", "🎨 started", Rank.STARTED)
    await settled(statuses)
    for step in range(1, 4):
        statuses.show("j", f"step {step}", Rank.progress(step))
    await asyncio.sleep(0)
    assert message.edits == ["🎨 started"]  # progress is held back, coalesced to step 3
    finished = await statuses.finish("j")
    assert finished.shown == "🎨 started" and finished.has_message
    assert statuses.active == 0  # the waiting timer went with it
    statuses.show("j", "step 4", Rank.progress(4))  # after the end: ignored
    assert statuses.active == 0 and message.edits == ["🎨 started"]


async def test_one_edit_at_a_time_and_only_the_newest_waiting_text() -> None:
    message = Message()
    message.gate.clear()  # the platform is slow
    statuses = board(message)
    statuses.ready("j")
    statuses.show("j", "step 1", Rank.progress(1))
    await asyncio.sleep(0)
    for step in (2, 3, 4):
        statuses.show("j", f"step {step}", Rank.progress(step))
    message.gate.set()
    await settled(statuses)
    assert message.edits == ["step 1", "step 4"]
    statuses.show("j", "step 4", Rank.progress(4))  # the same text again
    await settled(statuses)
    assert message.edits == ["step 1", "step 4"]  # never the same text twice


async def eventually(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_rate_limited_edit_is_sent_again_once_the_platform_allows() -> None:
    message = Message()
    message.answers = [EditResult.RETRY]  # e.g. Telegram's RetryAfter
    loop = asyncio.get_running_loop()
    until = loop.time()

    def hold(_: str) -> float:  # the platform's flood gate, blocked by the refused edit
        return max(0.0, until - loop.time())

    async def edit(job_id: str, text: str) -> EditResult:
        nonlocal until
        result = await message.edit(job_id, text)
        if result is EditResult.RETRY:
            until = loop.time() + 0.2
        return result

    statuses = StatusMessages(edit, interval=lambda _: 0.0, hold=hold)
    statuses.ready("j")
    statuses.show("j", "🎨 started", Rank.STARTED)
    await eventually(lambda: len(message.edits) == 2)
    assert message.edits == ["🎨 started", "🎨 started"]
    assert loop.time() >= until  # not before the platform allowed it
    await statuses.close()


async def test_a_message_that_is_gone_is_left_alone() -> None:
    gone = Message()
    gone.answers = [EditResult.GONE]
    statuses = board(gone)
    statuses.ready("k")
    statuses.show("k", "🎨 started", Rank.STARTED)
    await eventually(lambda: not statuses.has_message("k"))
    statuses.show("k", "step 1", Rank.progress(1))
    await settled(statuses, "k")
    assert gone.edits == ["🎨 started"]


@pytest.mark.parametrize("interval", [0.0, 3.0])
async def test_finish_reports_what_the_message_shows(interval: float) -> None:
    message = Message()
    statuses = board(message, interval)
    assert (await statuses.finish("never-seen")).has_message is False
    statuses.ready("j", shown="⏳ queued")
    finished = await statuses.finish("j")
    assert finished.shown == "⏳ queued" and finished.has_message
    assert statuses.is_finished("j")


async def test_finish_lets_an_edit_on_its_way_land_first_and_no_later_one_starts() -> None:
    """A "step 1/1" edit already sent when the job finishes must land before the result: the
    caller sends the result after ``finish``, so ``finish`` waits for it instead of cancelling
    it (a cancelled request may still be applied by the platform, after the result)."""
    message = Message()
    message.gate.clear()  # the platform is slow to answer
    statuses = board(message)
    statuses.ready("j", shown="⏳ queued")
    statuses.show("j", "step 1/1", Rank.progress(1))
    for _ in range(100):
        if message.sent:
            break
        await asyncio.sleep(0)
    assert message.sent == ["step 1/1"]
    finishing = asyncio.create_task(statuses.finish("j"))
    statuses.show("j", "step 2/2", Rank.progress(2))  # too late: ignored
    for _ in range(20):
        await asyncio.sleep(0)
    assert not finishing.done()  # still waiting for the edit on its way
    message.gate.set()
    finished = await finishing
    assert message.edits == ["step 1/1"] and message.sent == ["step 1/1"]
    assert finished.shown == "step 1/1" and statuses.active == 0
