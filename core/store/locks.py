"""Who may refresh an account's tokens right now (core/accounts/tokens.py's single flight across
processes).

* ``LocalRefreshLocks`` (SQLite, one machine): the write-ahead marker is the lock; whether its
  owner still lives is told by its pid (``exclusive`` is False, so the store asks).
* ``AdvisoryRefreshLocks`` (PostgreSQL, any number of machines): a session-level advisory lock per
  account, taken on one connection of this process before the marker is set and released after
  it is cleared. The server drops it the moment that session ends, so a process killed mid-refresh
  frees the account at once, and a marker whose lock is free was left by a dead process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger(__name__)

NAMESPACE = 0x63707278  # "cprx": the first key of every advisory lock this project takes


class LocalRefreshLocks:
    exclusive = False

    def acquire(self, account_id: str) -> bool:
        return True

    def release(self, account_id: str) -> None:
        return None

    def free(self, account_id: str) -> bool:
        """Nobody holds it: on one machine, the marker's pid decides instead (always True here)."""
        return True

    def close(self) -> None:
        return None


class AdvisoryRefreshLocks:
    exclusive = True

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]]) -> None:
        self._connect = connect
        self._conn: psycopg.Connection[Any] | None = None
        self._held: set[str] = set()
        self._mutex = threading.Lock()

    def _session(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._held:  # the server released them with the old session
                logger.warning("the lock session to PostgreSQL was lost; %d refresh lock(s) went with it", len(self._held))
                self._held.clear()
            self._conn = self._connect()
        return self._conn

    def _try(self, account_id: str) -> bool:
        sql = "SELECT pg_try_advisory_lock(%s::int, hashtext(%s))"
        try:
            row = self._session().execute(sql, (NAMESPACE, account_id)).fetchone()
        except Exception:  # the session broke (a server restart, a cut connection): once more on a new one
            logger.warning("the lock session to PostgreSQL broke; opening another", exc_info=True)
            if self._conn is not None:
                self._conn.close()
            row = self._session().execute(sql, (NAMESPACE, account_id)).fetchone()
        return bool(row and row[0])

    def _unlock(self, account_id: str) -> None:
        self._session().execute("SELECT pg_advisory_unlock(%s::int, hashtext(%s))", (NAMESPACE, account_id))

    def acquire(self, account_id: str) -> bool:
        """Without waiting: True when this process now holds the account's lock."""
        with self._mutex:
            if account_id in self._held:
                return True  # advisory locks stack per session: never take it twice
            if not self._try(account_id):
                return False
            self._held.add(account_id)
            return True

    def release(self, account_id: str) -> None:
        with self._mutex:
            if account_id not in self._held:
                return
            self._held.discard(account_id)
            try:
                self._unlock(account_id)
            except Exception:  # a broken session has released it already
                logger.warning("releasing the refresh lock of %s failed", account_id, exc_info=True)

    def free(self, account_id: str) -> bool:
        """No process holds the account's lock (a marker found now was left by a dead one)."""
        with self._mutex:
            if account_id in self._held or not self._try(account_id):
                return False
            self._unlock(account_id)
            return True

    def close(self) -> None:
        with self._mutex:
            self._held.clear()
            if self._conn is not None:
                self._conn.close()
