"""The providers and routes this proxy knows: read at start, changed through the management API
(on the control plane's threads; each change commits before it returns), and offered to the
data plane as an immutable ``RoutingTable`` swapped in after every change."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

from core.codex.catalog import ModelInfo, RouteClaim
from core.providers.keys import KeyRing
from core.providers.model import (
    DEFAULT_BASE_URL,
    KEY_STATUSES,
    KIND_WIRES,
    KINDS,
    POOL,
    Provider,
    ProviderKey,
    ProviderModel,
    Route,
    Target,
    new_key_id,
    valid_id,
)
from core.providers.routing import RoutingTable
from core.store.providers import KeyStateWriter, ProviderStore

KIND_NAMES = {"openai": "OpenAI", "anthropic": "Anthropic", "gemini": "Gemini", "openrouter": "OpenRouter", "custom": "Custom"}
EDITABLE = ("name", "base_url", "wire", "enabled", "headers", "models")


class ProviderInputError(ValueError):
    """A provider, key or route the caller sent cannot be used; the message says why."""


def _text(data: dict[str, Any], name: str, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise ProviderInputError(f"'{name}' is required")
        return None
    if not isinstance(value, str):
        raise ProviderInputError(f"'{name}' must be a string")
    return value.strip()


def _key_entries(raw: Any) -> list[tuple[str, str | None]]:
    """Keys as given: a string, {"key", "label"?}, or a list of those."""
    entries = raw if isinstance(raw, list) else [raw]
    out = []
    for entry in entries:
        key, label = (entry, None) if isinstance(entry, str) else (entry.get("key"), entry.get("label")) if isinstance(entry, dict) else (None, None)
        if not isinstance(key, str) or not key.strip() or any(c.isspace() for c in key.strip()):
            raise ProviderInputError("each key must be a non-empty string without spaces (or {\"key\": ..., \"label\": ...})")
        out.append((key.strip(), label if isinstance(label, str) and label.strip() else None))
    return out


def parse_routes(raw: Any, known: set[str]) -> list[Route]:
    if not isinstance(raw, list):
        raise ProviderInputError("routes must be a list of {\"pattern\": ..., \"targets\": [...]}")
    routes = []
    for index, entry in enumerate(raw):
        if not isinstance(entry, dict) or not isinstance(entry.get("pattern"), str) or not entry["pattern"].strip():
            raise ProviderInputError(f"route {index + 1}: a 'pattern' (a model name or a glob) is required")
        targets = []
        for target in entry.get("targets") or []:
            if isinstance(target, str):  # "provider" or "provider:model"
                provider, _, model = target.partition(":")
            else:
                provider, model = (target.get("provider"), target.get("model")) if isinstance(target, dict) else (None, None)
            if provider != POOL and provider not in known:
                raise ProviderInputError(f"route {index + 1}: unknown target '{provider}' (a provider id, or '{POOL}' for the ChatGPT pool)")
            targets.append(Target(provider, model.strip() if isinstance(model, str) and model.strip() else None))
        if not targets:
            raise ProviderInputError(f"route {index + 1}: at least one target is needed")
        routes.append(Route(entry["pattern"].strip(), tuple(targets)))
    return routes


class ProviderRegistry:
    def __init__(self, store: ProviderStore, cooldown_seconds: Callable[[], float]) -> None:
        self._store = store
        self._lock = threading.RLock()
        self.states = KeyStateWriter(store)
        self.keys = KeyRing(self.states.put, cooldown_seconds)
        providers, routes = store.load()
        self._providers = {p.id: p for p in providers}
        self.table = RoutingTable(providers, routes)
        self._listeners: list[Callable[[], None]] = []
        store.subscribe(self.reload)

    def reload(self) -> None:
        """Everything as stored (another instance changed it). Read under the lock, so a change of
        this instance's own is either in what is read or made after it."""
        with self._lock:
            providers, routes = self._store.load()
            self._providers = {p.id: p for p in providers}
            self.table = RoutingTable(providers, routes)
        self._notify()

    # --- reading --------------------------------------------------------------------------------------

    def all(self) -> list[Provider]:
        return sorted(self._providers.values(), key=lambda p: (p.position, p.created_at))

    def get(self, provider_id: str) -> Provider | None:
        return self._providers.get(provider_id)

    @property
    def routes(self) -> list[Route]:
        return self.table.routes

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    # the catalog's ModelRouter: always the current table
    def claim(self, name: str, *, listed: bool) -> RouteClaim | None:
        return self.table.claim(name, listed=listed)

    def models(self) -> list[ModelInfo]:
        return self.table.models()

    # --- providers --------------------------------------------------------------------------------------

    def _build(self, data: dict[str, Any], existing: Provider | None) -> Provider:
        kind = existing.kind if existing else _text(data, "kind", required=True)
        if kind not in KINDS:
            raise ProviderInputError(f"'kind' must be one of: {', '.join(KINDS)}")
        base_url = _text(data, "base_url") or (existing.base_url if existing else DEFAULT_BASE_URL.get(kind))
        if not base_url:
            raise ProviderInputError("'base_url' is required for a custom provider (e.g. http://host:8000/v1)")
        if not base_url.startswith(("http://", "https://")):
            raise ProviderInputError("'base_url' must start with http:// or https://")
        wire = _text(data, "wire") or (existing.wire if existing else KIND_WIRES[kind][0])
        if wire not in KIND_WIRES[kind]:
            raise ProviderInputError(f"a {kind} provider speaks one of: {', '.join(KIND_WIRES[kind])}")
        headers = data.get("headers", existing.headers if existing else {})
        if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
            raise ProviderInputError("'headers' must be an object of strings")
        models = data.get("models", existing.manual_models if existing else [])
        if not isinstance(models, list) or not all(isinstance(m, str) and m.strip() for m in models):
            raise ProviderInputError("'models' must be a list of model names")
        enabled = data.get("enabled", existing.enabled if existing else True)
        if not isinstance(enabled, bool):
            raise ProviderInputError("'enabled' must be true or false")
        name = _text(data, "name") or (existing.name if existing else KIND_NAMES[kind])
        if existing is not None:
            return dataclasses.replace(existing, name=name, base_url=base_url.rstrip("/"), wire=wire, enabled=enabled,
                                       headers=dict(headers), manual_models=[m.strip() for m in models])  # fmt: skip
        provider_id = _text(data, "id") or self._free_id(kind)
        if not valid_id(provider_id):
            raise ProviderInputError(f"'id' must be lowercase letters, digits, '-', '_' or '.' (not '{POOL}', 'export' or 'import')")
        return Provider(provider_id, kind, name, base_url.rstrip("/"), wire, enabled, dict(headers), [m.strip() for m in models],
                        position=len(self._providers), created_at=time.time())  # fmt: skip

    def _free_id(self, kind: str) -> str:
        candidate, n = kind, 1
        while candidate in self._providers:
            n += 1
            candidate = f"{kind}-{n}"
        return candidate

    def add(self, data: dict[str, Any]) -> Provider:
        with self._lock:
            if isinstance(data.get("id"), str) and data["id"] in self._providers:
                raise ProviderInputError(f"a provider '{data['id']}' exists already")
            provider = self._build(data, None)
            provider.keys = [self._new_key(provider.id, key, label) for key, label in _key_entries(data.get("keys") or [])]
            self._store.save_providers([provider])
            self._providers[provider.id] = provider
            self._changed()
            return provider

    def update(self, provider_id: str, data: dict[str, Any]) -> Provider:
        with self._lock:
            provider = self._require(provider_id)
            unknown = set(data) - set(EDITABLE)
            if unknown:
                raise ProviderInputError(f"cannot change {', '.join(sorted(unknown))} (editable: {', '.join(EDITABLE)})")
            updated = self._build(data, provider)
            if updated.base_url != provider.base_url or updated.wire != provider.wire:
                updated.fetched_models, updated.models_fetched_at, updated.models_error = [], None, None
            self._store.save_provider(updated)
            self._providers[provider_id] = updated
            self._changed()
            return updated

    def delete(self, provider_id: str) -> None:
        """Remove a provider and its keys; routes lose it as a target (and go when none is left)."""
        with self._lock:
            self._require(provider_id)
            self._store.delete_provider(provider_id)
            del self._providers[provider_id]
            routes = [Route(r.pattern, tuple(t for t in r.targets if t.provider != provider_id)) for r in self.routes]
            self._save_routes([r for r in routes if r.targets])

    def set_models(self, provider_id: str, models: list[ProviderModel] | None, error: str | None) -> Provider | None:
        """A fetch's outcome (from a worker thread): the list when it worked, the error either way."""
        with self._lock:
            provider = self._providers.get(provider_id)
            if provider is None:
                return None
            changes: dict[str, Any] = {"models_error": error, "models_fetched_at": time.time()}
            if models is not None:
                changes["fetched_models"] = models
            updated = dataclasses.replace(provider, **changes)
            self._store.save_provider(updated)
            self._providers[provider_id] = updated
            self._changed()
            return updated

    def _require(self, provider_id: str) -> Provider:
        provider = self._providers.get(provider_id)
        if provider is None:
            raise KeyError(provider_id)
        return provider

    # --- keys -------------------------------------------------------------------------------------------

    @staticmethod
    def _new_key(provider_id: str, key: str, label: str | None) -> ProviderKey:
        return ProviderKey(new_key_id(), provider_id, key, label, added_at=time.time())

    def add_keys(self, provider_id: str, raw: Any) -> list[ProviderKey]:
        with self._lock:
            provider = self._require(provider_id)
            have = {k.key for k in provider.keys}
            added = [self._new_key(provider_id, key, label) for key, label in _key_entries(raw) if key not in have]
            for key in added:
                self._store.save_key(key)
            provider.keys = [*provider.keys, *added]
            self._changed()
            return added

    def update_key(self, provider_id: str, key_id: str, data: dict[str, Any]) -> ProviderKey:
        with self._lock:
            key = next((k for k in self._require(provider_id).keys if k.id == key_id), None)
            if key is None:
                raise KeyError(key_id)
            status = data.get("status", key.status)
            if status not in KEY_STATUSES or status == "invalid" and key.status != "invalid":
                raise ProviderInputError("'status' must be 'active' or 'disabled'")
            if "label" in data and data["label"] is not None and not isinstance(data["label"], str):
                raise ProviderInputError("'label' must be a string")
            key.label = (data.get("label") or None) if "label" in data else key.label
            if status != key.status:
                key.status, key.last_error, key.cooldown_until = status, None, None
            self._store.save_key(key)
            self._changed()
            return key

    def delete_key(self, provider_id: str, key_id: str) -> None:
        with self._lock:
            provider = self._require(provider_id)
            if not any(k.id == key_id for k in provider.keys):
                raise KeyError(key_id)
            self._store.delete_key(key_id)
            provider.keys = [k for k in provider.keys if k.id != key_id]
            self._changed()

    # --- routes, import and export -------------------------------------------------------------------------

    def set_routes(self, raw: Any) -> list[Route]:
        with self._lock:
            routes = parse_routes(raw, set(self._providers))
            self._save_routes(routes)
            return routes

    def _save_routes(self, routes: list[Route]) -> None:
        self._store.save_routes(routes)
        self.table = RoutingTable(self.all(), routes)
        self._notify()

    def export(self) -> dict[str, Any]:
        """Everything, keys in clear text: the import format (keep it secret)."""
        providers = []
        for p in self.all():
            providers.append({"id": p.id, "kind": p.kind, "name": p.name, "base_url": p.base_url, "wire": p.wire, "enabled": p.enabled,
                              "headers": dict(p.headers), "models": list(p.manual_models),
                              "keys": [{"key": k.key, "label": k.label} if k.label else k.key for k in p.keys]})  # fmt: skip
        return {"providers": providers, "routes": [r.as_dict() for r in self.routes]}

    def import_all(self, data: Any) -> dict[str, Any]:
        """Providers are added or updated by id (keys merged, never dropped); routes, when given,
        replace the current ones. Each provider stands alone: one bad entry fails only itself."""
        if not isinstance(data, dict) or not isinstance(data.get("providers", []), list):
            raise ProviderInputError("an import is {\"providers\": [...], \"routes\": [...]} (the export format)")
        result: dict[str, Any] = {"added": 0, "updated": 0, "failed": 0, "errors": []}
        for index, entry in enumerate(data.get("providers") or []):
            try:
                if not isinstance(entry, dict):
                    raise ProviderInputError("a provider must be an object")
                provider_id = entry.get("id")
                if isinstance(provider_id, str) and provider_id in self._providers:
                    self.update(provider_id, {k: v for k, v in entry.items() if k in EDITABLE})
                    self.add_keys(provider_id, entry.get("keys") or [])
                    result["updated"] += 1
                else:
                    self.add(entry)
                    result["added"] += 1
            except ProviderInputError as error:
                result["failed"] += 1
                result["errors"].append(f"provider {index + 1}: {error}")
        if "routes" in data:
            try:
                self.set_routes(data["routes"])
            except ProviderInputError as error:
                result["errors"].append(f"routes: {error}")
        return result

    def _changed(self) -> None:
        self.table = RoutingTable(self.all(), self.routes)
        self._notify()

    def _notify(self) -> None:
        for listener in self._listeners:
            listener()

    def close(self) -> None:
        self.states.close()
