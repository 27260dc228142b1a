"""One person per HTTP credential; find the jobs that started from an image.

Easel's two HTTP APIs used to record a credential as two users: ("web", name) for the page and
``/api``, ("api", name) for the A1111 API, so the same person could not see their A1111 jobs on
the page, and had two rate limits. A credential is now one person on both (the A1111 API names
the web's users). This moves every job of an ("api", name) user to ("web", name), creating that
user where it did not exist, and removes the "api" users. Scopes are untouched: the A1111 API
keeps its own scope and settings.

``ix_jobs_init_image`` lets an image be served only to whoever may see a job that used it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    bind = op.get_bind()
    api_users = bind.execute(
        sa.text("SELECT id, platform_user_id FROM users WHERE platform = 'api'")
    ).all()
    for api_id, name in api_users:
        web_id = bind.execute(
            sa.text("SELECT id FROM users WHERE platform = 'web' AND platform_user_id = :name"),
            {"name": name},
        ).scalar()
        if web_id is None:  # the person only ever used the A1111 API: rename the user
            bind.execute(
                sa.text("UPDATE users SET platform = 'web' WHERE id = :id"), {"id": api_id}
            )
            continue
        bind.execute(
            sa.text("UPDATE jobs SET user_id = :web WHERE user_id = :api"),
            {"web": web_id, "api": api_id},
        )
        bind.execute(sa.text("DELETE FROM users WHERE id = :id"), {"id": api_id})
    op.create_index("ix_jobs_init_image", "jobs", ["init_image"], if_not_exists=True)


def downgrade() -> None:
    """The index goes; the users stay merged (which API a job came from is its platform)."""
    op.drop_index("ix_jobs_init_image", table_name="jobs")
