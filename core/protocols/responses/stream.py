"""The backend's events relayed to the client."""

from __future__ import annotations

from typing import Any

import orjson

from core.codex.sse import format_event
from core.protocols.base import DeltaStream, Failure, random_id
from core.protocols.openai_chat.errors import error_payload
from core.protocols.responses.response import ResponsesContext, with_output
from core.turn.model import UpstreamEvent


class StreamTranslator(DeltaStream):
    """Relays upstream events unchanged, except the terminal one, whose empty output is filled in.
    It reads the backend's events, not their deltas, so ``feed`` is its own; the closing-frame
    guard and the keep-alive are the shared ones."""

    def __init__(self, context: ResponsesContext) -> None:
        self._items: list[dict[str, Any]] = []
        self._response_id: str | None = None

    def feed(self, event: UpstreamEvent) -> bytes:
        name = event.name
        if name == "response.output_item.done" and isinstance(event.data.get("item"), dict):
            self._items.append(event.data["item"])
        elif name == "response.created":
            self._response_id = (event.data.get("response") or {}).get("id")
        elif name in ("response.completed", "response.incomplete", "response.failed"):
            self._done = True
            if not (event.data.get("response") or {}).get("output") and self._items:
                data = {**event.data, "response": with_output(event.data.get("response"), self._items)}
                return format_event(name, orjson.dumps(data))
        elif name == "error":
            # A bare error event (or our synthetic "stream_disconnected") becomes response.failed,
            # the terminal event Responses clients such as Codex CLI act on.
            error = event.data.get("error") if isinstance(event.data.get("error"), dict) else event.data
            self._done = True
            return self._failed({k: error.get(k) for k in ("type", "code", "message") if error.get(k) is not None})
        return format_event(name, event.raw)

    def _failed(self, error: dict[str, Any]) -> bytes:
        response = {"id": self._response_id or random_id("resp_proxy_"), "object": "response", "status": "failed",
                    "error": error, "output": self._items}
        return format_event("response.failed", orjson.dumps({"type": "response.failed", "response": response}))

    def error_frame(self, error: Failure) -> bytes:
        payload = error_payload(error)["error"]
        return self._failed({"type": payload["type"], "code": payload["code"], "message": payload["message"]})
