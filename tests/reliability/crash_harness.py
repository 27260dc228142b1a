"""Drives a real ``easel serve`` process for the crash campaign (see ``test_crash.py``).

* :class:`EaselProcess` starts the ``easel`` console script on a config file, waits for the log
  line that names its port, and is killed with SIGKILL or stopped with SIGTERM. Every wait has
  a deadline, and ``close()`` (called in a ``finally``) kills whatever is still running.
* :class:`ShardWatch` reports files appearing in the image store through Linux inotify, so a
  kill follows the write it waits for within microseconds instead of a polling interval.
* :func:`read_jobs` and :func:`integrity_check` open the SQLite file directly while no server
  runs (read-only, so a crashed server's WAL is inspected exactly as it was left).
* Small HTTP helpers (stdlib only, no proxies) for the JSON API and its event stream.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import select
import signal
import sqlite3
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

REPO_ROOT = Path(__file__).resolve().parents[2]
_URL = re.compile(r"Easel web page: (http://127\.0\.0\.1:\d+)")
_READY = "Easel engine running"
# Bot token variables (defaults of discord/telegram.token_env): unset, so only the web runs.
_UNSET = ("EASEL_CONFIG", "EASEL_DISCORD_TOKEN", "EASEL_TELEGRAM_TOKEN")
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class HarnessError(AssertionError):
    """The server did not do what the campaign needs (start, answer, stop) in time."""


def easel_command() -> list[str]:
    script = Path(sys.executable).with_name("easel")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from bot.cli import main; main()"]


class EaselProcess:
    """One ``easel --config CONFIG serve`` process whose output goes to ``log_path``."""

    def __init__(self, config: Path, log_path: Path) -> None:
        self.config = config
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float) -> float:
        """Start and wait until the engine and web server run; returns the seconds it took."""
        env = {k: v for k, v in os.environ.items() if k not in _UNSET}
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")
        self._log = self.log_path.open("wb")
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [*easel_command(), "--config", str(self.config), "serve"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO_ROOT,
        )
        deadline = started + timeout
        while True:
            text = self.log_text()
            found = _URL.search(text)
            if found and _READY in text:
                self.url = found.group(1)
                return time.monotonic() - started
            if self.proc.poll() is not None:
                raise HarnessError(
                    f"easel serve exited with {self.proc.returncode} while starting:\n"
                    + text[-3000:]
                )
            if time.monotonic() > deadline:
                raise HarnessError(
                    f"easel serve did not start within {timeout:.0f} s:\n{text[-3000:]}"
                )
            time.sleep(0.05)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def kill(self) -> None:
        """SIGKILL: no handler, no clean-up, no flushing."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._close_log()

    def stop(self, timeout: float) -> int:
        """SIGTERM (a clean stop) and wait; returns the exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.close()
            raise HarnessError(f"easel serve did not stop within {timeout:.0f} s") from None
        self._close_log()
        return code

    def close(self) -> None:
        """Kill the process if it still runs (the ``finally`` of every test)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


# ---------------------------------------------------------------------- HTTP


def call(method: str, url: str, body: Any = None, timeout: float = 10.0) -> tuple[int, Any]:
    """One JSON request; returns ``(status, decoded body)``. Connection errors propagate."""
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        with error:
            raw = error.read()
        try:
            return error.code, json.loads(raw or b"null")
        except ValueError:
            return error.code, raw.decode("utf-8", "replace")


def fetch(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


class EventStream:
    """``GET /api/events`` (every job's events). Subscribed once the constructor returns."""

    def __init__(self, base_url: str, timeout: float) -> None:
        self._response = _OPENER.open(f"{base_url}/api/events", timeout=timeout)

    def events(self) -> Iterator[tuple[str, dict[str, Any]]]:
        name = ""
        for raw in self._response:
            line = raw.decode("utf-8").rstrip("\r\n")
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                yield name, json.loads(line[len("data: ") :])

    def close(self) -> None:
        self._response.close()


# ---------------------------------------------------------------------- image store watch

_IN_MOVED_TO = 0x00000080
_IN_CREATE = 0x00000100
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name


class ShardWatch:
    """Reports files created in, or renamed into, the image store's 256 shard folders.

    ``ImageStore.save`` writes ``ab/.tmp-*.png``, fsyncs it and renames it to ``ab/<sha>.png``;
    the folders are made here up front (the store makes them on demand) so each has a watch
    before the server writes into it.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        libc = ctypes.CDLL(None, use_errno=True)
        self._fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self._folders: dict[int, Path] = {}
        try:
            for shard in range(256):
                folder = root / f"{shard:02x}"
                folder.mkdir(parents=True, exist_ok=True)
                wd = libc.inotify_add_watch(
                    self._fd, os.fsencode(folder), _IN_CREATE | _IN_MOVED_TO
                )
                if wd < 0:
                    raise OSError(ctypes.get_errno(), f"inotify_add_watch({folder}) failed")
                self._folders[wd] = folder
        except BaseException:
            os.close(self._fd)
            raise

    def wait_for(self, wanted: Callable[[str], bool], timeout: float) -> Path | None:
        """The first new file whose name ``wanted`` accepts, or None after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self._fd], [], [], remaining)
            if not ready:
                continue
            data = os.read(self._fd, 65536)
            offset = 0
            while offset < len(data):
                wd, _mask, _cookie, length = _EVENT.unpack_from(data, offset)
                start = offset + _EVENT.size
                name = os.fsdecode(data[start : start + length].rstrip(b"\0"))
                offset = start + length
                if name and wanted(name):
                    return self._folders[wd] / name
        return None

    def close(self) -> None:
        os.close(self._fd)


def temp_files(root: Path) -> list[Path]:
    """What ``ImageStore.save`` leaves behind when killed mid-write."""
    return sorted(root.glob("??/.tmp-*"))


# ---------------------------------------------------------------------- the database file


@dataclass(frozen=True)
class StoredJob:
    id: str
    status: str
    attempt: int
    error: str | None
    delivered_at: str | None
    delivery_attempts: int
    images: tuple[str, ...]  # sha256 of each image, in index order


def _read_only(db_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)


def read_jobs(db_path: Path) -> dict[str, StoredJob]:
    """Every job in the file, as the last committed transaction left it."""
    connection = _read_only(db_path)
    try:
        images: dict[str, list[str]] = {}
        for job_id, sha in connection.execute(
            'SELECT job_id, sha256 FROM images ORDER BY job_id, "index"'
        ):
            images.setdefault(job_id, []).append(sha)
        rows = connection.execute(
            "SELECT id, status, attempt, error, delivered_at, delivery_attempts FROM jobs"
        ).fetchall()
    finally:
        connection.close()
    return {
        row[0]: StoredJob(
            id=row[0],
            status=row[1],
            attempt=row[2],
            error=row[3],
            delivered_at=row[4],
            delivery_attempts=row[5],
            images=tuple(images.get(row[0], ())),
        )
        for row in rows
    }


def integrity_check(db_path: Path, *, read_only: bool = True) -> str:
    """``PRAGMA integrity_check``: "ok", or the problems it found."""
    connection = _read_only(db_path) if read_only else sqlite3.connect(db_path, timeout=10)
    try:
        rows = connection.execute("PRAGMA integrity_check").fetchall()
    finally:
        connection.close()
    return "; ".join(str(row[0]) for row in rows)
