"""What the management API does with client keys: create (the key is returned this once), change,
reset the budget, delete, list. Runs on the control plane's threads: the store first, then the
in-memory index the data plane reads; on a shared store, the other instances' changes arrive here
too (on the store's listener thread) and reach the index the same way."""

from __future__ import annotations

import threading
import time
from typing import Any

from core.access.guard import KeyGuard
from core.access.keys import ClientKey, KeySpecError, apply_spec, digest, new_key, period_start
from core.store.client_keys import ClientKeyStore


class KeyService:
    def __init__(self, store: ClientKeyStore, guard: KeyGuard) -> None:
        self._store = store
        self.guard = guard
        # One change at a time, this instance's or another's: committed, then adopted, so that an
        # older row is never adopted after a newer one.
        self._admin = threading.Lock()
        store.on_remote_change(self._remote_changed, self._remote_removed, guard.take, self._reload)

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
        row = {**key.to_row(), "spent_tokens": 0, "spent_usd": 0.0, "period_start": 0.0}
        with self._admin:
            self._store.insert(row)
            self.guard.adopt([row])
        return self.guard.state(key, now), secret

    def update(self, key_id: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """Change the key's settings. A new budget period starts its counters over."""
        now = time.time()
        with self._admin:
            key = self.guard.get(key_id)
            if key is None:
                return None
            changed = apply_spec(key, body, now)
            restart = None if changed.period == key.period else period_start(changed.period, now)
            return self._adopted(key_id, self._store.update_settings(changed.to_row(), restart))

    def reset(self, key_id: str) -> dict[str, Any] | None:
        """Start the key's budget period over, as if it had used nothing yet."""
        with self._admin:
            key = self.guard.get(key_id)
            if key is None:
                return None
            return self._adopted(key_id, self._store.restart(key_id, period_start(key.period, time.time())))

    def delete(self, key_id: str) -> bool:
        with self._admin:
            gone = self._store.delete(key_id)
            self.guard.drop(key_id)
        return gone

    def _adopted(self, key_id: str, row: dict[str, Any] | None) -> dict[str, Any] | None:
        """The key's state once the guard has the row just stored (None: it is gone)."""
        if row is None:
            self.guard.drop(key_id)
            return None
        self.guard.adopt([row])
        key = self.guard.get(key_id)
        return None if key is None else self.guard.state(key)

    # --- what other instances changed (the store's listener thread) ---------------------------------

    def _remote_changed(self, key_ids: list[str]) -> None:
        with self._admin:
            rows = self._store.get_many(key_ids)
            self.guard.adopt(rows)
            for gone in set(key_ids) - {row["id"] for row in rows}:
                self.guard.drop(gone)

    def _remote_removed(self, key_ids: list[str]) -> None:
        with self._admin:
            for key_id in key_ids:
                self.guard.drop(key_id)

    def _reload(self) -> None:
        """Listening (re)started: whatever was missed meanwhile, every key again."""
        with self._admin:
            self.guard.load()
