"""The client keys as the hot path sees them: an in-memory index, spending counters and requests
in flight. Nothing here reads the store per request.

``identify`` runs when a request is routed (its key, expiry, enabled flag: 401 otherwise),
``admit`` when its turn starts (model, budget, concurrency: 403 / 429), ``release`` when the turn
ends however it ends (the exchange's ``finally``: done, failed, client gone, flow killed), and
``charge`` adds what it used. Keys change through ``adopt`` (rows as stored: the management API's
own changes, or another instance's) and ``drop``, which swap the index whole, so the event loop
never sees a half-changed one.

A key's counters are the store's totals as last heard plus what this instance charged and has not
seen committed yet; the increments are written behind by the store's writer thread
(core/store/client_keys.py), and the totals each write returns — this instance's, or another's
sharing the store — replace the stored part. So a budget holds across instances: each one counts
what all of them spent, within about a second. The counters change under a lock (the loop, the
management threads, the writer and the store's listener all touch them).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from core.access.keys import ClientKey, key_id_of, period_end, period_start
from core.protocols.base import Forbidden, TooManyRequests, Unauthorized
from core.store.client_keys import ClientKeyStore, Period, SpendDelta, SpendTotals


@dataclass(slots=True)
class Spend:
    """What a key used in its current budget period (both units, whichever its budget counts): the
    store's totals as last heard, plus what this instance charged that they do not hold yet."""

    period_start: float = 0.0
    period_end: float | None = None  # when the counters start over; None: never
    restarts: int = 0  # the store's restarts of the key this period follows
    version: int = -1  # the store's spend_version of the totals below
    stored_tokens: int = 0
    stored_usd: float = 0.0
    own_tokens: int = 0  # charged here, not yet in the stored totals
    own_usd: float = 0.0
    last_used_at: float | None = None

    @property
    def tokens(self) -> int:
        return self.stored_tokens + self.own_tokens

    @property
    def usd(self) -> float:
        return self.stored_usd + self.own_usd

    @property
    def period(self) -> Period:
        return self.restarts, self.period_start

    def used(self, unit: str) -> float:
        return self.usd if unit == "usd" else self.tokens

    def start(self, key: ClientKey, restarts: int, start: float) -> None:
        """Begin the period that began at ``start``: nothing counted in it yet."""
        self.restarts, self.period_start, self.period_end = restarts, start, period_end(key.period, start)
        self.stored_tokens, self.stored_usd, self.own_tokens, self.own_usd = 0, 0.0, 0, 0.0


class KeyGuard:
    def __init__(self, store: ClientKeyStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._keys: dict[str, ClientKey] = {}
        self._spend: dict[str, Spend] = {}
        self._in_flight: dict[str, int] = {}
        store.on_written(self._written)
        self.load()

    def load(self) -> None:
        """Every key and its counters as stored (start-up, or listening restarted: blocking, off the loop)."""
        self.adopt(self._store.all(), whole=True)

    def adopt(self, rows: list[dict[str, Any]], *, whole: bool = False) -> None:
        """Keys as the store holds them now: their settings replace this instance's, their counters
        are taken where newer. ``whole``: every key there is (the others are gone)."""
        keys = [ClientKey.from_row(row) for row in rows]
        with self._lock:
            index = {} if whole else dict(self._keys)
            for key, row in zip(keys, rows):
                index[key.id] = key
                self._take(key, SpendTotals.of(row))
            for gone in set(self._spend) - set(index):
                del self._spend[gone]
            self._keys = index  # swapped whole: the loop reads it without the lock

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
        """Add one turn's use to the key's period and queue it for the store."""
        now = time.time() if now is None else now
        with self._lock:
            key = self._keys.get(key_id)
            if key is None:
                return  # deleted while the turn ran
            spend = self._current(key, now)
            spend.own_tokens += tokens
            spend.own_usd += usd
            spend.last_used_at = now
            delta = SpendDelta(key_id, tokens, usd, spend.period_start, now, spend.restarts)
        self._store.save_spend(delta)

    def _current(self, key: ClientKey, now: float) -> Spend:
        """The key's counters, started over when its period has ended (under the lock)."""
        spend = self._spend.get(key.id)
        if spend is None:
            spend = self._spend[key.id] = Spend()
            spend.start(key, 0, period_start(key.period, now))
        elif spend.period_end is not None and now >= spend.period_end:
            spend.start(key, spend.restarts, period_start(key.period, now))
        return spend

    # --- what the store holds (the writer's and the listener's threads) ----------------------------

    def _take(self, key: ClientKey, stored: SpendTotals) -> None:
        """Stored totals, if newer than those this instance has (under the lock)."""
        spend = self._spend.get(key.id)
        if spend is None:
            spend = self._spend[key.id] = Spend()
            spend.start(key, stored.restarts, stored.period_start)
        elif stored.version <= spend.version:
            return
        elif stored.period > spend.period:  # restarted, or the next period begun elsewhere: what this one charged before is over
            spend.start(key, stored.restarts, stored.period_start)
        spend.version = stored.version
        spend.last_used_at = max(spend.last_used_at or 0.0, stored.last_used_at or 0.0) or None
        if stored.period == spend.period:  # (earlier: this instance has begun the next period already)
            spend.stored_tokens, spend.stored_usd = stored.tokens, stored.usd

    def take(self, totals: list[SpendTotals]) -> None:
        """Counters another instance wrote."""
        with self._lock:
            for stored in totals:
                if (key := self._keys.get(stored.key_id)) is not None:
                    self._take(key, stored)

    def _written(self, written: list[tuple[SpendDelta, SpendTotals]]) -> None:
        """This instance's charges are committed: the stored totals hold them now. (Between the
        commit and this call, totals another instance wrote after it may count them twice here:
        for that moment the key looks a little more spent, never less.)"""
        with self._lock:
            for delta, stored in written:
                spend, key = self._spend.get(delta.key_id), self._keys.get(delta.key_id)
                if spend is None or key is None:
                    continue
                if delta.period == spend.period:
                    spend.own_tokens = max(0, spend.own_tokens - delta.tokens)
                    spend.own_usd = max(0.0, spend.own_usd - delta.usd)
                self._take(key, stored)

    # --- the management API (its threads) ------------------------------------------------------

    def get(self, key_id: str) -> ClientKey | None:
        return self._keys.get(key_id)

    def all(self) -> list[ClientKey]:
        return sorted(self._keys.values(), key=lambda k: k.created_at)

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
