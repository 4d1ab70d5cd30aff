"""What every real-CLI test needs: the pinned CLI installed, and a throwaway home with a work folder."""

from __future__ import annotations

from pathlib import Path

import pytest


def cli_home(tmp_path: Path, binary: Path, name: str) -> Path:
    """``tmp_path`` as the CLI's ``HOME`` (its own settings kept out) with an empty ``work`` folder to
    run it in; fails when ``make test`` did not install the CLI (npm ci in its folder)."""
    if not binary.exists():
        pytest.fail(f"{name} is not installed: run `make test` (npm ci --prefix {binary.parents[2].relative_to(binary.parents[5])})")
    (tmp_path / "work").mkdir()
    return tmp_path
