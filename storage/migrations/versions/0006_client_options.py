"""Options HTTP clients set (``POST /sdapi/v1/options``), kept per scope as sent.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "client_options",
        sa.Column(
            "scope_id",
            sa.Integer(),
            sa.ForeignKey("scopes.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("client_options")
