"""Proxy rows and account assignments in the store (core/accounts/proxy_pool.py keeps them in memory).

Management changes commit before returning, and tell the other instances sharing the store, which
read the pool again; health results and automatic-mode moves, which happen on the event loop, come
through ``write_changes`` on the pool's writer thread and are not announced (each instance checks
the proxies from where it runs).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from core.accounts.proxies import Proxy
from core.store.db import Database

HEALTH_FIELDS = ("status", "checked_at", "latency_ms", "exit_ip", "last_error")
# A queued change: ("health", proxy id, its health row) or ("assignment", account id, (mode, proxy id)).
Change = tuple[str, str, Any]
CHANGED = "proxies"  # the topic of core/store/events.py: proxies or assignments changed by hand


class ProxyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def subscribe(self, reload: Callable[[], None]) -> None:
        """``reload()`` when another instance changed proxies or assignments (and on every
        reconnection, which may have missed a message). On the store's listener thread."""
        self._db.events.follow(CHANGED, reload)

    def all(self) -> list[Proxy]:
        return [Proxy.from_row(row) for row in self._db.conn()["proxies"].rows_where(order_by="added_at, id")]

    def assignments(self) -> dict[str, tuple[str, str | None]]:
        rows = self._db.conn()["account_proxies"].rows_where(select="account_id, mode, proxy_id")
        return {row["account_id"]: (row["mode"], row["proxy_id"]) for row in rows}

    def save(self, proxies: Iterable[Proxy]) -> None:
        """Insert or replace whole proxies (added, imported, edited), in one commit."""
        with self._db.announcing(CHANGED) as db:
            for proxy in proxies:
                db["proxies"].upsert(proxy.to_row(), pk="id")

    def delete(self, proxy_ids: Iterable[str]) -> None:
        with self._db.announcing(CHANGED) as db:
            for proxy_id in proxy_ids:
                db["proxies"].delete_where("id = ?", [proxy_id])

    def assign(self, assignments: dict[str, tuple[str, str | None]]) -> None:
        """Account id → (mode, proxy id), in one commit; the default mode is no row at all."""
        with self._db.announcing(CHANGED) as db:
            self._assign(db, assignments)

    def write_changes(self, changes: list[Change]) -> None:
        """Health results and automatic moves (the writer thread), in one commit. Rows whose
        proxy or account is gone meanwhile are skipped."""
        with self._db.transaction() as db:
            for kind, key, value in changes:
                if kind == "health" and db["proxies"].count_where("id = ?", [key]):
                    db["proxies"].update(key, {name: value[name] for name in HEALTH_FIELDS})
                elif kind == "assignment":
                    self._assign(db, {key: value})

    @staticmethod
    def _assign(db: Any, assignments: dict[str, tuple[str, str | None]]) -> None:
        now = time.time()
        table = db["account_proxies"]
        for account_id, (mode, proxy_id) in assignments.items():
            if mode == "default":
                table.delete_where("account_id = ?", [account_id])
            elif db["accounts"].count_where("id = ?", [account_id]):
                table.upsert({"account_id": account_id, "mode": mode, "proxy_id": proxy_id, "updated_at": now},
                             pk="account_id")  # fmt: skip
