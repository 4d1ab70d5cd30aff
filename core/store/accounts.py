"""Account rows. Every write commits before returning, so tokens survive a crash.

Token changes follow the refresh protocol of core/accounts/tokens.py: ``claim_refresh`` takes the
account's refresh lock (core/store/locks.py) and commits a write-ahead marker before a refresh
token is sent; ``commit_tokens`` stores the successor and clears the marker in one durable commit,
then lets the lock go. On a shared store every committed change is announced to the other
instances (``on_remote_change``), which reload those rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from core.accounts.model import STATE_FIELDS, Account
from core.store.db import Connection, Database

TOKEN_FIELDS = ("access_token", "refresh_token", "id_token", "expires_at", "plan", "email", "chatgpt_user_id")
CHANGED, REMOVED = "accounts", "accounts_removed"  # the topics of core/store/events.py this module sends


@dataclass(frozen=True, slots=True)
class RefreshClaim:
    """What ``claim_refresh`` found. ``busy``: another live owner is refreshing this account."""

    stored: Account | None
    busy: bool = False
    interrupted_at: float | None = None  # a marker left by an owner that is gone: a refresh died mid-way


class AccountStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._locks = db.refresh_locks

    @property
    def shared(self) -> bool:
        """Other instances use the same accounts at the same time."""
        return self._db.shared

    def on_remote_change(self, changed: Callable[[list[str]], None], removed: Callable[[list[str]], None],
                         reload: Callable[[], None]) -> None:  # fmt: skip
        """From another instance: ``changed(ids)`` after it committed those accounts (reload them),
        ``removed(ids)`` after it deleted some, ``reload()`` when messages may have been missed.
        Called on the store's listener thread; never on a single-instance store."""
        self._db.events.subscribe(CHANGED, lambda message: changed(list(message["ids"])))
        self._db.events.subscribe(REMOVED, lambda message: removed(list(message["ids"])))
        self._db.events.on_connect(reload)

    def _announce(self, db: Connection, ids: list[str], topic: str = CHANGED) -> None:
        if ids:
            self._db.events.publish(db, topic, ids=ids)

    def all(self) -> list[Account]:
        return [Account.from_row(row) for row in self._db.conn()["accounts"].rows_where(order_by="added_at")]

    def get(self, account_id: str) -> Account | None:
        rows = list(self._db.conn()["accounts"].rows_where("id = ?", [account_id]))
        return Account.from_row(rows[0]) if rows else None

    def get_many(self, account_ids: list[str]) -> list[Account]:
        if not account_ids:
            return []
        where = f"id IN ({', '.join('?' * len(account_ids))})"
        return [Account.from_row(row) for row in self._db.conn()["accounts"].rows_where(where, account_ids)]

    def upsert(self, account: Account) -> bool:
        """Insert or replace; returns True when the account was new. Keeps label/added_at of an existing row."""
        with self._db.transaction() as db:
            rows = list(db["accounts"].rows_where("id = ?", [account.id]))
            existing = Account.from_row(rows[0]) if rows else None
            if existing is not None:
                account.added_at = existing.added_at
                account.label = account.label or existing.label
                account.refresh_token = account.refresh_token or existing.refresh_token
                account.id_token = account.id_token or existing.id_token
                account.quota = account.quota or existing.quota
                account.cookies = account.cookies or existing.cookies
            account.updated_at = time.time()
            db["accounts"].upsert(account.to_row(), pk="id")
            self._announce(db, [account.id])
        return existing is None

    def delete(self, account_ids: Iterable[str]) -> list[str]:
        """Remove the given accounts; returns the ids that existed."""
        removed = []
        with self._db.transaction() as db:
            table = db["accounts"]
            for account_id in account_ids:
                if table.count_where("id = ?", [account_id]):
                    table.delete_where("id = ?", [account_id])
                    removed.append(account_id)
            self._announce(db, removed, REMOVED)
        return removed

    def write_states(self, states: dict[str, dict[str, Any]]) -> None:
        """Status fields of several accounts in one commit; never touches tokens."""
        now = time.time()
        written = []
        with self._db.transaction() as db:
            table = db["accounts"]
            for account_id, state in states.items():
                values = {k: v for k, v in state.items() if k in STATE_FIELDS}
                if values and table.count_where("id = ?", [account_id]):
                    table.update(account_id, {**values, "updated_at": now})
                    written.append(account_id)
            self._announce(db, written)

    # --- the refresh protocol -------------------------------------------------------------------

    def claim_refresh(self, account_id: str, owner: str, holder_alive: Callable[[str, float], bool]) -> RefreshClaim:
        """Take the account's refresh lock, read the stored tokens and set the write-ahead marker —
        committed before the caller sends the refresh token. Busy when another process holds the
        lock (PostgreSQL), or a marker whose owner ``holder_alive`` says still runs (SQLite)."""
        if not self._locks.acquire(account_id):
            return RefreshClaim(self.get(account_id), busy=True)
        try:
            with self._db.transaction() as db:
                rows = list(db["accounts"].rows_where("id = ?", [account_id]))
                if not rows:
                    self._locks.release(account_id)
                    return RefreshClaim(None)
                row = rows[0]
                started, holder = row.get("refresh_started_at"), row.get("refresh_owner")
                # Holding an exclusive lock proves a marker of someone else's to be left over.
                if started and holder and holder != owner and not self._locks.exclusive and holder_alive(holder, started):
                    return RefreshClaim(Account.from_row(row), busy=True)
                db["accounts"].update(account_id, {"refresh_started_at": time.time(), "refresh_owner": owner})
        except BaseException:
            self._locks.release(account_id)
            raise
        interrupted = started if started and holder != owner else None
        return RefreshClaim(Account.from_row(row), interrupted_at=interrupted)

    def commit_tokens(self, account_id: str, tokens: dict[str, Any], state: dict[str, Any]) -> None:
        """The successor tokens, durably, in the same commit that clears the marker; then the lock goes."""
        values = {k: v for k, v in tokens.items() if k in TOKEN_FIELDS}
        values.update({k: v for k, v in state.items() if k in STATE_FIELDS})
        values.update(refresh_started_at=None, refresh_owner=None, updated_at=time.time())
        try:
            with self._db.transaction() as db:
                if db["accounts"].count_where("id = ?", [account_id]):
                    db["accounts"].update(account_id, values)
                    self._announce(db, [account_id])
        finally:
            self._locks.release(account_id)

    def release_refresh(self, account_id: str, owner: str, state: dict[str, Any] | None = None) -> None:
        """Clear our marker after a refresh that changed no token (it failed, or was not needed)."""
        values = {k: v for k, v in (state or {}).items() if k in STATE_FIELDS}
        try:
            with self._db.transaction() as db:
                rows = list(db["accounts"].rows_where("id = ? AND refresh_owner = ?", [account_id, owner]))
                if rows:
                    db["accounts"].update(account_id, {**values, "refresh_started_at": None, "refresh_owner": None})
                elif values and db["accounts"].count_where("id = ?", [account_id]):
                    db["accounts"].update(account_id, values)
                if values:
                    self._announce(db, [account_id])
        finally:
            self._locks.release(account_id)

    def abandon_refresh(self, account_id: str) -> None:
        """Let the lock go but keep the marker: a refresh that broke off where its refresh token may
        have been spent (recovery re-presents it)."""
        self._locks.release(account_id)

    def interrupted_refreshes(self, owner: str) -> list[tuple[str, float]]:
        """Accounts whose marker was left by an owner that is gone: (id, when that refresh started).
        (On SQLite every other owner's marker; the claim then asks whether its pid still runs.)"""
        rows = self._db.conn()["accounts"].rows_where(
            "refresh_started_at IS NOT NULL AND (refresh_owner IS NULL OR refresh_owner != ?)", [owner],
            select="id, refresh_started_at",
        )
        return [(row["id"], row["refresh_started_at"]) for row in rows if self._locks.free(row["id"])]
