"""Hires fix jobs: ``jobs.hires``, the hires fix of a text-to-image job.

``jobs.hires`` (JSON: final width and height, upscaler, second-pass strength and steps, and the
scale or resize asked for; see ``generation.spec.Hires``) is NULL for every other job, and for
every job stored before. A hires fix job stays ``mode = 'txt2img'``, so no constraint changes.

Downgrade: the column is dropped; a hires fix job then reruns as its first pass alone.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("hires", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "hires")
