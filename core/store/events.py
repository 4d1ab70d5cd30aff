"""What one instance tells the others that share its database: an account changed or went away, a
conversation moved to another account, a client key changed or spent, the proxy pool changed.

A store module publishes inside the transaction that made the change, so the message goes out
exactly when the change is committed (PostgreSQL's NOTIFY is transactional) and never for a change
rolled back. ``Events`` is the single-instance case (SQLite): nobody else to tell, so publishing
does nothing. ``PgEvents`` sends NOTIFY and keeps a thread LISTENing on a connection of its own;
handlers run on that thread (never on the event loop), and every (re)connection first calls the
``on_connect`` handlers, which reload what might have been missed while nobody listened.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger(__name__)

CHANNEL = "codex_proxy"
PAYLOAD_LIMIT = 7900  # NOTIFY's limit is 8000 bytes; longer lists are sent in several messages
Handler = Callable[[dict[str, Any]], None]


class Events:
    """No other instance: ``publish`` is a no-op and handlers are kept but never called."""

    def __init__(self) -> None:
        self.instance = uuid.uuid4().hex[:12]  # this process, so it can ignore its own messages
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._connected: list[Callable[[], None]] = []

    def subscribe(self, topic: str, handler: Handler) -> None:
        """``handler(message)`` for each message on ``topic`` from another instance."""
        self._handlers[topic].append(handler)

    def on_connect(self, handler: Callable[[], None]) -> None:
        """``handler()`` each time listening (re)starts: reload what may have changed unheard."""
        self._connected.append(handler)

    def follow(self, topic: str, reload: Callable[[], None]) -> None:
        """``reload()`` on each message on ``topic`` and each time listening (re)starts: for state
        that is read whole from the store again."""
        self.subscribe(topic, lambda message: reload())
        self.on_connect(reload)

    def publish(self, conn: Any, topic: str, **fields: Any) -> None:
        """Tell the others, on ``conn`` (inside the transaction that made the change)."""
        return None

    def start(self) -> None:
        return None

    def close(self) -> None:
        return None

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("from") == self.instance:
            return
        for handler in self._handlers.get(str(message.get("topic")), ()):
            try:
                handler(message)
            except Exception:
                logger.exception("handling a %s message from another instance failed", message.get("topic"))


def chunks(values: list[Any], limit: int = PAYLOAD_LIMIT) -> list[list[Any]]:
    """Split ``values`` so that each part, as JSON, stays well under NOTIFY's payload limit."""
    parts: list[list[Any]] = [[]]
    size = 0
    for value in values:
        length = len(orjson.dumps(value)) + 1
        if parts[-1] and size + length > limit:
            parts.append([])
            size = 0
        parts[-1].append(value)
        size += length
    return parts


class PgEvents(Events):
    RETRY_SECONDS = 1.0

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]]) -> None:
        super().__init__()
        self._connect = connect
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection[Any] | None = None

    def publish(self, conn: Any, topic: str, **fields: Any) -> None:
        listed = {k: v for k, v in fields.items() if isinstance(v, list)}
        name, values = next(iter(listed.items())) if listed else (None, [])
        for part in chunks(values) if name else [None]:
            message = {"from": self.instance, "topic": topic, **fields, **({name: part} if name else {})}
            conn.execute("SELECT pg_notify(?, ?)", [CHANNEL, orjson.dumps(message).decode()])

    def start(self) -> None:
        """Listen from now on (after the pool has loaded: the first connect reloads once more)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="store-listener", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._conn is not None:
            self._conn.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._conn = conn = self._connect()
                conn.execute(f"LISTEN {CHANNEL}")
                for handler in self._connected:
                    try:
                        handler()
                    except Exception:
                        logger.exception("reloading from the shared store failed")
                while not self._stop.is_set():
                    for notify in conn.notifies(timeout=0.5):
                        try:
                            message = orjson.loads(notify.payload)
                        except orjson.JSONDecodeError:
                            continue  # not one of ours
                        if isinstance(message, dict):
                            self._dispatch(message)
            except Exception:
                if self._stop.is_set():
                    return
                logger.warning("listening to the shared store failed; retrying in %.0fs", self.RETRY_SECONDS, exc_info=True)
                if self._conn is not None:
                    self._conn.close()
                self._stop.wait(self.RETRY_SECONDS)
