"""Configuration: shipped defaults, the user's ``<data>/local.yaml`` and environment overrides.

The effective config is an immutable snapshot; ``ConfigStore.update_local`` writes local.yaml
atomically and swaps in a new snapshot, so readers on any thread see a consistent whole.
"""

from __future__ import annotations

import copy
import os
import secrets
import threading
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import yaml
from deepmerge import Merger

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "config"

# Dicts merge key by key; lists and scalars from the later layer replace the earlier one.
_merger = Merger([(dict, ["merge"])], ["override"], ["override"])

# (environment variable, dotted config key, converter) — the seed's override table.
_ENV_OVERRIDES: list[tuple[str, str, Callable[[str], Any]]] = [
    ("PORT", "server.port", int),
    ("HTTPS_PROXY", "tls.proxy_url", str),
    ("CODEX_PLATFORM", "client.platform", str),
    ("CODEX_ARCH", "client.arch", str),
    ("OLLAMA_BRIDGE_ENABLED", "ollama.enabled", lambda v: v.strip().lower() in {"1", "true", "yes", "on"}),
    ("OLLAMA_BRIDGE_HOST", "ollama.host", str),
    ("OLLAMA_BRIDGE_PORT", "ollama.port", int),
    ("OLLAMA_BRIDGE_VERSION", "ollama.version", str),
    (
        "OLLAMA_BRIDGE_DISABLE_VISION",
        "ollama.disable_vision",
        lambda v: v.strip().lower() in {"1", "true", "yes", "on"},
    ),
]


def new_api_key() -> str:
    return "cp-" + secrets.token_urlsafe(24)


def default_data_dir() -> Path:
    env = os.environ.get("CODEX_PROXY_DATA_DIR")
    return Path(env).expanduser().resolve() if env else ROOT / "data"


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: top level must be a mapping")
    return loaded


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


_MISSING = object()


class Config:
    """A read-only view of the merged configuration with dotted-path lookup."""

    __slots__ = ("data", "data_dir", "_found")

    def __init__(self, data: dict[str, Any], data_dir: Path) -> None:
        self.data = data
        self.data_dir = data_dir
        self._found: dict[str, Any] = {}  # the snapshot never changes: each path is walked once

    def get(self, dotted: str, default: Any = None) -> Any:
        found = self._found.get(dotted, _MISSING)
        if found is _MISSING:
            node: Any = self.data
            for key in dotted.split("."):
                if not isinstance(node, Mapping) or key not in node:
                    node = _MISSING
                    break
                node = node[key]
            self._found[dotted] = found = node
        return default if found is _MISSING else found

    def section(self, name: str) -> Mapping[str, Any]:
        value = self.data.get(name)
        return value if isinstance(value, Mapping) else {}

    @property
    def db_path(self) -> Path:
        return self.data_dir / "codex-proxy.db"

    @property
    def proxy_api_key(self) -> str | None:
        return self.get("server.proxy_api_key") or None


class ConfigStore:
    """Owns the data folder's local.yaml and hands out Config snapshots."""

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
        # Process-only overrides (demo mode aims the proxy at the in-process fake); never written.
        self._runtime = copy.deepcopy(dict(runtime or {}))
        self._lock = threading.Lock()
        self._listeners: list[Callable[[Config], None]] = []
        if create:
            self._ensure_local()
        self._current = self._load()

    @property
    def current(self) -> Config:
        return self._current

    def on_change(self, listener: Callable[[Config], None]) -> None:
        self._listeners.append(listener)

    def env_override(self, dotted: str) -> str | None:
        """The environment variable that sets ``dotted`` now (and wins over local.yaml), if any."""
        return next((name for name, key, _ in _ENV_OVERRIDES if key == dotted and self._environ.get(name)), None)

    def local_overrides(self) -> dict[str, Any]:
        return read_yaml(self.local_path)

    def update_local(self, patch: Mapping[str, Any], *, replace: Collection[str] = ()) -> Config:
        """Deep-merge ``patch`` into local.yaml, write it atomically and reload. Dotted paths in
        ``replace`` take the patch's value whole (a mapping such as ``model.aliases`` loses the
        keys the patch leaves out) instead of being merged into."""
        with self._lock:
            local = self.local_overrides()
            for dotted in replace:
                remove_path(local, dotted)
            local = _merger.merge(local, copy.deepcopy(dict(patch)))
            self._write_local(local)
            self._current = self._load()
            current = self._current
        for listener in self._listeners:
            listener(current)
        return current

    def reload(self) -> Config:
        with self._lock:
            self._current = self._load()
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

    def _load(self) -> Config:
        merged = _merger.merge(read_yaml(CONFIG_DIR / "default.yaml"), self.local_overrides())
        for env_name, dotted, convert in _ENV_OVERRIDES:
            raw = self._environ.get(env_name)
            if raw:
                set_path(merged, dotted, convert(raw))
        if self._runtime:
            merged = _merger.merge(merged, copy.deepcopy(self._runtime))
        return Config(merged, self.data_dir)
