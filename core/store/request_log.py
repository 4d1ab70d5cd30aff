"""The request/usage log: rows are queued from the event loop and written in batches by a thread,
and read back for the usage statistics and the log view of the management API. On a shared store
(PostgreSQL) every instance writes to, and reads, the same log."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from core.store.db import Database
from core.store.writer import BatchWriter

logger = logging.getLogger(__name__)

LOG_COLUMNS = ("id", "ts", "request_id", "account_id", "protocol", "path", "model", "requested_model", "stream",
               "status", "error", "input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens", "ttfb_ms",
               "duration_ms", "attempts", "key_id", "cost_usd", "cost_basis", "provider")  # fmt: skip
_TOTALS = """
    COUNT(*) AS requests,
    SUM(CASE WHEN status >= 200 AND status < 400 THEN 1 ELSE 0 END) AS succeeded,
    SUM(CASE WHEN status >= 400 OR status = 0 THEN 1 ELSE 0 END) AS failed,
    COALESCE(SUM(input_tokens), 0) AS input_tokens,
    COALESCE(SUM(output_tokens), 0) AS output_tokens,
    COALESCE(SUM(cached_tokens), 0) AS cached_tokens,
    COALESCE(SUM(reasoning_tokens), 0) AS reasoning_tokens,
    COALESCE(SUM(cost_usd), 0) AS cost_usd,
    COALESCE(SUM(CASE WHEN cost_basis = 'api_equivalent' THEN cost_usd END), 0) AS api_equivalent_usd
"""
NO_KEY = "none"  # the ?key_id= value for requests made with the proxy key (or with no key)


def scope(since: float | None, key_id: str | None = None, until: float | None = None) -> tuple[str, list[Any]]:
    """A WHERE clause (or "") for rows from ``since`` up to ``until`` made with client key
    ``key_id`` (``NO_KEY``: with none), and its parameters."""
    clauses, params = [], []
    if since:
        clauses.append("ts >= ?")
        params.append(since)
    if until is not None:
        clauses.append("ts < ?")
        params.append(until)
    if key_id == NO_KEY:
        clauses.append("key_id IS NULL")
    elif key_id:
        clauses.append("key_id = ?")
        params.append(key_id)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


BUCKETS = {"five_min": 300, "hourly": 3600, "daily": 86400}  # the usage API's ?granularity= values
SWEEP_FIRST_SECONDS = 60.0  # not during start-up
SWEEP_EVERY_SECONDS = 3600.0
LINGER_SECONDS = 0.25  # rows wait at most this long, so a busy proxy commits a few times a second


def bucket_start(size: int) -> str:
    """The start of a row's time bucket, as SQL (FLOOR: PostgreSQL's CAST rounds, SQLite's truncates)."""
    return f"CAST(FLOOR(ts / {size}) AS INTEGER) * {size} AS bucket_start"


_INSERT = f"INSERT INTO request_log ({', '.join(LOG_COLUMNS[1:])}) VALUES ({', '.join('?' * len(LOG_COLUMNS[1:]))})"


class RequestLog:
    """``record`` never touches the disk; a daemon thread commits what piled up, and another drops
    rows older than ``logs.retention_days`` once an hour (0 or less: keep everything)."""

    def __init__(self, db: Database, retention_days: Callable[[], float] = lambda: 0) -> None:
        self._db = db
        self._writer: BatchWriter[dict[str, Any]] = BatchWriter("request-log-writer", self._write, linger=LINGER_SECONDS)
        self._retention_days = retention_days
        self._stop = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep, name="request-log-retention", daemon=True)
        self._sweeper.start()

    def record(self, row: dict[str, Any]) -> None:
        self._writer.put(row)

    def flush(self, timeout: float = 5.0) -> bool:
        """Block until every recorded row is committed (for shutdown and tests, never on the loop)."""
        return self._writer.flush(timeout)

    def close(self) -> None:
        self._stop.set()
        self._writer.close()

    def prune(self, before: float) -> int:
        """Delete the rows logged before ``before`` (unix time); how many went."""
        with self._db.transaction(durable=False) as db:
            return int(db.execute("DELETE FROM request_log WHERE ts < ?", [before]).rowcount)

    def _sweep(self) -> None:
        delay = SWEEP_FIRST_SECONDS
        while not self._stop.wait(delay):
            delay = SWEEP_EVERY_SECONDS
            days = self._retention_days()
            if days and days > 0:
                try:
                    self.prune(time.time() - days * 86400)
                except Exception:  # a failed sweep is retried next hour; it must not end the thread
                    logger.exception("request log retention sweep failed")

    def _write(self, rows: list[dict[str, Any]]) -> None:
        # One prepared statement for the batch; the log need not reach the disk per commit (the
        # accounts' commits stay durable on their own connections).
        with self._db.transaction(durable=False) as db:
            db.executemany(_INSERT, [tuple(row.get(column) for column in LOG_COLUMNS[1:]) for row in rows])

    # --- reading (control-plane threads) -----------------------------------------------------------

    def summary(self, since: float | None = None, key_id: str | None = None) -> dict[str, Any]:
        """Totals, and the same per account, per model and per client key, for rows newer than
        ``since`` (made with client key ``key_id``, when given)."""
        where, params = scope(since, key_id)
        db = self._db.conn()

        def rows(group: str) -> list[dict[str, Any]]:
            sql = f"SELECT {group} AS key, {_TOTALS} FROM request_log {where} GROUP BY {group} ORDER BY requests DESC"
            return [dict(r) for r in db.query(sql, params)]

        totals = next(iter(db.query(f"SELECT {_TOTALS} FROM request_log {where}", params)))
        return {
            "since": since,
            "totals": {k: v or 0 for k, v in dict(totals).items()},
            "by_account": rows("account_id"),
            "by_model": rows("model"),
            "by_key": rows("key_id"),
        }

    def history(self, since: float, bucket: str = "hourly", until: float | None = None, key_id: str | None = None) -> list[dict[str, Any]]:
        """Totals per time bucket (``five_min`` | ``hourly`` | ``daily``), oldest first, empty ones left out."""
        size = BUCKETS[bucket]
        where, params = scope(since, key_id, time.time() if until is None else until)
        sql = (f"SELECT {bucket_start(size)}, {_TOTALS} FROM request_log "
               f"{where} GROUP BY bucket_start ORDER BY bucket_start")
        return [dict(r) for r in self._db.conn().query(sql, params)]
