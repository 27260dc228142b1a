"""The content-addressed image store."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from generation.errors import InvalidRequest, NotFound
from storage.images import ImageStore

PNG = b"\x89PNG\r\n\x1a\n" + b"not really an image, but bytes are bytes"


def test_save_is_content_addressed_and_idempotent(tmp_path: Path) -> None:
    images = ImageStore(tmp_path / "images")
    sha, path = images.save(PNG)
    assert sha == hashlib.sha256(PNG).hexdigest()
    assert path == tmp_path / "images" / sha[:2] / f"{sha}.png"
    assert path.read_bytes() == PNG
    assert images.path_for(sha) == path
    assert images.exists(sha) and images.read(sha) == PNG
    assert images.save(PNG) == (sha, path)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp files left
    other, other_path = images.save(PNG + b"!")
    assert other != sha and other_path != path


def test_upper_case_sha_is_accepted(tmp_path: Path) -> None:
    images = ImageStore(tmp_path)
    sha, path = images.save(PNG)
    assert images.path_for(sha.upper()) == path
    assert images.read(sha.upper()) == PNG


def test_truncated_file_is_rewritten(tmp_path: Path) -> None:
    images = ImageStore(tmp_path)
    sha, path = images.save(PNG)
    path.write_bytes(PNG[:5])
    images.save(PNG)
    assert images.read(sha) == PNG


def test_missing_image(tmp_path: Path) -> None:
    images = ImageStore(tmp_path)
    sha = "0" * 64
    assert not images.exists(sha)
    with pytest.raises(NotFound, match=sha):
        images.read(sha)


@pytest.mark.parametrize(
    "bad",
    ["", "abc", "../" + "a" * 61, "g" * 64, "a" * 63, "a" * 65, "a" * 62 + "/x", "a" * 63 + "\x00"],
)
def test_bad_sha_is_refused_before_touching_the_disk(tmp_path: Path, bad: str) -> None:
    images = ImageStore(tmp_path)
    with pytest.raises(InvalidRequest, match="not an image hash"):
        images.path_for(bad)
    with pytest.raises(InvalidRequest):
        images.read(bad)
    with pytest.raises(InvalidRequest):
        images.exists(bad)


def test_leftover_temp_files_are_cleaned(tmp_path: Path) -> None:
    images = ImageStore(tmp_path)
    _, path = images.save(PNG)
    (path.parent / ".tmp-abandoned.png").write_bytes(b"half")
    assert images.remove_temp_files() == 1
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    assert ImageStore(tmp_path / "missing").remove_temp_files() == 0
