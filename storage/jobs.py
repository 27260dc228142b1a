"""Jobs, their images and their delivery: every state change is one short transaction.

Writes run in ``BEGIN IMMEDIATE`` transactions (see :mod:`storage.db`), so check-then-write
sequences inside one method (the next ``seq``, a fresh job id, "only if still queued") cannot
race another writer. The hot paths (adding a job, starting and finishing one) are Core
statements in ``Database.write_sync`` transactions (one thread hop each on SQLite).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Row, Table, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from generation.errors import NotFound
from generation.spec import Action, Mode
from storage.base import Repository
from storage.convert import columns, job_record, load_jobs
from storage.models import ImageRow, JobRow
from storage.records import (
    TERMINAL_STATUSES,
    ImageRecord,
    JobRecord,
    JobStatus,
    NewImage,
    NewJob,
)

# No 0/o, 1/l/i: ids are read off screenshots and typed back by people.
JOB_ID_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
JOB_ID_LENGTH = 8
_ID_TRIES = 20
_TERMINAL = tuple(s.value for s in TERMINAL_STATUSES)
# ``delivery_error`` of a result that can never be delivered (chat deleted, bot removed, ...):
# such jobs are not retried at the next start.
UNDELIVERABLE_PREFIX = "undeliverable: "


def new_job_id() -> str:
    return "".join(secrets.choice(JOB_ID_ALPHABET) for _ in range(JOB_ID_LENGTH))


def normalize_job_id(job_id: str) -> str:
    """What a person typed (``" AB3CD5EF "``) -> the stored form (``"ab3cd5ef"``).

    Ids are ASCII: text that is not valid Unicode (a lone surrogate from the command line) is
    replaced, so it finds no job instead of failing inside SQLite."""
    return job_id.strip().lower().encode("utf-8", "replace").decode("utf-8")


class Jobs(Repository):
    async def add_job(self, new: NewJob) -> JobRecord:
        """Store a new ``queued`` job with a fresh 8-character id and the next ``seq``.

        One INSERT, the hot path of admission: ``seq`` comes from a sub-select in the same
        statement, a missing parent is caught by its foreign key, and a clash with an existing
        id — about one in 10^6 even with a million jobs stored — by the primary key, and
        retried with a new id.
        """
        values = job_values(new, self.now())
        is_sqlite = self.db.is_sqlite
        for _ in range(_ID_TRIES):
            job_id = new_job_id()

            def insert(connection: Connection, job_id: str = job_id) -> int:
                return insert_job(connection, is_sqlite, job_id, values)

            try:
                seq = await self.db.write_sync(insert)
            except IntegrityError as error:
                if _id_taken(error):  # the id is taken: draw another
                    continue
                parent_id = values["parent_id"]
                if parent_id is not None and await self.get_job(parent_id) is None:
                    raise NotFound(f"no job with id {new.parent_id!r}") from None
                raise
            return job_record(JobRow(id=job_id, seq=seq, **values), ())
        raise RuntimeError(f"no unused job id found in {_ID_TRIES} tries")  # pragma: no cover

    async def get_job(self, job_id: str) -> JobRecord | None:
        """The job and its images; ``job_id`` may be upper case or padded with spaces."""
        async with self.db.read() as session:
            jobs = await load_jobs(
                session, select(JobRow).where(JobRow.id == normalize_job_id(job_id))
            )
            return jobs[0] if jobs else None

    async def _existing_job(self, job_id: str) -> JobRecord:
        job = await self.get_job(job_id)
        if job is None:
            raise NotFound(f"no job with id {job_id.strip()!r}")
        return job

    async def list_jobs(
        self,
        *,
        user_id: int | None = None,
        limit: int = 20,
        offset: int = 0,
        query: str | None = None,
        statuses: Sequence[str] | None = None,
    ) -> list[JobRecord]:
        """Newest first. ``query`` matches a substring of the prompt, ignoring (ASCII) case."""
        stmt = select(JobRow)
        if user_id is not None:
            stmt = stmt.where(JobRow.user_id == user_id)
        if query:
            escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            stmt = stmt.where(JobRow.prompt.ilike(f"%{escaped}%", escape="\\"))
        if statuses is not None:
            stmt = stmt.where(JobRow.status.in_([str(s) for s in statuses]))
        stmt = stmt.order_by(JobRow.created_at.desc(), JobRow.seq.desc())
        stmt = stmt.limit(max(0, limit)).offset(max(0, offset))
        async with self.db.read() as session:
            return await load_jobs(session, stmt)

    async def queued_jobs(self) -> list[JobRecord]:
        """Every queued job, oldest (lowest ``seq``) first."""
        stmt = select(JobRow).where(JobRow.status == JobStatus.QUEUED.value).order_by(JobRow.seq)
        async with self.db.read() as session:
            return await load_jobs(session, stmt)

    async def children(self, job_id: str) -> list[JobRecord]:
        """Jobs made from this one (rerolls, upscales, variations), oldest first."""
        stmt = (
            select(JobRow).where(JobRow.parent_id == normalize_job_id(job_id)).order_by(JobRow.seq)
        )
        async with self.db.read() as session:
            return await load_jobs(session, stmt)

    async def mark_running(self, job_id: str) -> JobRecord | None:
        """queued -> running (``attempt += 1``). None if the job is not queued (e.g. cancelled).

        One UPDATE .. RETURNING: it runs between two renders, while the GPU waits.
        """
        job_key, now = normalize_job_id(job_id), self.now()
        row = await self.db.write_sync(lambda connection: start_job(connection, job_key, now))
        if row is None:
            await self._existing_job(job_id)  # unknown: NotFound; else not queued: None
            return None
        return job_record(columns(row), ())

    async def mark_succeeded(self, job_id: str, images: Sequence[NewImage]) -> JobRecord:
        """queued/running -> succeeded, inserting the images in the same transaction.

        A job that is already terminal (cancelled while it rendered) is returned unchanged and
        the images are not recorded; check ``status`` on the result. Core statements, not the
        ORM: this runs once per job while the next job renders.
        """
        job_key = normalize_job_id(job_id)
        now = self.now()
        image_rows = [
            {
                "job_id": job_key,
                "index": image.index,
                "seed": image.seed,
                "sha256": image.sha256,
                "width": image.width,
                "height": image.height,
                "created_at": now,
            }
            for image in images
        ]

        row = await self.db.write_sync(lambda c: finish_job(c, job_key, now, image_rows))
        if row is None:  # unknown (NotFound) or already terminal: the stored truth
            return await self._existing_job(job_id)
        stored = tuple(
            ImageRecord(job_key, i.index, i.seed, i.sha256, i.width, i.height)
            for i in sorted(images, key=lambda i: i.index)
        )
        return job_record(columns(row), stored)

    async def mark_failed(self, job_id: str, error: str) -> JobRecord:
        """queued/running -> failed with ``error``. An already terminal job is left unchanged."""
        async with self.db.write() as session:
            row = await _get_row(session, job_id)
            if row.status not in _TERMINAL:
                row.status = JobStatus.FAILED.value
                row.error = error
                row.finished_at = self.now()
                await session.flush()
            return (await load_jobs(session, select(JobRow).where(JobRow.id == row.id)))[0]

    async def cancel(self, job_id: str) -> JobRecord | None:
        """queued/running -> cancelled. None if it had already finished; NotFound if unknown."""
        async with self.db.write() as session:
            row = await _get_row(session, job_id)
            if row.status in _TERMINAL:
                return None
            row.status = JobStatus.CANCELLED.value
            row.finished_at = self.now()
            return job_record(row, ())

    async def requeue(self, job_id: str) -> None:
        """running -> queued at a clean shutdown; the interrupted run does not count as an attempt.

        Does nothing if the job is not running.
        """
        async with self.db.write() as session:
            row = await _get_row(session, job_id)
            if row.status == JobStatus.RUNNING:
                row.status = JobStatus.QUEUED.value
                row.attempt = max(0, row.attempt - 1)
                row.started_at = None

    async def recover_interrupted(
        self, max_attempts: int, *, keep: frozenset[str] = frozenset()
    ) -> tuple[list[str], list[str]]:
        """At start-up: jobs left ``running`` by a crash go back to the queue, or fail for good.

        A job whose ``attempt`` already reached ``max_attempts`` is marked failed (it may be what
        kills the engine). Jobs in ``keep`` stay running (a cluster worker still renders them).
        Returns ``(requeued ids, failed ids)`` in queue order.
        """
        requeued: list[str] = []
        failed: list[str] = []
        async with self.db.write() as session:
            rows = (
                await session.execute(
                    select(JobRow)
                    .where(JobRow.status == JobStatus.RUNNING.value)
                    .order_by(JobRow.seq)
                    .with_for_update()
                )
            ).scalars()
            now = self.now()
            for row in rows:
                if row.id in keep:
                    continue
                if row.attempt < max_attempts:
                    row.status = JobStatus.QUEUED.value
                    row.started_at = None
                    requeued.append(row.id)
                else:
                    row.status = JobStatus.FAILED.value
                    row.error = (
                        f"gave up after {row.attempt} attempts "
                        "(the engine stopped while rendering it each time)"
                    )
                    row.finished_at = now
                    failed.append(row.id)
        return requeued, failed

    async def requeue_lost(self, job_id: str, max_attempts: int, reason: str) -> JobRecord:
        """A running job whose worker died (or hung): back to ``queued`` to run elsewhere, its
        attempt counted; failed with ``reason`` once ``max_attempts`` runs were lost. A job that
        is not running is returned unchanged."""
        async with self.db.write() as session:
            row = await _get_row(session, job_id)
            if row.status == JobStatus.RUNNING:
                if row.attempt < max_attempts:
                    row.status = JobStatus.QUEUED.value
                    row.started_at = None
                else:
                    row.status = JobStatus.FAILED.value
                    row.error = f"gave up after {row.attempt} attempts ({reason} each time)"
                    row.finished_at = self.now()
                await session.flush()
            return (await load_jobs(session, select(JobRow).where(JobRow.id == row.id)))[0]

    # -- delivery --------------------------------------------------------------------------

    async def mark_delivered(self, job_id: str) -> None:
        """The result was handed out (NotFound for an unknown job). One UPDATE: the A1111
        API's synchronous calls make it before each reply."""
        params = {"job_key": normalize_job_id(job_id), "now": self.now()}
        changed = await self.db.write_sync(lambda c: c.execute(_DELIVERED, params).rowcount)
        if not changed:
            raise NotFound(f"no job with id {job_id.strip()!r}")

    async def record_delivery_failure(
        self, job_id: str, error: str, *, give_up: bool = False, max_attempts: int | None = None
    ) -> bool:
        """Count a failed delivery. With ``give_up``, or once ``max_attempts`` deliveries have
        failed, the result is marked undeliverable for good (no longer retried at a start).
        Returns whether it was."""
        async with self.db.write() as session:
            row = await _get_row(session, job_id)
            row.delivery_attempts += 1
            if max_attempts is not None and row.delivery_attempts >= max_attempts:
                give_up = True
            row.delivery_error = f"{UNDELIVERABLE_PREFIX}{error}" if give_up else error
            return give_up

    async def undelivered(self, platform: str) -> list[JobRecord]:
        """Finished jobs of ``platform`` still to deliver (not given up on), oldest first."""
        stmt = (
            select(JobRow)
            .where(
                JobRow.platform == platform,
                JobRow.status.in_(_TERMINAL),
                JobRow.delivered_at.is_(None),
                func.coalesce(JobRow.delivery_error, "").not_like(f"{UNDELIVERABLE_PREFIX}%"),
            )
            .order_by(JobRow.seq)
        )
        async with self.db.read() as session:
            return await load_jobs(session, stmt)

    # -- counting (rate limits, quotas, queue caps) ----------------------------------------

    async def count_jobs_since(self, user_id: int, since: datetime) -> int:
        """Jobs the user created at or after ``since`` (any status)."""
        return await self.db.read_sync(lambda c: jobs_since(c, user_id, since))

    async def count_queued(
        self, user_id: int | None = None, *, include_running: bool = False
    ) -> int:
        """Queued jobs (of one user, or everyone's); with ``include_running`` running ones too."""
        statuses = [JobStatus.QUEUED.value]
        if include_running:
            statuses.append(JobStatus.RUNNING.value)
        stmt = select(func.count()).where(JobRow.status.in_(statuses))
        if user_id is not None:
            stmt = stmt.where(JobRow.user_id == user_id)
        async with self.db.read() as session:
            return (await session.execute(stmt)).scalar_one()

    async def image_owners(self, sha256: str) -> list[tuple[int, int]]:
        """(user id, scope id) of every job that made, started from or masked with the image
        ``sha256``."""
        made = (
            select(JobRow.user_id, JobRow.scope_id)
            .join(ImageRow, ImageRow.job_id == JobRow.id)
            .where(ImageRow.sha256 == sha256)
        )
        started = select(JobRow.user_id, JobRow.scope_id).where(JobRow.init_image == sha256)
        masked = select(JobRow.user_id, JobRow.scope_id).where(JobRow.mask_image == sha256)
        async with self.db.read() as session:
            rows = (await session.execute(made.union(started, masked))).all()
        return [(int(user_id), int(scope_id)) for user_id, scope_id in rows]


