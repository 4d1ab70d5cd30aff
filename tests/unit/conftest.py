"""Fixtures the translator unit tests share: the shipped config and model catalog, no data folder."""

from __future__ import annotations

from typing import Any

import pytest

from core.codex.catalog import ModelCatalog
from core.config import ConfigStore


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return ConfigStore(tmp_path_factory.mktemp("data"), environ={}).current


@pytest.fixture(scope="module")
def catalog(cfg: Any) -> ModelCatalog:
    return ModelCatalog.from_config(cfg)
