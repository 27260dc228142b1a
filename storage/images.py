"""Content-addressed image files: ``root/ab/abcdef....png``, named by the sha256 of the bytes.

File names are always derived from a validated hex digest, never from user text. Writes are
atomic (temporary file in the same folder, fsync, ``os.replace``), so a crash leaves either the
whole file or none; saving the same bytes twice is a no-op.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path

from generation.errors import InvalidRequest, NotFound

_SHA256 = re.compile(r"[0-9a-f]{64}")
_TEMP_PREFIX = ".tmp-"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ImageStore:
    """PNG files under ``root``. Methods are blocking; call them via ``asyncio.to_thread``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, sha: str) -> Path:
        """Where the image with this sha256 lives (whether or not it exists)."""
        digest = _checked(sha)
        return self.root / digest[:2] / f"{digest}.png"

    def exists(self, sha: str) -> bool:
        return self.path_for(sha).is_file()

    def save(self, data: bytes) -> tuple[str, Path]:
        """Store ``data`` (PNG bytes) and return ``(sha256, path)``. Idempotent."""
        digest = sha256_hex(data)
        path = self.path_for(digest)
        if path.is_file() and path.stat().st_size == len(data):
            return digest, path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=".png", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp_name, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
            raise
        _fsync_dir(path.parent)
        return digest, path

    def read(self, sha: str) -> bytes:
        path = self.path_for(sha)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no stored image {sha.strip().lower()}") from None

    def remove_temp_files(self) -> int:
        """Delete temporary files a crash left behind mid-save; returns how many."""
        removed = 0
        if not self.root.is_dir():
            return 0
        for temp in self.root.glob(f"??/{_TEMP_PREFIX}*"):
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
                removed += 1
        return removed


def _checked(sha: str) -> str:
    digest = sha.strip().lower() if isinstance(sha, str) else ""
    if not _SHA256.fullmatch(digest):
        raise InvalidRequest(f"{sha!r} is not an image hash (64 hexadecimal characters)")
    return digest


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
