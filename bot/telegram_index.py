"""Which Telegram message shows which job: for reactions and for status messages after a restart.

A reaction update names only the chat and the message, and the Bot API cannot fetch a message,
so the bot remembers (chat, message) -> (job id, image index) for every result it sends, and
job id -> its status message. The map lives in a small SQLite file next to the job store
(``<data_dir>/telegram.db``); losing it only disables reactions on older results.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

KEEP_ROWS = 50_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS result_messages (
    chat_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    job_id TEXT NOT NULL,
    image_index INTEGER NOT NULL,
    PRIMARY KEY (chat_id, message_id)
);
CREATE TABLE IF NOT EXISTS status_messages (
    job_id TEXT PRIMARY KEY,
    chat_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL
);
"""


class MessageIndex:
    """Blocking methods: call them through ``asyncio.to_thread`` from the event loop."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._writes = 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def remember_result(self, chat_id: int, job_id: str, messages: list[tuple[int, int]]) -> None:
        """``messages`` holds (message id, image index) pairs of one result."""
        rows = [(chat_id, message_id, job_id, index) for message_id, index in messages]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT OR REPLACE INTO result_messages VALUES (?, ?, ?, ?)", rows)
            self._db.execute("COMMIT")
            self._writes += 1
            if self._writes % 500 == 0:
                self._prune()

    def lookup(self, chat_id: int, message_id: int) -> tuple[str, int] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT job_id, image_index FROM result_messages "
                "WHERE chat_id = ? AND message_id = ?",
                (chat_id, message_id),
            ).fetchone()
        return (str(row[0]), int(row[1])) if row else None

    def remember_status(self, job_id: str, chat_id: int, message_id: int) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO status_messages VALUES (?, ?, ?)",
                (job_id, chat_id, message_id),
            )

    def status_of(self, job_id: str) -> tuple[int, int] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT chat_id, message_id FROM status_messages WHERE job_id = ?", (job_id,)
            ).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def forget_status(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM status_messages WHERE job_id = ?", (job_id,))

    def _prune(self) -> None:
        for table in ("result_messages", "status_messages"):
            self._db.execute(
                f"DELETE FROM {table} WHERE rowid <= (SELECT MAX(rowid) FROM {table}) - ?",
                (KEEP_ROWS,),
            )
