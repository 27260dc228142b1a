"""Database set-up: migrations, pragmas, BEGIN IMMEDIATE for writes."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, text

from generation.spec import AddOn, Hires, Mode
from storage.db import Database
from storage.models import Base
from storage.repository import Store
from tests.storage.helpers import db_url, downgrade, new_job

TABLES = {
    "alembic_version",
    "users",
    "scopes",
    "models",
    "jobs",
    "images",
    "platform_messages",
    "client_options",
}


async def test_connect_creates_folder_tables_and_wal(db_path: Path) -> None:
    assert not db_path.parent.exists()
    db = Database(db_url(db_path))
    await db.connect()
    try:
        assert db_path.is_file()
        async with db.read() as session:
            names = {
                row[0]
                for row in await session.execute(
                    text("SELECT name FROM sqlite_master WHERE type = 'table'")
                )
            }
            assert names >= TABLES
            assert (await session.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await session.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            assert (await session.execute(text("PRAGMA busy_timeout"))).scalar() == 10_000
            assert (await session.execute(text("PRAGMA synchronous"))).scalar() == 1  # NORMAL
            assert (await session.execute(text("PRAGMA integrity_check"))).scalar() == "ok"
            version = await session.execute(text("SELECT version_num FROM alembic_version"))
            assert version.scalar() == "0011"
    finally:
        await db.close()


async def test_connecting_twice_is_idempotent(db_path: Path) -> None:
    for _ in range(2):
        db = Database(db_url(db_path))
        await db.connect()
        await db.connect()  # a second call on a connected Database does nothing
        await db.close()
    # Two engines migrating the same fresh file at once: one waits, then finds nothing to do.
    other = db_path.with_name("other.db")
    first, second = Database(db_url(other)), Database(db_url(other))
    await asyncio.gather(first.connect(), second.connect())
    await first.close()
    await second.close()
    with sqlite3.connect(other) as conn:
        assert conn.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


async def test_upgrade_removes_interaction_tokens_older_versions_stored(db_path: Path) -> None:
    async with Database(db_url(db_path)) as db:
        store = Store(db)
        new = await new_job(store)
        target = {"channel_id": 7, "application_id": 9, "interaction_token": "aW50ZXJhY3Rpb24"}
        job = await store.add_job(replace(new, reply_target=target))
    downgrade(db_path, "0006")
    with sqlite3.connect(db_path) as conn:  # as a database written by Easel before 0003
        conn.execute("DROP TABLE client_options")  # (0006)
        conn.execute("UPDATE alembic_version SET version_num = '0002'")
    async with Database(db_url(db_path)) as db:
        upgraded = await Store(db).get_job(job.id)
    assert upgraded is not None
    assert upgraded.reply_target == {"channel_id": 7, "application_id": 9}
    with sqlite3.connect(db_path) as conn:  # move the WAL into the file: no old copy anywhere
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert b"aW50ZXJhY3Rpb24" not in db_path.read_bytes()


async def test_upgrade_makes_one_person_of_a_credential_on_both_http_apis(db_path: Path) -> None:
    """0004: ("api", name) users become ("web", name): their jobs move over, nothing is lost."""
    async with Database(db_url(db_path)) as db:
        store = Store(db)
        web_alice = await store.get_or_create_user("web", "alice")
        api_alice = await store.get_or_create_user("api", "alice")
        api_bob = await store.get_or_create_user("api", "bob")  # never used the page
        scope = await store.get_or_create_scope("api", "api")
        template = await new_job(store)
        jobs = {}
        for user in (web_alice, api_alice, api_bob):
            new = replace(template, user_id=user.id, scope_id=scope.id, platform="api")
            jobs[user.id] = (await store.add_job(new)).id
    downgrade(db_path, "0006")
    with sqlite3.connect(db_path) as conn:  # as a database written by Easel before 0004
        conn.execute("DROP TABLE client_options")  # (0006)
        conn.execute("UPDATE alembic_version SET version_num = '0003'")
    async with Database(db_url(db_path)) as db:
        store = Store(db)
        alice = await store.find_user("web", "alice")
        bob = await store.find_user("web", "bob")
        assert await store.find_user("api", "alice") is None
        assert await store.find_user("api", "bob") is None
        assert alice is not None and alice.id == web_alice.id
        assert bob is not None and bob.id == api_bob.id  # renamed, not recreated
        mine = {job.id for job in await store.list_jobs(user_id=alice.id)}
        assert mine == {jobs[web_alice.id], jobs[api_alice.id]}
        assert [job.id for job in await store.list_jobs(user_id=bob.id)] == [jobs[api_bob.id]]


async def test_migration_matches_models(database_url: str) -> None:
    """The hand-written migrations and the ORM models describe the same schema, on both."""

    def compare(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        return list(compare_metadata(context, Base.metadata))

    async with Database(database_url) as db, db.engine.connect() as connection:
        diff = await connection.run_sync(compare)
    assert diff == []


async def test_writes_begin_immediate_reads_deferred(sqlite_db: Database) -> None:
    db = sqlite_db
    statements: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    from sqlalchemy import event

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        async with db.write() as session:
            await session.execute(text("SELECT 1"))
        async with db.read() as session:
            await session.execute(text("SELECT 2"))
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)
    assert statements == ["BEGIN IMMEDIATE", "SELECT 1", "BEGIN", "SELECT 2"]


async def test_write_rolls_back_on_error(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.write() as session:
            await session.execute(
                text(
                    "INSERT INTO users (platform, platform_user_id, display_name, created_at) "
                    "VALUES ('cli', 'x', '', '2025-01-01 00:00:00')"
                )
            )
            raise RuntimeError("boom")
    async with db.read() as session:
        assert (await session.execute(text("SELECT count(*) FROM users"))).scalar() == 0


_ADD_USER = text(
    "INSERT INTO users (platform, platform_user_id, display_name, created_at) "
    "VALUES ('cli', :name, '', '2025-01-01 00:00:00')"
)


async def test_write_sync_commits_what_returns_and_rolls_back_what_raises(db: Database) -> None:
    def add_two(connection: Connection) -> int:
        connection.execute(_ADD_USER, {"name": "a"})
        connection.execute(_ADD_USER, {"name": "b"})
        return 2

    def add_then_fail(connection: Connection) -> None:
        connection.execute(_ADD_USER, {"name": "c"})
        raise RuntimeError("boom")

    assert await db.write_sync(add_two) == 2
    with pytest.raises(RuntimeError, match="boom"):
        await db.write_sync(add_then_fail)
    async with db.read() as session:  # the async side sees the committed rows, not "c"
        names = (await session.execute(text("SELECT platform_user_id FROM users"))).scalars()
        assert sorted(names) == ["a", "b"]
    with pytest.raises(RuntimeError, match="inside write"):
        async with db.write():
            await db.write_sync(add_two)


async def test_write_sync_on_sqlite_begins_immediate_and_queues_behind_this_process_writers(
    sqlite_db: Database,
) -> None:
    db = sqlite_db
    order: list[str] = []
    entered = asyncio.Event()

    async def long_write() -> None:
        async with db.write() as session:
            await session.execute(_ADD_USER, {"name": "first"})
            entered.set()
            await asyncio.sleep(0.2)  # write_sync must wait, not meet "database is locked"
            order.append("async write committed")

    def hot_write(connection: Connection) -> str:
        connection.execute(_ADD_USER, {"name": "second"})
        order.append("write_sync ran")
        return str(connection.exec_driver_sql("PRAGMA journal_mode").scalar())

    async def after() -> str:
        await entered.wait()
        return await db.write_sync(hot_write)

    _, mode = await asyncio.gather(long_write(), after())
    assert order == ["async write committed", "write_sync ran"] and mode == "wal"


async def test_read_sync_sees_committed_writes_and_changes_nothing(db: Database) -> None:
    await db.write_sync(lambda connection: connection.execute(_ADD_USER, {"name": "a"}))

    def count_then_try_to_write(connection: Connection) -> int:
        count = int(connection.execute(text("SELECT count(*) FROM users")).scalar_one())
        connection.execute(_ADD_USER, {"name": "not kept"})  # a read transaction rolls back
        return count

    assert await db.read_sync(count_then_try_to_write) == 1
    async with db.read() as session:
        assert (await session.execute(text("SELECT count(*) FROM users"))).scalar() == 1


async def test_warm_up_leaves_no_trace(store: Store) -> None:
    await store.warm_up()
    assert await store.list_jobs(limit=10) == []
    assert await store.find_user("easel", "warm-up") is None
    assert await store.find_scope("easel", "warm-up") is None
    user = await store.get_or_create_user("cli", "alice")  # and writing works as before
    assert user.platform_user_id == "alice"


async def test_write_waits_for_another_writer_instead_of_failing(db_path: Path) -> None:
    """A second engine's write waits for the lock (busy_timeout) rather than erroring at once."""
    a, b = Database(db_url(db_path)), Database(db_url(db_path))
    await a.connect()
    await b.connect()
    try:
        entered = asyncio.Event()

        async def hold_lock() -> None:
            async with a.write() as session:
                await session.execute(text("UPDATE users SET display_name = 'x'"))
                entered.set()
                await asyncio.sleep(0.3)

        async def write_after() -> None:
            await entered.wait()
            async with b.write() as session:
                await session.execute(
                    text(
                        "INSERT INTO users (platform, platform_user_id, display_name, created_at)"
                        " VALUES ('cli', 'y', '', '2025-01-01 00:00:00')"
                    )
                )

        await asyncio.gather(hold_lock(), write_after())
        async with a.read() as session:
            assert (await session.execute(text("SELECT count(*) FROM users"))).scalar() == 1
    finally:
        await a.close()
        await b.close()


