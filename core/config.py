"""Configuration: shipped defaults, the user's ``<data>/local.yaml`` and environment overrides.

The layers merge in that order (a mapping key by key; lists and scalars replace), then process-only
overrides (demo mode) on top, and the result becomes a typed, immutable ``Settings`` snapshot
(core/settings.py). ``ConfigStore.update_local`` writes local.yaml atomically and swaps in a new
snapshot, so readers on any thread see a consistent whole.

The shipped defaults are config/default.yaml (and config/models.yaml, read by the model catalog)
at the repository root, packaged as ``core.defaults`` (pyproject.toml) and read through
importlib.resources, so an installed wheel has them too.
"""

from __future__ import annotations

import copy
import logging
import os
import secrets
import threading
from collections.abc import Callable, Collection, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from deepmerge import Merger

from core.settings import Settings, SettingsError, build, parse_env, unknown_keys

logger = logging.getLogger(__name__)

DEFAULTS_PACKAGE = "core.defaults"  # the repository's config/ folder, as pyproject.toml packages it
_ROOT = Path(__file__).resolve().parents[1]  # a checkout's root, or site-packages for an installed copy

# Dicts merge key by key; lists and scalars from the later layer replace the earlier one.
_merger = Merger([(dict, ["merge"])], ["override"], ["override"])

# Environment variable → the setting it overrides (its text is read as that setting's type).
ENV_OVERRIDES: dict[str, str] = {
    "PORT": "server.port",
    "HTTPS_PROXY": "tls.proxy_url",
    "CODEX_PLATFORM": "client.platform",
    "CODEX_ARCH": "client.arch",
    "OLLAMA_BRIDGE_ENABLED": "ollama.enabled",
    "OLLAMA_BRIDGE_HOST": "ollama.host",
    "OLLAMA_BRIDGE_PORT": "ollama.port",
    "OLLAMA_BRIDGE_VERSION": "ollama.version",
    "OLLAMA_BRIDGE_DISABLE_VISION": "ollama.disable_vision",
    "CODEX_PROXY_STORE_URL": "store.url",
}


def new_api_key() -> str:
    return "cp-" + secrets.token_urlsafe(24)


def default_data_dir() -> Path:
    """``CODEX_PROXY_DATA_DIR``; else a checkout's own data/ folder; else (an installed copy, whose
    code sits in site-packages) the user's data folder, ``$XDG_DATA_HOME/codex-proxy``."""
    env = os.environ.get("CODEX_PROXY_DATA_DIR")
    if env:
        return Path(env).expanduser().resolve()
    if (_ROOT / "addons" / "codex.py").is_file():
        return _ROOT / "data"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share").expanduser().resolve() / "codex-proxy"


def _mapping(loaded: Any, where: str) -> dict[str, Any]:
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise SettingsError(f"{where}: the top level must be a mapping")
    return loaded


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML file's top-level mapping; an absent or empty file is an empty one."""
    if not path.exists():
        return {}
    return _mapping(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))


def shipped_yaml(name: str) -> tuple[dict[str, Any], str]:
    """One of the shipped YAML files (``default.yaml``, ``models.yaml``) and where it was read."""
    resource = resources.files(DEFAULTS_PACKAGE).joinpath(name)
    where = str(resource)
    return _mapping(yaml.safe_load(resource.read_text(encoding="utf-8")), where), where


def set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    *parents, leaf = dotted.split(".")
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[leaf] = value


def remove_path(tree: dict[str, Any], dotted: str) -> None:
    node: Any = tree
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(leaf, None)


def has_path(tree: Mapping[str, Any], dotted: str) -> bool:
    node: Any = tree
    for key in dotted.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return False
        node = node[key]
    return True


