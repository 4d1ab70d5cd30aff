"""Small facts the proxy keeps about itself across restarts, one JSON value per key (table
``client_state``). Blocking: call from threads (``asyncio.to_thread``), not from the loop."""

from __future__ import annotations

import time
from typing import Any

import orjson

from core.store.db import Database


class ClientState:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, key: str) -> dict[str, Any] | None:
        rows = list(self._db.conn().query("select value from client_state where key = ?", [key]))
        if not rows:
            return None
        try:
            value = orjson.loads(rows[0]["value"])
        except orjson.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        with self._db.transaction() as conn:
            conn["client_state"].upsert({"key": key, "value": orjson.dumps(value).decode(), "updated_at": time.time()},
                                        pk="key")
