"""Providers, their keys and the model routes in SQLite (tables of migration m009).

Changes made through the management API commit before they return (they come from the control
plane's threads); a key's use counters and cooldowns change on every request and are written by
``KeyStateWriter``'s thread instead, coalesced per key.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from core.providers.model import Provider, ProviderKey, ProviderModel, Route, Target
from core.store.db import Database
from core.store.writer import BatchWriter

KEY_STATE_FIELDS = ("status", "cooldown_until", "last_error", "last_used_at", "requests", "failures")
CHANGED = "providers.changed"  # another instance changed providers, keys or routes: read them again


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _loads(raw: Any, default: Any) -> Any:
    try:
        return orjson.loads(raw) if raw else default
    except orjson.JSONDecodeError:
        return default


def provider_row(provider: Provider) -> dict[str, Any]:
    return {
        "id": provider.id, "kind": provider.kind, "name": provider.name, "base_url": provider.base_url,
        "wire": provider.wire, "enabled": int(provider.enabled), "headers": _json(provider.headers),
        "manual_models": _json(provider.manual_models), "fetched_models": _json([m.as_dict() for m in provider.fetched_models]),
        "models_fetched_at": provider.models_fetched_at, "models_error": provider.models_error,
        "sort_order": provider.position, "created_at": provider.created_at, "updated_at": time.time(),
    }  # fmt: skip


def _provider(row: dict[str, Any], keys: list[ProviderKey]) -> Provider:
    fetched = [m for m in (ProviderModel.from_dict(raw) for raw in _loads(row.get("fetched_models"), [])) if m is not None]
    return Provider(
        id=row["id"], kind=row["kind"], name=row.get("name") or row["id"], base_url=row["base_url"], wire=row["wire"],
        enabled=bool(row.get("enabled", 1)), headers=_loads(row.get("headers"), {}), manual_models=_loads(row.get("manual_models"), []),
        fetched_models=fetched, models_fetched_at=row.get("models_fetched_at"), models_error=row.get("models_error"),
        position=row.get("sort_order") or 0, created_at=row.get("created_at") or 0.0, keys=keys,
    )  # fmt: skip


def key_row(key: ProviderKey) -> dict[str, Any]:
    return {"id": key.id, "provider_id": key.provider_id, "api_key": key.key, "label": key.label, "status": key.status,
            "cooldown_until": key.cooldown_until, "last_error": key.last_error, "last_used_at": key.last_used_at,
            "requests": key.requests, "failures": key.failures, "added_at": key.added_at}  # fmt: skip


def _key(row: dict[str, Any]) -> ProviderKey:
    return ProviderKey(id=row["id"], provider_id=row["provider_id"], key=row["api_key"], label=row.get("label"),
                       status=row.get("status") or "active", cooldown_until=row.get("cooldown_until"),
                       last_error=row.get("last_error"), last_used_at=row.get("last_used_at"),
                       requests=row.get("requests") or 0, failures=row.get("failures") or 0, added_at=row.get("added_at") or 0.0)  # fmt: skip


class ProviderStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def subscribe(self, reload: Callable[[], None]) -> None:
        """``reload()`` when another instance sharing the store changed something (and on every
        reconnection, which may have missed a message)."""
        self._db.events.follow(CHANGED, reload)

    def load(self) -> tuple[list[Provider], list[Route]]:
        conn = self._db.conn()
        keys: dict[str, list[ProviderKey]] = {}
        for row in conn["provider_keys"].rows_where(order_by="added_at"):
            keys.setdefault(row["provider_id"], []).append(_key(row))
        providers = [_provider(row, keys.get(row["id"], [])) for row in conn["providers"].rows_where(order_by="sort_order, created_at")]
        routes = []
        for row in conn["model_routes"].rows_where(order_by="sort_order"):
            targets = tuple(Target(t["provider"], t.get("model")) for t in _loads(row["targets"], []) if isinstance(t, dict))
            routes.append(Route(row["pattern"], targets))
        return providers, routes

    def save_provider(self, provider: Provider) -> None:
        """The provider's own fields (never its keys)."""
        with self._db.announcing(CHANGED) as db:
            db["providers"].upsert(provider_row(provider), pk="id")

    def save_providers(self, providers: Iterable[Provider], routes: list[Route] | None = None) -> None:
        """Several providers with all their keys (an import), and the routes when given, in one commit."""
        with self._db.announcing(CHANGED) as db:
            for provider in providers:
                db["providers"].upsert(provider_row(provider), pk="id")
                for key in provider.keys:
                    db["provider_keys"].upsert(key_row(key), pk="id")
            if routes is not None:
                _write_routes(db, routes)

    def delete_provider(self, provider_id: str) -> None:
        with self._db.announcing(CHANGED) as db:
            db["provider_keys"].delete_where("provider_id = ?", [provider_id])
            db["providers"].delete_where("id = ?", [provider_id])

    def save_key(self, key: ProviderKey) -> None:
        with self._db.announcing(CHANGED) as db:
            db["provider_keys"].upsert(key_row(key), pk="id")

    def delete_key(self, key_id: str) -> None:
        with self._db.announcing(CHANGED) as db:
            db["provider_keys"].delete_where("id = ?", [key_id])

    def save_routes(self, routes: list[Route]) -> None:
        with self._db.announcing(CHANGED) as db:
            _write_routes(db, routes)

    def write_key_states(self, states: list[tuple[str, dict[str, Any]]]) -> None:
        with self._db.transaction() as db:
            table = db["provider_keys"]
            for key_id, state in states:
                values = {k: v for k, v in state.items() if k in KEY_STATE_FIELDS}
                if values and table.count_where("id = ?", [key_id]):
                    table.update(key_id, values)


def _write_routes(db: Any, routes: list[Route]) -> None:
    db["model_routes"].delete_where()
    if routes:
        db["model_routes"].insert_all([{"sort_order": i, "pattern": r.pattern, "targets": _json([t.as_dict() for t in r.targets])}
                                       for i, r in enumerate(routes)])  # fmt: skip


class KeyStateWriter:
    """Key counters and cooldowns, written by a thread: the latest state of each key wins."""

    def __init__(self, store: ProviderStore) -> None:
        self._writer: BatchWriter[tuple[str, dict[str, Any]]] = BatchWriter(
            "provider-key-writer", store.write_key_states, key=lambda item: item[0],
            merge=lambda old, new: (new[0], {**old[1], **new[1]}), linger=0.5,
        )  # fmt: skip

    def put(self, key: ProviderKey) -> None:
        self._writer.put((key.id, {name: getattr(key, name) for name in KEY_STATE_FIELDS}))

    def flush(self, timeout: float = 5.0) -> bool:
        return self._writer.flush(timeout)

    def close(self) -> None:
        self._writer.close()
