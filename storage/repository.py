"""The Store: every read and write of Easel's records, each one a short transaction.

Methods return frozen records from :mod:`storage.records`, never ORM objects. Writes run in
``BEGIN IMMEDIATE`` transactions (see :mod:`storage.db`), so check-then-write sequences inside one
method (the next ``seq``, a fresh job id, "only if still queued") cannot race another writer.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Delete, Table, delete, func, insert, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from generation.errors import InvalidRequest, NotFound
from generation.spec import Action, Mode
from storage.convert import (
    job_record,
    load_jobs,
    message_record,
    model_record,
    scope_record,
    user_record,
)
from storage.db import Database
from storage.models import (
    MESSAGE_ROLES,
    MODEL_KINDS,
    ImageRow,
    JobRow,
    ModelRow,
    PlatformMessageRow,
    ScopeRow,
    UserRow,
)
from storage.records import (
    TERMINAL_STATUSES,
    ImageRecord,
    JobRecord,
    JobStatus,
    ModelRecord,
    NewImage,
    NewJob,
    PlatformMessage,
    ScopeRecord,
    UserRecord,
)

# No 0/o, 1/l/i: ids are read off screenshots and typed back by people.
JOB_ID_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
JOB_ID_LENGTH = 8
_ID_TRIES = 20
MODEL_CACHE_SECONDS = 2.0
_TERMINAL = tuple(s.value for s in TERMINAL_STATUSES)
# ``delivery_error`` of a result that can never be delivered (chat deleted, bot removed, ...):
# such jobs are not retried at the next start.
UNDELIVERABLE_PREFIX = "undeliverable: "


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_job_id() -> str:
    return "".join(secrets.choice(JOB_ID_ALPHABET) for _ in range(JOB_ID_LENGTH))


def normalize_job_id(job_id: str) -> str:
    """What a person typed (``" AB3CD5EF "``) -> the stored form (``"ab3cd5ef"``).

    Ids are ASCII: text that is not valid Unicode (a lone surrogate from the command line) is
    replaced, so it finds no job instead of failing inside SQLite."""
    return job_id.strip().lower().encode("utf-8", "replace").decode("utf-8")


class Store:
    """Repository over a connected :class:`Database`. ``now`` is the clock (aware UTC)."""

    def __init__(self, db: Database, now: Callable[[], datetime] | None = None) -> None:
        self.db = db
        self.now = now or utc_now
        # Users and scopes are read on every request and almost never change: remembered here
        # so admission does not pay two write transactions (see ``get_or_create_user``). Only
        # this Store writes them (other processes only read), so the cache cannot go stale.
        self._users: dict[tuple[str, str], UserRecord] = {}
        self._scopes: dict[tuple[str, str], ScopeRecord] = {}
        # The model registry is read on every draw. It can also be changed by another process
        # (``easel models add`` while ``easel serve`` runs), so the snapshot is dropped after
        # MODEL_CACHE_SECONDS; changes made through this Store are seen at once.
        self._models: dict[str, ModelRecord] | None = None
        self._models_read_at = 0.0
        self._models_generation = 0

    # -- users and scopes ------------------------------------------------------------------

    async def get_or_create_user(
        self, platform: str, platform_user_id: str, display_name: str = ""
    ) -> UserRecord:
        """The user, created on first sight; a new non-empty ``display_name`` is remembered."""
        key = (platform, platform_user_id)
        known = self._users.get(key)
        if known is not None and (not display_name or known.display_name == display_name):
            return known
        async with self.db.write() as session:
            await session.execute(
                sqlite_insert(UserRow)
                .values(
                    platform=platform,
                    platform_user_id=platform_user_id,
                    display_name=display_name,
                    created_at=self.now(),
                )
                .on_conflict_do_nothing(index_elements=["platform", "platform_user_id"])
            )
            row = (
                await session.execute(
                    select(UserRow).where(
                        UserRow.platform == platform, UserRow.platform_user_id == platform_user_id
                    )
                )
            ).scalar_one()
            if display_name and row.display_name != display_name:
                row.display_name = display_name
            record = user_record(row)
        self._users[key] = record  # only once the transaction committed
        return record

    async def find_user(self, platform: str, platform_user_id: str) -> UserRecord | None:
        """The user if already known; never writes (reads such as a history query use it)."""
        known = self._users.get((platform, platform_user_id))
        if known is not None:
            return known
        async with self.db.read() as session:
            row = (
                await session.execute(
                    select(UserRow).where(
                        UserRow.platform == platform, UserRow.platform_user_id == platform_user_id
                    )
                )
            ).scalar_one_or_none()
            return None if row is None else user_record(row)

    async def get_user(self, user_id: int) -> UserRecord | None:
        async with self.db.read() as session:
            row = await session.get(UserRow, user_id)
            return None if row is None else user_record(row)

    async def get_or_create_scope(
        self, platform: str, platform_scope_id: str, name: str = ""
    ) -> ScopeRecord:
        """The scope (server, chat, client), created with empty settings on first sight."""
        key = (platform, platform_scope_id)
        known = self._scopes.get(key)
        if known is not None and (not name or known.name == name):
            return known
        async with self.db.write() as session:
            await session.execute(
                sqlite_insert(ScopeRow)
                .values(
                    platform=platform,
                    platform_scope_id=platform_scope_id,
                    name=name,
                    settings={},
                    created_at=self.now(),
                )
                .on_conflict_do_nothing(index_elements=["platform", "platform_scope_id"])
            )
            row = (
                await session.execute(
                    select(ScopeRow).where(
                        ScopeRow.platform == platform,
                        ScopeRow.platform_scope_id == platform_scope_id,
                    )
                )
            ).scalar_one()
            if name and row.name != name:
                row.name = name
            record = scope_record(row)
        self._scopes[key] = record
        return record

    async def get_scope(self, scope_id: int) -> ScopeRecord | None:
        async with self.db.read() as session:
            row = await session.get(ScopeRow, scope_id)
            return None if row is None else scope_record(row)

    async def update_scope_settings(self, scope_id: int, settings: dict[str, Any]) -> ScopeRecord:
        """Replace the scope's settings dict (read, change and write it back in the service)."""
        async with self.db.write() as session:
            row = await session.get(ScopeRow, scope_id)
            if row is None:
                raise NotFound(f"no scope with id {scope_id}")
            row.settings = dict(settings)
            record = scope_record(row)
        self._scopes[(record.platform, record.platform_scope_id)] = record
        return record

    # -- jobs ------------------------------------------------------------------------------

    async def add_job(self, new: NewJob) -> JobRecord:
        """Store a new ``queued`` job with a fresh 8-character id and the next ``seq``.

        One INSERT, the hot path of admission: ``seq`` comes from a sub-select in the same
        statement, a missing parent is caught by its foreign key, and a clash with an existing
        id — about one in 10^6 even with a million jobs stored — by the primary key, and
        retried with a new id.
        """
        spec = new.spec
        parent_id = None if new.parent_id is None else normalize_job_id(new.parent_id)
        values: dict[str, Any] = {
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
            "parent_id": parent_id,
            "parent_index": new.parent_index,
            "user_id": new.user_id,
            "scope_id": new.scope_id,
            "platform": new.platform,
            "reply_target": dict(new.reply_target),
            "status": JobStatus.QUEUED.value,
            "attempt": 0,
            "created_at": self.now(),
            "delivery_attempts": 0,
        }
        for _ in range(_ID_TRIES):
            job_id = new_job_id()
            try:
                async with self.db.write_statement() as connection:
                    result = await connection.execute(_INSERT_JOB, {"id": job_id, **values})
                    seq = result.scalar_one()
            except IntegrityError as error:
                if "jobs.id" in str(error.orig):  # the id is taken: draw another
                    continue
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
        statement = (
            update(_JOBS)
            .where(_JOBS.c.id == normalize_job_id(job_id), _JOBS.c.status == JobStatus.QUEUED.value)
            .values(
                status=JobStatus.RUNNING.value, attempt=_JOBS.c.attempt + 1, started_at=self.now()
            )
            .returning(*_JOBS.c)
        )
        async with self.db.write_statement() as connection:
            row = (await connection.execute(statement)).first()
        if row is None:
            await self._existing_job(job_id)  # unknown: NotFound; else not queued: None
            return None
        return job_record(JobRow(**row._mapping), ())

    async def mark_succeeded(self, job_id: str, images: Sequence[NewImage]) -> JobRecord:
        """queued/running -> succeeded, inserting the images in the same transaction.

        A job that is already terminal (cancelled while it rendered) is returned unchanged and
        the images are not recorded; check ``status`` on the result. Core statements, not the
        ORM: this runs once per job while the next job renders.
        """
        job_key = normalize_job_id(job_id)
        now = self.now()
        async with self.db.write() as session:
            connection = await session.connection()
            row = (
                await connection.execute(
                    update(_JOBS)
                    .where(_JOBS.c.id == job_key, _JOBS.c.status.not_in(_TERMINAL))
                    .values(status=JobStatus.SUCCEEDED.value, error=None, finished_at=now)
                    .returning(*_JOBS.c)
                )
            ).first()
            if row is not None and images:
                await connection.execute(
                    insert(_IMAGES),
                    [
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
                    ],
                )
        if row is None:  # unknown (NotFound) or already terminal: the stored truth
            return await self._existing_job(job_id)
        stored = tuple(
            ImageRecord(job_key, i.index, i.seed, i.sha256, i.width, i.height)
            for i in sorted(images, key=lambda i: i.index)
        )
        return job_record(JobRow(**row._mapping), stored)

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

    async def recover_interrupted(self, max_attempts: int) -> tuple[list[str], list[str]]:
        """At start-up: jobs left ``running`` by a crash go back to the queue, or fail for good.

        A job whose ``attempt`` already reached ``max_attempts`` is marked failed (it may be what
        kills the engine). Returns ``(requeued ids, failed ids)`` in queue order.
        """
        requeued: list[str] = []
        failed: list[str] = []
        async with self.db.write() as session:
            rows = (
                await session.execute(
                    select(JobRow)
                    .where(JobRow.status == JobStatus.RUNNING.value)
                    .order_by(JobRow.seq)
                )
            ).scalars()
            now = self.now()
            for row in rows:
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

    # -- delivery --------------------------------------------------------------------------

    async def mark_delivered(self, job_id: str) -> None:
        async with self.db.write() as session:
            row = await _get_row(session, job_id)
            row.delivered_at = self.now()
            row.delivery_error = None

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

    # -- chat messages that show a job ----------------------------------------------------

    async def remember_messages(
        self,
        platform: str,
        chat_id: str,
        job_id: str,
        messages: Sequence[tuple[str, int | None]],
        *,
        role: str = "result",
        replace: bool = False,
    ) -> None:
        """Remember that ``messages`` ((message id, image index) pairs) in ``chat_id`` show a job.

        A message already remembered under ``role`` now points at this job. With ``replace`` the
        job's earlier ``role`` messages on ``platform`` are forgotten first (one status message).
        """
        _check_role(role)
        job_id = normalize_job_id(job_id)
        async with self.db.write() as session:
            if replace:
                await session.execute(_job_messages_delete(platform, job_id, role))
            now = self.now()
            for message_id, image_index in messages:
                stmt = sqlite_insert(PlatformMessageRow).values(
                    platform=platform,
                    chat_id=chat_id,
                    message_id=message_id,
                    job_id=job_id,
                    image_index=image_index,
                    role=role,
                    created_at=now,
                )
                await session.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["platform", "chat_id", "message_id", "role"],
                        set_={
                            "job_id": stmt.excluded.job_id,
                            "image_index": stmt.excluded.image_index,
                            "created_at": stmt.excluded.created_at,
                        },
                    )
                )

    async def remember_message(
        self,
        platform: str,
        chat_id: str,
        message_id: str,
        job_id: str,
        image_index: int | None = None,
        *,
        role: str = "result",
        replace: bool = False,
    ) -> None:
        """One message; see :meth:`remember_messages`."""
        await self.remember_messages(
            platform, chat_id, job_id, [(message_id, image_index)], role=role, replace=replace
        )

    async def find_message(
        self, platform: str, chat_id: str, message_id: str, *, role: str = "result"
    ) -> PlatformMessage | None:
        """The job shown by a message, or None if it is not one Easel remembered."""
        stmt = select(PlatformMessageRow).where(
            PlatformMessageRow.platform == platform,
            PlatformMessageRow.chat_id == chat_id,
            PlatformMessageRow.message_id == message_id,
            PlatformMessageRow.role == role,
        )
        async with self.db.read() as session:
            row = (await session.execute(stmt)).scalar_one_or_none()
            return None if row is None else message_record(row)

    async def job_messages(
        self, platform: str, job_id: str, *, role: str | None = None
    ) -> list[PlatformMessage]:
        """The job's messages on ``platform`` (of one ``role``, or all), oldest first."""
        stmt = select(PlatformMessageRow).where(
            PlatformMessageRow.platform == platform,
            PlatformMessageRow.job_id == normalize_job_id(job_id),
        )
        if role is not None:
            stmt = stmt.where(PlatformMessageRow.role == role)
        async with self.db.read() as session:
            rows = (await session.execute(stmt.order_by(PlatformMessageRow.id))).scalars()
            return [message_record(row) for row in rows]

    async def forget_messages(self, platform: str, job_id: str, *, role: str | None = None) -> int:
        """Forget the job's messages on ``platform`` (of one ``role``, or all); how many went."""
        async with self.db.write() as session:
            result = await session.execute(
                _job_messages_delete(platform, normalize_job_id(job_id), role)
            )
            return cast("CursorResult[Any]", result).rowcount

    # -- counting (rate limits, quotas, queue caps) ----------------------------------------

    async def count_jobs_since(self, user_id: int, since: datetime) -> int:
        """Jobs the user created at or after ``since`` (any status)."""
        stmt = select(func.count()).where(JobRow.user_id == user_id, JobRow.created_at >= since)
        async with self.db.read() as session:
            return (await session.execute(stmt)).scalar_one()

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

    # -- model registry --------------------------------------------------------------------

    async def list_models(self) -> list[ModelRecord]:
        async with self.db.read() as session:
            rows = (await session.execute(select(ModelRow).order_by(ModelRow.name))).scalars()
            return [model_record(row) for row in rows]

    async def get_model(self, name: str) -> ModelRecord | None:
        return (await self._model_snapshot()).get(name.strip())

    async def default_model(self) -> ModelRecord | None:
        return next((m for m in (await self._model_snapshot()).values() if m.is_default), None)

    async def _model_snapshot(self) -> dict[str, ModelRecord]:
        models = self._models
        if models is None or time.monotonic() - self._models_read_at > MODEL_CACHE_SECONDS:
            read_at, generation = time.monotonic(), self._models_generation
            async with self.db.read() as session:
                rows = (await session.execute(select(ModelRow))).scalars()
                models = {row.name: model_record(row) for row in rows}
            if generation == self._models_generation:  # no registry write ended meanwhile
                self._models, self._models_read_at = models, read_at
        return models

    @asynccontextmanager
    async def _model_write(self) -> AsyncIterator[AsyncSession]:
        """A write transaction on the registry; the snapshot is dropped once it has ended."""
        try:
            async with self.db.write() as session:
                yield session
        finally:
            self._models = None
            self._models_generation += 1

    async def add_model(
        self,
        name: str,
        *,
        source: str,
        kind: str,
        revision: str | None = None,
        config: str | None = None,
        default_width: int = 512,
        default_height: int = 512,
        default_steps: int = 25,
        default_cfg: float = 7.0,
        default_sampler: str = "DPM++ 2M Karras",
        is_default: bool = False,
    ) -> ModelRecord:
        """Register a model. The first model registered becomes the default."""
        name = name.strip()
        if not name or len(name) > 128:
            raise InvalidRequest("a model name must be 1 to 128 characters long")
        if kind not in MODEL_KINDS:
            raise InvalidRequest(
                f"unknown model kind {kind!r}; use one of: {', '.join(MODEL_KINDS)}"
            )
        async with self._model_write() as session:
            if await session.get(ModelRow, name) is not None:
                raise InvalidRequest(
                    f"a model named {name!r} is already registered; "
                    "remove it first or choose another name"
                )
            has_default = (
                await session.execute(select(ModelRow.name).where(ModelRow.is_default.is_(True)))
            ).first() is not None
            make_default = is_default or not has_default
            if make_default and has_default:
                await session.execute(update(ModelRow).values(is_default=False))
            row = ModelRow(
                name=name,
                source=source,
                kind=kind,
                revision=revision,
                config=config,
                default_width=default_width,
                default_height=default_height,
                default_steps=default_steps,
                default_cfg=float(default_cfg),
                default_sampler=default_sampler,
                is_default=make_default,
                created_at=self.now(),
            )
            session.add(row)
            await session.flush()
            return model_record(row)

    async def update_model_revision(self, name: str, revision: str | None) -> ModelRecord:
        async with self._model_write() as session:
            row = await _get_model_row(session, name)
            row.revision = revision
            return model_record(row)

    async def remove_model(self, name: str) -> None:
        """Unregister a model (its jobs keep their history). The default cannot be removed."""
        async with self._model_write() as session:
            row = await _get_model_row(session, name)
            if row.is_default:
                raise InvalidRequest(
                    f"{row.name!r} is the default model; make another model the default "
                    "before removing it"
                )
            await session.delete(row)

    async def set_default_model(self, name: str) -> ModelRecord:
        """Make ``name`` the one default model."""
        async with self._model_write() as session:
            row = await _get_model_row(session, name)
            if not row.is_default:
                await session.execute(
                    update(ModelRow).where(ModelRow.is_default.is_(True)).values(is_default=False)
                )
                await session.refresh(row)
                row.is_default = True
                await session.flush()
            return model_record(row)