_JOBS = cast(Table, JobRow.__table__)
_IMAGES = cast(Table, ImageRow.__table__)
# Built once (statement caching): the columns come from the parameters of each call.
# SQLite: the next seq in the same statement (writes are serialized); PostgreSQL: the
# jobs_seq_seq sequence's default (migration 0005), so concurrent inserts never clash.
_INSERT_JOB_NEXT_SEQ = (
    insert(_JOBS)
    .values(seq=select(func.coalesce(func.max(_JOBS.c.seq), 0) + 1).scalar_subquery())
    .returning(_JOBS.c.seq)
)
_INSERT_JOB_SEQUENCE = insert(_JOBS).returning(_JOBS.c.seq)


def _id_taken(error: IntegrityError) -> bool:
    """Whether an INSERT failed on the jobs' primary key (SQLite and PostgreSQL say it so)."""
    text = str(error.orig)
    return "jobs.id" in text or "jobs_pkey" in text


async def _get_row(session: AsyncSession, job_id: str) -> JobRow:
    """The job's row, locked for this write transaction (PostgreSQL: FOR UPDATE)."""
    row = await session.get(JobRow, normalize_job_id(job_id), with_for_update=True)
    if row is None:
        raise NotFound(f"no job with id {job_id.strip()!r}")
    return row


