"""Copy a whole store into another database: moving a SQLite history to PostgreSQL.

    counts = await copy_database(Database(sqlite_url), Database(postgresql_url))

The target is migrated first and must hold no users and no jobs (it refuses otherwise, naming
what it found). Every row keeps its id, its job ids, sequence numbers and timestamps; tables are
copied parents first (users, scopes, models, jobs in ``seq`` order, images, chat messages), in
chunks, each chunk one transaction. PostgreSQL's id sequences are then moved past the copied
ids. The images stay where they are: they are files in the engine's data directory.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, delete, func, select, text

from generation.errors import InvalidRequest
from storage.db import Database
from storage.models import (
    AddOnRow,
    ClientOptionRow,
    ImageRow,
    JobRow,
    ModelRow,
    PlatformMessageRow,
    ScopeRow,
    UserRow,
)

CHUNK = 1000
# Parents before children; each with the column that orders it.
_TABLES: tuple[tuple[Any, str], ...] = (
    (UserRow, "id"),
    (ScopeRow, "id"),
    (ModelRow, "name"),
    (AddOnRow, "name"),
    (JobRow, "seq"),
    (ImageRow, "id"),
    (PlatformMessageRow, "id"),
    (ClientOptionRow, "scope_id"),
)
# PostgreSQL sequences behind integer ids (and the jobs' seq), moved past the copied rows.
_SEQUENCES = (
    ("users", "id"),
    ("scopes", "id"),
    ("images", "id"),
    ("platform_messages", "id"),
)


async def copy_database(source: Database, target: Database) -> dict[str, int]:
    """Rows copied per table."""
    await source.connect()
    await target.connect()
    async with target.read() as session:
        users = (await session.execute(select(func.count()).select_from(UserRow))).scalar_one()
        jobs = (await session.execute(select(func.count()).select_from(JobRow))).scalar_one()
    if users or jobs:
        raise InvalidRequest(
            f"The target database already holds {users} user(s) and {jobs} job(s); "
            "copy into an empty database."
        )
    counts: dict[str, int] = {}
    async with target.write() as session:  # a fresh engine may have added the demo model
        await session.execute(delete(cast(Table, ModelRow.__table__)))
    for row_class, order in _TABLES:
        table = cast(Table, row_class.__table__)
        counts[table.name] = await _copy_table(source, target, table, order)
    if not target.is_sqlite:
        async with target.write() as session:
            for table_name, column in _SEQUENCES:
                await session.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table_name}', '{column}'), "
                        f"COALESCE((SELECT max({column}) FROM {table_name}), 0) + 1, false)"
                    )
                )
            await session.execute(
                text(
                    "SELECT setval('jobs_seq_seq', "
                    "COALESCE((SELECT max(seq) FROM jobs), 0) + 1, false)"
                )
            )
    return counts


async def _copy_table(source: Database, target: Database, table: Table, order: str) -> int:
    copied = 0
    column = table.c[order]
    last: Any = None
    while True:
        statement = select(table).order_by(column).limit(CHUNK)
        if last is not None:
            statement = statement.where(column > last)
        async with source.read() as session:
            rows = [dict(row._mapping) for row in (await session.execute(statement)).all()]
        if not rows:
            return copied
        async with target.write() as session:
            await session.execute(table.insert(), rows)
        copied += len(rows)
        last = rows[-1][order]
