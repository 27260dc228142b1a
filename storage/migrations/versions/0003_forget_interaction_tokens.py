"""Remove Discord interaction tokens from stored reply targets.

Easel used to keep a Discord interaction's token in ``jobs.reply_target`` to send the result as
a follow-up after a restart. Tokens are secrets (anyone holding one can post as the bot in that
channel for 15 minutes), so the front end now keeps them in memory only; this removes the ones
rows written by older versions still hold. Those jobs are delivered as a channel message.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":  # PostgreSQL stores came after: none to remove
        return
    op.execute("PRAGMA secure_delete = ON")  # zero the old cells, not only unlink them
    op.execute(
        "UPDATE jobs SET reply_target = json_remove(reply_target, '$.interaction_token') "
        "WHERE json_extract(reply_target, '$.interaction_token') IS NOT NULL"
    )
    op.execute("PRAGMA secure_delete = OFF")


def downgrade() -> None:
    """Nothing to restore: the tokens are gone (and long expired)."""
