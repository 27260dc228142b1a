"""Alembic environment for Easel's SQLite database.

Easel runs migrations itself (``storage.db.Database.connect``), passing an open connection that is
already inside a ``BEGIN IMMEDIATE`` transaction in ``config.attributes["connection"]``. Running
``alembic`` from the command line also works: give it ``-x url=sqlite:///path/to/easel.db``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=None,
        render_as_batch=True,  # SQLite can only ALTER a few things; batch mode copies tables
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit(
            "give the database: alembic -x url=sqlite:///path/to/easel.db upgrade head"
        )
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("Easel's migrations run online only")
run_migrations_online()
