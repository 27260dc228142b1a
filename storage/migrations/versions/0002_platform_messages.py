"""Chat messages that show a job (the Telegram message map, formerly ``telegram.db``).

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MESSAGE_ROLES = ("result", "status")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "platform_messages",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("chat_id", sa.String(128), nullable=False),
        sa.Column("message_id", sa.String(128), nullable=False),
        sa.Column(
            "job_id",
            sa.String(8),
            sa.ForeignKey("jobs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("image_index", sa.Integer(), nullable=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(_in("role", MESSAGE_ROLES), name="ck_platform_messages_role"),
        sa.UniqueConstraint(
            "platform", "chat_id", "message_id", "role", name="uq_platform_messages_message"
        ),
    )
    op.create_index("ix_platform_messages_job", "platform_messages", ["platform", "job_id"])


def downgrade() -> None:
    op.drop_table("platform_messages")
