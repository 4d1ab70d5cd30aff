"""Dashboard login sessions and the failed-login limiter.

Both live in memory: a restart logs every browser out, which costs a page load on this machine
and a password on others. Nothing here reads a request; dashboard/gate.py does.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

MAX_SESSIONS = 2000  # beyond this the oldest go first (a bound on memory, not a policy)
MAX_TRACKED_ADDRESSES = 10_000


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    csrf: str  # sent back by the page in X-CSRF-Token on every change
    expires_at: float
    local: bool  # opened without a password by a browser on this machine


class SessionStore:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        self._next_prune = 0.0

    def create(self, ttl_seconds: float, *, local: bool) -> Session:
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(24), self._clock() + ttl_seconds, local)
        with self._lock:
            self._sessions[session.id] = session
            while len(self._sessions) > MAX_SESSIONS:
                del self._sessions[next(iter(self._sessions))]
        return session

    def get(self, session_id: str | None, prune_every: float = 1800.0) -> Session | None:
        if not session_id:
            return None
        now = self._clock()
        with self._lock:
            if now >= self._next_prune:
                self._next_prune = now + prune_every
                for stale in [s.id for s in self._sessions.values() if s.expires_at <= now]:
                    del self._sessions[stale]
            session = self._sessions.get(session_id)
            if session is not None and session.expires_at <= now:
                del self._sessions[session_id]
                return None
            return session

    def drop(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def clear(self, keep: str | None = None) -> None:
        """Everyone out but ``keep`` (the password or the key changed)."""
        with self._lock:
            self._sessions = {sid: s for sid, s in self._sessions.items() if sid == keep}


class LoginLimiter:
    """At most ``attempts`` failed logins per client address in a sliding ``window``."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}

    def wait(self, address: str, attempts: int, window: float) -> float:
        """Seconds until ``address`` may try again (0: it may now)."""
        now = self._clock()
        with self._lock:
            failures = self._recent(address, now, window)
            if failures is None or len(failures) < attempts:
                return 0.0
            return max(0.0, failures[-attempts] + window - now)

    def failed(self, address: str, window: float) -> None:
        now = self._clock()
        with self._lock:
            failures = self._recent(address, now, window)
            if failures is None:
                if len(self._failures) >= MAX_TRACKED_ADDRESSES:
                    self._forget_idle(now, window)
                failures = self._failures[address] = deque()
            failures.append(now)

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)

    def _recent(self, address: str, now: float, window: float) -> deque[float] | None:
        failures = self._failures.get(address)
        while failures and failures[0] <= now - window:
            failures.popleft()
        return failures

    def _forget_idle(self, now: float, window: float) -> None:
        for address in [a for a, f in self._failures.items() if not f or f[-1] <= now - window]:
            del self._failures[address]