class ConfigStore:
    """Owns the data folder's local.yaml and hands out ``Settings`` snapshots."""

    def __init__(
        self,
        data_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
        runtime: Mapping[str, Any] | None = None,
        *,
        create: bool = True,
    ) -> None:
        self.data_dir = (data_dir or default_data_dir()).resolve()
        self.local_path = self.data_dir / "local.yaml"
        self._environ = os.environ if environ is None else environ
        # Process-only overrides (demo mode aims the proxy at the in-process fake, the release feed
        # sets client.app_version); never written.
        self._runtime = copy.deepcopy(dict(runtime or {}))
        self._lock = threading.Lock()
        self._listeners: list[Callable[[Settings], None]] = []
        if create:
            self._ensure_local()
        self._current = self._load(self.local_overrides())

    @property
    def current(self) -> Settings:
        return self._current

    def on_change(self, listener: Callable[[Settings], None]) -> None:
        self._listeners.append(listener)

    def env_override(self, dotted: str) -> str | None:
        """The environment variable that sets ``dotted`` now (and wins over local.yaml), if any."""
        return next((name for name, key in ENV_OVERRIDES.items() if key == dotted and self._environ.get(name)), None)

    def local_overrides(self) -> dict[str, Any]:
        return read_yaml(self.local_path)

    def update_local(self, patch: Mapping[str, Any], *, replace: Collection[str] = ()) -> Settings:
        """Deep-merge ``patch`` into local.yaml, write it atomically and reload. Dotted paths in
        ``replace`` take the patch's value whole (a mapping such as ``model.aliases`` loses the
        keys the patch leaves out) instead of being merged into. A patch that makes a setting
        unusable raises SettingsError and writes nothing."""
        with self._lock:
            local = self.local_overrides()
            for dotted in replace:
                remove_path(local, dotted)
            local = _merger.merge(local, copy.deepcopy(dict(patch)))
            current = self._load(local)
            self._write_local(local)
            self._current = current
        for listener in self._listeners:
            listener(current)
        return current

    def set_runtime(self, dotted: str, value: Any) -> Settings:
        """Set (or, with None, drop) a process-only override and swap in the new snapshot; nothing
        is written. Blocking (re-reads local.yaml): call it off the event loop."""
        with self._lock:
            if value is None:
                remove_path(self._runtime, dotted)
            else:
                set_path(self._runtime, dotted, value)
            current = self._current = self._load(self.local_overrides())
        for listener in self._listeners:
            listener(current)
        return current

    def reload(self) -> Settings:
        with self._lock:
            self._current = self._load(self.local_overrides())
            return self._current

    def _ensure_local(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.local_path.exists():
            # First start: give the proxy its own key so it is never open by accident.
            self._write_local({"server": {"proxy_api_key": new_api_key()}})

    def _write_local(self, data: dict[str, Any]) -> None:
        tmp = self.local_path.with_suffix(".yaml.tmp")
        tmp.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.local_path)

    def _load(self, local: dict[str, Any]) -> Settings:
        defaults, defaults_file = shipped_yaml("default.yaml")
        if unknown := unknown_keys(defaults):
            raise SettingsError(f"{defaults_file}: no setting is named {', '.join(unknown)} (see core/settings.py)")
        if unknown := unknown_keys(local):
            logger.warning("%s: ignoring unknown setting(s) %s", self.local_path, ", ".join(unknown))
        merged = _merger.merge(defaults, copy.deepcopy(local))
        for env_name, dotted in ENV_OVERRIDES.items():
            if raw := self._environ.get(env_name):
                try:
                    set_path(merged, dotted, parse_env(dotted, raw))
                except ValueError as error:
                    raise SettingsError(f"environment variable {env_name} ({dotted}): {error}") from None
        if self._runtime:
            merged = _merger.merge(merged, copy.deepcopy(self._runtime))

        def source_of(dotted: str) -> str:
            if has_path(self._runtime, dotted):
                return "the process's runtime overrides"
            if env := self.env_override(dotted):
                return f"environment variable {env}"
            return str(self.local_path) if has_path(local, dotted) else defaults_file

        return build(merged, self.data_dir, source_of)
