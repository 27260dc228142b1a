"""A dtype per registered model: ``models.dtype``.

``models.dtype`` ('float16', 'bfloat16' or 'float32', from ``easel models add --dtype``) is the
precision the model is loaded in on a GPU; NULL (every model registered before) = the config's
``generation.dtype``, as before.

Downgrade: the column is dropped; every model then loads in the config's dtype.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("models", sa.Column("dtype", sa.String(16), nullable=True))


def downgrade() -> None:
    op.drop_column("models", "dtype")
