"""Account rows in SQLite. Every write commits before returning, so tokens survive a crash."""

from __future__ import annotations

import time

from core.accounts.model import Account
from core.store.db import Database


class AccountStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def all(self) -> list[Account]:
        return [Account.from_row(row) for row in self._db.conn()["accounts"].rows_where(order_by="added_at")]

    def get(self, account_id: str) -> Account | None:
        rows = list(self._db.conn()["accounts"].rows_where("id = ?", [account_id]))
        return Account.from_row(rows[0]) if rows else None

    def upsert(self, account: Account) -> bool:
        """Insert or replace; returns True when the account was new. Keeps label/added_at of an existing row."""
        existing = self.get(account.id)
        if existing is not None:
            account.added_at = existing.added_at
            account.label = account.label or existing.label
            account.refresh_token = account.refresh_token or existing.refresh_token
            account.id_token = account.id_token or existing.id_token
        account.updated_at = time.time()
        self._db.conn()["accounts"].upsert(account.to_row(), pk="id")
        return existing is None

    def delete(self, account_id: str) -> bool:
        table = self._db.conn()["accounts"]
        before = table.count_where("id = ?", [account_id])
        table.delete_where("id = ?", [account_id])
        return before > 0

    def update_state(self, account_id: str, state: dict) -> None:
        """Status fields only; never touches tokens (those change through ``upsert``)."""
        table = self._db.conn()["accounts"]
        if table.count_where("id = ?", [account_id]):
            table.update(account_id, {**state, "updated_at": time.time()})
