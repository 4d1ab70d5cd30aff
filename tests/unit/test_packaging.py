"""The wheel carries the shipped defaults, and an installed copy reads them from itself.

config/default.yaml and config/models.yaml stay at the repository root; pyproject.toml ships them
as package data of ``core.defaults`` (core/defaults is a link to ../config), and core/config.py
reads them through importlib.resources.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("default.yaml", "models.yaml")
# What the wheel build does not need (and what would make copying the checkout slow).
NOT_NEEDED = (".git", ".venv", "node_modules", "data", "tests", "docs", "build", "test-artifacts", "bench-results",
              "*.egg-info", "__pycache__", ".pytest_cache")  # fmt: skip


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel . --no-deps`` of a copy of the checkout (the build leaves build/ behind)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(*NOT_NEEDED))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-q", "-w", str(work / "dist")],
                           cwd=source, capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    (found,) = (work / "dist").glob("*.whl")
    return found


def test_the_wheel_holds_the_shipped_yaml(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        for name in SHIPPED:
            assert archive.read(f"core/defaults/{name}") == (ROOT / "config" / name).read_bytes()


def test_an_installed_wheel_loads_its_own_defaults(wheel: Path, tmp_path: Path) -> None:
    installed = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(installed)
    script = (
        "import core.config, core.codex.catalog as catalog, codex_fake.catalog as fake\n"
        "from core.config import ConfigStore, shipped_yaml\n"
        f"assert core.config.__file__.startswith({str(installed)!r}), core.config.__file__\n"
        f"assert shipped_yaml('default.yaml')[1].startswith({str(installed)!r})\n"
        f"cfg = ConfigStore(__import__('pathlib').Path({str(tmp_path / 'data')!r}), environ={{}}).current\n"
        "assert cfg.server.port == 8080\n"
        "assert catalog.ModelCatalog.from_config(cfg).get('gpt-5.4') is not None\n"
        "assert fake.catalog().get('gpt-5.4') is not None\n"
    )
    env = {**os.environ, "PYTHONPATH": str(installed)}
    ran = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert ran.returncode == 0, ran.stdout + ran.stderr
