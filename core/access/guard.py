"""The client keys as the hot path sees them: an in-memory index, spending counters and requests
in flight. Nothing here reads SQLite per request.

``identify`` runs when a request is routed (its key, expiry, enabled flag: 401 otherwise),
``admit`` when its turn starts (model, budget, concurrency: 403 / 429), ``release`` when the turn
ends however it ends (the exchange's ``finally``: done, failed, client gone, flow killed), and
``charge`` adds what it used. The management API changes keys through ``put`` / ``drop``, which
swap the index whole, so the event loop never sees a half-changed one. The counters are changed
under a lock (the loop and the management threads both touch them) and written behind by the
store's writer thread.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from core.access.keys import ClientKey, key_id_of, period_end, period_start
from core.protocols.base import Forbidden, TooManyRequests, Unauthorized
from core.store.client_keys import ClientKeyStore, SpendRow


@dataclass(slots=True)
class Spend:
    """What a key used in its current budget period (both units, whichever its budget counts)."""

    tokens: int = 0
    usd: float = 0.0
    period_start: float = 0.0
    period_end: float | None = None  # when the counters start over; None: never
    last_used_at: float | None = None

    def used(self, unit: str) -> float:
        return self.usd if unit == "usd" else self.tokens


class KeyGuard:
    def __init__(self, store: ClientKeyStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._keys: dict[str, ClientKey] = {}
        self._spend: dict[str, Spend] = {}
        self._in_flight: dict[str, int] = {}
        self.load()

    def load(self) -> None:
        """Read every key and its counters (start-up: blocking, off the loop)."""
        keys, spend = {}, {}
        for row in self._store.all():
            key = ClientKey.from_row(row)
            keys[key.id] = key
            period = key.budget.period if key.budget else "total"
            start = row.get("period_start") or 0.0
            spend[key.id] = Spend(row.get("spent_tokens") or 0, row.get("spent_usd") or 0.0, start, period_end(period, start),
                                  row.get("last_used_at"))  # fmt: skip
        with self._lock:
            self._keys, self._spend = keys, spend

    # --- the hot path (event loop) -------------------------------------------------------------

    def identify(self, presented: str, now: float | None = None) -> ClientKey:
        """The key ``presented`` is, if it is one of ours and usable; Unauthorized otherwise."""
        key_id = key_id_of(presented)
        key = self._keys.get(key_id) if key_id else None
        if key is None or not key.matches(presented):
            raise Unauthorized("Invalid proxy API key", code="invalid_api_key")
        if not key.enabled:
            raise Unauthorized(f"The client key {key.label!r} is disabled", code="key_disabled")
        if key.expired(time.time() if now is None else now):
            raise Unauthorized(f"The client key {key.label!r} has expired", code="key_expired")
        return key

    def admit(self, key: ClientKey, requested: str, served: str, now: float | None = None) -> None:
        """Let one turn of ``key`` start, or refuse it. An admitted turn must be ``release``d."""
        if not key.allows(requested, served):
            raise Forbidden(f"The client key {key.label!r} may not use the model '{requested}'", code="model_not_allowed", param="model")
        now = time.time() if now is None else now
        with self._lock:
            spend = self._current(key, now)
            budget = key.budget
            if budget is not None and spend.used(budget.unit) >= budget.limit:
                used = f"${spend.usd:,.4f}" if budget.unit == "usd" else f"{spend.tokens:,} tokens"
                retry = spend.period_end - now if spend.period_end is not None else None
                raise TooManyRequests(f"The client key {key.label!r} has used its {budget.describe()} ({used} used)"
                                      + ("" if retry is None else "; it starts over at the next period"),
                                      code="budget_exceeded", retry_after=retry)  # fmt: skip
            flying = self._in_flight.get(key.id, 0)
            if key.max_concurrency is not None and flying >= key.max_concurrency:
                raise TooManyRequests(f"The client key {key.label!r} already has {flying} request(s) in flight, its limit",
                                      code="concurrency_limit_exceeded", retry_after=1)  # fmt: skip
            self._in_flight[key.id] = flying + 1

    def release(self, key_id: str) -> None:
        with self._lock:
            left = self._in_flight.get(key_id, 0) - 1
            if left > 0:
                self._in_flight[key_id] = left
            else:
                self._in_flight.pop(key_id, None)

    def charge(self, key_id: str, tokens: int, usd: float, now: float | None = None) -> None:
        """Add one turn's use to the key's period and queue the new totals for the disk."""
        now = time.time() if now is None else now
        with self._lock:
            key = self._keys.get(key_id)
            if key is None:
                return  # deleted while the turn ran
            spend = self._current(key, now)
            spend.tokens += tokens
            spend.usd += usd
            spend.last_used_at = now
            row = SpendRow(key_id, spend.tokens, spend.usd, spend.period_start, now)
        self._store.save_spend(row)

    def _current(self, key: ClientKey, now: float) -> Spend:
        """The key's counters, started over when its period has ended (under the lock)."""
        spend = self._spend.get(key.id)
        if spend is None:
            spend = self._spend[key.id] = self._fresh(key, now)
        elif spend.period_end is not None and now >= spend.period_end:
            fresh = self._fresh(key, now)
            fresh.last_used_at = spend.last_used_at
            spend = self._spend[key.id] = fresh
        return spend

    @staticmethod
    def _fresh(key: ClientKey, now: float) -> Spend:
        period = key.budget.period if key.budget else "total"
        start = period_start(period, now)
        return Spend(period_start=start, period_end=period_end(period, start))

    # --- the management API (its threads) ------------------------------------------------------

    def get(self, key_id: str) -> ClientKey | None:
        return self._keys.get(key_id)

    def all(self) -> list[ClientKey]:
        return sorted(self._keys.values(), key=lambda k: k.created_at)

    def put(self, key: ClientKey, *, reset: bool = False, now: float | None = None) -> None:
        """Add or change a key. Its counters start over when asked, or when its budget period changed."""
        now = time.time() if now is None else now
        with self._lock:
            old = self._keys.get(key.id)
            old_period = old.budget.period if old is not None and old.budget else "total"
            new_period = key.budget.period if key.budget else "total"
            self._keys = {**self._keys, key.id: key}
            if reset or old is None or old_period != new_period:
                spend = self._fresh(key, now)
                previous = self._spend.get(key.id)
                spend.last_used_at = previous.last_used_at if previous else None
                self._spend[key.id] = spend
                row = SpendRow(key.id, 0, 0.0, spend.period_start, spend.last_used_at)
            else:
                row = None
        if row is not None:
            self._store.save_spend(row)

    def drop(self, key_id: str) -> None:
        with self._lock:
            self._keys = {k: v for k, v in self._keys.items() if k != key_id}
            self._spend.pop(key_id, None)

    def state(self, key: ClientKey, now: float | None = None) -> dict[str, Any]:
        """The key's live state for the management API: status, what it used, what is in flight."""
        now = time.time() if now is None else now
        with self._lock:
            spend = self._current(key, now)
            flying = self._in_flight.get(key.id, 0)
            used = dict(tokens=spend.tokens, usd=round(spend.usd, 6), period_start=spend.period_start or None,
                        resets_at=spend.period_end, last_used_at=spend.last_used_at)  # fmt: skip
        budget = key.budget
        if not key.enabled:
            status = "disabled"
        elif key.expired(now):
            status = "expired"
        elif budget is not None and (used["usd"] if budget.unit == "usd" else used["tokens"]) >= budget.limit:
            status = "over_budget"
        else:
            status = "active"
        return {**key.public(), "status": status, "spent": used, "in_flight": flying}
