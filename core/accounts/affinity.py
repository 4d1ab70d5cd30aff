"""Session affinity's memory: conversation → the account that served it, so its next turn goes
there too while that account can serve (the backend's prompt cache keeps hitting).

Read on the event loop for every turn, so it lives in memory (least recently used out first,
entries expire); the pool's writer thread copies it to the store (core/store/affinity.py):

* a new conversation, or one that moved to another account, is written at once; a move is also
  announced to the other instances sharing the store, which update their copy (``learn``);
* each turn extends a conversation's life in memory; the store hears of it again when its stored
  expiry has used up half the TTL;
* on a shared store, a conversation this instance has not seen is looked up in the store before
  the turn chooses (``AccountPool.recall``, off the loop): its earlier turns went elsewhere.

Conversations are keyed by a digest of the client's key: the store holds no client text.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

LIMIT = 20_000


def digest(conversation_key: str) -> str:
    return hashlib.sha256(conversation_key.encode()).hexdigest()[:32]


@dataclass(slots=True)
class _Entry:
    account_id: str
    expires_at: float
    stored_until: float  # the expiry the store holds


class Affinity:
    """Not thread-safe: the pool calls it under its lock."""

    def __init__(self) -> None:
        self._map: OrderedDict[str, _Entry] = OrderedDict()

    def get(self, conversation: str, now: float) -> str | None:
        entry = self._map.get(conversation)
        if entry is None or entry.expires_at <= now:
            return None
        self._map.move_to_end(conversation)
        return entry.account_id

    def bind(self, conversation: str, account_id: str, expires_at: float, ttl: float) -> tuple[bool, bool]:
        """Keep ``conversation`` on ``account_id`` until ``expires_at``. Returns (store it, it
        moved from another account)."""
        entry = self._map.get(conversation)
        moved = entry is not None and entry.account_id != account_id
        store = entry is None or moved or entry.stored_until - (expires_at - ttl) < ttl / 2
        if entry is None:
            entry = self._map[conversation] = _Entry(account_id, expires_at, expires_at)
        entry.account_id, entry.expires_at = account_id, expires_at
        if store:
            entry.stored_until = expires_at
        self._map.move_to_end(conversation)
        self._trim()
        return store, moved

    def learn(self, conversation: str, account_id: str, expires_at: float, *, known_only: bool) -> None:
        """A binding from the store: a lookup (``known_only`` False) or another instance's move
        (True: only conversations this instance holds need it; the rest are looked up if they come)."""
        entry = self._map.get(conversation)
        if entry is None:
            if known_only:
                return
            entry = self._map[conversation] = _Entry(account_id, expires_at, expires_at)
        entry.account_id, entry.expires_at, entry.stored_until = account_id, expires_at, expires_at
        self._map.move_to_end(conversation)
        self._trim()

    def forget(self, account_ids: set[str]) -> None:
        for key in [k for k, entry in self._map.items() if entry.account_id in account_ids]:
            del self._map[key]

    def _trim(self) -> None:
        while len(self._map) > LIMIT:
            self._map.popitem(last=False)
