"""The in-memory account pool: which account serves the next request, and what a failure does to it.

The pool is read on the event loop for every request and written from the dashboard's threads, so
its state sits behind one lock held only for dictionary work; SQLite writes happen on a single
background thread in the order they were made.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from core.accounts.model import Account
from core.codex.errors import UpstreamError
from core.store.accounts import AccountStore

logger = logging.getLogger(__name__)


class AccountPool:
    def __init__(self, store: AccountStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._accounts: dict[str, Account] = {}
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="account-writer")

    def load(self) -> None:
        """Read every account from SQLite (call off the event loop)."""
        accounts = self._store.all()
        with self._lock:
            self._accounts = {a.id: a for a in accounts}

    def all(self) -> list[Account]:
        with self._lock:
            return list(self._accounts.values())

    def get(self, account_id: str) -> Account | None:
        with self._lock:
            return self._accounts.get(account_id)

    def put(self, account: Account) -> None:
        """Adopt an account that the caller has already committed to SQLite."""
        with self._lock:
            self._accounts[account.id] = account

    def remove(self, account_id: str) -> None:
        with self._lock:
            self._accounts.pop(account_id, None)

    def _usable(self, account: Account, now: float) -> bool:
        if account.status == "active":
            return True
        if account.status == "rate_limited" and (account.cooldown_until or 0) <= now:
            account.status = "active"  # its window reset: back in rotation
            account.cooldown_until = None
            self._persist(account)
            return True
        return False

    def choose(self, model: str, exclude: Iterable[str] = ()) -> Account | None:
        """The account to serve ``model`` next: here simply the first usable one."""
        excluded = set(exclude)
        now = time.time()
        with self._lock:
            for account in self._accounts.values():
                if account.id not in excluded and self._usable(account, now):
                    account.last_used_at = now
                    return account
        return None

    def next_available_at(self) -> float | None:
        """When the earliest rate-limited account comes back (for the client's retry hint)."""
        with self._lock:
            times = [a.cooldown_until for a in self._accounts.values() if a.status == "rate_limited" and a.cooldown_until]
        return min(times) if times else None

    def apply_error(self, account: Account, error: UpstreamError, default_backoff: float = 60.0) -> None:
        """Record what an upstream failure says about the account that produced it."""
        effect = error.account_effect
        if effect is None:
            return
        with self._lock:
            if effect in ("rate_limited", "cooldown", "quota_exhausted"):
                until = time.time() + (error.retry_after if error.retry_after else default_backoff)
                # Never shorten a later reset we already know about.
                account.cooldown_until = max(account.cooldown_until or 0, until)
                account.status = "rate_limited"
            elif effect in ("expired", "banned"):
                account.status = effect
            account.last_error = f"{error.status} {error.code}: {error.message}"[:500]
        self._persist(account)

    def _persist(self, account: Account) -> None:
        row = account.to_row()
        self._writer.submit(self._write_state, row)

    def _write_state(self, row: dict) -> None:
        try:
            self._store.update_state(row["id"], {k: row[k] for k in ("status", "cooldown_until", "last_error", "last_used_at")})
        except Exception:
            logger.exception("could not persist account state")

    def close(self) -> None:
        self._writer.shutdown(wait=True)
