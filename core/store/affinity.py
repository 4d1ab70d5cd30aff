"""Session affinity rows (``session_affinity``): which account serves a conversation, so that a
restart — or, on a shared store, another instance that the conversation's next turn reaches —
keeps it there. Written from the pool's writer thread; read at start-up and, on a shared store,
when a turn brings a conversation this instance has not seen (core/accounts/affinity.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from core.store.db import Database

Binding = tuple[str, str, float]  # (conversation digest, account id, expires at)
MOVED = "affinity"  # the topic of core/store/events.py: a conversation bound to another account
PRUNE_EVERY_SECONDS = 3600.0


class AffinityStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._pruned = 0.0

    @property
    def shared(self) -> bool:
        return self._db.shared

    def on_remote_move(self, handler: Callable[[list[Binding]], None]) -> None:
        """``handler(bindings)`` when another instance moved conversations to other accounts."""
        self._db.events.subscribe(MOVED, lambda message: handler([(c, a, float(e)) for c, a, e in message["moved"]]))

    def load(self, now: float, limit: int) -> list[Binding]:
        """The live bindings, the ones that last longest first."""
        rows = self._db.conn()["session_affinity"].rows_where("expires_at > ?", [now], order_by="expires_at DESC", limit=limit)
        return [(row["conversation"], row["account_id"], row["expires_at"]) for row in rows]

    def lookup(self, conversation: str, now: float) -> tuple[str, float] | None:
        rows = list(self._db.conn()["session_affinity"].rows_where("conversation = ? AND expires_at > ?", [conversation, now]))
        return (rows[0]["account_id"], rows[0]["expires_at"]) if rows else None

    def write(self, bindings: list[Binding], moved: list[Binding]) -> None:
        """Store ``bindings``; tell the other instances about ``moved`` (conversations that had
        another account before). Expired rows go once an hour."""
        rows: list[dict[str, Any]] = [{"conversation": c, "account_id": a, "expires_at": e} for c, a, e in bindings]
        now = time.time()
        with self._db.transaction(durable=False) as db:  # a lost binding costs a prompt-cache miss at worst
            db["session_affinity"].upsert_all(rows, pk="conversation")
            if moved:
                self._db.events.publish(db, MOVED, moved=[list(b) for b in moved])
            if now - self._pruned > PRUNE_EVERY_SECONDS:
                db.execute("DELETE FROM session_affinity WHERE expires_at < ?", [now])
                self._pruned = now
