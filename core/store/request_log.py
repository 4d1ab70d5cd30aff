"""The request/usage log: rows are queued from the event loop and written in batches by a thread."""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

from core.store.db import Database

logger = logging.getLogger(__name__)

_STOP = object()


class RequestLog:
    """``record`` never touches the disk; a daemon thread commits what piled up every ``interval``."""

    def __init__(self, db: Database, interval: float = 0.25, batch: int = 1000) -> None:
        self._db = db
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._interval = interval
        self._batch = batch
        self._flushed = threading.Condition()
        self._pending = 0
        self._thread = threading.Thread(target=self._run, name="request-log-writer", daemon=True)
        self._thread.start()

    def record(self, row: dict[str, Any]) -> None:
        with self._flushed:
            self._pending += 1
        self._queue.put(row)

    def flush(self, timeout: float = 5.0) -> bool:
        """Block until every recorded row is committed (for shutdown and tests, never on the loop)."""
        with self._flushed:
            return self._flushed.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            rows: list[dict[str, Any]] = []
            try:
                item = self._queue.get(timeout=self._interval)
            except queue.Empty:
                continue
            while True:
                if item is _STOP:
                    stopping = True
                else:
                    rows.append(item)
                if len(rows) >= self._batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if rows:
                self._write(rows)

    def _write(self, rows: list[dict[str, Any]]) -> None:
        try:
            self._db.conn()["request_log"].insert_all(rows, alter=True)
        except Exception:  # a broken log write must never take the proxy down
            logger.exception("request log write failed (%d rows dropped)", len(rows))
        with self._flushed:
            self._pending -= len(rows)
            self._flushed.notify_all()
