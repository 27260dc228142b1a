"""``easel db copy --to URL``: a SQLite history moved to a real PostgreSQL server, whole."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.app import EngineLock
from bot.cli import run


def easel(config: Path, *args: str) -> int:
    return run(["--config", str(config), *args])


def as_json(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> Any:
    capsys.readouterr()
    assert easel(config, *args, "--json") == 0
    return json.loads(capsys.readouterr().out)


def test_a_sqlite_history_moves_to_postgresql(
    tmp_path: Path, data_dir: Path, postgres: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    sqlite = tmp_path / "sqlite.toml"
    sqlite.write_text(f'data_dir = "{data_dir}"\n')
    drawn = [
        as_json(capsys, sqlite, "draw", f"a castle {n}", "--seed", str(n), "--steps", "2",
                "--size", "64x64", "--count", "2")
        for n in (1, 2)
    ]  # fmt: skip
    before = as_json(capsys, sqlite, "history")
    url = postgres.create_database()

    # Refused while an engine runs on the SQLite store: it would go on writing behind the copy.
    lock = EngineLock(data_dir)
    lock.acquire()
    try:
        assert easel(sqlite, "db", "copy", "--to", url) != 0
        assert "already running" in capsys.readouterr().err
    finally:
        lock.release()

    assert easel(sqlite, "db", "copy", "--to", url) == 0
    said = capsys.readouterr().out
    assert "copied" in said and "2 jobs" in said and "4 images" in said
    assert "postgresql" in said

    postgresql = tmp_path / "postgresql.toml"
    postgresql.write_text(f'data_dir = "{data_dir}"\n[storage]\ndatabase_url = "{url}"\n')
    assert as_json(capsys, postgresql, "history") == before  # every field, every seed
    for job in drawn:
        shown = as_json(capsys, postgresql, "show", job["id"])
        assert len(shown["image_sha256"]) == 2 and shown["image_seeds"] == [
            job["seed"],
            job["seed"] + 1,
        ]
        assert all(Path(path).is_file() for path in shown["images"])  # the same files
    # The store goes on from there: the same person, the new job the newest in the history.
    new = as_json(capsys, postgresql, "draw", "after the move", "--steps", "2", "--size", "64x64")
    assert new["status"] == "succeeded" and new["user_id"] == drawn[0]["user_id"]
    after = as_json(capsys, postgresql, "history")
    assert [job["id"] for job in after] == [new["id"], *[job["id"] for job in before]]

    # A second copy into the same (no longer empty) database is refused, naming what is there.
    assert easel(sqlite, "db", "copy", "--to", url) == 2
    assert "already holds" in capsys.readouterr().err


def test_a_bad_target_url_is_named(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "easel.toml"
    config.write_text(f'data_dir = "{data_dir}"\n')
    assert easel(config, "db", "copy", "--to", "mysql://somewhere/easel") == 2
    assert "mysql" in capsys.readouterr().err
