"""LoRA and embeddings, and how a job's prompt was read (issue 16).

* ``addons``: the LoRA and textual-inversion embedding files an admin registered (``kind``
  'lora' or 'embedding'; ``path`` of a safetensors file, its ``sha256`` at registration, the
  model ``family`` it is for, when known).
* ``jobs.loras`` / ``jobs.embeddings`` (JSON lists of ``{"name", "sha256", "weight"}``): the
  files a job used, so a rerun uses the same ones (refused if a file changed). NULL: none.
* ``jobs.prompt_syntax``: the prompt-parsing rules the job used ('a1111': emphasis, 75-token
  chunks, BREAK; see ``generation.spec.PROMPT_SYNTAXES``). NULL = 'plain', every job stored
  before: the prompt handed to the pipeline as text, so old reruns do not change.

Downgrade: the columns and the table are dropped (a rerun then ignores LoRA and embeddings).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "addons",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("family", sa.String(32), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('lora', 'embedding')", name="ck_addons_kind"),
    )
    op.add_column("jobs", sa.Column("loras", sa.JSON(), nullable=True))
    op.add_column("jobs", sa.Column("embeddings", sa.JSON(), nullable=True))
    op.add_column("jobs", sa.Column("prompt_syntax", sa.String(16), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "prompt_syntax")
    op.drop_column("jobs", "embeddings")
    op.drop_column("jobs", "loras")
    op.drop_table("addons")