def test_accepts_sqlite_and_postgresql_only() -> None:
    with pytest.raises(ValueError, match="SQLite or PostgreSQL"):
        Database("mysql+aiomysql://localhost/easel")
    assert Database("postgresql://u@h/db").url == "postgresql+asyncpg://u@h/db"
    assert Database("sqlite:///x.db").url == "sqlite+aiosqlite:///x.db"
    assert "secret" not in Database("postgresql://u:secret@h/db").describe()


async def test_unconnected_database_says_so(db_path: Path) -> None:
    db = Database(db_url(db_path))
    with pytest.raises(RuntimeError, match="connect"):
        async with db.read():
            pass


async def test_nested_write_is_refused_not_deadlocked(db: Database) -> None:
    with pytest.raises(RuntimeError, match="inside write"):
        async with db.write(), db.write():
            pass
    async with db.write() as session:  # the lock was released
        await session.execute(text("SELECT 1"))


async def test_upgrade_to_0007_stores_inpaint_jobs_and_downgrade_keeps_them_as_img2img(
    db_path: Path,
) -> None:
    """0007: ``mode = 'inpaint'`` is allowed, with the mask's sha and the options; jobs made
    before keep theirs (NULL); the downgrade turns inpaint jobs into image-to-image ones."""
    async with Database(db_url(db_path)) as db:
        old = await Store(db).add_job(await new_job(Store(db)))
    downgrade(db_path, "0006")
    with sqlite3.connect(db_path) as conn:  # as a database written by Easel before 0007
        columns = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
        assert not {"mask_image", "inpaint"} & columns
        with pytest.raises(sqlite3.IntegrityError, match="ck_jobs_mode"):
            conn.execute("UPDATE jobs SET mode = 'inpaint'")
    async with Database(db_url(db_path)) as db:
        store = Store(db)
        template = await new_job(store)
        spec = replace(
            template.spec,
            mode=Mode.INPAINT,
            init_image="a" * 64,
            mask_image="b" * 64,
            strength=0.8,
            mask_blur=8,
            inpainting_fill=2,
            inpaint_full_res=True,
            inpaint_full_res_padding=16,
            mask_invert=True,
        )
        added = await store.add_job(replace(template, spec=spec))
        stored = await store.get_job(added.id)
        before = await store.get_job(old.id)
    assert stored is not None and stored.spec == spec
    assert stored.inpaint == spec.inpaint_options()
    assert before is not None and before.mask_image is None and before.inpaint is None
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    downgrade(db_path, "0006")
    with sqlite3.connect(db_path) as conn:
        row = conn.execute("SELECT mode, init_image FROM jobs WHERE id = ?", (added.id,))
        assert row.fetchone() == ("img2img", "a" * 64)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    async with Database(db_url(db_path)) as db:  # and up again
        again = await Store(db).get_job(added.id)
    assert again is not None and again.mode is Mode.IMG2IMG and again.mask_image is None


