"""SQLAlchemy table definitions. The schema itself is created by ``storage/migrations``.

These classes never leave ``storage/``: the repository turns rows into frozen records.

Timestamps are :class:`UTCDateTime`: aware UTC datetimes in Python, naive UTC in the database
(text in SQLite, ``timestamp`` in PostgreSQL, so ``ORDER BY`` and ``>=`` compare correctly).
Naive datetimes are refused on the way in.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
JOB_MODES = ("txt2img", "img2img", "upscale", "inpaint")
JOB_ACTIONS = ("draw", "rerun", "reroll", "upscale", "vary")
MODEL_KINDS = ("builtin", "hub", "folder", "single_file", "upscaler")
ADDON_KINDS = ("lora", "embedding")
MESSAGE_ROLES = ("result", "status")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC ``datetime`` stored as naive UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: Easel stores timezone-aware UTC times")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }


class UserRow(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("platform", "platform_user_id", name="uq_users_platform"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    platform_user_id: Mapped[str] = mapped_column(String(128))
    display_name: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]


class ScopeRow(Base):
    __tablename__ = "scopes"
    __table_args__ = (UniqueConstraint("platform", "platform_scope_id", name="uq_scopes_platform"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    platform_scope_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(Text, default="")
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime]


class ModelRow(Base):
    __tablename__ = "models"
    __table_args__ = (
        CheckConstraint(_in("kind", MODEL_KINDS), name="ck_models_kind"),
        # At most one row is the default (the repository keeps it exactly one once any exists).
        Index(
            "ix_models_one_default",
            "is_default",
            unique=True,
            sqlite_where=text("is_default = 1"),
            postgresql_where=text("is_default"),
        ),
    )

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))
    revision: Mapped[str | None] = mapped_column(Text)
    config: Mapped[str | None] = mapped_column(Text)
    default_width: Mapped[int] = mapped_column(Integer)
    default_height: Mapped[int] = mapped_column(Integer)
    default_steps: Mapped[int] = mapped_column(Integer)
    default_cfg: Mapped[float] = mapped_column(Float)
    default_sampler: Mapped[str] = mapped_column(String(64))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    # The dtype it loads in on a GPU (0010): float16 | bfloat16 | float32; NULL = the config's.
    dtype: Mapped[str | None] = mapped_column(String(16), nullable=True)
    created_at: Mapped[datetime]


class AddOnRow(Base):
    """A registered LoRA or textual-inversion embedding (0009)."""

    __tablename__ = "addons"
    __table_args__ = (CheckConstraint(_in("kind", ADDON_KINDS), name="ck_addons_kind"),)

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    family: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime]


class JobRow(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(_in("status", JOB_STATUSES), name="ck_jobs_status"),
        CheckConstraint(_in("mode", JOB_MODES), name="ck_jobs_mode"),
        CheckConstraint(_in("action", JOB_ACTIONS), name="ck_jobs_action"),
        Index("ix_jobs_user_created", "user_id", "created_at"),
        Index("ix_jobs_status_seq", "status", "seq"),
        Index("ix_jobs_parent", "parent_id"),
        Index("ix_jobs_delivery", "platform", "status", "delivered_at"),
        Index("ix_jobs_init_image", "init_image"),
        Index("ix_jobs_mask_image", "mask_image"),
    )

    id: Mapped[str] = mapped_column(String(8), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    mode: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(16))
    prompt: Mapped[str] = mapped_column(Text)
    negative_prompt: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(String(128))
    model_revision: Mapped[str | None] = mapped_column(Text)
    sampler: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    steps: Mapped[int] = mapped_column(Integer)
    cfg: Mapped[float] = mapped_column(Float)
    seed: Mapped[int] = mapped_column(BigInteger)  # 0 .. 2**32 - 1
    count: Mapped[int] = mapped_column(Integer)
    strength: Mapped[float | None] = mapped_column(Float)
    init_image: Mapped[str | None] = mapped_column(String(64))
    upscaler: Mapped[str | None] = mapped_column(String(128))
    # Inpaint jobs (0007): the mask's sha256 and the A1111 options (INPAINT_KEYS), else NULL.
    mask_image: Mapped[str | None] = mapped_column(String(64))
    inpaint: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Text-to-image jobs with a hires fix (0008): generation.spec.Hires as JSON, else NULL.
    hires: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Text-to-image jobs with an SDXL refiner stage (0011): generation.spec.Refiner, else NULL.
    refiner: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # LoRA and embeddings a job used (0009): [{"name", "sha256", "weight"}], else NULL; the
    # prompt-parsing rules it used (generation.spec.PROMPT_SYNTAXES), NULL = "plain".
    loras: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    embeddings: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    prompt_syntax: Mapped[str | None] = mapped_column(String(16))
    parent_id: Mapped[str | None] = mapped_column(String(8), ForeignKey("jobs.id"))
    parent_index: Mapped[int | None] = mapped_column(Integer)
    user_id: Mapped[int] = mapped_column(Integer, ForeignKey("users.id"))
    scope_id: Mapped[int] = mapped_column(Integer, ForeignKey("scopes.id"))
    platform: Mapped[str] = mapped_column(String(32))
    reply_target: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    delivery_attempts: Mapped[int] = mapped_column(Integer, default=0)
    delivery_error: Mapped[str | None] = mapped_column(Text)


class ImageRow(Base):
    __tablename__ = "images"
    __table_args__ = (
        UniqueConstraint("job_id", "index", name="uq_images_job_index"),
        Index("ix_images_sha256", "sha256"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(String(8), ForeignKey("jobs.id"))
    index: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]


class PlatformMessageRow(Base):
    """A chat message that shows a job: a result image (``image_index``) or its status message.

    Chat front ends whose API cannot look a message up (Telegram: a reaction names only the chat
    and the message) find the job here. ``chat_id`` and ``message_id`` are the platform's ids.
    """

    __tablename__ = "platform_messages"
    __table_args__ = (
        CheckConstraint(_in("role", MESSAGE_ROLES), name="ck_platform_messages_role"),
        UniqueConstraint(
            "platform", "chat_id", "message_id", "role", name="uq_platform_messages_message"
        ),
        Index("ix_platform_messages_job", "platform", "job_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    chat_id: Mapped[str] = mapped_column(String(128))
    message_id: Mapped[str] = mapped_column(String(128))
    job_id: Mapped[str] = mapped_column(String(8), ForeignKey("jobs.id", ondelete="CASCADE"))
    image_index: Mapped[int | None] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]


class ClientOptionRow(Base):
    """Options an HTTP client set through ``POST /sdapi/v1/options`` for its scope (the API's):
    AUTOMATIC1111 keys and their JSON values, kept as sent. Scope settings (what Easel's admins
    set) keep only the keys Easel knows, so these live apart."""

    __tablename__ = "client_options"

    scope_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("scopes.id", ondelete="CASCADE"), primary_key=True
    )
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime]