# The hot transactions' bodies (run by Database.write_sync / read_sync; Store.warm_up
# rehearses them, so the first requests after a start do not pay for compiling them).


def job_values(new: NewJob, now: datetime) -> dict[str, Any]:
    """The columns of a new queued job, all but ``id`` and ``seq``."""
    spec = new.spec
    return {
        "mode": Mode(spec.mode).value,
        "action": Action(new.action).value,
        "prompt": spec.prompt,
        "negative_prompt": spec.negative_prompt,
        "model": spec.model,
        "model_revision": new.model_revision,
        "sampler": spec.sampler,
        "width": spec.width,
        "height": spec.height,
        "steps": spec.steps,
        "cfg": float(spec.cfg),
        "seed": spec.seed,
        "count": spec.count,
        "strength": spec.strength,
        "init_image": spec.init_image,
        "upscaler": spec.upscaler,
        "mask_image": spec.mask_image,
        "inpaint": spec.inpaint_options(),
        "hires": None if spec.hires is None else spec.hires.to_dict(),
        "refiner": None if spec.refiner is None else spec.refiner.to_dict(),
        "loras": [lora.to_dict() for lora in spec.loras] or None,
        "embeddings": [embedding.to_dict() for embedding in spec.embeddings] or None,
        # NULL for "plain", like every job stored before the column
        "prompt_syntax": None if spec.prompt_syntax == "plain" else spec.prompt_syntax,
        "parent_id": None if new.parent_id is None else normalize_job_id(new.parent_id),
        "parent_index": new.parent_index,
        "user_id": new.user_id,
        "scope_id": new.scope_id,
        "platform": new.platform,
        "reply_target": dict(new.reply_target),
        "status": JobStatus.QUEUED.value,
        "attempt": 0,
        "created_at": now,
        "delivery_attempts": 0,
    }


