"""Which of a provider's keys serves the next call, and what an answer does to a key.

Keys rotate: the usable key used longest ago goes next, so load spreads evenly. A key the provider
rate-limits (429) rests until its ``Retry-After`` (or ``providers.key_cooldown_seconds``) like an
account in cooldown; one it refuses (401, 403) turns ``invalid`` and is skipped until someone
re-enables it. State lives on the ``ProviderKey`` objects the registry holds; every change is
handed to ``persist`` (the key-state writer thread).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from core.providers.model import Provider, ProviderKey

# How an upstream answer affects the key that got it.
KEY_OK = "ok"
KEY_RATE_LIMITED = "rate_limited"
KEY_REFUSED = "refused"
KEY_FAILED = "failed"  # a server error or a broken connection: the key is not to blame


class KeyRing:
    """Key choice for every provider; one lock, held only for list work."""

    def __init__(self, persist: Callable[[ProviderKey], None], cooldown_seconds: Callable[[], float]) -> None:
        self._persist = persist
        self._cooldown = cooldown_seconds
        self._lock = threading.Lock()

    def usable(self, provider: Provider, now: float | None = None) -> list[ProviderKey]:
        now = time.time() if now is None else now
        return [k for k in provider.keys if k.status == "active" and not (k.cooldown_until and k.cooldown_until > now)]

    def choose(self, provider: Provider, excluded: set[str]) -> ProviderKey | None:
        """The usable key used longest ago (never-used first), not in ``excluded``; marks it used."""
        with self._lock:
            now = time.time()
            candidates = [k for k in self.usable(provider, now) if k.id not in excluded]
            if not candidates:
                return None
            key = min(candidates, key=lambda k: (k.last_used_at or 0.0, k.added_at))
            key.last_used_at = now
            key.requests += 1
        self._persist(key)
        return key

    def record(self, key: ProviderKey, outcome: str, message: str | None = None, retry_after: float | None = None) -> None:
        with self._lock:
            if outcome == KEY_OK:
                if key.last_error is None and key.cooldown_until is None:
                    return
                key.last_error, key.cooldown_until = None, None
            elif outcome == KEY_RATE_LIMITED:
                key.failures += 1
                key.cooldown_until = time.time() + (retry_after if retry_after and retry_after > 0 else self._cooldown())
                key.last_error = message
            elif outcome == KEY_REFUSED:
                key.failures += 1
                key.status, key.last_error = "invalid", message
            else:
                key.failures += 1
                key.last_error = message
        self._persist(key)

    def soonest_back(self, provider: Provider) -> float | None:
        """When the first rate-limited key may serve again (None: no key is resting)."""
        now = time.time()
        waits = [k.cooldown_until for k in provider.keys if k.status == "active" and k.cooldown_until and k.cooldown_until > now]
        return min(waits) if waits else None
