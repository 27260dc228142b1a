"""PostgreSQL: what SQLite does by itself.

* job sequence numbers from a sequence (``jobs_seq_seq``), so admissions running side by side
  never compute the same next number (SQLite serializes writes and takes ``max(seq) + 1``);
* seeds as ``BIGINT`` (0 .. 2**32 - 1 does not fit PostgreSQL's ``integer``; SQLite's integers
  are 64-bit already);
* "at most one default model" as a partial unique index on PostgreSQL's boolean.

Nothing changes on SQLite.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE SEQUENCE IF NOT EXISTS jobs_seq_seq OWNED BY jobs.seq")
    op.execute("SELECT setval('jobs_seq_seq', COALESCE((SELECT max(seq) FROM jobs), 0) + 1, false)")
    op.execute("ALTER TABLE jobs ALTER COLUMN seq SET DEFAULT nextval('jobs_seq_seq')")
    op.alter_column("jobs", "seed", type_=sa.BigInteger(), existing_nullable=False)
    op.alter_column("images", "seed", type_=sa.BigInteger(), existing_nullable=False)
    op.drop_index("ix_models_one_default", table_name="models")
    op.create_index(
        "ix_models_one_default",
        "models",
        ["is_default"],
        unique=True,
        postgresql_where=sa.text("is_default"),
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE jobs ALTER COLUMN seq DROP DEFAULT")
    op.execute("DROP SEQUENCE IF EXISTS jobs_seq_seq")
