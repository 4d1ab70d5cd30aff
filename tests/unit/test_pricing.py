"""The pricing table: shipped defaults, local.yaml overrides merged over them, glob names, and the
cost of one turn's usage."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from core.codex.catalog import ModelCatalog
from core.config import ConfigStore
from core.pricing import Pricing
from core.settings import Price, SettingsError


def store(tmp_path: Path, local: dict | None = None) -> ConfigStore:
    if local is not None:
        (tmp_path / "local.yaml").write_text(yaml.safe_dump(local))
    return ConfigStore(tmp_path, environ={})


def test_every_shipped_model_has_a_price(tmp_path: Path) -> None:
    cfg = store(tmp_path).current
    pricing = Pricing(cfg.pricing.models)
    missing = [m.id for m in ModelCatalog.from_config(cfg).list() if pricing.price(m.id) is None]
    assert missing == []
    for name in ("gpt-4o", "gpt-4.1-mini", "o3", "claude-sonnet-4-5-20250929", "claude-opus-4-1", "gemini-2.5-pro", "gemini-2.5-flash"):
        assert pricing.price(name) is not None, name


def test_exact_names_win_then_the_longest_glob() -> None:
    pricing = Pricing({"gpt-5*": Price(1, 0.1, 10), "gpt-5.4*": Price(2, 0.2, 20), "gpt-5.4": Price(3, 0.3, 30)})
    assert pricing.price("gpt-5.4") == Price(3, 0.3, 30)
    assert pricing.price("gpt-5.4-mini") == Price(2, 0.2, 20)
    assert pricing.price("GPT-5.2") == Price(1, 0.1, 10)  # names are matched without case
    assert pricing.price("o3") is None and pricing.price(None) is None


def test_claude_families_follow_their_generation(tmp_path: Path) -> None:
    pricing = Pricing(store(tmp_path).current.pricing.models)
    assert pricing.price("claude-opus-4-5-20251101").output == 25.0  # opus 4.5: the cheaper generation
    assert pricing.price("claude-opus-4-1-20250805").output == 75.0


def test_the_cost_of_a_turn() -> None:
    pricing = Pricing({"gpt-5.4": Price(2.50, 0.25, 15.00)})
    # 1000 in (200 of them cached), 500 out: 800 × 2.50 + 200 × 0.25 + 500 × 15 per million
    assert pricing.cost("gpt-5.4", 1000, 500, 200) == pytest.approx(0.00955)
    assert pricing.cost("gpt-5.4", 1000, 0, None) == pytest.approx(0.0025)
    assert pricing.cost("gpt-5.4", 100, 10, 500) == pytest.approx((100 * 0.25 + 10 * 15) / 1e6)  # cached never over the input
    assert pricing.cost("unpriced", 1000, 500) is None
    assert pricing.cost("gpt-5.4", None, None) is None


def test_local_yaml_overrides_merge_over_the_shipped_prices(tmp_path: Path) -> None:
    local = {"pricing": {"models": {"gpt-5.4": {"input": 1.0}, "my-model*": {"input": 0.5, "output": 1.0}, "gpt-5.5": None}}}
    pricing = Pricing(store(tmp_path, local).current.pricing.models)
    assert pricing.price("gpt-5.4") == Price(1.0, 0.25, 15.0)  # only input changed
    assert pricing.price("my-model-v2") == Price(0.5, 0.5, 1.0)  # cached_input defaults to input
    assert pricing.price("gpt-5.5") is None  # null drops a shipped price


@pytest.mark.parametrize("entry, problem", [
    ({"input": 1}, "input, cached_input, output"),
    ({"input": 1, "output": -2}, "output must be a number"),
    ({"input": "cheap", "output": 1}, "input must be a number"),
    ({"input": 1, "output": 1, "discount": 0.5}, "input, cached_input, output"),
])  # fmt: skip
def test_a_broken_price_names_the_setting(tmp_path: Path, entry: dict, problem: str) -> None:
    with pytest.raises(SettingsError) as refused:
        store(tmp_path, {"pricing": {"models": {"gpt-x": entry}}})
    assert "pricing.models" in str(refused.value) and problem in str(refused.value) and "local.yaml" in str(refused.value)
