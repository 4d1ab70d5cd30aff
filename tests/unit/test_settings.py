"""Typed settings: built from config/default.yaml and the layers over it, checked while loading."""

from __future__ import annotations

import copy
import dataclasses
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from core import config as config_module
from core.config import ConfigStore, shipped_yaml
from core.settings import SECTION_TYPES, SECTIONS, Settings, SettingsError


def store(tmp_path: Path, local: dict[str, Any] | None = None, environ: dict[str, str] | None = None) -> ConfigStore:
    if local is not None:
        (tmp_path / "local.yaml").write_text(yaml.safe_dump(local))
    return ConfigStore(tmp_path, environ=environ or {})


def test_the_defaults_and_the_classes_name_the_same_settings() -> None:
    defaults, _ = shipped_yaml("default.yaml")
    in_yaml = {f"{section}.{name}" for section, values in defaults.items() for name in values}
    in_classes = {f"{section}.{name}" for section, names in SECTIONS.items() for name in names}
    assert in_yaml == in_classes


def test_no_default_is_written_in_python() -> None:
    """config/default.yaml is the only place a default lives."""
    for cls in (Settings, *SECTION_TYPES.values()):
        for field in dataclasses.fields(cls):
            assert field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING, f"{cls.__name__}.{field.name}"


def test_values_are_typed(tmp_path: Path) -> None:
    cfg = store(tmp_path).current
    assert cfg.server.port == 8080 and cfg.server.max_body_size == 64 * 1024 * 1024  # "64m"
    assert cfg.api.timeout_seconds == 600.0 and isinstance(cfg.api.timeout_seconds, float)
    assert cfg.intercept.hosts[0] == "api.openai.com" and isinstance(cfg.intercept.hosts, tuple)
    assert cfg.quota.warning_thresholds == (80, 95)
    assert cfg.client.residency is None and cfg.tls.impersonate == "codex_cli"
    assert cfg.db_path == tmp_path.resolve() / "codex-proxy.db"


def test_a_snapshot_cannot_be_changed(tmp_path: Path) -> None:
    cfg = store(tmp_path, {"model": {"aliases": {"fast": "gpt-5.4"}}}).current
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.api.base_url = "http://elsewhere"  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.model.aliases["slow"] = "gpt-5.5"  # type: ignore[index]


def test_dotted_names(tmp_path: Path) -> None:
    cfg = store(tmp_path).current
    assert cfg.at("auth.rotation_strategy") == cfg.auth.rotation_strategy
    with pytest.raises(KeyError):
        cfg.at("auth.no_such_setting")
    with pytest.raises(KeyError):
        cfg.at("data_dir")  # not a setting, though an attribute


def test_layers_and_environment(tmp_path: Path) -> None:
    environ = {"PORT": "9100", "OLLAMA_BRIDGE_ENABLED": "yes", "HTTPS_PROXY": "http://upstream:3128"}
    configs = store(tmp_path, {"server": {"port": 9000}, "logs": {"capture_bodies": True}}, environ)
    cfg = configs.current
    assert (cfg.server.port, cfg.ollama.enabled, cfg.tls.proxy_url, cfg.logs.capture_bodies) == (9100, True, "http://upstream:3128", True)
    assert configs.env_override("server.port") == "PORT" and configs.env_override("logs.enabled") is None


def test_an_empty_optional_text_means_unset(tmp_path: Path) -> None:
    assert store(tmp_path, {"server": {"proxy_api_key": ""}}).current.server.proxy_api_key is None


@pytest.mark.parametrize(("local", "message"), [
    ({"api": {"timeout_seconds": "soon"}}, "'api.timeout_seconds' must be a number, not 'soon'"),
    ({"auth": {"session_affinity": "yes"}}, "'auth.session_affinity' must be true or false"),
    ({"stream": {"keepalive_seconds": 0}}, "'stream.keepalive_seconds' must be above zero"),
    ({"server": {"max_body_size": "lots"}}, "'server.max_body_size' must be a size such as 64m"),
    ({"intercept": {"hosts": "api.openai.com"}}, "'intercept.hosts' must be a list (each item a non-empty text)"),
    ({"model": {"aliases": {"fast": 5}}}, "'model.aliases' must be a mapping (each value a non-empty text)"),
    ({"quota": None}, "'quota' must be a mapping of settings"),
])  # fmt: skip
def test_a_wrong_value_names_the_key_and_the_file(tmp_path: Path, local: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        store(tmp_path, local)
    assert str(caught.value).startswith(f"{tmp_path.resolve() / 'local.yaml'}: ")
    assert message in str(caught.value)


def test_a_wrong_environment_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="environment variable PORT"):
        store(tmp_path, environ={"PORT": "eighty"})


def test_a_setting_missing_from_the_defaults_fails_at_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = shipped_yaml

    def without_timeout(name: str) -> tuple[dict[str, Any], str]:
        tree, where = real(name)
        tree = copy.deepcopy(tree)
        del tree["api"]["timeout_seconds"]
        return tree, where

    monkeypatch.setattr(config_module, "shipped_yaml", without_timeout)
    with pytest.raises(SettingsError, match=r"default\.yaml: 'api\.timeout_seconds' is missing"):
        store(tmp_path)


def test_an_unknown_setting_in_the_defaults_fails_at_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = shipped_yaml
    monkeypatch.setattr(config_module, "shipped_yaml", lambda name: ({**real(name)[0], "extra": {"x": 1}}, "default.yaml"))
    with pytest.raises(SettingsError, match="no setting is named extra"):
        store(tmp_path)


def test_an_unknown_setting_in_local_yaml_is_reported_not_fatal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="core.config"):
        cfg = store(tmp_path, {"api": {"timout_seconds": 5}}).current
    assert cfg.api.timeout_seconds == 600.0
    assert "api.timout_seconds" in caplog.text


def test_update_local_swaps_the_snapshot_and_refuses_a_bad_value(tmp_path: Path) -> None:
    configs = store(tmp_path)
    seen: list[Settings] = []
    configs.on_change(seen.append)
    updated = configs.update_local({"auth": {"cooldown_seconds": 30}})
    assert configs.current is updated and seen == [updated] and updated.auth.cooldown_seconds == 30.0
    written = (tmp_path / "local.yaml").read_text()
    with pytest.raises(SettingsError, match="auth.cooldown_seconds"):
        configs.update_local({"auth": {"cooldown_seconds": "later"}})
    assert (tmp_path / "local.yaml").read_text() == written and configs.current is updated and len(seen) == 1
