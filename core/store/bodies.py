"""Request and response bodies for the dashboard's log view, kept only while ``logs.capture_bodies``
is on: the client's request (credential members redacted) and the answer as the client received
it, each capped at ``BODY_CAP`` bytes; only the newest ``logs.bodies_kept`` are kept.

``core.gateway.capture.BodyCapture`` copies what passes an exchange's sink; ``BodyLog`` writes from
a thread, like the request log, so nothing here touches the disk on the event loop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.gateway.redaction import redact_json
from core.store.db import Database
from core.store.writer import BatchWriter

BODY_CAP = 256 * 1024


def _text(data: bytes) -> str:
    return data[:BODY_CAP].decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class Captured:
    """One exchange's bodies as they passed; BodyLog's thread redacts and stores them."""

    request_id: str
    ts: float
    request: bytes
    response: bytes
    truncated: bool = False

    def row(self) -> dict[str, Any]:
        shown = redact_json(self.request) or self.request
        cut = self.truncated or len(self.response) > BODY_CAP or len(shown) > BODY_CAP
        return {"request_id": self.request_id, "ts": self.ts, "request": _text(shown), "response": _text(self.response), "truncated": int(cut)}


class BodyLog:
    def __init__(self, db: Database, keep: int = 200) -> None:
        self._db = db
        self.keep = keep  # the config's logs.bodies_kept, set by the owner when it changes
        self._writer: BatchWriter[Captured] = BatchWriter("body-log-writer", self._write)

    def record(self, captured: Captured) -> None:
        """From the event loop: queued only (parsing for redaction and the write happen in the thread)."""
        self._writer.put(captured)

    def get(self, request_id: str) -> dict[str, Any] | None:
        rows = list(self._db.conn()["request_bodies"].rows_where("request_id = ?", [request_id]))
        return rows[0] if rows else None

    def flush(self, timeout: float = 5.0) -> bool:
        return self._writer.flush(timeout)

    def close(self) -> None:
        self._writer.close()

    def _write(self, captured: list[Captured]) -> None:
        rows = [c.row() for c in captured]
        with self._db.transaction() as db:
            db["request_bodies"].insert_all(rows, replace=True)
            db.execute("DELETE FROM request_bodies WHERE ts < (SELECT ts FROM request_bodies ORDER BY ts DESC LIMIT 1 OFFSET ?)",
                       [self.keep - 1])  # fmt: skip