async def test_upgrade_to_0008_stores_the_hires_fix_and_downgrade_drops_it(
    db_path: Path,
) -> None:
    """0008: a text-to-image job keeps its hires fix (the rerun is the same job); jobs made
    before have none; the downgrade drops the column and keeps the jobs."""
    async with Database(db_url(db_path)) as db:
        old = await Store(db).add_job(await new_job(Store(db)))
    downgrade(db_path, "0007")
    with sqlite3.connect(db_path) as conn:  # as a database written by Easel before 0008
        assert "hires" not in {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
    async with Database(db_url(db_path)) as db:
        store = Store(db)
        template = await new_job(store)
        hires = Hires(width=1024, height=1536, upscaler="Latent", strength=0.55, steps=12)
        added = await store.add_job(replace(template, spec=replace(template.spec, hires=hires)))
        stored = await store.get_job(added.id)
        before = await store.get_job(old.id)
    assert (
        stored is not None
        and stored.spec.hires == hires
        and stored.spec.output_size
        == (
            1024,
            1536,
        )
    )
    assert before is not None and before.hires is None and before.spec.hires is None
    downgrade(db_path, "0007")
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT mode FROM jobs WHERE id = ?", (added.id,)).fetchone() == (
            "txt2img",
        )
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


async def test_upgrade_to_0009_stores_addons_and_prompt_syntax_and_old_jobs_stay_plain(
    db_path: Path,
) -> None:
    """0009: a job keeps the LoRA and embeddings it used and how its prompt was read; a job
    stored before reads as "plain" with none (its rerun is what it was); the downgrade drops
    the columns and the add-on table and keeps the jobs."""
    async with Database(db_url(db_path)) as db:
        old = await Store(db).add_job(await new_job(Store(db)))
    downgrade(db_path, "0008")
    with sqlite3.connect(db_path) as conn:  # as a database written by Easel before 0009
        columns = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
        assert not columns & {"loras", "embeddings", "prompt_syntax"}
    async with Database(db_url(db_path)) as db:
        store = Store(db)
        template = await new_job(store)
        lora = AddOn("pixelart", "a" * 64, 0.8)
        spec = replace(
            template.spec,
            loras=(lora, AddOn("ink", "b" * 64, 0.5)),
            embeddings=(AddOn("easynegative", "c" * 64),),
            prompt_syntax="a1111",
        )
        added = await store.add_job(replace(template, spec=spec))
        stored = await store.get_job(added.id)
        before = await store.get_job(old.id)
    assert stored is not None and stored.spec == added.spec
    assert stored.spec.loras[0] == lora and stored.spec.prompt_syntax == "a1111"
    assert before is not None and before.spec.prompt_syntax == "plain"
    assert before.spec.loras == () and before.spec.embeddings == ()
    with sqlite3.connect(db_path) as conn:  # "plain" and "none" are NULL, as before 0009
        row = conn.execute(
            "SELECT loras, embeddings, prompt_syntax FROM jobs WHERE id = ?", (old.id,)
        ).fetchone()
        assert row == (None, None, None)
    downgrade(db_path, "0008")
    with sqlite3.connect(db_path) as conn:
        assert "addons" not in {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
