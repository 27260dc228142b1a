"""Job records for tests of pure code (no database): ``job_record(id="abcd2345", count=3)``."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from generation.spec import Action, Mode
from storage.records import ImageRecord, JobRecord, JobStatus

NOW = datetime(2024, 6, 1, tzinfo=UTC)


def job_record(job_id: str = "abcd2345", *, images: int = 0, **changes: Any) -> JobRecord:
    """A succeeded text-to-image job with ``images`` images (seeds 42, 43, ...)."""
    count = max(1, images)
    pictures = tuple(
        ImageRecord(job_id, i, 42 + i, f"{i:064x}", 64, 64) for i in range(images)
    )
    record = JobRecord(
        id=job_id, seq=1, mode=Mode.TXT2IMG, action=Action.DRAW, prompt="a castle at dusk",
        negative_prompt="blurry", model="demo", model_revision=None, sampler="Euler a",
        width=64, height=64, steps=4, cfg=7.0, seed=42, count=count, strength=None,
        init_image=None, upscaler=None, parent_id=None, parent_index=None, user_id=1,
        scope_id=1, platform="telegram", reply_target={"chat_id": 5, "message_id": 9},
        status=JobStatus.SUCCEEDED, attempt=1, error=None, created_at=NOW, started_at=NOW,
        finished_at=NOW, delivered_at=None, delivery_attempts=0, delivery_error=None,
        images=pictures,
    )  # fmt: skip
    return replace(record, **changes)
