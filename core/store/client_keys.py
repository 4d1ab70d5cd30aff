"""Client key rows in the store (core/access). Settings change from the management API's threads and
commit at once; the spending counters change per request on the event loop, so they are queued
and written by a thread, only the latest state of each key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.store.db import Database
from core.store.writer import BatchWriter

LINGER_SECONDS = 0.5  # a crash loses at most this much of the keys' spending
SETTING_COLUMNS = ("label", "expires_at", "enabled", "allowed_models", "budget_limit", "budget_unit", "budget_period",
                   "max_concurrency")  # fmt: skip


@dataclass(frozen=True, slots=True)
class SpendRow:
    key_id: str
    spent_tokens: int
    spent_usd: float
    period_start: float
    last_used_at: float | None


class ClientKeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._writer: BatchWriter[SpendRow] = BatchWriter("client-key-spend-writer", self._write_spend, key=lambda row: row.key_id,
                                                          linger=LINGER_SECONDS)  # fmt: skip

    def all(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self._db.conn()["client_keys"].rows_where(order_by="created_at")]

    def insert(self, row: dict[str, Any]) -> None:
        with self._db.transaction() as db:
            db["client_keys"].insert(row)

    def update_settings(self, row: dict[str, Any]) -> bool:
        """Store a key's settings (its counters stay as they are); False when it is gone."""
        values = [row[column] for column in SETTING_COLUMNS]
        sql = f"UPDATE client_keys SET {', '.join(f'{c} = ?' for c in SETTING_COLUMNS)} WHERE id = ?"
        with self._db.transaction() as db:
            return db.execute(sql, [*values, row["id"]]).rowcount > 0

    def delete(self, key_id: str) -> bool:
        with self._db.transaction() as db:
            return db.execute("DELETE FROM client_keys WHERE id = ?", [key_id]).rowcount > 0

    def save_spend(self, row: SpendRow) -> None:
        """From any thread (the event loop included): queued, never written here."""
        self._writer.put(row)

    def flush(self, timeout: float = 5.0) -> bool:
        return self._writer.flush(timeout)

    def close(self) -> None:
        self._writer.close()

    def _write_spend(self, rows: list[SpendRow]) -> None:
        # Counters, not credentials: no fsync per commit (durable=False), and a busy key costs one
        # write per LINGER_SECONDS, not one per request.
        with self._db.transaction(durable=False) as db:
            db.executemany("UPDATE client_keys SET spent_tokens = ?, spent_usd = ?, period_start = ?, last_used_at = ? WHERE id = ?",
                           [(r.spent_tokens, r.spent_usd, r.period_start, r.last_used_at, r.key_id) for r in rows])  # fmt: skip
