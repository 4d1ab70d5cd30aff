"""What the management API does with client keys: create (the key is returned this once), change,
reset the budget, delete, list. Runs on the control plane's threads: SQLite first, then the
in-memory index the data plane reads."""

from __future__ import annotations

import time
from typing import Any

from core.access.guard import KeyGuard
from core.access.keys import ClientKey, KeySpecError, apply_spec, digest, new_key
from core.store.client_keys import ClientKeyStore


class KeyService:
    def __init__(self, store: ClientKeyStore, guard: KeyGuard) -> None:
        self._store = store
        self.guard = guard

    def list(self) -> list[dict[str, Any]]:
        now = time.time()
        return [self.guard.state(key, now) for key in self.guard.all()]

    def show(self, key_id: str) -> dict[str, Any] | None:
        key = self.guard.get(key_id)
        return None if key is None else self.guard.state(key)

    def create(self, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """A new key with the settings in ``body`` (``label`` required): its state and the key itself."""
        if not isinstance(body.get("label"), str):
            raise KeySpecError("label is required: what the key is for, or who has it")
        now = time.time()
        key_id, secret = new_key()
        while self.guard.get(key_id) is not None:  # 32-bit ids: a clash is rare, never silent
            key_id, secret = new_key()
        key = apply_spec(ClientKey(key_id, digest(secret), "", now), body, now)
        self._store.insert({**key.to_row(), "spent_tokens": 0, "spent_usd": 0.0, "period_start": 0.0})
        self.guard.put(key, now=now)
        return self.guard.state(key, now), secret

    def update(self, key_id: str, body: dict[str, Any]) -> dict[str, Any] | None:
        key = self.guard.get(key_id)
        if key is None:
            return None
        changed = apply_spec(key, body, time.time())
        if not self._store.update_settings(changed.to_row()):
            self.guard.drop(key_id)
            return None
        self.guard.put(changed)
        return self.guard.state(changed)

    def reset(self, key_id: str) -> dict[str, Any] | None:
        """Start the key's budget period over, as if it had used nothing yet."""
        key = self.guard.get(key_id)
        if key is None:
            return None
        self.guard.put(key, reset=True)
        return self.guard.state(key)

    def delete(self, key_id: str) -> bool:
        gone = self._store.delete(key_id)
        self.guard.drop(key_id)
        return gone
