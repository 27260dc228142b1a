"""The shape of the code (DESIGN.md §2), checked: the import contracts of pyproject.toml hold,
each of them fails on an import that breaks it, and no front end reaches past the Service into
the engine's parts through the App."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
FRONT_ENDS = (
    "bot/discord",
    "bot/telegram",
    "bot/web",
    "bot/chat",
    "bot/cli.py",
    "bot/cli_addons.py",
)
# What the App holds for the engine; front ends use app.service, app.config, app.delivery only.
ENGINE_PARTS = {"store", "images", "queue", "bus", "db", "worker", "backend"}

CONTRACTS = len(
    tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
)
# (module, an import that breaks a contract, the contract's name as lint-imports reports it)
LAYERS = "bot above cluster above generation"
VIOLATIONS = [
    ("bot/discord/commands.py", "from storage.repository import Store", "Only the engine"),
    ("generation/service.py", "from bot.config import Config", LAYERS),
    ("storage/jobs.py", "from generation.service import Service", LAYERS),
    ("bot/telegram/handlers.py", "from bot.web import keys", "No platform package"),
    ("generation/worker.py", "import torch", "Only generation.backend imports torch"),
    ("cluster/remote.py", "from storage.repository import Store", "easel worker needs no"),
]


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", "--no-cache"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("tree")
    for package in ("bot", "cluster", "generation", "storage"):
        shutil.copytree(
            ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", copy)
    return copy


def test_the_import_contracts_hold(tree: Path) -> None:
    result = lint(tree)
    report = " ".join(result.stdout.split())
    assert result.returncode == 0, report + result.stderr
    assert f"Contracts: {CONTRACTS} kept, 0 broken" in report


@pytest.mark.parametrize(("module", "line", "contract"), VIOLATIONS)
def test_an_import_that_breaks_a_contract_fails_the_check(
    tree: Path, module: str, line: str, contract: str
) -> None:
    path = tree / module
    original = path.read_text()
    path.write_text(f"{original}\n{line}  # noqa\n")
    try:
        result = lint(tree)
    finally:
        path.write_text(original)
    report = " ".join(result.stdout.split())  # lint-imports wraps long names
    assert result.returncode == 1, report
    assert f"Contracts: {CONTRACTS - 1} kept, 1 broken" in report, report
    assert contract in report.split("Broken contracts", 1)[1], report


def _app_like(node: ast.expr) -> bool:
    """``app``, ``self.app``, ``easel.app``, ``app_of(request)``... and the Service itself
    (``service.store``, ``app.service.store``: its parts are not a way round it either)."""
    return re.search(r"(^|\.)(app|service)$|^app_of\(", ast.unparse(node)) is not None


def test_front_ends_use_the_service_not_the_engines_parts() -> None:
    offenders = []
    for place in FRONT_ENDS:
        path = ROOT / place
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        for file in files:
            for node in ast.walk(ast.parse(file.read_text(), str(file))):
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr in ENGINE_PARTS
                    and _app_like(node.value)
                ):
                    offenders.append(f"{file.relative_to(ROOT)}:{node.lineno} {ast.unparse(node)}")
    assert offenders == [], "front ends must go through app.service:\n" + "\n".join(offenders)


def test_each_platform_is_one_package() -> None:
    modules = {p.name for p in (ROOT / "bot").iterdir() if p.suffix == ".py"}
    packages = {p.name for p in (ROOT / "bot").iterdir() if (p / "__init__.py").is_file()}
    assert packages == {"chat", "discord", "telegram", "web"}
    assert not {m for m in modules if m.startswith(("discord", "telegram", "web"))}
