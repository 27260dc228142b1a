"""SDXL refiner jobs: ``jobs.refiner``, the refiner stage of a text-to-image job.

``jobs.refiner`` (JSON: the refiner model's name, the fraction of the noise schedule after which
it takes over, and its revision when the job was admitted; see ``generation.spec.Refiner``) is
NULL for every other job, and for every job stored before. A refined job stays
``mode = 'txt2img'``, so no constraint changes.

Downgrade: the column is dropped; a refined job then reruns as its base model alone.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("refiner", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "refiner")
