"""Migration 0010: a dtype per registered model (``models.dtype``); models registered before
read as None (the config's dtype), and the downgrade keeps them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from storage.db import Database
from storage.repository import Store
from tests.storage.helpers import db_url, downgrade


async def test_model_dtype_is_stored_and_older_models_have_none(db_path: Path) -> None:
    async with Database(db_url(db_path)) as db:
        await Store(db).add_model("old", source="builtin:demo", kind="builtin")
    downgrade(db_path, "0009")
    with sqlite3.connect(db_path) as conn:  # as a database written by Easel before 0010
        assert "dtype" not in {row[1] for row in conn.execute("PRAGMA table_info(models)")}
    async with Database(db_url(db_path)) as db:
        store = Store(db)
        flux = await store.add_model(
            "flux", source="builtin:demo-flux", kind="builtin", dtype="bfloat16"
        )
        old = await store.get_model("old")
    assert flux.dtype == "bfloat16"
    assert old is not None and old.dtype is None
    downgrade(db_path, "0009")
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT count(*) FROM models").fetchone() == (2,)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