def insert_job(connection: Connection, is_sqlite: bool, job_id: str, values: dict[str, Any]) -> int:
    """Insert the job; its ``seq``."""
    statement = _INSERT_JOB_NEXT_SEQ if is_sqlite else _INSERT_JOB_SEQUENCE
    return int(connection.execute(statement, {"id": job_id, **values}).scalar_one())


def start_job(connection: Connection, job_key: str, now: datetime) -> Row[Any] | None:
    """queued -> running; the row, or None if it was not queued."""
    return connection.execute(_START_JOB, {"job_key": job_key, "now": now}).first()


def finish_job(
    connection: Connection, job_key: str, now: datetime, image_rows: list[dict[str, Any]]
) -> Row[Any] | None:
    """-> succeeded with its images; the row, or None if it was already terminal (or unknown)."""
    row = connection.execute(_FINISH_JOB, {"job_key": job_key, "now": now}).first()
    if row is not None and image_rows:
        connection.execute(_INSERT_IMAGES, image_rows)
    return row


def jobs_since(connection: Connection, user_id: int, since: datetime) -> int:
    """Jobs the user created at or after ``since``."""
    return int(connection.execute(_JOBS_SINCE, {"user_id": user_id, "since": since}).scalar_one())


# Built once, values bound per call: SQLAlchemy then finds each one's compiled form from a cache
# key it has already computed (~0.03 ms per execution, against ~0.2 ms for a statement built
# afresh each time).
_NOW = bindparam("now", type_=_JOBS.c.created_at.type)
_START_JOB = (
    update(_JOBS)
    .where(_JOBS.c.id == bindparam("job_key"), _JOBS.c.status == JobStatus.QUEUED.value)
    .values(status=JobStatus.RUNNING.value, attempt=_JOBS.c.attempt + 1, started_at=_NOW)
    .returning(*_JOBS.c)
)
_FINISH_JOB = (
    update(_JOBS)
    .where(_JOBS.c.id == bindparam("job_key"), _JOBS.c.status.not_in(_TERMINAL))
    .values(status=JobStatus.SUCCEEDED.value, error=None, finished_at=_NOW)
    .returning(*_JOBS.c)
)
_INSERT_IMAGES = insert(_IMAGES)
_DELIVERED = (
    update(_JOBS)
    .where(_JOBS.c.id == bindparam("job_key"))
    .values(delivered_at=_NOW, delivery_error=None)
)
_JOBS_SINCE = select(func.count()).where(
    _JOBS.c.user_id == bindparam("user_id"),
    _JOBS.c.created_at >= bindparam("since", type_=_JOBS.c.created_at.type),
)
