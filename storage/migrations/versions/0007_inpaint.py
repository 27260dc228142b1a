"""Inpaint jobs: mode ``inpaint``, the mask's sha256 and the inpaint options.

* ``jobs.mask_image`` (sha256 of a stored mask, indexed like ``init_image``: an image is served
  to whoever may see a job that used it) and ``jobs.inpaint`` (JSON: mask blur, fill, "only
  masked" and its padding, invert), both NULL for other jobs;
* ``ck_jobs_mode`` also allows ``'inpaint'``. SQLite cannot alter a CHECK constraint, and
  copying ``jobs`` (batch mode) would drop the table that images and platform messages point at
  while foreign keys are on (they are, and cannot be turned off inside the migration's
  transaction). Widening an ``IN`` list leaves every stored row valid, so this rewrites the
  table's definition in place, the way SQLite's ALTER TABLE page describes for constraint
  changes that do not change the file format (``writable_schema``, then a new
  ``schema_version``). PostgreSQL drops and re-adds the constraint.

Downgrade: inpaint jobs become image-to-image jobs of their starting image (their mask and
options are dropped with the columns), then the constraint is narrowed back.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_MODES = ("txt2img", "img2img", "upscale")
NEW_MODES = ("txt2img", "img2img", "upscale", "inpaint")


def _in(values: tuple[str, ...]) -> str:
    return f"mode IN ({', '.join(repr(v) for v in values)})"


def _set_mode_check(old: tuple[str, ...], new: tuple[str, ...]) -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.drop_constraint("ck_jobs_mode", "jobs", type_="check")
        op.create_check_constraint("ck_jobs_mode", "jobs", _in(new))
        return
    row = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'jobs'"
    ).one()
    table_sql = str(row[0])
    if _in(old) not in table_sql:
        raise RuntimeError(f"jobs has an unexpected mode constraint: {table_sql!r}")
    version = int(bind.exec_driver_sql("PRAGMA schema_version").scalar_one())
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    try:
        bind.exec_driver_sql(
            "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'jobs'",
            (table_sql.replace(_in(old), _in(new)),),
        )
        bind.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    finally:
        bind.exec_driver_sql("PRAGMA writable_schema = OFF")


def upgrade() -> None:
    op.add_column("jobs", sa.Column("mask_image", sa.String(64), nullable=True))
    op.add_column("jobs", sa.Column("inpaint", sa.JSON(), nullable=True))
    op.create_index("ix_jobs_mask_image", "jobs", ["mask_image"])
    _set_mode_check(OLD_MODES, NEW_MODES)


def downgrade() -> None:
    op.execute("UPDATE jobs SET mode = 'img2img' WHERE mode = 'inpaint'")
    _set_mode_check(NEW_MODES, OLD_MODES)
    op.drop_index("ix_jobs_mask_image", table_name="jobs")
    op.drop_column("jobs", "inpaint")
    op.drop_column("jobs", "mask_image")
