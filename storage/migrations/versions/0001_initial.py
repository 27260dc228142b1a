"""Initial schema: users, scopes, models, jobs, images.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
JOB_MODES = ("txt2img", "img2img", "upscale")
JOB_ACTIONS = ("draw", "rerun", "reroll", "upscale", "vary")
MODEL_KINDS = ("builtin", "hub", "folder", "single_file", "upscaler")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("platform_user_id", sa.String(128), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("platform", "platform_user_id", name="uq_users_platform"),
    )
    op.create_table(
        "scopes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("platform_scope_id", sa.String(128), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("platform", "platform_scope_id", name="uq_scopes_platform"),
    )
    op.create_table(
        "models",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("revision", sa.Text(), nullable=True),
        sa.Column("config", sa.Text(), nullable=True),
        sa.Column("default_width", sa.Integer(), nullable=False),
        sa.Column("default_height", sa.Integer(), nullable=False),
        sa.Column("default_steps", sa.Integer(), nullable=False),
        sa.Column("default_cfg", sa.Float(), nullable=False),
        sa.Column("default_sampler", sa.String(64), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(_in("kind", MODEL_KINDS), name="ck_models_kind"),
    )
    op.create_index(
        "ix_models_one_default",
        "models",
        ["is_default"],
        unique=True,
        sqlite_where=sa.text("is_default = 1"),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(8), primary_key=True),
        sa.Column("seq", sa.Integer(), nullable=False, unique=True),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("negative_prompt", sa.Text(), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("model_revision", sa.Text(), nullable=True),
        sa.Column("sampler", sa.String(64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("cfg", sa.Float(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("strength", sa.Float(), nullable=True),
        sa.Column("init_image", sa.String(64), nullable=True),
        sa.Column("upscaler", sa.String(128), nullable=True),
        sa.Column("parent_id", sa.String(8), sa.ForeignKey("jobs.id"), nullable=True),
        sa.Column("parent_index", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("scope_id", sa.Integer(), sa.ForeignKey("scopes.id"), nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("reply_target", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.Column("delivery_attempts", sa.Integer(), nullable=False),
        sa.Column("delivery_error", sa.Text(), nullable=True),
        sa.CheckConstraint(_in("status", JOB_STATUSES), name="ck_jobs_status"),
        sa.CheckConstraint(_in("mode", JOB_MODES), name="ck_jobs_mode"),
        sa.CheckConstraint(_in("action", JOB_ACTIONS), name="ck_jobs_action"),
    )
    op.create_index("ix_jobs_user_created", "jobs", ["user_id", "created_at"])
    op.create_index("ix_jobs_status_seq", "jobs", ["status", "seq"])
    op.create_index("ix_jobs_parent", "jobs", ["parent_id"])
    op.create_index("ix_jobs_delivery", "jobs", ["platform", "status", "delivered_at"])
    op.create_table(
        "images",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("job_id", sa.String(8), sa.ForeignKey("jobs.id"), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("job_id", "index", name="uq_images_job_index"),
    )
    op.create_index("ix_images_sha256", "images", ["sha256"])


def downgrade() -> None:
    op.drop_table("images")
    op.drop_table("jobs")
    op.drop_table("models")
    op.drop_table("scopes")
    op.drop_table("users")
