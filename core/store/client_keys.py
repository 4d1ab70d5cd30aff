"""Client key rows in the store (core/access). Settings change from the management API's threads and
commit at once; the spending counters change per request on the event loop, so what each key used
is queued and added by a thread.

Several instances may serve one key (a shared store), so spending is written as increments: each
instance adds what it charged since its last write (``spent_tokens = spent_tokens + ?``) and none
overwrites another's. Every write returns the key's new totals and, in the same commit, sends them
to the other instances; a settings change, a restart (reset, new budget period) or a deletion
tells them to read the key again or drop it.

Two counters order what instances hear: ``spend_version`` grows with every write of a key's
counters (of two totals, the higher version is the newer), ``spend_restarts`` with every restart
(an increment charged before a restart the instance had not heard of is dropped, as it would have
been on that instance).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import astuple, dataclass, replace
from typing import Any

from core.store.db import Connection, Database
from core.store.writer import BatchWriter

LINGER_SECONDS = 0.5  # a crash loses at most this much of the keys' spending
SETTING_COLUMNS = ("label", "expires_at", "enabled", "allowed_models", "budget_limit", "budget_unit", "budget_period",
                   "max_concurrency")  # fmt: skip
CHANGED, REMOVED, SPENT = "client_keys", "client_keys_removed", "client_keys_spent"  # topics of core/store/events.py
Period = tuple[int, float]  # (restarts, period start): of two, the greater is the later period

# An increment counts in the stored period it was charged in; one for a later period (the budget's
# new day or month) starts the counters over at it; one for an earlier period, or from before a
# restart, is dropped. Both dialects read the old row in every SET expression.
_STALE = "spend_restarts > :restarts OR period_start > :start"
_ADD = f"""UPDATE client_keys SET
  spent_tokens = CASE WHEN {_STALE} THEN spent_tokens WHEN period_start = :start THEN spent_tokens + :tokens ELSE :tokens END,
  spent_usd = CASE WHEN {_STALE} THEN spent_usd WHEN period_start = :start THEN spent_usd + :usd ELSE :usd END,
  period_start = CASE WHEN {_STALE} THEN period_start ELSE :start END,
  last_used_at = CASE WHEN last_used_at > :used THEN last_used_at ELSE :used END,
  spend_version = spend_version + 1
WHERE id = :id
RETURNING id, spent_tokens, spent_usd, period_start, last_used_at, spend_version, spend_restarts"""
_RESTART = "spent_tokens = 0, spent_usd = 0, period_start = ?, spend_version = spend_version + 1, spend_restarts = spend_restarts + 1"


@dataclass(frozen=True, slots=True)
class SpendDelta:
    """What one instance charged a key since its last write, and the period it counted in."""

    key_id: str
    tokens: int
    usd: float
    period_start: float
    last_used_at: float
    restarts: int = 0  # the key's restarts the instance knew of when it charged

    @property
    def period(self) -> Period:
        return self.restarts, self.period_start

    def merged(self, newer: SpendDelta) -> SpendDelta:
        """Both in one write. Of two periods the later wins: what counted in the earlier is over."""
        last_used = max(self.last_used_at, newer.last_used_at)
        if self.period != newer.period:
            return replace(max(self, newer, key=lambda delta: delta.period), last_used_at=last_used)
        return replace(newer, tokens=self.tokens + newer.tokens, usd=self.usd + newer.usd, last_used_at=last_used)


@dataclass(frozen=True, slots=True)
class SpendTotals:
    """A key's counters as stored."""

    key_id: str
    tokens: int
    usd: float
    period_start: float
    last_used_at: float | None
    version: int  # spend_version: the higher of two totals is the newer
    restarts: int

    @property
    def period(self) -> Period:
        return self.restarts, self.period_start

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> SpendTotals:
        return cls(row["id"], row.get("spent_tokens") or 0, row.get("spent_usd") or 0.0, row.get("period_start") or 0.0,
                   row.get("last_used_at"), row.get("spend_version") or 0, row.get("spend_restarts") or 0)  # fmt: skip


Written = Callable[[list[tuple[SpendDelta, SpendTotals]]], None]


class ClientKeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._written: Written = lambda written: None
        self._writer: BatchWriter[SpendDelta] = BatchWriter("client-key-spend-writer", self._write_spend, key=lambda d: d.key_id,
                                                            merge=SpendDelta.merged, linger=LINGER_SECONDS)  # fmt: skip

    def on_remote_change(self, changed: Callable[[list[str]], None], removed: Callable[[list[str]], None],
                         spent: Callable[[list[SpendTotals]], None], reload: Callable[[], None]) -> None:  # fmt: skip
        """From another instance, on the store's listener thread: ``changed(ids)`` after it changed
        or restarted those keys (read them again), ``removed(ids)`` after it deleted some,
        ``spent(totals)`` after it added to their counters, ``reload()`` when messages may have
        been missed. Never called on a single-instance store."""
        events = self._db.events
        events.subscribe(CHANGED, lambda message: changed(list(message["ids"])))
        events.subscribe(REMOVED, lambda message: removed(list(message["ids"])))
        events.subscribe(SPENT, lambda message: spent([SpendTotals(*values) for values in message["totals"]]))
        events.on_connect(reload)

    def on_written(self, handler: Written) -> None:
        """``handler([(increment, totals after it)])`` on the writer thread, after each commit."""
        self._written = handler

    def all(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self._db.conn()["client_keys"].rows_where(order_by="created_at")]

    def get_many(self, key_ids: list[str]) -> list[dict[str, Any]]:
        where = f"id IN ({', '.join('?' * len(key_ids))})"
        return [dict(row) for row in self._db.conn()["client_keys"].rows_where(where, key_ids)] if key_ids else []

    def insert(self, row: dict[str, Any]) -> None:
        with self._db.transaction() as db:
            db["client_keys"].insert(row)
            self._db.events.publish(db, CHANGED, ids=[row["id"]])

    def update_settings(self, row: dict[str, Any], restart_at: float | None = None) -> dict[str, Any] | None:
        """Store a key's settings; its counters stay as they are, or restart in a period that
        began at ``restart_at`` (its budget period changed). The row as stored; None when it is gone."""
        return self._update(row["id"], [f"{c} = ?" for c in SETTING_COLUMNS], [row[c] for c in SETTING_COLUMNS], restart_at)

    def restart(self, key_id: str, period_start: float) -> dict[str, Any] | None:
        """The key's counters start over (a reset), in a period that began at ``period_start``."""
        return self._update(key_id, [], [], period_start)

    def _update(self, key_id: str, sets: list[str], values: list[Any], restart_at: float | None) -> dict[str, Any] | None:
        if restart_at is not None:
            sets, values = [*sets, _RESTART], [*values, restart_at]
        with self._db.transaction() as db:
            rows = list(db.query(f"UPDATE client_keys SET {', '.join(sets)} WHERE id = ? RETURNING *", [*values, key_id]))
            if rows:
                self._db.events.publish(db, CHANGED, ids=[key_id])
        return dict(rows[0]) if rows else None

    def delete(self, key_id: str) -> bool:
        with self._db.transaction() as db:
            gone = db.execute("DELETE FROM client_keys WHERE id = ?", [key_id]).rowcount > 0
            if gone:
                self._db.events.publish(db, REMOVED, ids=[key_id])
        return gone

    def save_spend(self, delta: SpendDelta) -> None:
        """From any thread (the event loop included): queued, never written here."""
        self._writer.put(delta)

    def flush(self, timeout: float = 5.0) -> bool:
        return self._writer.flush(timeout)

    def close(self) -> None:
        self._writer.close()

    def _write_spend(self, deltas: list[SpendDelta]) -> None:
        # Counters, not credentials: no fsync per commit (durable=False), and a busy key costs one
        # write per LINGER_SECONDS, not one per request.
        with self._db.transaction(durable=False) as db:
            written = [(delta, totals) for delta in deltas if (totals := _add(db, delta)) is not None]
            if written:
                self._db.events.publish(db, SPENT, totals=[list(astuple(totals)) for _, totals in written])
        self._written(written)


def _add(db: Connection, delta: SpendDelta) -> SpendTotals | None:
    """Add one increment; the key's totals after it (None: the key is gone)."""
    params = {"id": delta.key_id, "tokens": delta.tokens, "usd": float(delta.usd), "start": float(delta.period_start),
              "used": float(delta.last_used_at), "restarts": delta.restarts}  # fmt: skip
    rows = list(db.query(_ADD, params))
    return SpendTotals.of(rows[0]) if rows else None
