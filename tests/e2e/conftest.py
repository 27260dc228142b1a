"""Fixtures shared by the backend tests: one demo data dir and one CPU backend per module."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from generation.backend import DiffusersBackend
from generation.backend.demo_model import ensure_demo_model
from generation.demo_info import DEMO_SOURCE
from generation.model_sources import inspect_source
from generation.render import ModelSource


@pytest.fixture(scope="session")
def family_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir holding every tiny built-in family model (SDXL and its refiner, SD3, Flux) as
    saved folders, made once per test run (tests only read it)."""
    from generation.backend.demo_model import save_demo_model
    from generation.family_demos_info import FAMILY_BUILTINS

    data_dir = tmp_path_factory.mktemp("easel-families")
    for source, (folder, _) in FAMILY_BUILTINS.items():
        save_demo_model(data_dir / "models" / folder, source)
    return data_dir


@pytest.fixture(scope="module")
def demo_data_dir(tmp_path_factory: pytest.TempPathFactory, saved_demo_model: Path) -> Path:
    data_dir = tmp_path_factory.mktemp("easel-data")
    shutil.copytree(saved_demo_model, data_dir / "models" / "demo")
    assert ensure_demo_model(data_dir) == data_dir / "models" / "demo"
    return data_dir


@pytest.fixture(scope="module")
def demo_folder(demo_data_dir: Path) -> Path:
    return demo_data_dir / "models" / "demo"


@pytest.fixture(scope="module")
def demo_source() -> ModelSource:
    return inspect_source("demo", DEMO_SOURCE)


@pytest.fixture(scope="module")
def demo_backend(demo_data_dir: Path) -> Iterator[DiffusersBackend]:
    backend = DiffusersBackend(data_dir=demo_data_dir, device="cpu")
    yield backend
    backend.close()