# -- helpers -------------------------------------------------------------------------------

_JOBS = cast(Table, JobRow.__table__)
_IMAGES = cast(Table, ImageRow.__table__)
# Built once (statement caching): the columns come from the parameters of each call.
_INSERT_JOB = (
    insert(_JOBS)
    .values(seq=select(func.coalesce(func.max(_JOBS.c.seq), 0) + 1).scalar_subquery())
    .returning(_JOBS.c.seq)
)


async def _get_row(session: AsyncSession, job_id: str) -> JobRow:
    row = await session.get(JobRow, normalize_job_id(job_id))
    if row is None:
        raise NotFound(f"no job with id {job_id.strip()!r}")
    return row


async def _get_model_row(session: AsyncSession, name: str) -> ModelRow:
    row = await session.get(ModelRow, name.strip())
    if row is None:
        raise NotFound(f"no model named {name.strip()!r}; see the model list for registered names")
    return row


def _check_role(role: str) -> None:
    if role not in MESSAGE_ROLES:
        raise ValueError(f"unknown message role {role!r}; use one of: {', '.join(MESSAGE_ROLES)}")


def _job_messages_delete(platform: str, job_id: str, role: str | None) -> Delete:
    stmt = delete(PlatformMessageRow).where(
        PlatformMessageRow.platform == platform, PlatformMessageRow.job_id == job_id
    )
    return stmt if role is None else stmt.where(PlatformMessageRow.role == role)
